"""The receive fast path: which segments it takes, and their whole effect, in two clocks.

Beehive (``recv_pipe/rx_issue_pipe.sv``, ``est_pipe.sv``) sends ESTABLISHED segments that
carry only an ACK and data down a short pipeline and everything else to a slower state
machine. Ours takes the commonest segment of all:
- in-order data (SEG.SEQ = RCV.NXT, 0 < SEG.LEN <= RCV.WND) in ESTABLISHED,
- with ACK and no other control bit but PSH, acknowledging nothing new (SEG.ACK = SND.UNA),
- on a connection with nothing unsent, no out-of-order range held, no FIN queued, received or
  waiting beyond a hole, its socket open and nothing in its outbox.
For such a segment ``Tcb.process`` writes the payload at RCV.NXT and perhaps takes the
peer's window, and ``Tcb.dispatch`` sends one pure ACK of the new RCV.NXT. :class:`RxFastPath`
decides that and computes the effects from the connection's record, its rings' states and the
segment; ``tests/hdl/test_rx_fast_path.py`` checks the decision and every effect against
``model.tcp.Tcb``.

Two clocks, each with at most one 32-bit carry chain or compare (DESIGN.md's rule for the
156.25 MHz paths): the first registers every compare and difference of the inputs on its
own, the second compares the two halves of "nothing unsent" and the ring-width byte counts.
The engine gives it a clock (``EngineStep.TCP_DECIDE``) between loading a record and using
the decision, which its registers then hold while the inputs hold.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine.tcb import TcpState, seq_le, seq_lt, snd_wnd_bits
from hdl.wire import TcpFlags

__all__ = ["FastPathInput", "FastPathDecision", "RxFastPath", "receive_window",
           "advertised_window"]


def receive_window(policy, wscale_ok, space):
    """``Tcb.rcv_wnd`` from `space` free bytes: at most ``65535 << rcv_wscale``, a limit only
    for rings above 64 KiB (`wscale_ok`: both SYNs offered window scaling)."""
    if policy.rcv_buffer <= 0xFFFF:
        return space
    shift = policy.wscale if policy.window_scaling else 0
    bound = Mux(wscale_ok, 0xFFFF << shift, 0xFFFF)
    return Mux(space > bound, bound, space)


def advertised_window(policy, wscale_ok, window):
    """``Tcb.adv_wnd``: `window` as a segment other than a SYN says it, in bytes (rounded down
    to our scale once scaling is negotiated; a build constant, so a shift of wires)."""
    shift = policy.wscale if policy.window_scaling else 0
    if not shift:
        return window
    return Mux(wscale_ok, window >> shift << shift, window)


class FastPathInput(data.StructLayout):
    """A connection's record fields, its rings' states and a received segment: what the fast
    path's decision reads. Ring offsets are sequence numbers (the receive ring's tail is
    RCV.NXT less a received FIN; the send ring holds [SND.UNA, tail))."""

    def __init__(self, policy, ring_bits):
        scaling = {"wscale_ok": 1, "snd_wscale": 4} if policy.window_scaling else {}
        super().__init__({
            "tcp": 1,               # a TCP connection (not UDP, not a free slot)
            "state": TcpState,
            "fin_queued": 1,
            "fin_received": 1,
            "fin_pending": 1,       # a FIN beyond a hole, kept by its sequence number
            "orphan": 1,
            "ranges_held": 1,       # the receive ring holds an out-of-order range
            "outbox": 1,            # a segment waits to be sent first (RST, probe, ...)
            "snd_una": 32,
            "snd_nxt": 32,
            "snd_wl1": 32,
            "snd_wl2": 32,
            **scaling,
            "rcv_reserve": ring_bits,   # receive ring bytes withheld (SO_RCVBUF)
            "rx_head": 32,
            "rx_tail": 32,
            "tx_head": 32,
            "tx_tail": 32,
            "seq": 32,
            "ack": 32,
            "flags": TcpFlags(),
            "window": 16,
            "length": 16,           # payload bytes
        })


class FastPathDecision(data.StructLayout):
    """The fast path's verdict on a segment and, if it takes it, what changes."""

    def __init__(self, policy, ring_bits):
        super().__init__({
            "take": 1,
            "window_update": 1,     # SND.WND, WL1, WL2 := the segment's window, seq, ack
            "snd_wnd": snd_wnd_bits(policy.window_scaling),
            "persist_stop": 1,      # ... and the window is open: the persist timer stops
            "ack": 32,              # RCV.NXT after the payload: the ACK's number
            "adv_wnd": ring_bits,   # the window the ACK says, in bytes (LAST.ADV.WND)
        })


