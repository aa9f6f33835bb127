"""The cocotb testbench of the NIC: clock, reset, every port, and a blocking facade for the OS.

:class:`NicBench` owns the simulation: one loop drives every source and samples every sink
once per clock (values settle in ReadOnly, transfers happen at the rising edge), so the
bench costs one pass of Python per cycle whatever the traffic. Sinks are always ready;
sources are queues. Its coroutines are the primitives: send a frame, run a host command,
run a control command, pulse a tick, run until the NIC is idle. Frames back to back
(``send_frames``) and host commands back to back (``queue_host`` then ``take_host``) are
queued whole before the clock runs, then the bench settles once.

:class:`NicPort` is the same as blocking calls (``cocotb.task.resume``), so the OS driver
(``tb/nic_os.py``) and the scenarios stay plain synchronous Python running in a
``cocotb.task.bridge`` thread, exactly as they run against the golden model.
"""

import collections
import os
from dataclasses import dataclass, field

from amaranth.hdl import Shape
from amaranth.lib import data
from amaranth.lib.enum import EnumType

from cocotb.clock import Clock
from cocotb.task import resume
from cocotb.triggers import ReadOnly, RisingEdge

from hdl.engine.observe import EngineObservation
from hdl.engine.tcp_engine import EngineStep
from hdl.layouts import FrameBeat
from hdl.ports import (STROBED_INPUTS, STROBED_OUTPUTS, ConnEvent, ControlCommand, ControlResponse,
                       HostCommand, HostOp, HostResponse, PortStrobes)
from tb.amaranth_sim import frame_to_beats

__all__ = ["NicBench", "NicPort", "pack", "check_fields"]

DEBUG = bool(os.environ.get("NIC_DEBUG"))
# cycles the NIC must stay idle before a step counts as finished
IDLE_CYCLES = 3


def check_fields(layout: data.Layout, fields: dict, where: str = ""):
    """Raise ValueError unless every value in `fields` fits its field of `layout`: a packer
    that truncated a pid, a connection number or a length would put a command on another
    process's page or connection."""
    for name, value in fields.items():
        try:
            shape = layout[name].shape
        except KeyError:
            raise ValueError(f"{where}{name}: no such field in {layout!r}") from None
        if isinstance(shape, data.Layout):
            if not isinstance(value, dict):
                raise ValueError(f"{where}{name}: expected a dict of fields, not {value!r}")
            check_fields(shape, value, f"{where}{name}.")
        elif isinstance(shape, EnumType):
            if not isinstance(value, shape) and value not in {m.value for m in shape}:
                raise ValueError(f"{where}{name}: {value!r} is not a {shape.__name__}")
        else:
            shape = Shape.cast(shape)
            low, high = ((-(1 << shape.width - 1), 1 << shape.width - 1) if shape.signed
                         else (0, 1 << shape.width))
            if not isinstance(value, int) or not low <= value < high:
                raise ValueError(f"{where}{name}: {value!r} does not fit {shape.width} bits"
                                 f"{' signed' if shape.signed else ''}")


def _unpacker(layout: data.StructLayout):
    """A function from an int to {field: value} for `layout`'s fields (enum fields by member
    name), much faster than ``data.Const`` (the coverage unpacks on many clocks)."""
    fields = []
    for name, field in layout:
        names = ({m.value: m.name for m in field.shape} if isinstance(field.shape, EnumType)
                 else None)
        fields.append((name, field.offset, (1 << field.width) - 1, names))

    def unpack(value: int) -> dict:
        out = {}
        for name, offset, mask, names in fields:
            v = value >> offset & mask
            out[name] = names.get(v, str(v)) if names else v
        return out
    return unpack


_LATCH, _TCP_START, _TIMER = (EngineStep.LATCH.value, EngineStep.TCP_START.value,
                              EngineStep.TIMER.value)
_OBSERVED = frozenset((_LATCH, _TCP_START, _TIMER))


def pack(layout: data.Layout, fields: dict) -> int:
    """`fields` packed as `layout`'s bits; every value range-checked (`check_fields`)."""
    check_fields(layout, fields)
    return layout.const(fields).as_value().value


