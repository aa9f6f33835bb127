"""hdl/engine/timers.py against the model's timers (``Tcb.next_deadline``, ``Tcb.on_timer``'s
``now >= deadline``), in the Amaranth simulator: the pure functions on their own, then the
unit under random updates, ticks, jumps and queries, with the clock crossing 2**32."""

import random

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from hdl.engine.timers import TIMERS, Timer, Timers, due_at, earliest
from model.policy import DEFAULT_POLICY
from model.tcp import Tcb

SPAN = 2 ** 20                          # deadlines this far either side of now (under 2**31)


def _tcb(deadlines):
    """A model TCB whose RTO, persist and close deadlines are `deadlines` (None: not set)."""
    tcb = Tcb(("10.0.0.1", 1), ("10.0.0.2", 2), 0, DEFAULT_POLICY)
    tcb.rto_deadline, tcb.persist_deadline, tcb.close_deadline = deadlines
    return tcb


def _timers(deadlines):
    return {name: {"armed": int(d is not None), "deadline": (d or 0) % 2 ** 32}
            for name, d in zip(TIMERS, deadlines)}


class _Functions(Elaboratable):
    """earliest() and due_at() on ports, no clock."""

    def __init__(self):
        self.timers = [Signal(Timer(), name=name) for name in TIMERS]
        self.now = Signal(32)
        self.armed = Signal()
        self.deadline = Signal(32)
        self.due = Signal()

    def elaborate(self, platform):
        m = Module()
        armed, deadline = earliest(self.timers)
        m.d.comb += [self.armed.eq(armed), self.deadline.eq(deadline),
                     self.due.eq(due_at(deadline, self.now))]
        return m


_deadline = st.one_of(st.none(), st.integers(-SPAN, SPAN))


def _check_functions(now, deadlines):
    """earliest() is ``Tcb.next_deadline`` and due_at() its ``now >= deadline``."""
    expected = _tcb(deadlines).next_deadline()
    dut = _Functions()
    result = {}

    async def testbench(ctx):
        for signal, value in zip(dut.timers, _timers(deadlines).values()):
            ctx.set(signal, value)
        ctx.set(dut.now, now % 2 ** 32)
        await ctx.delay(1e-9)
        result.update(armed=ctx.get(dut.armed), deadline=ctx.get(dut.deadline),
                      due=ctx.get(dut.due))

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    assert result["armed"] == (expected is not None), deadlines
    if expected is not None:
        assert result["deadline"] == expected % 2 ** 32, deadlines
        assert result["due"] == (now >= expected), (now, deadlines)


@settings(max_examples=300, deadline=None)
@given(now=st.one_of(st.integers(SPAN, 2 ** 33), st.integers(2 ** 32 - SPAN, 2 ** 32 + SPAN)),
       offsets=st.tuples(_deadline, _deadline, _deadline))
def test_earliest_and_due_equal_the_model(now, offsets):
    """The earliest running deadline is ``Tcb.next_deadline``, and it is due exactly when
    ``now >= next_deadline`` (some timer would fire), the 2**32 wrap included."""
    _check_functions(now, tuple(None if o is None else now + o for o in offsets))


@pytest.mark.parametrize("offsets", [(5, 5, None), (None, -7, -7), (0, 0, 0), (4, None, 4),
                                     (-1, -1, 3), (1, 2, 1)])
def test_equal_deadlines_pick_one(offsets):
    """Running timers on one deadline, either side of the 2**32 wrap: that deadline, not a
    mix of them."""
    now = 2 ** 32
    _check_functions(now, tuple(None if o is None else now + o for o in offsets))


