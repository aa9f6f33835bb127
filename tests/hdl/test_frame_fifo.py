"""hdl/rx/frame_fifo.py: whole frames through, whole frames dropped, at both data path widths."""

import itertools
import random
from dataclasses import dataclass, field

import pytest
from amaranth.sim import Simulator

from flow.build import lint_component
from hdl.rx.frame_fifo import FrameFifo
from tb.amaranth_sim import beats_to_frame, send_frame
from flow.tools import BUILD

WIDTHS = (8, 64)


def beats_of(frame, width):
    return -(-len(frame) // (width // 8))


@dataclass
class Run:
    outputs: list = field(default_factory=list)     # one bytes per output frame
    statuses: list = field(default_factory=list)    # (stored, beats) per input frame
    dropped: int = 0          # the counter at the end
    empty: bool = False       # `empty` at the end
    was_busy: bool = False    # `empty` was low at some point
    # For every cycle with `empty` high: (input frames ended before it, output frames ended
    # before it, an input frame was part-way in, o.valid).
    empty_at: list = field(default_factory=list)
    in_beats: int = 0
    in_cycles: int = 0        # first accepted input beat to the last, inclusive
    in_stalls: int = 0        # cycles with i.valid high and i.ready low
    out_beats: int = 0
    out_cycles: int = 0       # first output beat to the last, inclusive
    in_ends: list = field(default_factory=list)     # cycle of each input frame's last beat
    out_starts: list = field(default_factory=list)  # cycle of each output frame's first beat

    @property
    def stored(self):
        return [bool(stored) for stored, _ in self.statuses]


def run_frames(width, depth, frames, *, status_depth=16, pauses=None, sink_pauses=None,
               status_pauses=None, hold=False):
    """Send `frames` back to back (or with `pauses`) and collect the output and the statuses.

    With `hold`, ``o.ready`` stays low until every frame's status is in. The sink checks the
    stream rules on `o` every cycle: a beat offered and not taken stays, unchanged.
    """
    sink_pauses = iter(sink_pauses) if sink_pauses is not None else itertools.repeat(False)
    status_pauses = iter(status_pauses) if status_pauses is not None else itertools.repeat(False)
    dut = FrameFifo(width, depth, status_depth=status_depth)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()
    total_beats = sum(beats_of(frame, width) for frame in frames)

    async def source(ctx):
        for frame in frames:
            await send_frame(ctx, dut.i, frame, width, pauses)

    async def sink(ctx):
        beats, cycle = [], 0
        in_first = out_first = None
        offered = None            # the beat offered and not taken in the previous cycle
        in_mid = False            # an input frame is part-way in

        def set_ready():
            ctx.set(dut.o.ready, not (hold and len(run.statuses) < len(frames))
                    and not next(sink_pauses))
            ctx.set(dut.status.ready, not next(status_pauses))

        set_ready()
        async for (_, _, i_valid, i_ready, i_payload, o_valid, o_ready, o_payload,
                   s_valid, s_ready, s_payload, empty) in ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.i.payload, dut.o.valid, dut.o.ready, dut.o.payload,
                dut.status.valid, dut.status.ready, dut.status.payload, dut.empty):
            if offered is not None:
                assert o_valid and o_payload.as_value().value == offered, \
                    f"cycle {cycle}: a beat offered on o changed or vanished before it was taken"
            offered = o_payload.as_value().value if o_valid and not o_ready else None
            if empty:
                run.empty_at.append((len(run.in_ends), len(run.outputs), in_mid, o_valid))
            else:
                run.was_busy = True
            if i_valid and i_ready:
                run.in_beats += 1
                in_first = cycle if in_first is None else in_first
                run.in_cycles = cycle - in_first + 1
                if i_payload.last:
                    run.in_ends.append(cycle)
                in_mid = not i_payload.last
            run.in_stalls += i_valid and not i_ready
            if o_valid and o_ready:
                run.out_beats += 1
                out_first = cycle if out_first is None else out_first
                run.out_cycles = cycle - out_first + 1
                if not beats:
                    run.out_starts.append(cycle)
                beats.append((o_payload.data, o_payload.keep))
                if o_payload.last:
                    run.outputs.append(beats_to_frame(beats, width))
                    beats = []
            if s_valid and s_ready:
                run.statuses.append((s_payload.stored, s_payload.beats))
            if (run.in_beats == total_beats and len(run.statuses) == len(frames)
                    and len(run.outputs) == sum(run.stored) and not beats):
                break
            set_ready()
            cycle += 1
            assert cycle < 20 * total_beats + 10_000, (
                f"FIFO hung: {len(run.statuses)} statuses, {len(run.outputs)} frames out")
        ctx.set(dut.o.ready, 1)
        _, _, o_valid = await ctx.tick().sample(dut.o.valid)
        assert not o_valid, "a beat appeared on o after the last stored frame"
        run.dropped = ctx.get(dut.dropped)
        run.empty = bool(ctx.get(dut.empty))

    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()
    return run


