"""hdl/tx/framer.py against model/packet.py's frame builder and scapy, at both widths."""

import ipaddress
import itertools
import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from flow.build import lint_component
from hdl.tx.framer import TxFramer, TxHeader, header_bytes
from hdl.wire import L4Protocol
from model.protocol import SACK_MAX_BLOCKS, TcpFlag
from model.checksum import ones_complement_sum
from model.packet import TcpSegment, UdpDatagram, build_tcp_frame, build_udp_frame
from tb.amaranth_sim import beats_to_frame, frame_to_beats
from flow.tools import BUILD

WIDTHS = (8, 64)


@dataclass
class Job:
    """One frame: the header entry's fields and the payload; `expect` is the model's frame."""
    src_mac: bytes
    dst_mac: bytes
    src_ip: str
    dst_ip: str
    udp: bool
    src_port: int
    dst_port: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    mss: int | None = None
    wscale: int | None = None     # the window scale option after the MSS (the framer's shift)
    sack_permitted: bool = False  # the SACK-permitted option after the MSS
    sack: tuple = ()              # SACK blocks, (left, right) pairs
    # Header fields that must not change the frame (the SACK blocks beyond `sack`'s too)
    ignored: dict = field(default_factory=dict)

    @property
    def expect(self) -> bytes:
        if self.udp:
            return build_udp_frame(self.src_mac, self.dst_mac, self.src_ip, self.dst_ip,
                                   UdpDatagram(self.src_port, self.dst_port, self.payload))
        seg = TcpSegment(self.src_port, self.dst_port, self.seq, self.ack, TcpFlag(self.flags),
                         self.window, self.payload, self.mss, self.wscale,
                         sack_permitted=self.sack_permitted, sack=self.sack)
        return build_tcp_frame(self.src_mac, self.dst_mac, self.src_ip, self.dst_ip, seg)

    def header(self) -> dict:
        header = {
            "dst_mac": int.from_bytes(self.dst_mac, "big"),
            "src_mac": int.from_bytes(self.src_mac, "big"),
            "src_ip": int(ipaddress.IPv4Address(self.src_ip)),
            "dst_ip": int(ipaddress.IPv4Address(self.dst_ip)),
            "protocol": L4Protocol.UDP if self.udp else L4Protocol.TCP,
            "src_port": self.src_port, "dst_port": self.dst_port,
            "seq": self.seq, "ack": self.ack,
            "flags": self.flags,
            "window": self.window, "mss": self.mss or 0, "mss_option": self.mss is not None,
            "wscale_option": self.wscale is not None,
            "sack_permitted_option": self.sack_permitted,
            "length": len(self.payload),
        }
        header.update(self.ignored)
        if self.sack:
            header["sack_count"] = len(self.sack)
            header["sack"] = ([{"left": left, "right": right} for left, right in self.sack]
                              + header.get("sack", [])[len(self.sack):])
        return header


def random_job(rng, length, udp=None):
    udp = rng.random() < 0.4 if udp is None else udp
    job = Job(rng.randbytes(6), rng.randbytes(6),
              str(ipaddress.IPv4Address(rng.getrandbits(32))),
              str(ipaddress.IPv4Address(rng.getrandbits(32))),
              udp, rng.getrandbits(16), rng.getrandbits(16), rng.randbytes(length))
    if not udp:
        job.seq, job.ack, job.window = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(16)
        job.flags = rng.getrandbits(6)
        if rng.random() < 0.3:
            job.flags |= TcpFlag.SYN
            job.mss = rng.getrandbits(16)
    return job


@dataclass
class Run:
    frames: list = field(default_factory=list)
    out_beats: int = 0
    out_cycles: int = 0       # cycles from the first output beat to the last, inclusive
    latencies: list = field(default_factory=list)   # last payload beat in -> first beat out
    first_out: int = None     # the cycle of the first output beat
    now: int = 0              # the sink's cycle count
    sums_taken: list = field(default_factory=list)   # the cycles given sums were taken


