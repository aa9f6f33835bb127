"""What a segment does before its ACK field: ``model.tcp.Tcb._check_segment`` as one verdict.

RFC 9293 3.10.7 up to the fifth step's ACK processing, for a TCP connection (CLOSED takes
nothing: the engine routes its segments to host software, as it does LISTEN's):

- SYN-SENT (``Tcb._process_syn_sent``): an ACK outside (ISS, SND.MAX] is answered with a RST
  (unless it is one); a RST with an acceptable ACK is ECONNREFUSED; a SYN is taken: IRS, the
  peer's MSS, window scale and SACK-permitted options, and ESTABLISHED (its ACK acknowledges
  our SYN) or SYN-RECEIVED (a simultaneous open). The engine then starts the receive ring at
  IRS + 1 (``SYN_SENT_INIT``).
- TIME-WAIT (``Tcb._process_time_wait``): a RST at RCV.NXT closes, another is ignored; a bare
  ACK at RCV.NXT restarts the 2 MSL timer silently, anything else is acknowledged.
- SYN-RECEIVED: a retransmitted SYN has our SYN-ACK sent again; the peer's SYN-ACK after a
  simultaneous open completes the handshake.
- Then the sequence number check (with RFC 9293's zero-window exception: the ACK is still
  taken, the payload and FIN are not), RST (RFC 5961 3.2's challenge ACK), SYN in a
  synchronized state (RFC 5961 4.2) and the ACK bit; SYN-RECEIVED's ACK either completes the
  handshake or is answered with a RST.

A pure function of (record, ring state, segment) -> (record, effects); ``tests/hdl/
test_rx_check.py`` checks it against ``Tcb._check_segment`` in every state. Two clocks
(``LATENCY``): the first registers the sequence number compares (the window's: a difference
and its compare; SEG.SEQ + SEG.LEN - 1 comes added up, so none is longer), the second the
choices. The engine latches the record and the ring state (``LATCH``), gives it two
clocks (``TCP_DECIDE``, ``TCP_START``: the receive fast path's decision is taken in the
second) and applies it in ``TCP_CHECK``; the inputs hold meanwhile.
"""

from amaranth import *
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine.tcb import Errno, TcpState, one_of, seq_le, seq_lt, snd_wnd_bits, sum3
from hdl.wire import TcpFlags

__all__ = ["CheckInput", "CheckNext", "CheckVerdict", "RxCheck", "LATENCY"]

#: clocks from the inputs to the verdict
LATENCY = 2


class CheckNext(enum.Enum, shape=2):
    """Where the engine goes with the segment: ``DISPATCH`` (it ends here: send what the
    connection has to send), ``ACK`` (on to the fifth step's ACK processing with the kept
    payload and FIN), ``SYN_SENT_INIT`` (a SYN taken in SYN-SENT: the receive ring starts at
    IRS + 1) or ``CLOSE`` (the connection closed: its send ring is emptied)."""
    DISPATCH = 0
    ACK = 1
    SYN_SENT_INIT = 2
    CLOSE = 3


class CheckInput(data.StructLayout):
    """The record's fields the steps read, RCV.NXT and RCV.WND (from the receive ring) and
    the segment: SEQ, its last sequence number (``last``: SEG.SEQ + SEG.LEN - 1, SEG.LEN
    counting SYN and FIN; the engine adds it up as it takes the event), ACK, flags, window
    field (unscaled: a SYN's), the window scaled (``peer_wnd``: ``Tcb._peer_wnd``), payload
    length and a SYN's options (``mss`` 0: none)."""

    def __init__(self, window_scaling, ring_bits):
        super().__init__({
            "state": TcpState,
            "iss": 32,
            "irs": 32,
            "snd_una": 32,
            "snd_nxt": 32,
            "snd_max": 32,
            "fin_queued": 1,
            "passive": 1,
            "adv_mss": 16,
            "rcv_nxt": 32,
            "rcv_wnd": ring_bits,
            "seq": 32,
            "last": 32,
            "ack": 32,
            "flags": TcpFlags(),
            "window": 16,
            "peer_wnd": snd_wnd_bits(window_scaling),
            "length": 16,
            "mss": 16,
            "wscale_offered": 1,
            "wscale": 4,
            "sack_permitted": 1,
        })