def check_run(run, frames, width, seed=None):
    """The output is exactly the frames whose status said stored, in order; counters add up."""
    where = f" (seed {seed})" if seed is not None else ""
    assert len(run.statuses) == len(frames), f"{len(frames)} statuses expected{where}"
    for n, (frame, (stored, beats)) in enumerate(zip(frames, run.statuses)):
        expect = beats_of(frame, width) if stored else 0
        assert beats == expect, f"status {n}: {beats} beats, expected {expect}{where}"
    expected = [frame for frame, stored in zip(frames, run.stored) if stored]
    assert len(run.outputs) == len(expected), \
        f"{len(expected)} frames stored, {len(run.outputs)} came out{where}"
    for n, (want, got) in enumerate(zip(expected, run.outputs)):
        assert got == want, (f"stored frame {n} of {len(want)} bytes{where}\n"
                             f" expected {want.hex()}\n got      {got.hex()}")
    # Store and forward: a frame's first beat leaves after its last beat went in.
    stored_at = [n for n, stored in enumerate(run.stored) if stored]
    for k, (n, start) in enumerate(zip(stored_at, run.out_starts)):
        assert start > run.in_ends[n], (f"stored frame {k} (input frame {n}) started on o in "
                                        f"cycle {start}, its last beat went in in cycle "
                                        f"{run.in_ends[n]}{where}")
    assert run.dropped == run.stored.count(False)
    # `empty` only when every stored frame that went in has come out and none is going in.
    for ended, out, in_mid, o_valid in run.empty_at:
        assert not in_mid and not o_valid and out == sum(run.stored[:ended]), \
            f"empty high with {ended} frames in and {out} out{where}"
    assert run.empty and run.was_busy


def random_frames(rng, count, short=False):
    if short:
        return [rng.randbytes(rng.choice([rng.randrange(1, 80), rng.randrange(60, 1519)]))
                for _ in range(count)]
    return [rng.randbytes(rng.randrange(1, 1519)) for _ in range(count)]


def fill_model(frames, width, depth):
    """Which frames fit with ``o.ready`` held low: ``depth`` beats of storage plus the two
    that the output pipeline holds once a frame is committed."""
    held, stored = 0, []
    for frame in frames:
        fits = held + beats_of(frame, width) <= depth + min(held, 2)
        stored.append(fits)
        held += beats_of(frame, width) if fits else 0
    return stored


# -- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
def test_back_to_back(width):
    """Frames of 1..1518 bytes pass unchanged with o.ready high; print the rates."""
    rng = random.Random(1518 + width)
    frames = random_frames(rng, 120 if width == 64 else 20)
    run = run_frames(width, 512 if width == 64 else 4096, frames)
    check_run(run, frames, width)
    assert all(run.stored)
    print(f"\nframe_fifo width {width}: {len(frames)} frames, {run.in_beats} beats; input "
          f"{run.in_beats / run.in_cycles:.3f} beats/clock, output {run.out_beats} beats in "
          f"{run.out_cycles} cycles ({run.out_beats / run.out_cycles:.3f} beats/clock)")


@pytest.mark.parametrize("width", WIDTHS)
def test_fill_then_drain(width):
    """o.ready low: frames are stored until the FIFO is full, later ones dropped whole (a
    small one may still fit after a large one was dropped); then the stored ones drain."""
    rng = random.Random(7 + width)
    depth = 512 if width == 64 else 2048
    frames = random_frames(rng, 16 if width == 64 else 6)
    expect = fill_model(frames, width, depth)
    assert expect.count(False) >= 2 and expect.count(True) >= 2
    run = run_frames(width, depth, frames, hold=True)
    check_run(run, frames, width)
    assert run.stored == expect
    # Every stored frame is committed when o.ready rises: the drain runs at one beat per clock.
    assert run.out_cycles == run.out_beats
    print(f"\nframe_fifo width {width}: {expect.count(True)} of {len(frames)} frames stored "
          f"({run.out_beats} beats of {depth}), drained at "
          f"{run.out_beats / run.out_cycles:.3f} beats/clock")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("seed", [1, 2])
def test_pauses_and_backpressure(width, seed):
    rng = random.Random(seed * 100 + width)
    frames = random_frames(rng, 60 if width == 64 else 15, short=True)
    pauses = (rng.random() < 0.2 for _ in itertools.count())
    sink_pauses = (rng.random() < 0.5 for _ in itertools.count())
    status_pauses = (rng.random() < 0.6 for _ in itertools.count())
    run = run_frames(width, 256 if width == 64 else 1024, frames, status_depth=2, pauses=pauses,
                     sink_pauses=sink_pauses, status_pauses=status_pauses)
    check_run(run, frames, width, seed)
    assert 0 < run.dropped < len(frames) and run.in_stalls > 0


@pytest.mark.parametrize("width", WIDTHS)
def test_longer_than_depth(width):
    depth, lanes = 16, width // 8
    rng = random.Random(width)
    frames = [rng.randbytes(n * lanes) for n in (3, depth + 1, depth, 3 * depth, 1, depth - 1)]
    frames += [rng.randbytes(lanes * depth + 1), rng.randbytes(5)]
    run = run_frames(width, depth, frames)
    check_run(run, frames, width)
    assert run.stored == [True, False, True, False, True, True, False, True]


@pytest.mark.parametrize("kwargs, message", [
    ({"data_width": 32}, "Data width must be 8 or 64, not 32"),
    ({"depth": 8}, "Depth must be a power of two and at least 16, not 8"),
    ({"depth": 48}, "Depth must be a power of two and at least 16, not 48"),
    ({"depth": "64"}, "Depth must be a power of two and at least 16, not '64'"),
    ({"status_depth": 1}, "Status queue depth must be a power of two and at least 2, not 1"),
    ({"status_depth": 12}, "Status queue depth must be a power of two and at least 2, not 12"),
])
def test_constructor_checks(kwargs, message):
    args = {"data_width": 64, "depth": 64, **kwargs}
    with pytest.raises(TypeError) as info:
        FrameFifo(**args)
    assert str(info.value) == message


@pytest.mark.parametrize("width", WIDTHS)
def test_lint(width):
    lint_component(FrameFifo(width, 1024), f"frame_fifo_{width}", BUILD / "test" / "frame_fifo")
