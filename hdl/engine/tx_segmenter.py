"""The transmit segmenter: the next segment the window allows (``Tcb._next_segment``).

From SND.UNA, SND.NXT, SND.MAX, SND.WND, the send ring's head and tail (offsets are sequence
numbers: the ring holds [SND.UNA, tail)), the payload room of a segment (the effective MSS
less SACK option bytes, ``Tcb._data_room``) and the FIN flags, :class:`TxSegmenter` works out
whether a segment goes, its length and FIN, where SND.NXT ends after it, whether it reaches
beyond SND.MAX and whether it is a resend (Karn's rule), and where its bytes start in the ring.
``tests/hdl/test_tx_segmenter.py`` checks every output against ``model.tcp.Tcb``.

It is a pipeline of :data:`TxSegmenter.LATENCY` registers, each stage with at most one
carry chain or wide compare (DESIGN.md's rule for the 156.25 MHz paths): the differences,
then the usable window and the unsent bytes, then the minimum, then SND.NXT's new value. Its
outputs are right once the inputs have held for ``LATENCY`` clocks; the engine counts them
(they run while the previous segment's header and payload read go out).
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine.rx_fast_path import peer_window_bits
from hdl.engine.tcb import seq_lt

__all__ = ["SegmentInput", "SegmentDecision", "TxSegmenter"]


def _add_carry(a, b, carry):
    """``a + b + carry`` (`carry` one bit) as one carry chain: the carry enters below bit 0."""
    return (Cat(carry, a) + Cat(carry, b))[1:]


class SegmentInput(data.StructLayout):
    """What ``Tcb._next_segment`` reads."""

    def __init__(self, policy):
        super().__init__({
            "snd_una": 32,
            "snd_nxt": 32,
            "snd_max": 32,
            "snd_wnd": peer_window_bits(policy),
            "tx_head": 32,
            "tx_tail": 32,
            "data_room": 16,        # payload bytes a segment may carry (Tcb._data_room)
            "fin_queued": 1,
            "fin_acked": 1,
        })


class SegmentDecision(data.StructLayout):
    """The next segment, if one goes, and what sending it changes."""

    def __init__(self):
        super().__init__({
            "send": 1,              # a segment goes (Tcb._next_segment is not None)
            "length": 16,           # its payload bytes
            "fin": 1,
            "end": 32,              # SND.NXT after it: SND.NXT + length + FIN
            "extends": 1,           # end is beyond SND.MAX (which then becomes end)
            "resend": 1,            # it starts before SND.MAX: no RTT sample (Karn)
            "skip": 32,             # SND.NXT - the ring's head: where its bytes start
        })


class TxSegmenter(wiring.Component):
    """``Tcb._next_segment`` as a pipeline: :attr:`decision` is right :data:`LATENCY` clocks
    after :attr:`inputs` settle.

    Parameters
    ----------
    policy : model.policy.Policy
        ``snd_buffer``: the send ring's bytes; ``window_scaling``: SND.WND's width.

    Members
    -------
    inputs : In(SegmentInput)
    decision : Out(SegmentDecision)
    """

    #: registers from the inputs to the decision
    LATENCY = 4

    def __init__(self, policy):
        self._policy = policy
        super().__init__({"inputs": In(SegmentInput(policy)), "decision": Out(SegmentDecision())})

    def elaborate(self, platform):
        m = Module()
        S = self._policy.snd_buffer
        i, o = self.inputs, self.decision

        def stage(name, shape, value):
            reg = Signal(shape, name=name)
            m.d.sync += reg.eq(value)
            return reg

        def later(number, *regs):
            """`regs` carried on into stage `number`, unchanged."""
            return [stage(f"{reg.name.split('__s')[0]}__s{number}", reg.shape(), reg)
                    for reg in regs]

        # 1: each difference on its own
        window_end = stage("window_end", 32, i.snd_una + i.snd_wnd)
        offset = stage("offset", 32, i.snd_nxt - i.snd_una)         # sent and unacknowledged
        queued = stage("queued", range(S + 1), i.tx_tail - i.tx_head)
        to_max = stage("to_max", 32, i.snd_max - i.snd_nxt)
        resend = stage("resend", 1, seq_lt(i.snd_nxt, i.snd_max))
        skip = stage("skip", 32, i.snd_nxt - i.tx_head)
        nxt = stage("nxt", 32, i.snd_nxt)
        room = stage("room", 16, i.data_room)
        fin_wanted = stage("fin_wanted", 1, i.fin_queued & ~i.fin_acked)

        # 2: the usable window and the bytes not yet sent
        usable = stage("usable", signed(32), (window_end - nxt)[:32].as_signed())
        left = stage("left", signed(34), queued - offset)
        all_out = stage("all_out", 1, offset > queued)      # everything, FIN included, is out
        to_max, resend, skip, nxt, room, fin_wanted = later(
            2, to_max, resend, skip, nxt, room, fin_wanted)

        # 3: n = max(0, min(room, usable, left)); the FIN goes when n is all that is left
        closed = (usable <= 0) | (left <= 0)
        n = stage("n", 16, Mux(closed, 0,
                               Mux((room <= usable) & (room <= left), room,
                                   Mux(usable <= left, usable, left))))
        fin = stage("fin", 1, fin_wanted & Mux(closed, left == 0,
                                               (left <= room) & (left <= usable)))
        all_out, to_max, resend, skip, nxt = later(3, all_out, to_max, resend, skip, nxt)

        # 4: SND.NXT after the segment, and whether that passes SND.MAX: to_max - n - fin < 0
        # (to_max + ~n + (1 - fin), one chain each)
        m.d.sync += [
            o.send.eq(~all_out & ((n != 0) | fin)),
            o.length.eq(n),
            o.fin.eq(fin),
            o.end.eq(_add_carry(nxt, n, fin)),
            o.extends.eq(_add_carry(to_max, ~Cat(n, C(0, 16)), ~fin)[31]),
            o.resend.eq(resend),
            o.skip.eq(skip),
        ]
        return m