@dataclass
class _Source:
    """A queue of payloads (ints) driven onto a valid/ready port."""
    valid: object
    payload: object
    queue: collections.deque = field(default_factory=collections.deque)
    sent: int = 0

    driven: tuple = (0, 0)      # (valid, payload) last written: write only what changes

    def drive(self):
        valid, payload = (1, self.queue[0]) if self.queue else (0, self.driven[1])
        if valid != self.driven[0]:
            self.valid.value = valid
        if payload != self.driven[1]:
            self.payload.value = payload
        self.driven = (valid, payload)


@dataclass
class _Sink:
    valid: object
    payload: object
    ready: object
    items: list = field(default_factory=list)


class _FrameSink(_Sink):
    """Collects frames from a FrameBeat stream (bytes per frame)."""

    def __init__(self, valid, payload, ready, data_width):
        super().__init__(valid, payload, ready)
        self.lanes = data_width // 8
        layout = FrameBeat(data_width)
        self._data_mask = (1 << data_width) - 1
        self._keep_shift, self._last_shift = layout["keep"].offset, layout["last"].offset
        self.partial = bytearray()

    def take(self, value: int):
        raw = (value & self._data_mask).to_bytes(self.lanes, "little")
        keep = value >> self._keep_shift
        self.partial += bytes(raw[i] for i in range(self.lanes) if keep >> i & 1)
        if value >> self._last_shift & 1:
            self.items.append(bytes(self.partial))
            self.partial.clear()


