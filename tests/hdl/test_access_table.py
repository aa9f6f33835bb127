"""AccessTable against a set of (connection, process) pairs, with backpressure on results."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.tables.access_table import AccessOp, AccessTable
from flow.build import lint_component
from flow.tools import BUILD
from tb.amaranth_sim import put, take


def reference_results(operations):
    """What each check must answer: the table is the set of granted (conn, pid) pairs."""
    granted, answers = set(), []
    for kind, op, conn, pid in operations:
        if kind == "check":
            answers.append((conn, pid, int((conn, pid) in granted)))
        elif op == AccessOp.GRANT:
            granted.add((conn, pid))
        elif op == AccessOp.REVOKE:
            granted.discard((conn, pid))
        else:
            granted = {(c, p) for c, p in granted if c != conn}
    return answers


def run_table(dut, operations, result_pause):
    """Issue `operations` in order (each control op completes before the next item) and
    collect every check result while the sink holds ready low with probability `result_pause`."""
    results, rng = [], random.Random(1)
    checks = sum(kind == "check" for kind, *_ in operations)

    async def issue(ctx):
        for kind, op, conn, pid in operations:
            if kind == "check":
                await put(ctx, dut.check, {"conn": conn, "pid": pid})
            else:
                await put(ctx, dut.control, {"op": op, "conn": conn, "pid": pid})
                await ctx.tick().until(dut.done)

    async def collect(ctx):
        await take(ctx, dut.result, results, checks, rng, result_pause)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(issue)
    sim.add_testbench(collect)
    sim.run_until(1e-8 * 40 * len(operations) + 1e-6)
    return [(payload.conn, payload.pid, payload.allowed) for payload in results]


@pytest.mark.parametrize("connections,processes", [(4, 4), (64, 16)])
@pytest.mark.parametrize("result_pause", [0.0, 0.4])
def test_random_operations_match_reference(connections, processes, result_pause):
    rng = random.Random(connections * 1000 + processes)
    operations = []
    for _ in range(600):
        conn, pid = rng.randrange(connections), rng.randrange(processes)
        if rng.random() < 0.5:
            operations.append(("check", None, conn, pid))
        else:
            op = rng.choices(list(AccessOp), weights=[6, 3, 1])[0]
            operations.append(("control", op, conn, pid))
    expected = reference_results(operations)
    assert any(allowed for *_, allowed in expected) and not all(allowed for *_, allowed in expected)
    assert run_table(AccessTable(connections=connections, processes=processes, poison_collisions=True),
                     operations, result_pause) == expected


def test_back_to_back_checks_one_per_clock():
    dut = AccessTable(connections=8, processes=4)
    accepted_cycles = []

    async def bench(ctx):
        ctx.set(dut.result.ready, 1)
        for cycle in range(32):
            ctx.set(dut.check.valid, 1)
            ctx.set(dut.check.payload, {"conn": cycle % 8, "pid": cycle % 4})
            _, _, ready = await ctx.tick().sample(dut.check.ready)
            if ready:
                accepted_cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert accepted_cycles == list(range(32))


@pytest.mark.parametrize("connections,processes", [(4, 4), (256, 64)])
def test_lint(connections, processes):
    lint_component(AccessTable(connections=connections, processes=processes),
                   f"access_table_{connections}x{processes}", BUILD / "test" / "access_table")


@pytest.mark.parametrize("kwargs,message", [
    ({"connections": 6, "processes": 4}, "Connection count must be a power of two and at least 2, not 6"),
    ({"connections": 4, "processes": 1}, "Process count must be a power of two and at least 2, not 1"),
])
def test_parameters_are_checked(kwargs, message):
    with pytest.raises(TypeError, match=message):
        AccessTable(**kwargs)
