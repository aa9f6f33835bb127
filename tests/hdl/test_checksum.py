"""hdl/checksum.py against model/checksum.py and scapy's checksums, at both data path widths."""

import itertools
import random
from dataclasses import dataclass

import pytest
from amaranth.sim import Simulator
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from flow.build import lint_component
from hdl.checksum import Checksum
from model.checksum import ones_complement_sum, pseudo_header_sum
from tb.amaranth_sim import send_frame
from flow.tools import BUILD

WIDTHS = (8, 64)
MAX_FRAME = 1518


@dataclass
class Job:
    """One frame to sum: bytes `start <= offset < end` plus `initial`, expected `sum`."""
    frame: bytes
    start: int
    end: int
    initial: int
    expect: int
    what: str = "random"


@dataclass
class Run:
    results: list        # (sum, ok) per frame, in order
    latencies: list      # cycles from last beat to result, per frame
    beats: int           # beats accepted
    cycles: int          # cycles from the first beat to the last beat, inclusive
    taken: int = 0       # results taken so far


def run_jobs(width, jobs, pauses=None, sink_pauses=None):
    """Stream every job's frame back to back into a Checksum and collect its results.

    `pauses` inserts idle cycles on the input; `sink_pauses` holds ``o.ready`` low.
    """
    sink_pauses = iter(sink_pauses) if sink_pauses is not None else itertools.repeat(False)
    dut = Checksum(width)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run([], [], 0, 0)

    async def source(ctx):
        for job in jobs:
            ctx.set(dut.start, job.start)
            ctx.set(dut.end, job.end)
            await send_frame(ctx, dut.i, job.frame, width, pauses)
        await ctx.tick().repeat(Checksum.LATENCY + 2)

    def set_initial(ctx, taken):
        """`initial` is read in the clock a result is registered: give the next result's (the
        one after the result shown, if this clock takes it); a held result reads none."""
        shown, ready = ctx.get(dut.o.valid), ctx.get(dut.o.ready)
        following = taken + (1 if shown and ready else 0)
        ctx.set(dut.initial, jobs[following].initial if following < len(jobs) else 0)

    async def monitor(ctx):
        cycle = 0
        first = None
        last_beats = []
        ctx.set(dut.o.ready, not next(sink_pauses))
        set_initial(ctx, 0)
        async for _, _, i_valid, i_ready, i_last, o_valid, o_ready, o_payload in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload.last, dut.o.valid, dut.o.ready, dut.o.payload):
            ctx.set(dut.o.ready, not next(sink_pauses))
            if o_valid and o_ready:
                run.taken += 1
            set_initial(ctx, run.taken)
            if i_valid and i_ready:
                run.beats += 1
                first = cycle if first is None else first
                run.cycles = cycle - first + 1
                if i_last:
                    last_beats.append(cycle)
            if o_valid and o_ready:
                run.results.append((o_payload.sum, o_payload.ok))
                run.latencies.append(cycle - last_beats[len(run.results) - 1])
            cycle += 1

    sim.add_testbench(source)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return run


def check_run(run, jobs, latency=True):
    assert len(run.results) == len(jobs), f"{len(jobs)} frames sent, {len(run.results)} results"
    for n, (job, (got, ok)) in enumerate(zip(jobs, run.results)):
        assert got == job.expect, (
            f"frame {n} ({job.what}, {len(job.frame)} bytes, start {job.start}, end {job.end}, "
            f"initial {job.initial:#06x}): expected {job.expect:#06x}, got {got:#06x}")
        assert ok == (job.expect == 0xFFFF)
    if latency:
        assert set(run.latencies) == {Checksum.LATENCY}


def random_job(rng, length):
    frame = rng.randbytes(length)
    start = rng.choice([0, 0, rng.randrange(length + 1), rng.randrange(min(length, 40) + 1)])
    end = rng.choice([0xFFFF, length, rng.randrange(start, length + 1)])
    initial = rng.choice([0, rng.randrange(0x10000)])
    expect = ones_complement_sum(frame[start:min(end, length)], initial)
    return Job(frame, start, end, initial, expect)


def scapy_jobs(rng, length):
    """Jobs checking an Ethernet/IPv4/TCP or UDP frame of `length` bytes (>= 42) as scapy builds it.

    Receive side: the IP header and the L4 segment (with its pseudo-header) sum to 0xFFFF.
    Transmit side: with the L4 checksum field zeroed, ``~sum`` is scapy's checksum.
    """
    proto = rng.choice([TCP, UDP])
    l4_header = 20 if proto is TCP else 8
    payload_len = max(0, length - 14 - 20 - l4_header)
    src = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    dst = f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if proto is TCP:
        l4 = TCP(sport=rng.randrange(65536), dport=rng.randrange(65536), seq=rng.randrange(2**32),
                 ack=rng.randrange(2**32), flags="PA", window=rng.randrange(65536))
    else:
        l4 = UDP(sport=rng.randrange(65536), dport=rng.randrange(65536))
    pkt = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / IP(
        src=src, dst=dst, ttl=rng.randrange(1, 256), id=rng.randrange(65536)) / l4 / Raw(
        rng.randbytes(payload_len))
    frame = bytes(pkt)
    frame += bytes(max(0, 60 - len(frame)))   # Ethernet padding to the minimum frame
    parsed = Ether(frame)
    ip, seg = parsed[IP], parsed[proto]
    l4_len = ip.len - 20
    l4_end = 14 + ip.len
    pseudo = pseudo_header_sum(src, dst, ip.proto, l4_len)
    csum_at = 34 + (16 if proto is TCP else 6)
    zeroed = frame[:csum_at] + b"\0\0" + frame[csum_at + 2:]
    tx_sum = ones_complement_sum(zeroed[34:l4_end], pseudo)
    expected_field = (~tx_sum & 0xFFFF) or (0xFFFF if proto is UDP else 0)
    assert expected_field == seg.chksum
    assert ones_complement_sum(frame[14:34]) == 0xFFFF
    return [
        Job(frame, 14, 34, 0, 0xFFFF, f"scapy {proto.__name__} IP header"),
        Job(frame, 34, l4_end, pseudo, 0xFFFF, f"scapy {proto.__name__} segment"),
        Job(zeroed, 34, l4_end, pseudo, tx_sum, f"scapy {proto.__name__} transmit fill"),
    ]