class RxFastPath(wiring.Component):
    """The receive fast path's decision, registered once inside: :attr:`decision` follows
    :attr:`inputs` by one clock and is valid once the inputs have held for that clock.

    Parameters
    ----------
    policy : model.policy.Policy
        The rings' sizes and the window rules.
    ring_bits : int
        Width of the record's ring byte counts (``rcv_reserve``, ``last_adv_wnd``).

    Members
    -------
    inputs : In(FastPathInput)
    decision : Out(FastPathDecision)
    """

    def __init__(self, policy, ring_bits):
        if policy.rcv_buffer >= 2 ** ring_bits:
            raise ValueError(f"A {policy.rcv_buffer}-byte ring needs more than {ring_bits} bits")
        self._policy = policy
        super().__init__({"inputs": In(FastPathInput(policy, ring_bits)),
                          "decision": Out(FastPathDecision(policy, ring_bits))})

    def elaborate(self, platform):
        m = Module()
        P = self._policy
        R = P.rcv_buffer
        i, o = self.inputs, self.decision
        f = i.flags
        wscale_ok = i.wscale_ok if P.window_scaling else C(0, 1)

        # first clock: every compare and every difference on its own
        plain = Signal()            # the connection's and the segment's flags allow it
        in_order = Signal()         # SEG.SEQ = RCV.NXT (no FIN received: RCV.NXT is the tail)
        nothing_acked = Signal()    # SEG.ACK = SND.UNA
        # unsent = queued - (SND.NXT - SND.UNA) = 0 when these two are equal (queued is
        # tx_tail - tx_head), compared on the second clock
        unsent_tail = Signal(32)
        unsent_head = Signal(32)
        window_update = Signal()
        # in-order bytes not yet read, with the payload's: the ring offsets' low bits suffice
        used_after = Signal(range(R + 2 ** 16))
        cap = Signal(range(R + 1))      # the ring's bytes within the socket's cap
        ack = Signal(32)
        snd_wnd = Signal(snd_wnd_bits(P.window_scaling))
        window_open = Signal()
        scaled = Signal()
        m.d.sync += [
            plain.eq(i.tcp & (i.state == TcpState.ESTABLISHED)
                     & f.ack & ~f.syn & ~f.rst & ~f.fin & ~f.urg & (i.length != 0)
                     & ~i.fin_queued & ~i.fin_received & ~i.fin_pending & ~i.orphan
                     & ~i.ranges_held & ~i.outbox),
            in_order.eq(i.seq == i.rx_tail),
            nothing_acked.eq(i.ack == i.snd_una),
            unsent_tail.eq(i.tx_tail - i.snd_nxt),
            unsent_head.eq(i.tx_head - i.snd_una),
            window_update.eq(seq_lt(i.snd_wl1, i.seq)
                             | ((i.snd_wl1 == i.seq) & seq_le(i.snd_wl2, i.ack))),
            used_after.eq((i.rx_tail - i.rx_head)[:R.bit_length()] + i.length),
            cap.eq(R - i.rcv_reserve),
            ack.eq(i.rx_tail + i.length),
            snd_wnd.eq(i.window << i.snd_wscale if P.window_scaling else i.window),
            window_open.eq(i.window != 0),
            scaled.eq(wscale_ok),
        ]

        # second clock: the payload fits the window (SEG.LEN <= RCV.WND: the window is the free
        # bytes within the cap, limited to 65535 << scale, which a 16-bit length never
        # exceeds), and the window after it
        fits = Signal()
        after = Signal(range(R + 1))
        m.d.comb += [
            fits.eq(used_after <= cap),
            after.eq(cap - used_after),
            o.take.eq(plain & in_order & nothing_acked & (unsent_tail == unsent_head) & fits),
            o.window_update.eq(window_update),
            o.snd_wnd.eq(snd_wnd),
            o.persist_stop.eq(window_update & window_open),
            o.ack.eq(ack),
            o.adv_wnd.eq(advertised_window(P, scaled, receive_window(P, scaled, after))),
        ]
        return m
