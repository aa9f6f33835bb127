"""What a segment's ACK field does: ``model.tcp.Tcb._process_ack`` as one verdict.

RFC 9293's fifth step for a synchronized connection: an ACK of what was never sent is
answered with an ACK and the segment dropped; an ACK that advances SND.UNA releases the
acknowledged bytes from the send ring (and marks our FIN acknowledged once it covers it),
moves SND.NXT along if it was behind, clears the retries and duplicate count and restarts or
stops the RTO; an ACK that advances nothing, carries no data and repeats the window is a
duplicate, and the ``dupack_threshold``-th one sends a fast retransmit; a newer segment (by
SND.WL1/WL2) updates the send window, and an open window stops the persist timer; and an
acknowledged FIN moves FIN-WAIT-1 to FIN-WAIT-2 (an orphan's timeout starts), CLOSING to
TIME-WAIT and LAST-ACK to CLOSED. A pure function of (record, segment) -> (record, effects);
``tests/hdl/test_rx_ack.py`` checks it against ``Tcb._process_ack`` in every synchronized
state. The RTT sample an advancing ACK takes stays in the engine (``RttEstimator``).

Two clocks (``LATENCY``), each with at most one carry chain or compare between registers:
the first registers the sequence differences and compares, the second the acknowledged
bytes against the ring's and the choices. The engine gives it two clocks (``TCP_ACK``,
``TCP_ACK_WAIT``) and applies its verdict in ``TCP_ACK_APPLY``; the inputs hold meanwhile.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine.tcb import TcpState, seq_le, seq_lt, snd_wnd_bits, sum3

__all__ = ["AckInput", "AckVerdict", "RxAck", "LATENCY"]

#: clocks from the inputs to the verdict
LATENCY = 2
#: the record's duplicate ACK count saturates here (3 bits; a threshold is at most 3)
DUPACKS_MAX = 4


class AckInput(data.StructLayout):
    """The record's send-side fields, the send ring's byte count (``queued``:
    ``len(Tcb.send_queue)``) and the segment: SEG.SEQ, SEG.ACK, its window already scaled
    (``Tcb._peer_wnd``) and whether it carries data or a FIN."""

    def __init__(self, window_scaling, ring_bits):
        window = snd_wnd_bits(window_scaling)
        super().__init__({
            "state": TcpState,
            "iss": 32,
            "snd_una": 32,
            "snd_nxt": 32,
            "snd_max": 32,
            "snd_wnd": window,
            "snd_wl1": 32,
            "snd_wl2": 32,
            "queued": ring_bits,
            "dupacks": 3,
            "fin_acked": 1,
            "orphan": 1,
            "seq": 32,
            "ack": 32,
            "peer_wnd": window,
            "carries_data": 1,
        })


class AckVerdict(data.StructLayout):
    """``unsent``: the ACK acknowledges what was never sent (ACK it, drop the segment: no
    other field applies). Otherwise the record's new send-side fields; ``advanced``: SND.UNA
    moved (retries 0, the RTO restarted if ``rto_running`` else stopped, an RTT sample);
    ``released``: the bytes that leave the send ring; ``fast_retransmit``: the outbox sends the
    first segment at SND.UNA; ``window_update``: SND.WND, WL1, WL2 = the segment's window,
    SEQ, ACK; ``persist_stop``; ``fin_wait_2_timer``: an orphan's FIN-WAIT-2 timeout starts;
    ``time_wait``: ``Tcb._enter_time_wait``; ``closed``: ``Tcb._enter_closed``."""

    def __init__(self, ring_bits):
        super().__init__({
            "unsent": 1,
            "advanced": 1,
            "released": ring_bits,
            "fin_acked": 1,
            "snd_una": 32,
            "snd_nxt": 32,
            "rto_running": 1,
            "dupacks": 3,
            "fast_retransmit": 1,
            "window_update": 1,
            "persist_stop": 1,
            "state": TcpState,
            "fin_wait_2_timer": 1,
            "time_wait": 1,
            "closed": 1,
        })


class RxAck(wiring.Component):
    """``Tcb._process_ack`` for one segment (see the module's docstring).

    Parameters
    ----------
    policy : model.policy.Policy
        ``dupack_threshold`` and whether windows are scaled.
    ring_bits : bits of the ring counts (``hdl.engine.tcb.ring_count_bits``).
    """

    def __init__(self, policy, ring_bits):
        if policy.dupack_threshold not in range(1, DUPACKS_MAX):
            raise ValueError(f"dupack_threshold must be 1 to {DUPACKS_MAX - 1}, "
                             f"not {policy.dupack_threshold!r}")
        self._policy = policy
        self._ring_bits = ring_bits
        super().__init__({"inputs": In(AckInput(policy.window_scaling, ring_bits)),
                          "verdict": Out(AckVerdict(ring_bits))})

    def elaborate(self, platform):
        m = Module()
        P = self._policy
        i, v = self.inputs, self.verdict

        # first clock: the differences and compares of the sequence numbers, side by side
        advance = Signal(signed(32))        # SEG.ACK - SND.UNA
        advance_less_syn = Signal(signed(33))
        acks_una = Signal()                 # SEG.ACK = SND.UNA: advance is 0
        syn_acked = Signal()
        unsent = Signal()
        nxt_behind = Signal()               # SND.NXT < SEG.ACK
        at_max = Signal()                   # SEG.ACK = SND.MAX
        newer = Signal()                    # the segment updates the send window
        repeats_window = Signal()           # a duplicate's conditions but the advance
        # whether an advance of at least 1 covers our FIN (the bytes queued, and the SYN's
        # number unless SYN acknowledged before): advance > queued (+ 1), that is
        # SND.UNA + queued (+ 1) - SEG.ACK < 0, each a carry-save layer and one carry chain
        # (exact for advances from 1 up: the difference is then within 2**31)
        beyond_queue = Signal()
        beyond_queue_syn = Signal()
        m.d.sync += [
            advance.eq((i.ack - i.snd_una)[:32].as_signed()),
            advance_less_syn.eq((i.ack - i.snd_una)[:32].as_signed() - 1),
            acks_una.eq(i.ack == i.snd_una),
            syn_acked.eq(seq_lt(i.iss, i.snd_una)),
            unsent.eq(seq_lt(i.snd_max, i.ack)),
            nxt_behind.eq(seq_lt(i.snd_nxt, i.ack)),
            at_max.eq(i.ack == i.snd_max),
            newer.eq(seq_lt(i.snd_wl1, i.seq) | ((i.snd_wl1 == i.seq) & seq_le(i.snd_wl2, i.ack))),
            repeats_window.eq(~i.carries_data & (i.peer_wnd == i.snd_wnd) & (i.snd_wnd != 0)
                              & (i.snd_una != i.snd_max)),
            beyond_queue.eq(sum3(i.snd_una, i.queued, ~i.ack, 1)[31]),
            beyond_queue_syn.eq(sum3(i.snd_una, i.queued, ~i.ack, 2)[31]),
        ]

        # second clock: the choices (an advance, from its sign and whether it is 0)
        acked = Mux(syn_acked, advance, advance_less_syn)   # less the SYN's number
        advanced = ~unsent & ~advance[31] & ~acks_una
        duplicate = ~unsent & acks_una & repeats_window
        covers_fin = advanced & Mux(syn_acked, beyond_queue, beyond_queue_syn)
        fin_acked = i.fin_acked | covers_fin
        m.d.sync += [
            v.unsent.eq(unsent),
            v.advanced.eq(advanced),
            v.released.eq(Mux(advanced, Mux(covers_fin, i.queued, acked), 0)),
            v.fin_acked.eq(fin_acked),
            v.snd_una.eq(Mux(advanced, i.ack, i.snd_una)),
            v.snd_nxt.eq(Mux(advanced & nxt_behind, i.ack, i.snd_nxt)),
            v.rto_running.eq(~at_max),
            v.dupacks.eq(Mux(advanced, 0,
                             Mux(duplicate & (i.dupacks != DUPACKS_MAX), i.dupacks + 1,
                                 i.dupacks))),
            v.fast_retransmit.eq(duplicate & (i.dupacks == P.dupack_threshold - 1)),
            v.window_update.eq(~unsent & newer),
            v.persist_stop.eq(~unsent & newer & (i.peer_wnd != 0)),
            v.state.eq(i.state), v.fin_wait_2_timer.eq(0), v.time_wait.eq(0), v.closed.eq(0),
        ]
        with m.If(~unsent & fin_acked):
            with m.Switch(i.state):
                with m.Case(TcpState.FIN_WAIT_1):
                    m.d.sync += [v.state.eq(TcpState.FIN_WAIT_2), v.fin_wait_2_timer.eq(i.orphan)]
                with m.Case(TcpState.CLOSING):
                    m.d.sync += [v.state.eq(TcpState.TIME_WAIT), v.time_wait.eq(1)]
                with m.Case(TcpState.LAST_ACK):
                    m.d.sync += [v.state.eq(TcpState.CLOSED), v.closed.eq(1)]
        return m