class CheckVerdict(data.StructLayout):
    """``next``: see :class:`CheckNext`. The record's new ``state`` and ``snd_nxt``;
    ``syn_acked``: SND.UNA = SEG.ACK, the RTO stopped, retries 0, an RTT sample (our SYN
    acknowledged); ``window_update``: SND.WND = ``snd_wnd``, SND.WL1 = SEG.SEQ, SND.WL2 =
    ``snd_wl2``; ``syn_taken``: IRS = SEG.SEQ and the negotiated ``eff_mss``, ``wscale_ok``,
    ``snd_wscale``, ``sack_ok``; ``ack_needed`` is set; ``rst_reply``: the outbox sends
    <SEQ=SEG.ACK><CTL=RST>; ``time_wait_restart``: the 2 MSL timer starts again; ``closed``:
    ``Tcb._enter_closed`` (``reset`` with ``error``: ``Tcb._enter_reset``); ``payload_kept``,
    ``fin_kept``: the payload and FIN the later steps take."""

    def __init__(self, window_scaling):
        super().__init__({
            "next": CheckNext,
            "state": TcpState,
            "snd_nxt": 32,
            "syn_acked": 1,
            "window_update": 1,
            "snd_wnd": snd_wnd_bits(window_scaling),
            "snd_wl2": 32,
            "syn_taken": 1,
            "eff_mss": 16,
            "wscale_ok": 1,
            "snd_wscale": 4,
            "sack_ok": 1,
            "ack_needed": 1,
            "rst_reply": 1,
            "time_wait_restart": 1,
            "closed": 1,
            "reset": 1,
            "error": Errno,
            "payload_kept": 1,
            "fin_kept": 1,
        })