def run_jobs(width, jobs, pauses=None, sink_pauses=None, header_pauses=None, sum_pauses=None,
             sum_delay=0, **kwargs):
    """Drive every job's header and payload (and with `given_sums`, each TCP payload's sum,
    RFC 1071's, on `given_sum`, pausing on `sum_pauses`, and offered no sooner than
    `sum_delay` clocks after its header was taken) and collect the frames."""
    pauses = iter(pauses) if pauses is not None else itertools.repeat(False)
    sink_pauses = iter(sink_pauses) if sink_pauses is not None else itertools.repeat(False)
    header_pauses = iter(header_pauses) if header_pauses is not None else itertools.repeat(False)
    dut = TxFramer(width, **kwargs)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()

    headers_taken = []

    header_bits = len(dut.header.payload.as_value())

    async def headers(ctx):
        # Between headers the port holds garbage, new each clock (a header FIFO's read data
        # shows another entry): the framer must not use what it loads then.
        for job in jobs:
            while next(header_pauses):
                ctx.set(dut.header.payload.as_value(), random.getrandbits(header_bits))
                await ctx.tick()
            ctx.set(dut.header.valid, 1)
            ctx.set(dut.header.payload, job.header())
            await ctx.tick().until(dut.header.ready)
            headers_taken.append(job)
            ctx.set(dut.header.valid, 0)
            ctx.set(dut.header.payload.as_value(), random.getrandbits(header_bits))
        while True:
            await ctx.tick()
            ctx.set(dut.header.payload.as_value(), random.getrandbits(header_bits))

    async def payloads(ctx):
        for job in jobs:
            if not job.payload:
                continue
            for data, keep, last in frame_to_beats(job.payload, width):
                while next(pauses):
                    ctx.set(dut.payload.valid, 0)
                    await ctx.tick()
                # Lanes beyond `keep` hold garbage: the framer must not send it.
                garbage = random.getrandbits(width) & ~((1 << 8 * keep.bit_length()) - 1)
                ctx.set(dut.payload.valid, 1)
                ctx.set(dut.payload.payload, {"data": data | garbage, "keep": keep, "last": last})
                await ctx.tick().until(dut.payload.ready)
            ctx.set(dut.payload.valid, 0)

    async def sink(ctx):
        beats, cycle, first = [], 0, None
        last_in = None
        ctx.set(dut.o.ready, not next(sink_pauses))
        async for _, _, p_valid, p_ready, p_last, o_valid, o_ready, o_payload in ctx.tick().sample(
                dut.payload.valid, dut.payload.ready, dut.payload.payload.last,
                dut.o.valid, dut.o.ready, dut.o.payload):
            if p_valid and p_ready and p_last:
                last_in = cycle
            if o_valid and not beats and last_in is not None:
                run.latencies.append(cycle - last_in)
                last_in = None
            if o_valid and o_ready:
                run.out_beats += 1
                first = cycle if first is None else first
                run.first_out = first
                run.out_cycles = cycle - first + 1
                beats.append((o_payload.data, o_payload.keep))
                if o_payload.last:
                    run.frames.append(beats_to_frame(beats, width))
                    beats = []
                    if len(run.frames) == len(jobs):
                        break
            ctx.set(dut.o.ready, not next(sink_pauses))
            cycle += 1
            run.now = cycle
            assert cycle < 1_000_000, "framer hung"

    async def given_sums(ctx):
        sum_pauses_ = iter(sum_pauses) if sum_pauses is not None else itertools.repeat(False)
        for job in jobs:
            if job.udp or not job.payload:
                continue
            while next(sum_pauses_):
                ctx.set(dut.given_sum.valid, 0)
                await ctx.tick()
            if sum_delay:
                ctx.set(dut.given_sum.valid, 0)
                while job not in headers_taken:
                    await ctx.tick()
                await ctx.tick().repeat(sum_delay)
            ctx.set(dut.given_sum.valid, 1)
            ctx.set(dut.given_sum.payload, ones_complement_sum(job.payload))
            await ctx.tick().until(dut.given_sum.ready)
            run.sums_taken.append(run.now)
        ctx.set(dut.given_sum.valid, 0)

    sim.add_testbench(headers, background=True)
    sim.add_testbench(payloads, background=True)
    if kwargs.get("given_sums"):
        sim.add_testbench(given_sums, background=True)
    sim.add_testbench(sink)
    sim.run()
    return run


