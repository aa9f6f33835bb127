"""What a tick does to a connection it finds due: ``model.tcp.Tcb.on_timer`` as one verdict.

The timers unit (``hdl/engine/timers.py``) finds which connections are due; for each, the
engine loads the record and this unit decides, from the record's timers and the clock, which
of them fire and what they change: the FIN-WAIT-2 / TIME-WAIT timeout closes the connection;
an RTO with the peer's window closed becomes a zero-window probe timer without counting a
retry; any other RTO counts an expiry (ETIMEDOUT past ``max_retries``), backs the RTO off and
goes back to SND.UNA; a due persist timer sends a probe and backs off. A pure function of
(record, now) -> (record, effects); ``tests/hdl/test_timer_fire.py`` checks it against
``Tcb.on_timer`` in every TCP state.

Two clocks (``LATENCY``): the first registers every compare with the clock and every new
deadline (``now`` + an interval from a 16-entry table, or the doubled RTO), side by side;
the second chooses between them into the verdict's registers. The engine gives it two clocks
(``EngineStep.TIMER``, ``TIMER_WAIT``) between loading the record and using the verdict,
which its registers then hold while the inputs hold.
"""

from amaranth import *
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine.rtt import RTO_BITS
from hdl.engine.tcb import SYNCHRONIZED, TcpState, one_of
from hdl.engine.timers import due_at

__all__ = ["TimerNext", "TimerFireInput", "TimerFireVerdict", "TimerFire", "LATENCY"]

#: clocks from the inputs to the verdict
LATENCY = 2


class TimerNext(enum.Enum, shape=2):
    """What the engine does after a timer verdict."""
    NONE = 0            # nothing fired: the tick's next due connection
    CLOSED = 1          # the connection closed (timeout, or ETIMEDOUT): empty its send ring
    DISPATCH = 2        # send what there is to send (a retransmission, a probe)


class TimerFireInput(data.StructLayout):
    """The record's timer fields, and the clock. ``live``: a TCP connection not CLOSED
    (nothing fires on any other slot); ``window_zero``: SND.WND = 0; ``queued``: the send
    queue holds bytes. With ``rtt``: the record's RTO after ``retries`` expiries (``rto``)
    and after none (``rto_base``)."""

    def __init__(self, rtt):
        super().__init__({
            "live": 1,
            "state": TcpState,
            "now": 32,
            "close_armed": 1,
            "close_deadline": 32,
            "rto_armed": 1,
            "rto_deadline": 32,
            "persist_armed": 1,
            "persist_deadline": 32,
            "persist_probes": 4,
            "retries": 4,
            "window_zero": 1,
            "queued": 1,
            **({"rto": RTO_BITS, "rto_base": RTO_BITS} if rtt else {}),
        })


class TimerFireVerdict(data.StructLayout):
    """Which timers fired and the record's new timer fields (unchanged ones pass through).
    ``closed``: ``Tcb._enter_closed``; ``timed_out``: ``Tcb._enter_reset(ETIMEDOUT)``;
    ``zero_window``: the RTO became the persist timer (RTO off, SND.NXT = SND.UNA, persist
    on, retries 0, the RTO back to its base, no RTT sample); ``rto_fired``: go-back-N
    (SND.NXT = SND.UNA, no duplicate ACKs counted, no RTT sample); ``probe``: send
    <SEQ=SND.UNA-1><CTL=ACK>."""

    def __init__(self, rtt):
        super().__init__({
            "next": TimerNext,
            "closed": 1,
            "timed_out": 1,
            "zero_window": 1,
            "rto_fired": 1,
            "probe": 1,
            "retries": 4,
            "rto_deadline": 32,
            "persist_deadline": 32,
            "persist_probes": 4,
            **({"rto": RTO_BITS} if rtt else {}),
        })