def jobs_for_lengths(rng, lengths):
    jobs = []
    for length in lengths:
        jobs.append(random_job(rng, length))
        if length >= 42 and rng.random() < 0.3:
            jobs += scapy_jobs(rng, length)
    return jobs


def fast_lengths(width, rng):
    """Lengths for the CI run: all short ones, every beat alignment, and a sample up to 1518."""
    if width == 64:
        lengths = list(range(1, 130)) + list(range(1500, MAX_FRAME + 1)) + rng.sample(range(130, 1500), 60)
    else:
        lengths = list(range(1, 70)) + [1517, 1518] + rng.sample(range(70, 1517), 12)
    rng.shuffle(lengths)
    return lengths


# -- tests -----------------------------------------------------------------------------------

def test_data_width_message():
    with pytest.raises(TypeError, match=r"^Data width must be 8 or 64, not 16$"):
        Checksum(16)


@pytest.mark.parametrize("width", WIDTHS)
def test_rfc1071_example(width):
    # RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    frame = bytes.fromhex("0001f203f4f5f6f7")
    jobs = [Job(frame, 0, 0xFFFF, 0, 0xDDF2, "RFC 1071"),
            Job(b"\xAA" + frame, 1, 0xFFFF, 0, 0xDDF2, "RFC 1071 at odd start"),
            Job(frame + b"\x99" * 5, 0, 8, 0, 0xDDF2, "RFC 1071 then padding")]
    assert all(ones_complement_sum(j.frame[j.start:j.end]) == 0xDDF2 for j in jobs)
    check_run(run_jobs(width, jobs), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_odd_alignment(width):
    # A byte at an odd distance from `start` is a low byte: 0x12 at start+1 adds 0x0012.
    jobs = [Job(bytes([0, 0x12]), 0, 0xFFFF, 0, 0x0012, "low byte"),
            Job(bytes([0x12]), 0, 0xFFFF, 0, 0x1200, "odd length"),
            Job(bytes([0x34, 0x12, 0x56]), 1, 0xFFFF, 0, 0x1256, "odd start"),
            Job(bytes([0x34, 0x12, 0x56]), 1, 2, 0, 0x1200, "odd start, one byte"),
            Job(bytes(9), 0, 0xFFFF, 0, 0, "all zero"),
            Job(bytes(9), 3, 3, 0x1234, 0x1234, "empty region, initial only")]
    check_run(run_jobs(width, jobs), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_random_and_scapy_back_to_back(width):
    rng = random.Random(1071 + width)
    jobs = jobs_for_lengths(rng, fast_lengths(width, rng))
    run = run_jobs(width, jobs)
    check_run(run, jobs)
    # No idle cycle on the input: one beat per clock across all frames.
    assert run.cycles == run.beats
    print(f"\nchecksum width {width}: {len(jobs)} frames, {run.beats} beats in {run.cycles} cycles "
          f"({run.beats / run.cycles:.3f} beats/clock), result {Checksum.LATENCY} cycles after last beat")


@pytest.mark.parametrize("width", WIDTHS)
def test_idle_cycles_on_input(width):
    rng = random.Random(7 + width)
    lengths = [rng.randrange(1, 200) for _ in range(40)] + [MAX_FRAME]
    jobs = jobs_for_lengths(rng, lengths)
    pauses = (rng.random() < 0.3 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_result_backpressure(width):
    # A consumer that holds o.ready low stalls the input; no result is lost or changed.
    rng = random.Random(11 + width)
    jobs = jobs_for_lengths(rng, [rng.randrange(1, 120) for _ in range(60)] + [1, 1, 2, 1, 9])
    pauses = (rng.random() < 0.2 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.5 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses, sink_pauses), jobs, latency=False)


@pytest.mark.campaign
@pytest.mark.parametrize("width", WIDTHS)
def test_campaign_every_length(width):
    """1000+ random frames per width covering every length 1..1518, with idle cycles."""
    rng = random.Random(20240 + width)
    lengths = list(range(1, MAX_FRAME + 1))
    rng.shuffle(lengths)
    jobs = jobs_for_lengths(rng, lengths)
    pauses = (rng.random() < 0.1 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_lint(width):
    lint_component(Checksum(width), f"checksum_{width}", BUILD / "test" / "checksum")