def scapy_check(raw: bytes):
    """scapy parses the frame, and its recomputed checksums equal ours."""
    pkt = Ether(raw)
    l4 = pkt[UDP] if UDP in pkt else pkt[TCP]
    ours = (pkt[IP].chksum, l4.chksum)
    del pkt[IP].chksum
    del l4.chksum
    rebuilt = Ether(bytes(pkt))
    l4_rebuilt = rebuilt[UDP] if UDP in rebuilt else rebuilt[TCP]
    assert (rebuilt[IP].chksum, l4_rebuilt.chksum) == ours
    assert bytes(pkt) == raw


def check_run(run, jobs, scapy=True):
    assert len(run.frames) == len(jobs)
    for n, (job, got) in enumerate(zip(jobs, run.frames)):
        expect = job.expect
        assert got == expect, (
            f"frame {n} ({'UDP' if job.udp else 'TCP'}, payload {len(job.payload)} bytes, "
            f"mss {job.mss}, {len(job.sack)} SACK blocks): {len(expect)} bytes expected, "
            f"{len(got)} seen\n"
            f" expected {expect.hex()}\n got      {got.hex()}")
        if scapy:
            scapy_check(got)


def lengths_for(width, rng):
    edge = [0, 1, 2, 3, 5, 6, 7, 8, 9, 17, 18, 19, 63, 64, 65, 1460, 1472]
    return edge + [rng.randrange(1, 200) for _ in range(25 if width == 64 else 6)] + \
        [rng.randrange(200, 1461) for _ in range(4 if width == 64 else 1)]


# -- tests -----------------------------------------------------------------------------------

def test_data_width_message():
    with pytest.raises(TypeError, match=r"^Data width must be 8 or 64, not 16$"):
        TxFramer(16)


@pytest.mark.parametrize("size", [1024, 1473, "4096"])
def test_buffer_size_message(size):
    with pytest.raises(TypeError, match=rf"^Buffer size must be a multiple of 8 bytes and at "
                                        rf"least 1472, not {size!r}$"):
        TxFramer(64, buffer_bytes=size)


@pytest.mark.parametrize("width", WIDTHS)
def test_edge_lengths_and_kinds(width):
    """Every header kind (UDP, TCP, TCP with MSS) with lengths around the padding limit."""
    rng = random.Random(width)
    jobs = []
    for length in [0, 1, 2, 5, 6, 7, 17, 18, 19, 8, 15, 16, 1460]:
        jobs += [random_job(rng, length, udp=True), random_job(rng, length, udp=False)]
        jobs.append(random_job(rng, length, udp=False))
        jobs[-1].mss = rng.getrandbits(16)
    check_run(run_jobs(width, jobs), jobs)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("shift", [0, 7, 14])
def test_window_scale_option(width, shift):
    """A framer built with a window scale: MSS then NOP and wscale on the frames that ask for
    it (data offset 7, scapy reads the options back), every other kind as before, and a
    header asking for the option without the MSS gets neither (the engine never asks so)."""
    rng = random.Random(shift)
    jobs = []
    for length in [0, 1, 6, 7, 8, 1460]:
        jobs += [random_job(rng, length, udp=True), random_job(rng, length, udp=False)]
        for wscale in (shift, None):
            jobs.append(random_job(rng, length, udp=False))
            jobs[-1].mss, jobs[-1].wscale = rng.getrandbits(16), wscale
    run = run_jobs(width, jobs, wscale=shift)
    check_run(run, jobs)
    scaled = [Ether(frame)[TCP] for job, frame in zip(jobs, run.frames) if job.wscale is not None]
    assert scaled and all(tcp.dataofs == 7 and tcp.options[1:] == [("NOP", None), ("WScale", shift)]
                          for tcp in scaled)
    with pytest.raises(TypeError, match="Window scale must be None or 0..14, not 15"):
        TxFramer(width, wscale=15)


def random_sack(rng, count):
    """`count` SACK blocks, their edges the extremes or any sequence number."""
    edge = lambda: rng.choice([0, 0xFFFFFFFF, rng.getrandbits(32)])
    return tuple((edge(), edge()) for _ in range(count))


def stale_sack(rng):
    """Header fields that fill every SACK block of a header with edges the frame must not
    carry (the engine leaves old ones there)."""
    return {"sack": [{"left": left, "right": right}
                     for left, right in random_sack(rng, SACK_MAX_BLOCKS)]}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("wscale", [None, 7])
