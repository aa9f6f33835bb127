"""hdl/engine/observe.py: the segment kinds and timer kinds the debug port reports, one case
each, in the Amaranth simulator."""

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hdl.buffers.stream_buffer import StateQuery
from hdl.engine.observe import SegmentKind, TimerKind, _segment_kind, _timer_kind
from hdl.engine.tcb import ConnKind, ConnRecord, TcpState
from hdl.wire import TcpFlags

K = SegmentKind
# (state, RCV.NXT, window, seq, payload length, flags, ack) -> kind; ISS 100, SND.MAX 101
SEGMENTS = [
    (TcpState.ESTABLISHED, 1000, 2048, 1000, 0, "ack", 101, K.ACK),
    (TcpState.ESTABLISHED, 1000, 2048, 1000, 10, "ack", 101, K.DATA_IN_WINDOW),
    (TcpState.ESTABLISHED, 1000, 2048, 995, 10, "ack", 101, K.DATA_IN_WINDOW),
    (TcpState.ESTABLISHED, 1000, 2048, 5000, 10, "ack", 101, K.DATA_OUT_OF_WINDOW),
    (TcpState.ESTABLISHED, 1000, 2048, 5000, 0, "ack fin", 101, K.DATA_OUT_OF_WINDOW),
    (TcpState.ESTABLISHED, 1000, 2048, 900, 10, "ack", 101, K.OLD_DUPLICATE),
    (TcpState.ESTABLISHED, 1000, 2048, 999, 0, "ack", 101, K.OLD_DUPLICATE),
    (TcpState.ESTABLISHED, 1000, 2048, 1000, 5, "ack fin", 101, K.FIN),
    (TcpState.ESTABLISHED, 1000, 2048, 1000, 0, "rst", 0, K.RST_EXACT),
    (TcpState.ESTABLISHED, 1000, 2048, 1500, 0, "rst ack", 101, K.RST_IN_WINDOW),
    (TcpState.ESTABLISHED, 1000, 2048, 9000, 0, "rst", 0, K.RST_OUTSIDE),
    (TcpState.ESTABLISHED, 1000, 2048, 7, 0, "syn", 0, K.SYN),
    (TcpState.SYN_RECEIVED, 1000, 2048, 999, 0, "syn ack", 101, K.SYN_ACK),
    (TcpState.ESTABLISHED, 1000, 0, 1000, 0, "ack", 101, K.ACK),
    (TcpState.ESTABLISHED, 1000, 0, 1000, 10, "ack", 101, K.DATA_OUT_OF_WINDOW),
    (TcpState.SYN_SENT, 0, 2048, 555, 0, "rst ack", 101, K.RST_EXACT),
    (TcpState.SYN_SENT, 0, 2048, 555, 0, "rst ack", 500, K.RST_OUTSIDE),
    (TcpState.SYN_SENT, 0, 2048, 555, 0, "ack", 101, K.ACK),
    (TcpState.SYN_SENT, 0, 2048, 555, 0, "syn ack", 101, K.SYN_ACK),
]


def _run(m, testbench):
    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("state, rcv_nxt, window, seq, plen, flags, ack, want", SEGMENTS)
def test_segment_kind(state, rcv_nxt, window, seq, plen, flags, ack, want):
    m = Module()
    rec = Signal(ConnRecord())
    rxq = Signal(StateQuery(1))
    seg = {"flags": Signal(TcpFlags()), "seq": Signal(32), "ack": Signal(32), "plen": Signal(16)}
    kind = Signal(SegmentKind)
    ring = 2048
    m.d.comb += kind.eq(_segment_kind(rec, rxq, seg, ring))

    async def testbench(ctx):
        ctx.set(rec.state, state)
        ctx.set(rec.iss, 100)
        ctx.set(rec.snd_max, 101)
        ctx.set(rxq.head, (rcv_nxt - (ring - window)) % 2**32)     # `window` bytes free
        ctx.set(rxq.tail, rcv_nxt)
        ctx.set(seg["seq"], seq)
        ctx.set(seg["ack"], ack)
        ctx.set(seg["plen"], plen)
        for flag in flags.split():
            ctx.set(getattr(seg["flags"], flag), 1)
        assert ctx.get(kind) == want

    _run(m, testbench)


T = TimerKind
# (state, rto armed/due, retries, persist due, close due, peer window, queued) -> kind
TIMERS = [
    (TcpState.ESTABLISHED, True, 0, False, False, 1000, 10, T.RTO),
    (TcpState.ESTABLISHED, True, 3, False, False, 1000, 10, T.RTO_GIVE_UP),
    (TcpState.ESTABLISHED, True, 0, False, False, 0, 10, T.RTO_ZERO_WINDOW),
    (TcpState.SYN_SENT, True, 0, False, False, 0, 0, T.RTO),
    (TcpState.ESTABLISHED, False, 0, True, False, 0, 10, T.PERSIST),
    (TcpState.TIME_WAIT, False, 0, False, True, 0, 0, T.TIME_WAIT),
    (TcpState.FIN_WAIT_2, False, 0, False, True, 0, 0, T.CLOSE),
    (TcpState.ESTABLISHED, False, 0, False, False, 1000, 0, T.NONE),
    (TcpState.CLOSED, True, 0, False, False, 1000, 0, T.NONE),
]


@pytest.mark.parametrize("state, rto, retries, persist, close, wnd, queued, want", TIMERS)
def test_timer_kind(state, rto, retries, persist, close, wnd, queued, want):
    m = Module()
    t = Signal(ConnRecord())
    now = Signal(32)
    n_queued = Signal(12)
    kind = Signal(TimerKind)
    m.d.comb += kind.eq(_timer_kind(t, now, n_queued, max_retries=3))

    async def testbench(ctx):
        ctx.set(now, 50)
        ctx.set(t.kind, ConnKind.TCP)
        ctx.set(t.state, state)
        ctx.set(t.retries, retries)
        ctx.set(t.snd_wnd, wnd)
        ctx.set(n_queued, queued)
        for armed, deadline, due in ((t.rto_armed, t.rto_deadline, rto),
                                     (t.persist_armed, t.persist_deadline, persist),
                                     (t.close_armed, t.close_deadline, close)):
            ctx.set(armed, 1)
            ctx.set(deadline, 50 if due else 60)
        assert ctx.get(kind) == want

    _run(m, testbench)