class RxCheck(wiring.Component):
    """``Tcb._check_segment`` for one segment (see the module's docstring).

    Parameters
    ----------
    policy : model.policy.Policy
        ``default_mss``, and whether windows are scaled and SACK is offered.
    ring_bits : bits of the ring counts (``hdl.engine.tcb.ring_count_bits``).
    """

    def __init__(self, policy, ring_bits):
        self._policy = policy
        super().__init__({"inputs": In(CheckInput(policy.window_scaling, ring_bits)),
                          "verdict": Out(CheckVerdict(policy.window_scaling))})

    def elaborate(self, platform):
        m = Module()
        P = self._policy
        i = self.inputs
        f = i.flags
        v = self.verdict

        # first clock: the sequence number compares, side by side. The first and last
        # byte's distance from RCV.NXT, modulo 2**32, is as an unsigned number below RCV.WND
        # exactly when it is in the window (a negative distance is 2**31 and up; RCV.WND and
        # SEG.LEN are far below that): its sign is 0 (one chain) and the distance less
        # RCV.WND is negative (a carry-save layer and one chain beside it; exact for the
        # distances below 2**31, the only ones it decides)
        rcv_wnd = Cat(i.rcv_wnd, C(0, 32 - len(i.rcv_wnd)))    # (32 bits before its ~)

        def in_window(seq):
            return ~(seq - i.rcv_nxt)[31] & sum3(seq, ~i.rcv_nxt, ~rcv_wnd, 2)[31]

        start_in = Signal()                 # 0 =< SEG.SEQ - RCV.NXT < RCV.WND
        end_in = Signal()                   # 0 =< SEG.SEQ + SEG.LEN - 1 - RCV.NXT < RCV.WND
        empty = Signal()                    # SEG.LEN = 0
        at_rcv_nxt = Signal()
        at_irs = Signal()
        acks_syn = Signal()                 # SND.UNA < SEG.ACK =< SND.MAX: our SYN acknowledged
        ack_bad = Signal()                  # SYN-SENT: SEG.ACK =< ISS or SND.MAX < SEG.ACK
        peer_mss = Signal(16)
        m.d.sync += [
            start_in.eq(in_window(i.seq)),
            end_in.eq(in_window(i.last)),
            empty.eq((i.length == 0) & ~f.syn & ~f.fin),
            at_rcv_nxt.eq(i.seq == i.rcv_nxt),
            at_irs.eq(i.seq == i.irs),
            acks_syn.eq(seq_lt(i.snd_una, i.ack) & seq_le(i.ack, i.snd_max)),
            ack_bad.eq(seq_le(i.ack, i.iss) | seq_lt(i.snd_max, i.ack)),
            peer_mss.eq(Mux(i.mss != 0, i.mss, P.default_mss)),
        ]

        # second clock: the choices (Tcb._acceptable is RFC 9293 3.10.7.4's table), each
        # verdict field set to its default, then as the steps decide
        acceptable = Mux(empty,
                         Mux(i.rcv_wnd == 0, at_rcv_nxt, start_in),
                         (i.rcv_wnd != 0) & (start_in | end_in))
        established = Mux(i.fin_queued, TcpState.FIN_WAIT_1, TcpState.ESTABLISHED)

        m.d.sync += [v.eq(0),                # (each flag 0 unless set below)
                     v.next.eq(CheckNext.DISPATCH), v.state.eq(i.state), v.snd_nxt.eq(i.snd_nxt),
                     v.snd_wnd.eq(i.window), v.snd_wl2.eq(i.ack),
                     v.eff_mss.eq(Mux(peer_mss < i.adv_mss, peer_mss, i.adv_mss)),
                     v.error.eq(Errno.OK),
                     v.payload_kept.eq(i.length != 0), v.fin_kept.eq(f.fin)]
        # (Tcb._negotiate_options: each 0 unless the policy offers it)
        scaling = i.wscale_offered & P.window_scaling
        m.d.sync += [v.wscale_ok.eq(scaling), v.snd_wscale.eq(Mux(scaling, i.wscale, 0)),
                     v.sack_ok.eq(i.sack_permitted & P.sack)]

        def close(error=None):
            m.d.sync += [v.closed.eq(1), v.state.eq(TcpState.CLOSED), v.next.eq(CheckNext.CLOSE)]
            if error is not None:
                m.d.sync += [v.reset.eq(1), v.error.eq(error)]

        with m.If(i.state == TcpState.CLOSED):
            pass
        with m.Elif(i.state == TcpState.SYN_SENT):
            # Tcb._process_syn_sent
            with m.If(f.ack & ack_bad):
                m.d.sync += v.rst_reply.eq(~f.rst)
            with m.Elif(f.rst):
                with m.If(f.ack):
                    close(Errno.ECONNREFUSED)
            with m.Elif(f.syn):
                m.d.sync += [v.syn_taken.eq(1), v.ack_needed.eq(1), v.window_update.eq(1),
                             v.next.eq(CheckNext.SYN_SENT_INIT)]
                with m.If(f.ack):
                    m.d.sync += [v.syn_acked.eq(1), v.state.eq(TcpState.ESTABLISHED)]
                with m.Else():              # simultaneous open: answer SYN-ACK
                    m.d.sync += [v.state.eq(TcpState.SYN_RECEIVED), v.snd_nxt.eq(i.iss),
                                 v.snd_wl2.eq(i.iss)]
        with m.Elif(i.state == TcpState.TIME_WAIT):
            # Tcb._process_time_wait (Linux's tcp_timewait_state_process)
            bare = at_rcv_nxt & empty
            with m.If(f.rst):
                with m.If(at_rcv_nxt):
                    close()
            with m.Else():
                m.d.sync += [v.time_wait_restart.eq(bare | f.ack), v.ack_needed.eq(~bare)]
        with m.Elif((i.state == TcpState.SYN_RECEIVED) & f.syn & ~f.ack & at_irs):
            # a retransmitted SYN: our SYN-ACK was lost; send it again
            m.d.sync += v.snd_nxt.eq(i.iss)
        with m.Elif((i.state == TcpState.SYN_RECEIVED) & f.syn & f.ack & ~f.rst & at_irs):
            # after a simultaneous open: the peer's SYN-ACK completes the handshake (its
            # window, a SYN's, unscaled)
            with m.If(acks_syn):
                m.d.sync += [v.state.eq(established), v.syn_acked.eq(1), v.window_update.eq(1),
                             v.ack_needed.eq(1)]
        with m.Elif(~acceptable & ~((i.rcv_wnd == 0) & at_rcv_nxt & ~f.rst & ~f.syn)):
            # first: not acceptable
            m.d.sync += v.ack_needed.eq(~f.rst)
        with m.Else():
            with m.If(~acceptable):
                # RFC 9293: still take ACKs at a zero window
                m.d.sync += [v.payload_kept.eq(0), v.fin_kept.eq(0), v.ack_needed.eq(1)]
            with m.If(f.rst):
                # second: RST (RFC 5961 3.2)
                with m.If(~at_rcv_nxt):
                    m.d.sync += v.ack_needed.eq(1)                  # challenge ACK
                with m.Elif(i.state == TcpState.SYN_RECEIVED):
                    close(Mux(i.passive, Errno.OK, Errno.ECONNREFUSED))
                with m.Elif(one_of(i.state, TcpState.CLOSING, TcpState.LAST_ACK)):
                    close()
                with m.Else():
                    close(Errno.ECONNRESET)
            with m.Elif(f.syn):
                # fourth: SYN in a synchronized state (RFC 5961 4.2): challenge ACK
                m.d.sync += v.ack_needed.eq(1)
            with m.Elif(~f.ack):
                pass
            with m.Elif(i.state == TcpState.SYN_RECEIVED):
                with m.If(acks_syn):
                    m.d.sync += [v.state.eq(established), v.window_update.eq(1),
                                 v.snd_wnd.eq(i.peer_wnd), v.next.eq(CheckNext.ACK)]
                with m.Else():
                    m.d.sync += v.rst_reply.eq(1)
            with m.Else():
                m.d.sync += v.next.eq(CheckNext.ACK)
        return m