def test_sack_options(width, wscale):
    """A framer built with SACK: SYNs with the MSS and, if asked, SACK-permitted and the window
    scale; other segments with 0 to 4 SACK blocks; payloads from none (up to 90 header bytes,
    a frame that ends in its header) to a full MSS (with SACK blocks only: the other kinds'
    long frames are tested above, and 8-bit simulation is slow). The blocks beyond
    ``sack_count``, ``sack_count`` on a SYN and the option fields on UDP change nothing;
    scapy reads the options back."""
    rng = random.Random(2018 + width + (wscale or 0))
    jobs = []
    for length in [0, 1, 7, 8]:
        jobs.append(random_job(rng, length, udp=True))
        jobs[-1].ignored = {"sack_permitted_option": 1, "sack_count": SACK_MAX_BLOCKS,
                            **stale_sack(rng)}
        for sack_permitted, scaled in itertools.product((False, True),
                                                         dict.fromkeys([None, wscale])):
            jobs.append(random_job(rng, length, udp=False))
            jobs[-1].flags |= TcpFlag.SYN
            jobs[-1].mss, jobs[-1].wscale = rng.getrandbits(16), scaled
            jobs[-1].sack_permitted = sack_permitted
            jobs[-1].ignored = {"sack_count": rng.randrange(1, SACK_MAX_BLOCKS + 1),
                                **stale_sack(rng)}
    for length in [0, 1, 7, 8, 1460]:
        for blocks in range(SACK_MAX_BLOCKS + 1):
            jobs.append(random_job(rng, length, udp=False))
            jobs[-1].flags, jobs[-1].mss = TcpFlag.ACK, None
            jobs[-1].sack = random_sack(rng, blocks)
            jobs[-1].ignored = {"sack_permitted_option": 1, "wscale_option": 1,
                                **stale_sack(rng)}
    sink_pauses = (rng.random() < 0.2 for _ in itertools.count())
    run = run_jobs(width, jobs, sink_pauses=sink_pauses, wscale=wscale, sack=True)
    check_run(run, jobs)
    for job, frame in zip(jobs, run.frames):
        if not job.udp:
            options = Ether(frame)[TCP].options
            assert (("SAckOK", b"") in options) == job.sack_permitted
            assert [value for name, value in options if name == "SAck"] == \
                ([sum(job.sack, ())] if job.sack else [])


@pytest.mark.parametrize("width", WIDTHS)
def test_sack_permitted_ignored_without_sack(width):
    """A framer built without SACK sends no SACK-permitted option, whatever a header says."""
    rng = random.Random(2018 + width)
    jobs = []
    for length, wscale in itertools.product([0, 7, 60], [None, 7]):
        jobs.append(random_job(rng, length, udp=False))
        jobs[-1].mss, jobs[-1].wscale = rng.getrandbits(16), wscale
        jobs[-1].ignored = {"sack_permitted_option": 1}
    check_run(run_jobs(width, jobs, wscale=7), jobs)


def test_sack_layouts():
    """The header bytes of the kinds SACK adds; the header layout grows by the SACK blocks and
    their count only with them, and a framer's header settles one cycle later with them."""
    assert header_bytes(7, sack=True) == {
        "udp": 42, "tcp": 54, "tcp_mss": 58, "tcp_mss_wscale": 62,
        "tcp_mss_sack_permitted": 62, "tcp_mss_sack_permitted_wscale": 66,
        "tcp_sack1": 66, "tcp_sack2": 74, "tcp_sack3": 82, "tcp_sack4": 90}
    assert [name for name, _ in TxHeader(SACK_MAX_BLOCKS)] == \
        [name for name, _ in TxHeader()] + ["sack_count", "sack"]
    assert TxHeader(SACK_MAX_BLOCKS).size - TxHeader().size == 3 + SACK_MAX_BLOCKS * 64
    assert TxFramer(8).header_settle == TxFramer.HEADER_SETTLE == 6
    assert TxFramer(8, sack=True).header_settle == 7
    assert TxFramer(8, sack=True).header.payload.shape() == TxHeader(SACK_MAX_BLOCKS)


