"""The connections' timers: which connections a tick finds due, without loading any record.

The reference is ``model.tcp.Tcb``: ``next_deadline`` (the earliest of the RTO, persist and
close deadlines that are set) and ``on_timer`` (a timer fires when ``now >= deadline``). The
engine owns the deadlines (they are fields of the connection record, written where the model
writes them); this unit keeps, per connection, only the earliest of them (:func:`earliest`),
sent to it on :attr:`Timers.update` whenever the engine writes a record back. It owns the
clock, ``now``, and finds the due connections in the background, so a tick costs the engine
one record load per connection that is due, not one per connection with a timer running (as
the fpgasystems TOE's and Tonic's timers keep a deadline per flow and compare it with a
running counter, ``../shared/ENGINE-NOTES.md``).

How: a scan reads one connection's earliest deadline a clock, round and round (a block RAM
on ECP5; the entry is registered twice before any arithmetic), and keeps ``pending``, the
connections due at the next tick (``due_at(deadline, now + 1)``). An update recomputes its
connection's bit itself, overriding the scan's for that connection, and drops a scanned entry
of that connection still on its way. Taking a tick moves ``pending`` into ``due``, which the
engine takes one connection at a time, lowest first (the model's order). ``now`` only grows,
so a bit set stays right; a tick is offered only after a whole scan since ``now`` last moved
(``stale`` has counted down), with no update on its way, so no bit is missing.

Deadlines are compared in sequence order on a 32-bit clock: they must lie within 2**31 ticks
of ``now`` (the model's are at most minutes of 1 ms ticks).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.engine.tcb import seq_lt
from hdl.memories import NO_RW_CHECK, registered_read_port

__all__ = ["Timer", "TimerUpdate", "Timers", "orders", "earliest", "due_at", "TIMERS"]

#: clocks from a scanned entry's read to its use
SCAN_LATENCY = 4

#: the record's timers, in the order ``TimerUpdate`` carries them (``model.tcp.Tcb``'s names)
TIMERS = ("rto", "persist", "close")


class Timer(data.StructLayout):
    """One timer: running (``Tcb``'s deadline is not None) and its deadline, in ticks."""

    def __init__(self):
        super().__init__({"armed": 1, "deadline": 32})


class TimerUpdate(data.StructLayout):
    """A connection's timers as the engine writes its record back."""

    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, **{name: Timer() for name in TIMERS}})


def due_at(deadline, now):
    """``now >= deadline`` as ``Tcb.on_timer`` tests it, on a 32-bit clock."""
    return ~seq_lt(now, deadline)


def orders(timers):
    """Which deadline of each pair of `timers` comes first: {(i, j): timers[i] before
    timers[j]} for i < j, all side by side (one carry chain deep)."""
    return {(i, j): seq_lt(timers[i].deadline, timers[j].deadline)
            for i in range(len(timers)) for j in range(i + 1, len(timers))}


def earliest(timers, before=None):
    """``Tcb.next_deadline``: (any running, the earliest deadline of those running), from
    Timer views and their :func:`orders` (worked out here if not given, registered by the
    unit). Of equal deadlines the later timer wins, so exactly one running timer wins."""
    if before is None:
        before = orders(timers)
    deadline = 0
    for i, timer in enumerate(timers):
        beats = [~other.armed | (before[i, j] if i < j else ~before[j, i])
                 for j, other in enumerate(timers) if j != i]
        deadline = deadline | Mux(timer.armed & Cat(*beats).all(), timer.deadline, 0)
    return Cat(*(t.armed for t in timers)).any(), deadline


def _lowest_set(bits):
    """(any bit set, the index of the lowest), as a tree: halves' answers, log2 levels."""
    if len(bits) == 1:
        return bits[0], Const(0, 0)
    half = len(bits) // 2
    low_any, low = _lowest_set(bits[:half])
    high_any, high = _lowest_set(bits[half:])
    return low_any | high_any, Mux(low_any, Cat(low, Const(0, 1)), Cat(high, Const(1, 1)))


