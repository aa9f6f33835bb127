"""HostGate: every host command comes out once, in order, with the access table's verdict."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.engine.host_gate import HostGate
from hdl.ports import HOST_CONN_BITS, HostOp
from hdl.tables.access_table import AccessOp
from flow.build import lint_component
from flow.tools import BUILD
from tb.amaranth_sim import put, take
from test_access_table import reference_results     # the access table's reference: a set


def _conn(rng, connections):
    """A connection number: mostly a slot, else the edges past the last one (N, N + 1 and the
    field's largest, whose low bits name slot N - 1) or any value."""
    return rng.choice([rng.randrange(connections)] * 6
                      + [connections - 1, connections, connections + 1,
                         2 ** HOST_CONN_BITS - 1, rng.randrange(2 ** HOST_CONN_BITS)])


def run_gate(connections, processes, items, checked_pause, seed):
    """Issue `items` in order: ("command", payload) offered on `cmd`, ("control", op, conn,
    pid) on `access_control` once every command before it has come out (so its effect is
    defined), waiting for its ``done``. Collect what comes out of `checked` while its ready
    is low with probability `checked_pause`: [(command fields, allowed)]."""
    dut = HostGate(connections=connections, processes=processes, poison_collisions=True)
    rng = random.Random(seed)
    out, issued = [], [0]
    commands = sum(kind == "command" for kind, *_ in items)

    async def issue(ctx):
        for kind, *rest in items:
            if kind == "command":
                await put(ctx, dut.cmd, rest[0])
                issued[0] += 1
            else:
                op, conn, pid = rest
                while len(out) < issued[0]:
                    await ctx.tick()
                await put(ctx, dut.access_control, {"op": op, "conn": conn, "pid": pid})
                await ctx.tick().until(dut.access_done)

    async def collect(ctx):
        await take(ctx, dut.checked, out, commands, rng, checked_pause)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(issue)
    sim.add_testbench(collect)
    sim.run_until(1e-8 * 60 * len(items) + 1e-6)
    assert len(out) == commands, "a command never came out"
    return [((int(c.command.pid), int(c.command.conn), HostOp(c.command.op),
              int(c.command.length)), int(c.allowed)) for c in out]


def expected(items, connections):
    """Each command with the access table's reference verdict for its pair (a connection
    number past the last slot is never granted)."""
    operations = [("check", None, rest[0]["conn"], rest[0]["pid"]) if kind == "command"
                  else ("control", *rest) for kind, *rest in items]
    verdicts = iter(reference_results(operations))
    answers = []
    for kind, *rest in items:
        if kind == "command":
            c = rest[0]
            *_, allowed = next(verdicts)
            answers.append(((c["pid"], c["conn"], c["op"], c["length"]),
                            int(allowed and c["conn"] < connections)))
    return answers


@pytest.mark.parametrize("connections,processes,checked_pause,seed",
                         [(4, 4, 0.0, 1), (4, 4, 0.5, 2), (64, 16, 0.3, 3)])
def test_commands_come_out_in_order_with_the_access_tables_verdict(connections, processes,
                                                                   checked_pause, seed):
    rng = random.Random(seed)
    items = []
    for _ in range(300):
        if rng.random() < 0.6:
            items.append(("command", {"pid": rng.randrange(processes),
                                      "conn": _conn(rng, connections),
                                      "op": rng.choice(list(HostOp)),
                                      "length": rng.choice([0, 1, 2 ** 32 - 1,
                                                            rng.randrange(2 ** 32)])}))
        else:
            op = rng.choices(list(AccessOp), weights=[6, 3, 1])[0]
            items.append(("control", op, rng.randrange(connections), rng.randrange(processes)))
    # a grant of slot N - 1 to a process, then that process naming it by a larger number
    # whose low bits are N - 1: refused
    items += [("control", AccessOp.GRANT, connections - 1, 0),
              ("command", {"pid": 0, "conn": connections - 1, "op": HostOp.POLL, "length": 0}),
              ("command", {"pid": 0, "conn": 2 * connections - 1, "op": HostOp.POLL, "length": 0}),
              ("command", {"pid": 0, "conn": 2 ** HOST_CONN_BITS - 1, "op": HostOp.WRITE,
                           "length": 64 * 1024})]
    answers = expected(items, connections)
    assert 0 < sum(allowed for _, allowed in answers) < len(answers)
    got = run_gate(connections, processes, items, checked_pause, seed)
    assert got == answers


def test_a_command_is_offered_three_clocks_after_it_is_taken():
    """The contract the docstring gives (the access table's two clocks, then the gate's
    register), the command's connection hinted meanwhile; a connection out of range needs no
    lookup and comes a clock after, never hinted."""
    dut = HostGate(connections=4, processes=4)
    clocks = []

    async def bench(ctx):
        await put(ctx, dut.access_control, {"op": AccessOp.GRANT, "conn": 1, "pid": 2})
        await ctx.tick().until(dut.access_done)
        ctx.set(dut.checked.ready, 1)
        for pid, conn, allowed in [(2, 1, 1), (3, 1, 0), (2, 4, 0)]:
            # taken at the clock edge `put` waits for
            await put(ctx, dut.cmd, {"pid": pid, "conn": conn, "op": HostOp.READ, "length": 5})
            waited, hinted = 0, 0
            while not ctx.get(dut.checked.valid):
                # while it is checked, the gate names its connection (for the engine's record
                # read); it names none it does not check (one past the last slot)
                if ctx.get(dut.hint.valid):
                    assert ctx.get(dut.hint.conn) == conn
                    hinted += 1
                await ctx.tick()
                waited += 1
            assert not ctx.get(dut.hint.valid)
            assert ctx.get(dut.checked.payload.allowed) == allowed
            clocks.append((waited, hinted))
            await ctx.tick()                            # the engine takes it

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # waits after the take (offered in the 3rd clock, the 1st), and clocks its connection was
    # hinted (each of them)
    assert clocks == [(2, 2), (2, 2), (0, 0)]


def test_lint():
    lint_component(HostGate(connections=64, processes=16), "host_gate", BUILD / "test" / "host_gate")