@pytest.mark.parametrize("blocks", [-1, 5, True, "4"])
def test_sack_blocks_message(blocks):
    with pytest.raises(TypeError, match=rf"^SACK blocks must be an integer 0\.\.4, "
                                        rf"not {blocks!r}$"):
        TxHeader(blocks)
    with pytest.raises(TypeError, match=r"^SACK must be True or False, not 1$"):
        TxFramer(8, sack=1)


def test_udp_zero_checksum():
    # Payload chosen so that the UDP checksum computes to 0: sent as 0xFFFF (RFC 768).
    rng = random.Random(5)
    job = random_job(rng, 10, udp=True)
    job.payload = bytes(8)
    frame = job.expect
    field_value = int.from_bytes(frame[40:42], "big")
    # A payload word equal to that checksum brings the sum to 0xFFFF: the checksum is 0.
    job.payload = field_value.to_bytes(2, "big") + bytes(6)
    assert job.expect[40:42] == b"\xff\xff"
    for width in WIDTHS:
        check_run(run_jobs(width, [job, job]), [job, job])


@pytest.mark.parametrize("width", WIDTHS)
def test_random_with_backpressure(width):
    rng = random.Random(1460 + width)
    jobs = [random_job(rng, n) for n in lengths_for(width, rng)]
    rng.shuffle(jobs)
    pauses = (rng.random() < 0.3 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.3 for _ in itertools.count())
    header_pauses = (rng.random() < 0.3 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses, sink_pauses, header_pauses), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_minimum_buffer(width):
    rng = random.Random(7 + width)
    jobs = [random_job(rng, 1472, udp=True), random_job(rng, 1472, udp=True),
            random_job(rng, 3), random_job(rng, 1460, udp=False)]
    check_run(run_jobs(width, jobs, buffer_bytes=1472), jobs)