class NicBench:
    """Drives the ``nic`` top module (``hdl.nic.NIC``) under cocotb."""

    def __init__(self, dut, *, data_width, connections, processes, clock_ns=10, coverage=None):
        self.dut = dut
        self.data_width = data_width
        self.conn_bits = (connections - 1).bit_length()
        self.processes = processes
        self.pid_bits = (processes - 1).bit_length()
        self.beat_layout = FrameBeat(data_width)
        self.host_layout = HostCommand(self.pid_bits)
        self.ctl_layout = ControlCommand(self.conn_bits, self.pid_bits)
        self.event_layout = ConnEvent(self.conn_bits)
        self.clock_ns = clock_ns
        self.cycles = 0
        d = dut
        self.rx = _Source(d.rx__valid, d.rx__payload)
        self.slow_tx = _Source(d.slow_tx__valid, d.slow_tx__payload)
        self.host_cmd = _Source(d.host_cmd__valid, d.host_cmd__payload)
        self.host_wdata = _Source(d.host_wdata__valid, d.host_wdata__payload)
        self.ctl_cmd = _Source(d.ctl_cmd__valid, d.ctl_cmd__payload)
        self.sources = [getattr(self, name) for name in STROBED_INPUTS]    # (ready: from the strobes)
        self.tx = _FrameSink(d.tx__valid, d.tx__payload, d.tx__ready, data_width)
        self.slow_rx = _FrameSink(d.slow_rx__valid, d.slow_rx__payload, d.slow_rx__ready, data_width)
        self.host_rdata = _FrameSink(d.host_rdata__valid, d.host_rdata__payload, d.host_rdata__ready,
                                     data_width)
        self.host_rsp = _Sink(d.host_rsp__valid, d.host_rsp__payload, d.host_rsp__ready)
        self.ctl_rsp = _Sink(d.ctl_rsp__valid, d.ctl_rsp__payload, d.ctl_rsp__ready)
        self.events = _Sink(d.events__valid, d.events__payload, d.events__ready)
        self.sinks = [getattr(self, name) for name in STROBED_OUTPUTS]
        # the handshakes come from one read of the debug port's strobes (hdl.ports.PortStrobes)
        strobes = PortStrobes()
        self._strobes, self._clk, self._step = d.debug__strobes, d.clk, d.debug__engine_step
        self._ready_bit = [strobes[f"{name}_ready"].offset for name in STROBED_INPUTS]
        self._valid_bit = [strobes[f"{name}_valid"].offset for name in STROBED_OUTPUTS]
        self._idle_bit = strobes["idle"].offset
        self.idle_run = 0
        self.settle_limit = 1_000_000       # clocks a settle may take beyond its queued beats
        self.host_queued: list[dict] = []       # host commands queued by queue_host
        self.slow_stall = 0                     # cycles slow_rx.ready stays low (hold_slow)
        self._slow_ready = True
        self._slow_held = False                 # a hold_slow in this settle: wait for its frames
        self._slow_valid = False
        self.host_mark = (0, 0)
        # functional coverage (tb/coverage.py) from the debug port and the host responses
        self.coverage = coverage
        if coverage is not None:
            self.observation = EngineObservation(self.conn_bits, coverage.rcv_bytes,
                                                 coverage.snd_bytes)
            self._unpack = _unpacker(self.observation)
            conn = self.host_layout["conn"]
            self._host_conn = (conn.offset, (1 << conn.width) - 1)

    def _observe(self, step: int):
        """Feed the coverage collector the engine's event, segment or timer of this clock
        (`step`: the engine's step; fields unpacked by hand, data.Const is slow per clock)."""
        d = self.dut
        if step == _LATCH:
            obs = self._unpack(int(d.debug__engine_event.value))
            waiting = []
            if int(d.debug__rx_waiting.value) and int(d.debug__rx_waiting_conn.value) == obs["conn"]:
                waiting.append("RX")
            if self.host_cmd.queue and (self.host_cmd.queue[0] >> self._host_conn[0]
                                        & self._host_conn[1]) == obs["conn"]:
                waiting.append("HOST")
            self.coverage.sample_event(source=obs["source"], state=obs["state"],
                                       rx_used=obs["rx_used"], rx_start=obs["rx_start"],
                                       tx_used=obs["tx_used"], tx_start=obs["tx_start"],
                                       waiting=waiting)
        elif step == _TCP_START:
            obs = self._unpack(int(d.debug__engine_event.value))
            self.coverage.sample_segment(obs["state"], obs["segment"])
        elif step == _TIMER:
            self.coverage.sample_timer(self._unpack(int(d.debug__engine_event.value))["timer"])

    def _host_answered(self, fields, rsp):
        if self.coverage is not None:
            self.coverage.sample_host(HostOp(fields["op"]), rsp.status, rsp.error)

    async def start(self):
        """Start the clock and reset the NIC."""
        d = self.dut
        Clock(d.clk, self.clock_ns, unit="ns").start()
        for source in self.sources:
            source.valid.value = 0
            source.payload.value = 0
        for sink in self.sinks:
            sink.ready.value = 1
        d.tick.value = 0
        d.rst.value = 1
        for _ in range(4):
            await RisingEdge(d.clk)
        d.rst.value = 0
        await RisingEdge(d.clk)
        if self.coverage is not None:
            width = Shape.cast(self.observation).width
            if len(d.debug__engine_event.value) != width:
                raise ValueError(f"debug__engine_event has {len(d.debug__engine_event.value)} bits, "
                                 f"not {width}: the coverage's ring sizes are not the build's")

    async def cycle(self):
        """One clock: sample every port once settled, then let the edge transfer."""
        await ReadOnly()
        try:
            strobes = int(self._strobes.value)
        except ValueError:
            raise AssertionError(f"a handshake is X: debug__strobes = {self._strobes.value} "
                                 f"(hdl.ports.PortStrobes)") from None
        fired = [(source, strobes >> bit & 1)
                 for source, bit in zip(self.sources, self._ready_bit) if source.queue]
        taken = []
        self._slow_valid = False
        for sink, bit in zip(self.sinks, self._valid_bit):
            if strobes >> bit & 1:
                if sink is self.slow_rx:
                    self._slow_valid = True
                    if not self._slow_ready:
                        continue
                taken.append((sink, int(sink.payload.value)))
        idle = strobes >> self._idle_bit & 1
        if self.coverage is not None:
            step = int(self._step.value)
            if step in _OBSERVED:
                self._observe(step)
        await RisingEdge(self._clk)
        self.cycles += 1
        if self.slow_stall:
            self.slow_stall -= 1
        self._drive_slow_ready()
        for source, did in fired:
            if did:
                source.queue.popleft()
                source.sent += 1
        for source in self.sources:
            source.drive()
        for sink, value in taken:
            if isinstance(sink, _FrameSink):
                sink.take(value)
            else:
                sink.items.append(value)
        busy = any(source.queue for source in self.sources)
        self.idle_run = self.idle_run + 1 if idle and not busy else 0

    def beats(self, frame: bytes) -> list[int]:
        """`frame` as the beats of a frame port (``FrameBeat`` values as ints).
        An empty frame is one beat with no byte kept (a MAC's 0-byte runt)."""
        keep_shift, last_shift = self.beat_layout["keep"].offset, self.beat_layout["last"].offset
        if not frame:
            return [1 << last_shift]
        # (frame_to_beats' fields fit by construction: packed by shifts, not data.Const, which
        # is slow per beat)
        return [data | keep << keep_shift | last << last_shift
                for data, keep, last in frame_to_beats(frame, self.data_width)]

    def hold_slow(self, cycles: int):
        """Keep the slow path's ready low for the next `cycles` clocks of the next settle
        (host software busy: the NIC's slow-path FIFO fills and drops what does not fit); that
        settle then also waits until the FIFO has handed over everything it kept."""
        self.slow_stall = cycles
        self._slow_held = True

    def _drive_slow_ready(self):
        ready = not self.slow_stall
        if ready != self._slow_ready:
            self.slow_rx.ready.value = int(ready)
            self._slow_ready = ready

    async def settle(self):
        """Run until every queue is empty and the NIC has been idle for a few cycles (and
        any `hold_slow` is over); at most `settle_limit` clocks beyond one per queued beat
        (a 1 MiB write is 1,048,576 beats at 8 bits, each taken, stored or drained, in a
        clock of its own)."""
        self._drive_slow_ready()
        for source in self.sources:
            source.drive()
        limit = self.settle_limit + sum(len(source.queue) for source in self.sources)
        self.idle_run = 0
        for _ in range(limit):
            await self.cycle()
            if self.idle_run >= IDLE_CYCLES and not self.slow_stall and not (
                    self._slow_held and self._slow_valid):
                self._slow_held = False     # (the NIC's idle does not cover the slow FIFO)
                if int(self.dut.debug__send_ring_writer_error.value):
                    raise AssertionError("the send ring took a WRITE that was not at its tail "
                                         "or did not fit (writer_error): the engine's clip broke")
                return
        raise TimeoutError(f"NIC not idle after {limit} cycles: {self._activity()}")

    def _activity(self) -> str:
        """What the NIC and the bench are doing now (for a settle that never ends)."""
        strobes = int(self._strobes.value)
        valid = [name for name, bit in zip(STROBED_OUTPUTS, self._valid_bit) if strobes >> bit & 1]
        ready = [name for name, bit in zip(STROBED_INPUTS, self._ready_bit) if strobes >> bit & 1]
        queued = {name: len(source.queue) for name, source in zip(STROBED_INPUTS, self.sources)
                  if source.queue}
        return (f"idle {strobes >> self._idle_bit & 1}, engine step {int(self._step.value)}, "
                f"valid {valid}, ready {ready}, queued {queued}, sinks took "
                f"{ {name: len(sink.items) for name, sink in zip(STROBED_OUTPUTS, self.sinks)} }")

    async def send_frame(self, frame: bytes):
        await self.send_frames([frame])

    async def send_frames(self, frames: list[bytes]):
        """`frames` back to back on the receive port (every beat queued at once), one settle."""
        for frame in frames:
            self.rx.queue.extend(self.beats(frame))
        await self.settle()

    def queue_frames(self, frames: list[bytes]):
        """Queue `frames` back to back on the receive port without running the clock: the
        next settle (of a host command queued meanwhile, say) takes them with it."""
        for frame in frames:
            self.rx.queue.extend(self.beats(frame))

    async def raw_tx(self, frame: bytes):
        self.slow_tx.queue.extend(self.beats(frame))
        await self.settle()

    async def tick(self):
        self.dut.tick.value = 1
        await self.cycle()
        self.dut.tick.value = 0
        await self.settle()

    async def host(self, fields: dict, wdata: bytes = b""):
        """One host command; returns (HostResponse as a data.Const, read data)."""
        self.host_cmd.queue.append(pack(self.host_layout, fields))
        if wdata:
            self.host_wdata.queue.extend(self.beats(wdata))
        before_rsp = len(self.host_rsp.items)
        before_data = len(self.host_rdata.items)
        await self.settle()
        if len(self.host_rsp.items) != before_rsp + 1:
            raise AssertionError(f"host command {fields} got {len(self.host_rsp.items) - before_rsp} responses")
        rsp = data.Const(HostResponse(), self.host_rsp.items.pop())
        self._host_answered(fields, rsp)
        frames = self.host_rdata.items[before_data:]
        del self.host_rdata.items[before_data:]
        read = b"".join(frames)
        if fields.get("op") == HostOp.READ and rsp.status.name == "OK" and len(read) != rsp.count:
            raise AssertionError(f"READ answered count {rsp.count} but {len(read)} bytes came")
        return rsp, read

    def queue_host(self, fields: dict, wdata: bytes = b""):
        """Queue one host command (and its write data) without running the clock: commands
        queued one after the other go to the NIC back to back. `take_host` collects the
        answers."""
        if not self.host_queued:
            self.host_mark = (len(self.host_rsp.items), len(self.host_rdata.items))
        self.host_cmd.queue.append(pack(self.host_layout, fields))
        if wdata:
            self.host_wdata.queue.extend(self.beats(wdata))
        self.host_queued.append(fields)

    async def take_host(self):
        """Settle, then return the answers to the queued host commands, in queue order:
        a list of (HostResponse as a data.Const, read data)."""
        await self.settle()
        queued, self.host_queued = self.host_queued, []
        before_rsp, before_data = self.host_mark
        responses = self.host_rsp.items[before_rsp:]
        del self.host_rsp.items[before_rsp:]
        if len(responses) != len(queued):
            raise AssertionError(f"{len(queued)} queued host commands got {len(responses)} responses")
        read = b"".join(self.host_rdata.items[before_data:])
        del self.host_rdata.items[before_data:]
        answers, offset = [], 0
        for fields, value in zip(queued, responses):
            rsp = data.Const(HostResponse(), value)
            self._host_answered(fields, rsp)
            count = int(rsp.count) if fields.get("op") == HostOp.READ and rsp.status.name == "OK" else 0
            answers.append((rsp, read[offset:offset + count]))
            offset += count
        if offset != len(read):
            raise AssertionError(f"queued READs answered {offset} bytes but {len(read)} came")
        return answers

    async def control(self, fields: dict):
        self.ctl_cmd.queue.append(pack(self.ctl_layout, fields))
        before = len(self.ctl_rsp.items)
        await self.settle()
        if len(self.ctl_rsp.items) != before + 1:
            raise AssertionError(f"control command {fields} got {len(self.ctl_rsp.items) - before} responses")
        rsp = data.Const(ControlResponse(), self.ctl_rsp.items.pop())
        if DEBUG:
            self.dut._log.info(f"control {fields} -> {rsp}")
        return rsp

    def take_events(self):
        events = [data.Const(self.event_layout, v) for v in self.events.items]
        self.events.items.clear()
        return events

    def take(self, sink) -> list[bytes]:
        frames, sink.items = sink.items, []
        return frames


class NicPort:
    """Blocking calls into a :class:`NicBench`, for code running in a ``bridge`` thread."""

    def __init__(self, bench: NicBench):
        self.bench = bench
        self.data_width = bench.data_width
        self.send_frame = resume(bench.send_frame)
        self.send_frames = resume(bench.send_frames)
        self.queue_host = bench.queue_host
        self.queue_frames = bench.queue_frames
        self.hold_slow = bench.hold_slow
        self.take_host = resume(bench.take_host)
        self.raw_tx = resume(bench.raw_tx)
        self.tick = resume(bench.tick)
        self.host = resume(bench.host)
        self.control = resume(bench.control)
        self.settle = resume(bench.settle)

    def take_tx(self) -> list[bytes]:
        return self.bench.take(self.bench.tx)

    def take_slow(self) -> list[bytes]:
        return self.bench.take(self.bench.slow_rx)

    def take_events(self):
        return self.bench.take_events()

    @property
    def cycles(self) -> int:
        return self.bench.cycles

    @property
    def processes(self) -> int:
        """Doorbell pages of the NIC: page 0 is the OS's, one page per process."""
        return self.bench.processes