class _Driver:
    """The engine's side of the unit: the model's TCBs, one per connection, kept in step."""

    def __init__(self, ctx, dut, connections, now, rng):
        self.ctx, self.dut, self.rng = ctx, dut, rng
        self.now = now                      # the model's clock (unbounded)
        self.tcbs = [_tcb((None, None, None)) for _ in range(connections)]
        self.checked = {"ticks": 0, "due": 0, "queries": 0, "updates": 0}

    async def idle(self, clocks):
        for _ in range(clocks):
            await self.ctx.tick()

    async def update(self, conn, deadlines):
        """WRITE_BACK: the record's timers go to the unit in one clock."""
        self.tcbs[conn].rto_deadline, self.tcbs[conn].persist_deadline, \
            self.tcbs[conn].close_deadline = deadlines
        self.ctx.set(self.dut.update.valid, 1)
        self.ctx.set(self.dut.update.payload, {"conn": conn, **_timers(deadlines)})
        await self.ctx.tick()
        self.ctx.set(self.dut.update.valid, 0)
        self.checked["updates"] += 1

    def random_deadlines(self):
        return tuple(self.rng.choice([None, self.now + self.rng.randrange(-3, 12)])
                     for _ in TIMERS)

    async def pulse_tick(self):
        self.ctx.set(self.dut.tick, 1)
        await self.ctx.tick()
        self.ctx.set(self.dut.tick, 0)

    async def tick(self):
        await self.pulse_tick()
        await self.take_tick()

    async def take_tick(self):
        """The waiting tick taken as soon as it is offered, then its due connections taken
        one by one, lowest first, each written back as the engine does (some still due:
        they come again next tick)."""
        ctx, dut = self.ctx, self.dut
        waited = 0
        while not ctx.get(dut.tick_ready):
            await ctx.tick()
            waited += 1
            assert waited < 4 * len(self.tcbs) + 8, "the tick is never offered"
        ctx.set(dut.tick_take, 1)
        await ctx.tick()
        ctx.set(dut.tick_take, 0)
        self.now += 1
        assert ctx.get(dut.now) == self.now % 2 ** 32
        expected = [c for c, tcb in enumerate(self.tcbs)
                    if tcb.next_deadline() is not None and self.now >= tcb.next_deadline()]
        taken = []
        while True:
            while not (ctx.get(dut.due_valid) or ctx.get(dut.due_done)):
                await ctx.tick()
            assert not (ctx.get(dut.due_valid) and ctx.get(dut.due_done))
            if ctx.get(dut.due_done):
                break
            conn = ctx.get(dut.due_conn)
            taken.append(conn)
            ctx.set(dut.due_take, 1)
            await ctx.tick()
            ctx.set(dut.due_take, 0)
            await self.idle(self.rng.choice([0, 0, 1, 3]))
            if self.rng.random() < 0.8:
                await self.update(conn, self.random_deadlines())
            assert len(taken) <= len(self.tcbs)
        assert taken == expected, f"tick {self.now}"
        self.checked["ticks"] += 1
        self.checked["due"] += len(taken)

    async def advance(self, ticks):
        """ADVANCE: the clock jumps ticks - 1; the next tick runs the timers."""
        self.ctx.set(self.dut.advance.valid, 1)
        self.ctx.set(self.dut.advance.payload, ticks)
        await self.ctx.tick()
        self.ctx.set(self.dut.advance.valid, 0)
        self.now += ticks - 1
        await self.tick()

    async def query(self):
        """NEXT_DEADLINE: the least deadline - now of the running timers, as the model's."""
        ctx, dut = self.ctx, self.dut
        ctx.set(dut.query_req, 1)
        clocks = 0
        while not ctx.get(dut.query_valid):
            await ctx.tick()
            clocks += 1
            assert clocks < 3 * len(self.tcbs) + 8, "NEXT_DEADLINE is never answered"
        deadlines = [t.next_deadline() for t in self.tcbs if t.next_deadline() is not None]
        assert ctx.get(dut.query_any) == bool(deadlines)
        if deadlines:
            assert ctx.get(dut.query_earliest) == min(deadlines) - self.now
        else:
            assert ctx.get(dut.query_earliest) == 2 ** 31 - 1
        await ctx.tick()
        ctx.set(dut.query_req, 0)
        await ctx.tick()
        self.checked["queries"] += 1


@pytest.mark.parametrize("connections, seed", [(2, 1), (4, 2), (8, 3), (64, 4)])
def test_due_connections_equal_the_model(connections, seed):
    """Random updates (at any clock of the scan, the same connection back to back, the
    clock before a waiting tick is taken), ticks and jumps, from just below 2**32: each tick's due connections, in
    order, are those whose ``Tcb.next_deadline`` has come, and NEXT_DEADLINE is the model's."""
    rng = random.Random(seed)
    dut = Timers(connections=connections, poison_collisions=True)
    start = 2 ** 32 - 12                    # the clock wraps during the run
    checked = {}

    async def testbench(ctx):
        d = _Driver(ctx, dut, connections, 0, rng)
        await d.advance(start + 1)          # now = start
        for _ in range(120 if connections < 64 else 40):
            action = rng.random()
            if action < 0.45:
                waiting = rng.random() < 0.5    # a tick waits while the records go back
                if waiting:
                    await d.pulse_tick()
                for _ in range(rng.randrange(1, 4)):
                    conn = rng.randrange(connections)
                    await d.update(conn, d.random_deadlines())
                    await d.idle(rng.choice([0, 0, 1, 2, 5]))
                if waiting:
                    await d.take_tick()     # the clock after the last update, if it was the last
                elif rng.random() < 0.5:
                    await d.tick()
            elif action < 0.8:
                await d.tick()
            elif action < 0.9:
                await d.query()
            else:
                await d.advance(rng.randrange(2, 6))
            await d.idle(rng.randrange(0, connections + 3))
        checked.update(d.checked, now=d.now)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert checked["now"] > 2 ** 32                     # the wrap was crossed
    assert checked["due"] > 20 and checked["queries"] >= 2, checked
