"""hdl/rx/frame_slicer.py against Python slicing, at both data path widths."""

import itertools
import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator

from flow.build import lint_component
from hdl.rx.frame_slicer import FrameSlicer
from tb.amaranth_sim import beats_to_frame, send_frame
from flow.tools import BUILD

WIDTHS = (8, 64)


@dataclass
class Job:
    frame: bytes
    skip: int
    length: int

    @property
    def expect(self):
        return self.frame[self.skip:self.skip + self.length]

    @property
    def short(self):
        return self.length > 0 and len(self.frame) < self.skip + self.length


@dataclass
class Run:
    outputs: list = field(default_factory=list)     # one bytes per output frame
    in_beats: int = 0
    in_cycles: int = 0        # cycles from the first input beat to the last, inclusive
    shorts: int = 0           # `short` pulses seen
    short_frames: int = 0     # the counter at the end


def run_jobs(width, jobs, pauses=None, sink_pauses=None, cmd_pauses=None):
    """Send every job's command and frame back to back; collect the output frames."""
    sink_pauses = iter(sink_pauses) if sink_pauses is not None else itertools.repeat(False)
    cmd_pauses = iter(cmd_pauses) if cmd_pauses is not None else itertools.repeat(False)
    dut = FrameSlicer(width)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()
    expected_frames = sum(job.length > 0 for job in jobs)

    async def commands(ctx):
        for job in jobs:
            while next(cmd_pauses):
                ctx.set(dut.cmd.valid, 0)
                await ctx.tick()
            ctx.set(dut.cmd.valid, 1)
            ctx.set(dut.cmd.payload, {"skip": job.skip, "length": job.length})
            await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)

    async def frames(ctx):
        for job in jobs:
            await send_frame(ctx, dut.i, job.frame, width, pauses)

    async def sink(ctx):
        beats = []
        cycle, first = 0, None
        ctx.set(dut.o.ready, not next(sink_pauses))
        async for _, _, i_valid, i_ready, o_valid, o_ready, o_payload, short in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload, dut.truncated):
            if i_valid and i_ready:
                run.in_beats += 1
                first = cycle if first is None else first
                run.in_cycles = cycle - first + 1
            run.shorts += short
            if o_valid and o_ready:
                beats.append((o_payload.data, o_payload.keep))
                if o_payload.last:
                    run.outputs.append(beats_to_frame(beats, width))
                    beats = []
            if len(run.outputs) == expected_frames and run.in_beats == total_beats:
                break
            ctx.set(dut.o.ready, not next(sink_pauses))
            cycle += 1
            assert cycle < 50 * total_beats + 10_000, "slicer hung"
        await ctx.tick().repeat(4)
        run.short_frames = ctx.get(dut.truncated_frames)

    total_beats = sum(-(-len(job.frame) // (width // 8)) for job in jobs)
    sim.add_testbench(commands, background=True)
    sim.add_testbench(frames, background=True)
    sim.add_testbench(sink)
    sim.run()
    return run


def check_run(run, jobs):
    expected = [job for job in jobs if job.length > 0]
    assert len(run.outputs) == len(expected), \
        f"{len(expected)} output frames expected, {len(run.outputs)} seen"
    for n, (job, got) in enumerate(zip(expected, run.outputs)):
        assert got == job.expect, (
            f"output frame {n}: frame of {len(job.frame)} bytes, skip {job.skip}, "
            f"length {job.length}\n expected {job.expect.hex()}\n got      {got.hex()}")
    shorts = sum(job.short for job in jobs)
    assert run.shorts == shorts and run.short_frames == shorts


def random_job(rng, short=False):
    size = rng.choice([rng.randrange(1, 80), rng.randrange(60, 1519)])
    frame = rng.randbytes(size)
    if short:
        skip = rng.randrange(size + 10)
        length = rng.randrange(max(1, size - skip + 1), size + 20)
    else:
        skip = rng.choice([0, 42, 54, 58, rng.randrange(size + 1)])
        skip = min(skip, size)
        length = rng.choice([0, size - skip, rng.randrange(size - skip + 1)])
    return Job(frame, skip, length)


# -- tests -----------------------------------------------------------------------------------

def test_data_width_message():
    with pytest.raises(TypeError, match=r"^Data width must be 8 or 64, not 32$"):
        FrameSlicer(32)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_alignment(width):
    # Every skip and length within a few beats, on a 40-byte frame: every lane pairing.
    rng = random.Random(width)
    frame = rng.randbytes(40)
    jobs = [Job(frame, skip, length) for skip in range(0, 25) for length in range(0, 40 - skip + 1, 3)]
    check_run(run_jobs(width, jobs), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_random_back_to_back(width):
    """One input beat per clock across back-to-back frames, no idle cycle between them."""
    rng = random.Random(54 + width)
    jobs = [random_job(rng) for _ in range(150 if width == 64 else 40)]
    run = run_jobs(width, jobs)
    check_run(run, jobs)
    assert run.in_cycles == run.in_beats
    print(f"\nslicer width {width}: {len(jobs)} frames, {run.in_beats} input beats in "
          f"{run.in_cycles} cycles ({run.in_beats / run.in_cycles:.3f} beats/clock)")


@pytest.mark.parametrize("width", WIDTHS)
def test_idle_and_backpressure(width):
    rng = random.Random(99 + width)
    jobs = [random_job(rng) for _ in range(100 if width == 64 else 30)]
    pauses = (rng.random() < 0.3 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.4 for _ in itertools.count())
    cmd_pauses = (rng.random() < 0.3 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses, sink_pauses, cmd_pauses), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_length_zero(width):
    rng = random.Random(3)
    jobs = [Job(rng.randbytes(n), skip, 0) for n, skip in [(1, 0), (60, 54), (64, 0), (9, 9), (5, 20)]]
    jobs += [Job(b"\x01\x02\x03", 1, 1), Job(b"\x07" * 16, 0, 0), Job(b"\x08" * 17, 16, 1)]
    check_run(run_jobs(width, jobs), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_short_frames(width):
    # Frames that end before skip + length: the output ends early (possibly empty).
    rng = random.Random(77 + width)
    jobs = [Job(bytes(range(10)), 4, 10), Job(bytes(range(10)), 12, 3), Job(bytes(range(16)), 8, 9),
            Job(bytes(range(8)), 0, 9), Job(bytes(range(8)), 8, 1)]
    jobs += [random_job(rng, short=rng.random() < 0.5) for _ in range(60)]
    pauses = (rng.random() < 0.2 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.3 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses, sink_pauses), jobs)


@pytest.mark.campaign
@pytest.mark.parametrize("width", WIDTHS)
def test_campaign(width):
    rng = random.Random(2024 + width)
    jobs = [random_job(rng, short=rng.random() < 0.1) for _ in range(3000)]
    pauses = (rng.random() < 0.1 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.1 for _ in itertools.count())
    check_run(run_jobs(width, jobs, pauses, sink_pauses), jobs)


@pytest.mark.parametrize("width", WIDTHS)
def test_lint(width):
    lint_component(FrameSlicer(width), f"frame_slicer_{width}", BUILD / "test" / "frame_slicer")
