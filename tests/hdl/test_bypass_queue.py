"""BypassQueue: in order, nothing lost or doubled, an entry into the empty queue out in one
clock, and exactly `depth` entries held."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.bypass_queue import BypassQueue
from flow.build import lint_component
from flow.tools import BUILD


def run_queue(depth, writes, write_pauses, read_pauses, cycles):
    """Offer `writes` in order (pausing where `write_pauses` says) against a reader pausing
    where `read_pauses` says; return what came out, each entry's clocks from its write to its
    appearance, and the most the queue held."""
    dut = BypassQueue(16, depth)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out, written_at, shown_at, levels, full_refusals = [], [], [], [], []

    async def bench(ctx):
        pending = list(writes)
        for cycle in range(cycles):
            offer = bool(pending) and not write_pauses[cycle]
            ctx.set(dut.w.valid, offer)
            ctx.set(dut.w.payload, pending[0] if pending else 0)
            ctx.set(dut.r.ready, not read_pauses[cycle])
            level = ctx.get(dut.level)
            levels.append(level)
            assert level == len(written_at) - len(out), f"level {level} in clock {cycle}"
            if ctx.get(dut.r.valid) and len(shown_at) == len(out):
                shown_at.append(cycle)
            if ctx.get(dut.r.valid) and ctx.get(dut.r.ready):
                out.append(ctx.get(dut.r.payload))
            if offer:
                if ctx.get(dut.w.ready):
                    written_at.append(cycle)
                    pending.pop(0)
                else:
                    full_refusals.append(level)
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return out, written_at, shown_at, levels, full_refusals


@pytest.mark.parametrize("depth", [2, 3, 15])
def test_random_traffic(depth):
    rng = random.Random(depth)
    writes = [rng.randrange(1 << 16) for _ in range(400)]
    cycles = 3000
    write_pauses = [rng.random() < 0.4 for _ in range(cycles)]
    read_pauses = [rng.random() < (0.7 if (n // 200) % 2 else 0.1) for n in range(cycles)]
    out, written_at, shown_at, levels, refusals = run_queue(depth, writes, write_pauses, read_pauses,
                                                            cycles)
    assert out == writes
    assert max(levels) == depth, "never filled"
    assert refusals and all(level >= depth - 1 for level in refusals), \
        "a write refused while the queue had room beyond the output register's entry"
    # An entry written into the empty queue shows in the next clock.
    empty_writes = [n for n, cycle in enumerate(written_at) if levels[cycle] == 0]
    assert empty_writes
    assert all(shown_at[n] == written_at[n] + 1 for n in empty_writes)


def test_depth_message():
    for bad in (1, 0, 2.0, True):
        with pytest.raises(TypeError, match=r"^Depth must be an integer of at least 2"):
            BypassQueue(8, bad)


def test_lint():
    lint_component(BypassQueue(16, 4), "bypass_queue", BUILD / "test" / "bypass_queue")