def frame_beats(job, width):
    return -(-len(job.expect) // (width // 8))


@pytest.mark.parametrize("width", WIDTHS)
def test_throughput_and_latency(width):
    """Back-to-back TCP frames per payload size: output beats per clock, and the latency from
    the last payload beat in to the first frame beat out."""
    rng = random.Random(99)
    report = []
    for length in (0, 10, 64, 512, 1460):
        count = 6 if (width == 64 or length < 512) else 3
        jobs = [random_job(rng, length, udp=False) for _ in range(count)]
        for job in jobs:
            job.mss = None
        run = run_jobs(width, jobs)
        check_run(run, jobs, scapy=False)
        beats = frame_beats(jobs[0], width)
        assert run.out_beats == beats * count
        # From the first beat of the first frame to the last beat of the last one.
        ratio = run.out_beats / run.out_cycles
        report.append(f"payload {length:4}: {beats:4} beats/frame, {run.out_beats} beats in "
                      f"{run.out_cycles} cycles = {ratio:.3f} beats/clock")
        assert run.out_cycles == run.out_beats, report[-1]
    for length in (1, 64, 1460):
        single = run_jobs(width, [random_job(rng, length)])
        report.append(f"latency, payload {length:4}: last payload beat in -> first frame beat "
                      f"out: {single.latencies[0]} cycles")
        # the framer's documented latency (its docstring: 13 cycles)
        assert single.latencies[0] == 13, report[-1]
    print(f"\ntx framer width {width}:\n  " + "\n  ".join(report))


@pytest.mark.parametrize("seed", range(3))
def test_given_sums(seed):
    """A framer whose TCP payload sums are given (a send ring's range sums): TCP and UDP frames
    mixed (UDP payloads still summed by the framer, their queue entries and the given frames'
    taken in order), every input and the sink stalled at random, the sums early or late;
    every frame equals the model's and scapy's checksums."""
    rng = random.Random(4242 + seed)
    jobs = [random_job(rng, n) for n in lengths_for(64, rng)]
    rng.shuffle(jobs)
    chance = (0.0, 0.3, 0.6)[seed]
    pauses, sink_pauses, header_pauses, sum_pauses = (
        (rng.random() < chance for _ in itertools.count()) for _ in range(4))
    check_run(run_jobs(64, jobs, pauses, sink_pauses, header_pauses, sum_pauses,
                       given_sums=True), jobs)


def test_given_sums_cut_through():
    """With its sum given, a TCP frame does not wait for its payload to be stored: its first
    beat comes a fixed number of clocks after its header and sum whatever its length (the
    payload arriving a beat a clock behind), and it goes out with no gap between beats."""
    rng = random.Random(5)
    starts = {}
    for length in (1, 64, 1460):
        job = random_job(rng, length, udp=False)
        run = run_jobs(64, [job], given_sums=True)
        check_run(run, [job])
        assert run.out_cycles == run.out_beats == frame_beats(job, 64)
        starts[length] = run.first_out
    assert len(set(starts.values())) == 1, starts
    assert starts[1460] < 16, starts


@pytest.mark.parametrize("sum_delay", [1, 3, 6, 20])
def test_given_sums_after_the_header(sum_delay):
    """The send ring's sum comes well after the segment's header (as in the NIC, where the
    header waits in its queue while the ring reads the payload): the frame goes from the clock
    after its sum is taken, its TCP checksum put in as its 7th beat loads (worked out from
    copies taken with the frame, as the next header loads); frames back to back, TCP with
    and without payload and UDP between them, every checksum scapy's."""
    rng = random.Random(sum_delay)
    jobs = [random_job(rng, n, udp=udp) for n, udp in
            ((1, False), (1460, False), (0, False), (64, True), (7, False), (300, False))]
    run = run_jobs(64, jobs, sum_delay=sum_delay, given_sums=True)
    check_run(run, jobs)
    # alone: the first beat the clock after the sum is taken (when the header's sums are in)
    job = random_job(rng, 200, udp=False)
    run = run_jobs(64, [job], sum_delay=sum_delay, given_sums=True)
    check_run(run, [job])
    if sum_delay >= 6:
        assert run.first_out - run.sums_taken[0] == 2, (run.first_out, run.sums_taken)


@pytest.mark.parametrize("sack", [False, True])
def test_given_sums_header_only_frames_go_early(sack):
    """With given sums at 64 bits, a TCP frame without payload (an ACK, a SYN, a FIN, a RST)
    goes given_settle + 1 clocks after its header is taken (its lengths known), not
    header_settle + 1: its IP and TCP checksums are put in as its 4th and 7th beats load, from
    its sums and copies that follow them until the next header is taken (which waits for
    them). Alone; back to back (with no gap); between payload frames and UDP
    with every input and the sink stalled at random; every checksum scapy's."""
    rng = random.Random(70 + sack)

    def job(length, udp=False):
        made = random_job(rng, length, udp=udp)
        if sack and not udp and rng.random() < 0.7:
            made.flags, made.mss = TcpFlag.ACK, None
            made.sack = random_sack(rng, rng.randrange(SACK_MAX_BLOCKS + 1))
        return made

    lone = job(0)
    run = run_jobs(64, [lone], given_sums=True, sack=sack)
    check_run(run, [lone])
    assert run.first_out == TxFramer(64, sack=sack).given_settle + 2
    run = run_jobs(64, [lone], sack=sack)
    check_run(run, [lone])
    assert run.first_out == TxFramer(64, sack=sack).header_settle + 2
    jobs = [job(0) for _ in range(8)]
    run = run_jobs(64, jobs, given_sums=True, sack=sack)
    check_run(run, jobs)
    assert run.out_cycles == run.out_beats
    jobs = [job(rng.choice([0, 0, 0, 1, 60, 300]), udp=rng.random() < 0.2) for _ in range(40)]
    pauses, sink_pauses, header_pauses, sum_pauses = (
        (rng.random() < 0.3 for _ in itertools.count()) for _ in range(4))
    check_run(run_jobs(64, jobs, pauses, sink_pauses, header_pauses, sum_pauses,
                       given_sums=True, sack=sack), jobs)


@pytest.mark.campaign
@pytest.mark.parametrize("width", WIDTHS)
def test_campaign(width):
    rng = random.Random(31337 + width)
    jobs = [random_job(rng, rng.choice([rng.randrange(0, 80), rng.randrange(0, 1473)]))
            for _ in range(600 if width == 64 else 150)]
    for job in jobs:
        if job.udp is False and len(job.payload) > 1460:
            job.payload = job.payload[:1460]
    pauses = (rng.random() < 0.1 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.1 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses, sink_pauses), jobs)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("sack", [False, True])
def test_lint(width, sack):
    lint_component(TxFramer(width, wscale=7 if sack else None, sack=sack),
                   f"tx_framer_{width}{'_sack' if sack else ''}", BUILD / "test" / "tx_framer")
