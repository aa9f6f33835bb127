"""What the engine shows a testbench about each event it handles (debug builds only).

The NIC's ``debug`` port carries one :class:`EngineObservation` (``hdl.nic.DebugSignature``):
when the engine's step is ``LATCH`` it describes the event the engine has just taken (which
connection, what kind of event, the connection's state before it, how full the connection's
rings are); when the step is ``TCP_START``, the kind of the TCP segment it processes (from
the wire, or injected by the slow path: a SYN, a SYN-ACK); when the step is ``TIMER``, which
timer fires. ``tb/coverage.py`` turns these into functional coverage.

The segment kinds are computed from what the engine itself tests (RFC 9293 3.10.7.4's
acceptability test, RFC 5961's RST rules) on the connection record and receive-ring state it
is loading; nothing here changes what the engine does.
"""

from amaranth import *
from amaranth.lib import data, enum
from amaranth.utils import exact_log2

from hdl.engine.tcb import SYNCHRONIZED, ConnKind, TcpState, one_of, seq_lt
from hdl.engine.timers import due_at
from hdl.buffers.stream_buffer import ring_free

__all__ = ["EventSource", "SegmentKind", "TimerKind", "EngineObservation", "observe"]


class EventSource(enum.Enum, shape=2):
    """What started the engine's event (the engine's ``_Event``)."""
    RX = 0          #: a received segment or datagram
    HOST = 1        #: a host command
    CONTROL = 2     #: a control command
    TICK = 3        #: a timer tick found the connection due (hdl/engine/timers.py)


class SegmentKind(enum.Enum, shape=4):
    """A received TCP segment as RFC 9293 sorts it, judged against the state it finds.

    In SYN-SENT there is no receive window yet: an RST is EXACT when its ACK acknowledges our
    SYN and OUTSIDE otherwise, and a segment without SYN or RST is ACK, FIN or out of window.
    """
    NONE = 0                #: not a TCP segment event
    SYN = 1                 #: SYN without ACK
    SYN_ACK = 2
    ACK = 3                 #: no payload, no FIN, acceptable
    DATA_IN_WINDOW = 4      #: payload, acceptable (at least partly in the window)
    DATA_OUT_OF_WINDOW = 5  #: unacceptable and not wholly old (beyond the window, or a closed
                            #: one), with or without payload or FIN
    FIN = 6                 #: FIN (with or without payload), acceptable
    RST_EXACT = 7           #: RST at RCV.NXT
    RST_IN_WINDOW = 8       #: RST in the window but not at RCV.NXT (a challenge ACK)
    RST_OUTSIDE = 9         #: RST outside the window
    OLD_DUPLICATE = 10      #: wholly before RCV.NXT


class TimerKind(enum.Enum, shape=3):
    """The timer that fires when a tick loads a connection it found due (``Tcb.on_timer``)."""
    NONE = 0
    RTO = 1                 #: retransmission
    RTO_GIVE_UP = 2         #: the last retry: the connection is reset (ETIMEDOUT)
    RTO_ZERO_WINDOW = 3     #: RTO with the peer's window closed: it becomes a persist probe
    PERSIST = 4             #: zero-window probe
    TIME_WAIT = 5           #: TIME-WAIT is over
    CLOSE = 6               #: the close timer in another state (an orphan in FIN-WAIT-2)


class EngineObservation(data.StructLayout):
    """The engine's event as the ``debug`` port shows it.

    ``conn``, ``source``, ``kind`` and ``state`` (the connection's before the event) are valid
    when the engine's step is ``LATCH``, ``TCP_START`` or ``TIMER``. At ``LATCH``: each ring's
    ``*_used`` bytes (receive: in-order bytes not yet read; send: bytes not yet acknowledged)
    and ``*_start`` (where they start in the ring). At ``TCP_START``: ``segment`` (NONE if the
    slot holds no TCP connection). At ``TIMER``: ``timer``. Otherwise both are NONE.
    """

    def __init__(self, conn_bits, rcv_bytes, snd_bytes):
        super().__init__({
            "conn": conn_bits, "source": EventSource, "kind": ConnKind, "state": TcpState,
            "segment": SegmentKind, "timer": TimerKind,
            "rx_used": exact_log2(rcv_bytes) + 1, "rx_start": exact_log2(rcv_bytes),
            "tx_used": exact_log2(snd_bytes) + 1, "tx_start": exact_log2(snd_bytes),
        })