class TimerFire(wiring.Component):
    """``Tcb.on_timer`` for one connection (see the module's docstring).

    Parameters
    ----------
    policy : model.policy.Policy
        The RTO and persist intervals, ``max_retries`` and whether the RTO is estimated.
    """

    def __init__(self, policy):
        self._policy = policy
        rtt = policy.rtt_estimation
        super().__init__({"inputs": In(TimerFireInput(rtt)),
                          "verdict": Out(TimerFireVerdict(rtt))})

    def elaborate(self, platform):
        m = Module()
        P = self._policy
        rtt = P.rtt_estimation
        i, v = self.inputs, self.verdict
        if not P.max_retries <= 15:
            raise ValueError(f"max_retries must fit the record's 4-bit count, not {P.max_retries}")
        persist_table = Array(Const(P.persist_after(k), 16) for k in range(16))

        # first clock, side by side: what is due, and every deadline a firing could set
        synchronized = one_of(i.state, *SYNCHRONIZED)
        close_due = Signal()
        rto_due = Signal()
        persist_due = Signal()
        window_closed = Signal()            # the peer's window is closed, bytes are queued
        last_retry = Signal()
        probes = Signal(4)
        persist_now = Signal(32)            # the zero-window switch's persist deadline
        persist_next = Signal(32)           # ... after a probe
        rto_next = Signal(RTO_BITS if rtt else 16)
        rto_deadline_next = Signal(32)
        # (the tables after one more probe or expiry are indexed by the count itself: no
        # incrementer before the lookup and its sum)
        persist_after_probe = Array(Const(P.persist_after(min(k + 1, 15)), 16) for k in range(16))
        if rtt:
            # the RTO doubled, at most rto_max: both sums side by side, chosen after
            at_max = i.rto > P.rto_max >> 1
            backed_off = Mux(at_max, P.rto_max, i.rto << 1)
            backed_off_deadline = Mux(at_max, i.now + P.rto_max, i.now + (i.rto << 1))
        else:
            rto_after_expiry = Array(Const(P.rto_after(min(k + 1, 15)), 16) for k in range(16))
            backed_off = rto_after_expiry[i.retries]
            backed_off_deadline = i.now + backed_off
        m.d.sync += [
            close_due.eq(i.close_armed & due_at(i.close_deadline, i.now)),
            rto_due.eq(i.rto_armed & due_at(i.rto_deadline, i.now)),
            persist_due.eq(i.persist_armed & due_at(i.persist_deadline, i.now)),
            window_closed.eq(synchronized & i.window_zero & i.queued),
            last_retry.eq(i.retries == P.max_retries),
            probes.eq(Mux(i.persist_probes == 15, 15, i.persist_probes + 1)),
            persist_now.eq(i.now + persist_table[i.persist_probes]),
            persist_next.eq(i.now + persist_after_probe[i.persist_probes]),
            rto_next.eq(backed_off),
            rto_deadline_next.eq(backed_off_deadline),
        ]

        # second clock: which fire, and the record's fields they leave
        zero_window = rto_due & window_closed
        timed_out = rto_due & ~zero_window & last_retry
        rto_fired = rto_due & ~zero_window & ~timed_out
        # a persist timer the zero-window switch just set is not due (its interval is > 0)
        probe = persist_due & ~zero_window

        m.d.sync += [
            v.closed.eq(0), v.timed_out.eq(0), v.zero_window.eq(0), v.rto_fired.eq(0),
            v.probe.eq(0), v.next.eq(TimerNext.NONE),
            v.retries.eq(i.retries), v.rto_deadline.eq(i.rto_deadline),
            v.persist_deadline.eq(i.persist_deadline), v.persist_probes.eq(i.persist_probes),
        ]
        if rtt:
            m.d.sync += v.rto.eq(i.rto)
        with m.If(~i.live):
            pass
        with m.Elif(close_due):
            m.d.sync += [v.closed.eq(1), v.next.eq(TimerNext.CLOSED)]
        with m.Elif(timed_out):
            m.d.sync += [v.timed_out.eq(1), v.retries.eq(i.retries + 1),
                         v.next.eq(TimerNext.CLOSED)]
        with m.Elif(zero_window | rto_fired | probe):
            m.d.sync += [v.zero_window.eq(zero_window), v.rto_fired.eq(rto_fired),
                         v.probe.eq(probe), v.next.eq(TimerNext.DISPATCH)]
            with m.If(zero_window):
                m.d.sync += [v.retries.eq(0), v.persist_deadline.eq(persist_now)]
                if rtt:
                    m.d.sync += v.rto.eq(i.rto_base)
            with m.If(rto_fired):
                m.d.sync += [v.retries.eq(i.retries + 1), v.rto_deadline.eq(rto_deadline_next)]
                if rtt:
                    m.d.sync += v.rto.eq(rto_next)
            with m.If(probe):
                m.d.sync += [v.persist_probes.eq(probes), v.persist_deadline.eq(persist_next)]
        return m