class Timers(wiring.Component):
    """The clock and the due connections.

    Parameters
    ----------
    connections : int
        Connection slots, a power of two.
    poison_collisions : bool
        For simulation only: a read of the deadlines' block RAM in the clock an update writes
        its connection returns the word inverted, as the RAM's is undefined then
        (``registered_read_port``'s ``poison_for``), so a test sees a design that would use
        one.

    Members
    -------
    tick : In(1)
        One pulse per tick of the virtual clock (counted: up to 255 wait).
    now : Out(32)
        Ticks taken so far (and jumps, :attr:`advance`).
    tick_ready : Out(1), tick_take : In(1)
        A tick waits and may be taken: the engine then serves :attr:`due` before any other
        event (``now`` is one more from the next clock, and ``due`` is that tick's set).
    due_valid : Out(1), due_conn : Out(range(connections)), due_take : In(1), due_done : Out(1)
        The lowest connection of the tick's set not yet taken; taking it removes it. After a
        take (of the tick or of a connection) the next one, or ``due_done`` (the set is
        empty), shows the fourth clock after it; neither shows in the clocks between.
    update : In(stream.Signature(TimerUpdate))
        A connection's timers, whenever its record is written back (``armed`` only for a
        TCP connection). Always ready. Four clocks on its way; a tick or query waits for it.
    advance : In(stream.Signature(32))
        Always ready: ``now`` jumps ``payload - 1`` ticks (control ADVANCE: the next tick runs the timers),
        from the second clock after.
    query_req : In(1), query_valid : Out(1), query_earliest : Out(signed(32)), query_any : Out(1)
        NEXT_DEADLINE: with ``query_req`` held, after a scan of every connection,
        ``query_valid`` and the least ``deadline - now`` of the running timers (2**31 - 1
        if none; ``query_any``: some timer runs), until ``query_req`` falls: 2N + 5 clocks
        (two passes of the scan, for a compare split over two clocks).
    idle : Out(1)
        No tick waiting, no update on its way.
    """

    @staticmethod
    def tick_interval(connections):
        """The fewest clocks from one tick taken to the next (a whole scan between)."""
        return connections + SCAN_LATENCY + 1

    def __init__(self, *, connections, poison_collisions=False):
        if not isinstance(connections, int) or connections < 2:
            raise ValueError(f"Timers need at least 2 connections, not {connections!r}")
        conn_bits = exact_log2(connections)
        self._connections = connections
        self._poison_collisions = bool(poison_collisions)
        super().__init__({
            "tick": In(1), "now": Out(32),
            "tick_ready": Out(1), "tick_take": In(1),
            "due_valid": Out(1), "due_conn": Out(conn_bits), "due_take": In(1),
            "due_done": Out(1),
            "update": In(stream.Signature(TimerUpdate(conn_bits))),
            "advance": In(stream.Signature(32)),
            "query_req": In(1), "query_valid": Out(1), "query_earliest": Out(signed(32)),
            "query_any": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        N = self._connections
        m.d.comb += [self.update.ready.eq(1), self.advance.ready.eq(1)]

        now = Signal(32)
        next_now = Signal(32, init=1)           # now + 1, kept beside it (no adder on a path)
        m.d.comb += self.now.eq(now)

        # each connection's earliest running deadline: a block RAM on ECP5 and iCE40, read
        # through its read and output registers (a read that meets an update's write of its
        # connection is dropped below, so the RAM needs no read/write bypass)
        m.submodules.wake = wake = Memory(shape=Timer(), depth=N, init=[], attrs=NO_RW_CHECK)
        wake_wr = wake.write_port()
        scan = Signal(range(N))
        wake_rd = registered_read_port(m, wake, name="wake_rd",
                                       poison_for=(wake_wr,) if self._poison_collisions else ())
        m.d.comb += wake_rd.addr.eq(scan)
        m.d.sync += scan.eq(scan + 1)           # N is a power of two: wraps

        # updates: registered (u0), their deadlines' orders registered beside them (u1), then
        # the earliest deadline (u2), written in the clock after
        u0 = Signal.like(self.update.payload)
        u0_valid = Signal()
        m.d.sync += [u0.eq(self.update.payload), u0_valid.eq(self.update.valid)]
        u1 = Signal.like(u0)
        u1_valid = Signal()
        u0_before = orders([u0[name] for name in TIMERS])
        u1_before = {pair: Signal(name=f"u1_before_{pair[0]}_{pair[1]}") for pair in u0_before}
        m.d.sync += [u1.eq(u0), u1_valid.eq(u0_valid),
                     *(u1_before[pair].eq(order) for pair, order in u0_before.items())]
        u2_conn = Signal.like(u1.conn)
        u2 = Signal(Timer())
        u2_valid = Signal()
        armed, deadline = earliest([u1[name] for name in TIMERS], u1_before)
        m.d.sync += [u2_conn.eq(u1.conn), u2.armed.eq(armed), u2.deadline.eq(deadline),
                     u2_valid.eq(u1_valid)]
        m.d.comb += [wake_wr.addr.eq(u2_conn), wake_wr.data.eq(u2), wake_wr.en.eq(u2_valid)]
        # its verdict, registered (u3) like the scan's
        u3_conn = Signal.like(u2_conn)
        u3_due = Signal()
        u3_valid = Signal()
        m.d.sync += [u3_conn.eq(u2_conn), u3_due.eq(u2.armed & due_at(u2.deadline, next_now)),
                     u3_valid.eq(u2_valid)]
        # (an update's own clock is the engine's WRITE_BACK, when it takes no tick or query)
        updating = u0_valid | u1_valid | u2_valid | u3_valid
        jump = Signal()                         # a jump of the clock in its second clock (below)

        # the scan's read, in the RAM's read and output registers, then a register of the
        # fabric (s2) before any arithmetic (the RAM sits away from the logic); an entry is
        # dropped when an update writes its connection while it is read or between the
        # registers (it holds the old deadline), and an update in the clock it is used
        # overrides it (below)
        def overwritten(conn):
            return u2_valid & (u2_conn == conn)
        s_conn = Signal(range(N))
        s_valid = Signal()
        m.d.sync += [s_conn.eq(scan), s_valid.eq(~overwritten(scan))]
        o_conn = Signal(range(N))
        o_valid = Signal()
        m.d.sync += [o_conn.eq(s_conn), o_valid.eq(s_valid & ~overwritten(s_conn))]
        s2_conn = Signal(range(N))
        s2 = Signal(Timer())
        s2_valid = Signal()
        m.d.sync += [s2_conn.eq(o_conn), s2.eq(wake_rd.data),
                     s2_valid.eq(o_valid & ~overwritten(o_conn))]

        # pending: due at the next tick (the scanned entry's verdict registered first, s3);
        # the update's bit after the scan's, so it wins. (A scanned entry read before the
        # update's write and not dropped is in s3 at the latest with the update's verdict.)
        s3_conn = Signal(range(N))
        s3_due = Signal()
        s3_valid = Signal()
        m.d.sync += [s3_conn.eq(s2_conn), s3_due.eq(s2.armed & due_at(s2.deadline, next_now)),
                     s3_valid.eq(s2_valid)]
        pending = Signal(N)
        pending_next = Signal(N)
        m.d.comb += pending_next.eq(pending)
        with m.If(s3_valid):
            m.d.comb += pending_next.bit_select(s3_conn, 1).eq(s3_due)
        with m.If(u3_valid):
            m.d.comb += pending_next.bit_select(u3_conn, 1).eq(u3_due)
        m.d.sync += pending.eq(pending_next)

        # a whole scan compared with the present next_now since it last moved
        stale = Signal(range(N + SCAN_LATENCY + 1))
        m.d.sync += stale.eq(Mux(stale == 0, 0, stale - 1))
        def clock_moves(to, after):
            m.d.sync += [now.eq(to), next_now.eq(after), stale.eq(N + SCAN_LATENCY)]

        # ticks: counted; taken when fresh with nothing on its way
        ticks = Signal(8)
        with m.If(self.tick & ~self.tick_take & (ticks != 0xFF)):
            m.d.sync += ticks.eq(ticks + 1)
        with m.Elif(~self.tick & self.tick_take):
            m.d.sync += ticks.eq(ticks - 1)
        m.d.comb += self.tick_ready.eq((ticks != 0) & (stale == 0) & ~updating & ~jump)

        # the tick's set; its lowest connection found in three registered steps, at most 3
        # LUT levels each (one step, a tree of 6 muxes at 64 connections, held the block at
        # 180 MHz): each group of 8's lowest and whether it has one, the lowest group with
        # one, that group's lowest. So it shows the fourth clock after a take (`settle`: the
        # clocks between; `due` changes only at a take, so the steps need no valid bits)
        due = Signal(N)
        group = min(8, N)
        groups = [due[i:i + group] for i in range(0, N, group)]
        group_any = Signal(len(groups))
        group_lowest = Array(Signal(range(group), name=f"group_lowest{i}")
                             for i in range(len(groups)))
        m.d.sync += [group_any.eq(Cat(bits.any() for bits in groups)),
                     *(group_lowest[i].eq(_lowest_set(bits)[1]) for i, bits in enumerate(groups))]
        if len(groups) == 1:
            m.d.sync += self.due_conn.eq(group_lowest[0])
        else:
            lowest_group = Signal(range(len(groups)))
            m.d.sync += [lowest_group.eq(_lowest_set(group_any)[1]),
                         self.due_conn.eq(Cat(group_lowest[lowest_group], lowest_group))]
        due_any = Signal()
        settle = Signal(3)
        m.d.sync += [due_any.eq(due.any()),
                     settle.eq(Cat(self.tick_take | self.due_take, settle[:-1]))]
        m.d.comb += [self.due_valid.eq(due_any & ~settle.any()),
                     self.due_done.eq(~due_any & ~settle.any())]
        with m.If(self.tick_take):
            clock_moves(next_now, next_now + 1)
            # (what the scan writes into pending in this clock it wrote in the pass before)
            m.d.sync += due.eq(pending)
        with m.Elif(self.due_take):
            m.d.sync += due.eq(due & (due - 1))        # the lowest bit cleared: a carry chain
        # a jump: its two sums' addends registered first, then one adder each (the clock
        # after the jump's, before any event can use now)
        jump_to = Signal(32)
        jump_after = Signal(32)
        m.d.sync += [jump.eq(self.advance.valid), jump_to.eq(self.advance.payload - 1),
                     jump_after.eq(self.advance.payload)]
        with m.If(jump):
            clock_moves(now + jump_to, now + jump_after)

        # NEXT_DEADLINE: each scanned entry's deadline - now registered (`left`), then the
        # least kept in `best`. The compare with `best` is split into halves (registered,
        # stage A) and their verdict taken a clock later (stage B), so an entry may follow
        # only every other clock: even connections in a first pass of the scan, odd ones in a
        # second, a clock apart (the last even one and the first odd one may be neighbours in
        # the scan). `left` holds the entry read 4 clocks before: from the query's clock
        # `first` on, one read after the query started.
        left = Signal(signed(32))
        left_armed = Signal()
        left_odd = Signal()
        m.d.sync += [left.eq(s2.deadline - now), left_armed.eq(s2.armed), left_odd.eq(s2_conn[0])]
        first = 3
        q_clock = Signal(range(2 * N + first + 2))
        q_running = Signal()
        q_done = Signal()
        best = Signal(signed(32))
        any_armed = Signal()
        a_valid = Signal()
        a_left = Signal(signed(32))
        a_hi_less = Signal()
        a_hi_equal = Signal()
        a_lo_less = Signal()
        odd_pass = q_clock >= N + first + 1
        in_window = Mux(odd_pass, q_clock < 2 * N + first + 1,
                        (q_clock >= first) & (q_clock < N + first))
        m.d.sync += [a_valid.eq(q_running & in_window & left_armed & (left_odd == odd_pass)),
                     a_left.eq(left),
                     a_hi_less.eq(left[16:].as_signed() < best[16:].as_signed()),
                     a_hi_equal.eq(left[16:] == best[16:]),
                     a_lo_less.eq(left[:16] < best[:16])]
        with m.If(a_valid):
            m.d.sync += any_armed.eq(1)
            with m.If(a_hi_less | (a_hi_equal & a_lo_less)):
                m.d.sync += best.eq(a_left)
        with m.If(q_running):
            m.d.sync += q_clock.eq(q_clock + 1)
            with m.If(q_clock == 2 * N + first + 1):
                m.d.sync += [q_running.eq(0), q_done.eq(1)]
        with m.Elif(q_done):
            with m.If(~self.query_req):
                m.d.sync += q_done.eq(0)
        with m.Elif(self.query_req & ~updating & ~jump):
            m.d.sync += [q_running.eq(1), q_clock.eq(0), best.eq(2 ** 31 - 1), any_armed.eq(0)]
        m.d.comb += [self.query_valid.eq(q_done & self.query_req),
                     self.query_earliest.eq(best), self.query_any.eq(any_armed)]

        m.d.comb += self.idle.eq((ticks == 0) & ~self.tick & ~updating & ~jump)
        return m
