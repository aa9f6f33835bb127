"""cocotb test of ``nic_axis``: real Ethernet frames through its AXI4-Stream ports.

cocotbext-axi's AxiStreamSource plays the MAC's receive side on ``s_axis_rx`` and its
AxiStreamSink the MAC's transmit side on ``m_axis_tx``, both with idle and backpressure
cycles. With no connection installed every frame is for host software: broadcast frames
(ARP requests, an unknown EtherType) come out whole on ``slow_rx``; a frame the MAC marks bad
with ``tuser`` never does and is counted; raw frames written on ``slow_tx`` go out on
``m_axis_tx`` byte for byte. Run by tests/test_nic_axis.py (``NIC_WIDTH`` in the environment).
"""

import itertools
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

WIDTH = int(os.environ.get("NIC_WIDTH", "64"))
LANES = WIDTH // 8
OUR_MAC, PEER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"


def broadcast_frames(rng):
    """Real frames host software must get: ARP requests and broadcasts of every length class."""
    frames = [bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) /
                    ARP(op="who-has", hwsrc=PEER_MAC, psrc="192.0.2.2", pdst=f"192.0.2.{i}"))
              .ljust(60, b"\0") for i in (1, 9)]
    for length in (60, 61, 64, 67, 128, 509, 1024, 1514):
        payload = bytes(rng.randrange(256) for _ in range(length - 14))
        frames.append(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC, type=0x88B5) / Raw(payload)))
    return frames


class TB:
    """Clock, reset, the AXI-Stream MAC model and the slow-path ports of ``nic_axis``."""

    def __init__(self, dut):
        self.dut = dut
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_rx"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_tx"), dut.clk, dut.rst)
        self.source.set_pause_generator(itertools.cycle([0, 0, 0, 1]))
        self.sink.set_pause_generator(itertools.cycle([0, 1, 1, 0, 0]))
        self.slow_frames = []

    async def reset(self):
        d = self.dut
        Clock(d.clk, 6.4, unit="ns").start()                        # 156.25 MHz
        for name in ("host_cmd__valid", "host_wdata__valid", "ctl_cmd__valid", "slow_tx__valid",
                     "tick"):
            getattr(d, name).value = 0
        for name in ("host_rsp__ready", "host_rdata__ready", "ctl_rsp__ready", "events__ready"):
            getattr(d, name).value = 1
        d.slow_rx__ready.value = 0
        d.rst.value = 1
        await ClockCycles(d.clk, 4)
        d.rst.value = 0
        await ClockCycles(d.clk, 2)
        cocotb.start_soon(self._collect_slow_rx())

    async def _collect_slow_rx(self):
        """Take frames from ``slow_rx``, ready three clocks of four (backpressure)."""
        d, frame = self.dut, bytearray()
        await RisingEdge(d.clk)
        for ready in itertools.cycle([1, 1, 0, 1]):
            d.slow_rx__ready.value = ready
            await ReadOnly()                    # settled: what the edge will transfer
            taken = ready and d.slow_rx__valid.value == 1
            beat = d.slow_rx__payload.value.to_unsigned() if taken else 0
            await RisingEdge(d.clk)
            if taken:
                data, keep, last = beat & ((1 << WIDTH) - 1), (beat >> WIDTH) & ((1 << LANES) - 1), beat >> (WIDTH + LANES)
                frame += bytes((data >> (8 * i)) & 0xFF for i in range(LANES) if keep >> i & 1)
                if last:
                    self.slow_frames.append(bytes(frame))
                    frame = bytearray()

    async def send_slow_tx(self, frame: bytes):
        """Write `frame` on ``slow_tx`` (raw frame from host software), one beat per clock."""
        d = self.dut
        for start in range(0, len(frame), LANES):
            chunk = frame[start:start + LANES]
            data = int.from_bytes(chunk, "little")
            keep = (1 << len(chunk)) - 1
            last = int(start + LANES >= len(frame))
            d.slow_tx__payload.value = data | keep << WIDTH | last << (WIDTH + LANES)
            d.slow_tx__valid.value = 1
            while True:
                await ReadOnly()
                taken = d.slow_tx__ready.value == 1
                await RisingEdge(d.clk)
                if taken:
                    break
        d.slow_tx__valid.value = 0

    async def wait_for(self, condition, limit=20000, what="condition"):
        for _ in range(limit):
            if condition():
                return
            await RisingEdge(self.dut.clk)
        raise AssertionError(f"timed out waiting for {what}")


@cocotb.test()
async def frames_through_axi_stream(dut):
    tb = TB(dut)
    await tb.reset()
    rng = random.Random(11)
    good = broadcast_frames(rng)
    bad = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC, type=0x88B5) / Raw(b"bad frame" * 20))
    # receive: every good frame reaches host software whole and in order; the bad one never
    for i, frame in enumerate(good):
        await tb.source.send(AxiStreamFrame(frame))
        if i == 3:
            await tb.source.send(AxiStreamFrame(bad, tuser=1))
    await tb.wait_for(lambda: len(tb.slow_frames) >= len(good), what="the slow-path frames")
    await ClockCycles(dut.clk, 200)
    assert tb.slow_frames == good, (
        f"slow_rx got {len(tb.slow_frames)} frames, expected {len(good)}; first difference at "
        f"{next((i for i, (a, b) in enumerate(zip(tb.slow_frames, good)) if a != b), None)}")
    assert dut.rx_bad_frames.value.to_unsigned() == 1
    assert dut.rx_overflow_frames.value.to_unsigned() == 0

    # transmit: raw frames from host software leave on m_axis_tx byte for byte, tuser low
    sent = [bytes(Ether(dst=PEER_MAC, src=OUR_MAC, type=0x88B5) / Raw(bytes(rng.randrange(256)
                  for _ in range(length - 14)))) for length in (60, 65, 300, 1514)]
    for frame in sent:
        await tb.send_slow_tx(frame)
    for frame in sent:
        got = await tb.sink.recv()
        assert bytes(got.tdata) == frame, f"m_axis_tx sent {bytes(got.tdata).hex()}, expected {frame.hex()}"
        assert not any(got.tuser if isinstance(got.tuser, list) else [got.tuser])
    await ClockCycles(dut.clk, 100)
    assert tb.sink.empty() and tb.source.empty()
    assert dut.idle.value == 1