def _segment_kind(rec, rxq, seg, rcv_bytes):
    """The :class:`SegmentKind` of segment `seg` (a dict of the engine's ``seg_*`` registers)
    for the connection record `rec` with receive-ring state `rxq` (a ring of `rcv_bytes`), as
    loaded."""
    flags = seg["flags"]
    rcv_nxt = rxq.tail + rec.fin_received
    free = ring_free(rxq, rcv_bytes)
    rcv_wnd = Mux(free > rec.rcv_reserve, free - rec.rcv_reserve, 0)   # within SO_RCVBUF
    seg_len = seg["plen"] + flags.syn + flags.fin
    start = (seg["seq"] - rcv_nxt)[:32].as_signed()
    end = start + seg_len - 1
    start_in = (start >= 0) & (start < rcv_wnd)
    end_in = (end >= 0) & (end < rcv_wnd)
    acceptable = Mux(seg_len == 0, Mux(rcv_wnd == 0, start == 0, start_in),
                     (rcv_wnd != 0) & (start_in | end_in))
    old = Mux(seg_len == 0, start < 0, end < 0)
    ack_ok = seq_lt(rec.iss, seg["ack"]) & ~seq_lt(rec.snd_max, seg["ack"])
    bare = (seg["plen"] == 0) & ~flags.fin
    K = SegmentKind
    in_syn_sent = rec.state == TcpState.SYN_SENT
    return Mux(flags.rst,
               Mux(in_syn_sent, Mux(flags.ack & ack_ok, K.RST_EXACT, K.RST_OUTSIDE),
                   Mux(seg["seq"] == rcv_nxt, K.RST_EXACT,
                       Mux(start_in, K.RST_IN_WINDOW, K.RST_OUTSIDE))),
           Mux(flags.syn, Mux(flags.ack, K.SYN_ACK, K.SYN),
           Mux(in_syn_sent, Mux(bare, K.ACK, Mux(flags.fin, K.FIN, K.DATA_OUT_OF_WINDOW)),
           Mux(old, K.OLD_DUPLICATE,
           Mux(~acceptable, K.DATA_OUT_OF_WINDOW,
           Mux(flags.fin, K.FIN,
               Mux(bare, K.ACK, K.DATA_IN_WINDOW)))))))


def _timer_kind(t, now, queued, max_retries):
    """The :class:`TimerKind` that fires for the loaded record `t` at tick `now` (the engine's
    timer verdict, ``hdl/engine/timer_fire.py``, tests these in this order)."""
    def due(deadline):
        return due_at(deadline, now)
    K = TimerKind
    synchronized = one_of(t.state, *SYNCHRONIZED)
    return Mux((t.kind != ConnKind.TCP) | (t.state == TcpState.CLOSED), K.NONE,
           Mux(t.close_armed & due(t.close_deadline),
               Mux(t.state == TcpState.TIME_WAIT, K.TIME_WAIT, K.CLOSE),
           Mux(t.rto_armed & due(t.rto_deadline) & synchronized & (t.snd_wnd == 0) & (queued != 0),
               K.RTO_ZERO_WINDOW,
           Mux(t.rto_armed & due(t.rto_deadline),
               Mux(t.retries == max_retries, K.RTO_GIVE_UP, K.RTO),
           Mux(t.persist_armed & due(t.persist_deadline), K.PERSIST, K.NONE)))))


def observe(m, obs, *, latch, tcp_start, timer, source, conn, rec, rxq, txq, t, t_rxq, seg,
            now, queued, max_retries, rcv_bytes, snd_bytes):
    """Drive `obs` (an :class:`EngineObservation`) combinationally: `latch`, `tcp_start` and
    `timer` are the engine's LATCH, TCP_START and TIMER steps, `rec` the record being read and
    `rxq`/`txq` the rings' query ports (what LATCH latches), `t` and `t_rxq` the latched record
    and receive-ring state, `seg` the segment registers."""
    tcp_segment = tcp_start & (t.kind == ConnKind.TCP)
    m.d.comb += [
        obs.conn.eq(conn), obs.source.eq(source),
        obs.kind.eq(Mux(latch, rec.kind, t.kind)), obs.state.eq(Mux(latch, rec.state, t.state)),
        obs.segment.eq(Mux(tcp_segment, _segment_kind(t, t_rxq, seg, rcv_bytes), SegmentKind.NONE)),
        obs.timer.eq(Mux(timer, _timer_kind(t, now, queued, max_retries), TimerKind.NONE)),
        obs.rx_used.eq(rxq.tail - rxq.head), obs.rx_start.eq(rxq.head[:exact_log2(rcv_bytes)]),
        obs.tx_used.eq(txq.tail - txq.head), obs.tx_start.eq(txq.head[:exact_log2(snd_bytes)]),
    ]
