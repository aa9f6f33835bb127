"""The transmit segmenter: the next segment the window allows (``Tcb._next_segment``).

From SND.UNA, SND.NXT, SND.MAX, SND.WND, the send ring's head and tail (offsets are sequence
numbers: the ring holds [SND.UNA, tail)), the payload room of a segment (the effective MSS
less SACK option bytes, ``Tcb._data_room``) and the FIN flags, :class:`TxSegmenter` works out
whether a segment goes, its length and FIN, where SND.NXT ends after it, whether it reaches
beyond SND.MAX and whether it is a resend (Karn's rule). Its bytes are the ring's from
SND.NXT (the engine reads them at that sequence number, a positioned read).
``tests/hdl/test_tx_segmenter.py`` checks every output against ``model.tcp.Tcb``.

It is a pipeline of :data:`TxSegmenter.LATENCY` registers, each stage with at most one
carry chain or wide compare (DESIGN.md's rule for the 156.25 MHz paths): the differences,
the usable window and the unsent bytes, their compares, then the minimum (a choice among
registers, a LUT level or two) with SND.NXT's new value after it. Its
outputs are right once the inputs have held for ``LATENCY`` clocks, which its ``valid``
output says: it runs in the background while the engine processes a segment or sends the
one before, and the engine takes its decision when it gets to dispatch.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.engine.tcb import seq_lt, snd_wnd_bits

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
            "snd_wnd": snd_wnd_bits(policy.window_scaling),
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
        })


class TxSegmenter(wiring.Component):
    """``Tcb._next_segment`` as a pipeline: :attr:`decision` is right :data:`LATENCY` clocks
    after :attr:`inputs` settle, and :attr:`valid` says so (the inputs were the same for the
    ``LATENCY`` clocks before this one), so the pipeline runs while its user does other work.

    Parameters
    ----------
    policy : model.policy.Policy
        ``snd_buffer``: the send ring's bytes; ``window_scaling``: SND.WND's width.

    Members
    -------
    inputs : In(SegmentInput)
    decision : Out(SegmentDecision)
    valid : Out(1)
        ``decision`` is that of the inputs of the last clock, which held for the ``LATENCY``
        clocks up to it. It is the decision for the inputs now if the user did not change them
        at this clock's edge: a user takes it in a clock after one in which it changed none.
    """

    #: registers from the inputs to the decision
    LATENCY = 4
    #: input bits per registered part of the compare that `valid` is made of
    COMPARE_BITS = 32

    def __init__(self, policy):
        self._policy = policy
        super().__init__({"inputs": In(SegmentInput(policy)), "decision": Out(SegmentDecision()),
                          "valid": Out(1)})

    def elaborate(self, platform):
        m = Module()
        S = self._policy.snd_buffer
        i, o = self.inputs, self.decision

        # valid: the inputs of the last clock equal those of each of the LATENCY - 1 clocks
        # before it, so the decision (LATENCY registers on) is theirs. The wide compare of the
        # inputs with the last clock's is registered in parts of COMPARE_BITS (`held_parts`:
        # the last clock's inputs equal those of the clock before), and `held_before` keeps
        # that verdict for the LATENCY - 2 clocks before: `valid` is an AND of registers, so
        # the user's logic that takes the decision starts at a register, not at the compare.
        # Whether the inputs changed at this clock's edge, the user knows: it changed them.
        inputs = i.as_value()
        previous = Signal(len(inputs))
        started = Signal()
        parts = range(0, len(inputs), self.COMPARE_BITS)
        held_parts = Signal(len(parts))
        held_before = Signal(self.LATENCY - 2)
        m.d.sync += [
            previous.eq(inputs), started.eq(1),
            held_parts.eq(Cat((inputs[k:k + self.COMPARE_BITS] == previous[k:k + self.COMPARE_BITS])
                              & started for k in parts)),
            held_before.eq(Cat(held_parts.all(), held_before[:-1])),
        ]
        m.d.comb += self.valid.eq(held_parts.all() & held_before.all())

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
        nxt = stage("nxt", 32, i.snd_nxt)
        room = stage("room", 16, i.data_room)
        fin_wanted = stage("fin_wanted", 1, i.fin_queued & ~i.fin_acked)

        # 2: the usable window and the bytes not yet sent
        usable = stage("usable", signed(32), (window_end - nxt)[:32].as_signed())
        all_out = stage("all_out", 1, offset > queued)      # everything, FIN included, is out
        # the bytes not yet sent, 0..S unless all is out (and then nothing goes)
        left = stage("left", range(S + 1), (queued - offset)[:S.bit_length()])
        to_max, resend, nxt, room, fin_wanted = later(2, to_max, resend, nxt, room, fin_wanted)

        # 3: which of room, usable and left is n = max(0, min(room, usable, left)), and
        # whether the FIN goes (n is all that is left), each compare on its own. Room and
        # left are below 2**K, so a usable window of 2**K or more is compared as "big".
        K = max(16, S.bit_length())
        big = ~usable[31] & (usable[K:] != 0)
        low = usable[:K]
        closed_now = usable[31] | (usable == 0) | (left == 0)
        closed = stage("closed", 1, closed_now)
        room_least = stage("room_least", 1, (big | (room <= low)) & (room <= left))
        usable_least = stage("usable_least", 1, ~big & (low <= left))
        room_zero = stage("room_zero", 1, room == 0)
        fin = stage("fin", 1, fin_wanted & Mux(closed_now, left == 0,
                                               (left <= room) & (big | (left <= low))))
        # (a chosen usable or left is below room, so its low 16 bits are all of it)
        room, usable, left = (stage(name, 16, value[:16]) for name, value in
                              (("room__s3", room), ("usable__s3", usable), ("left__s3", left)))
        all_out, to_max, resend, nxt = later(3, all_out, to_max, resend, nxt)

        # 4: n, a LUT level or two from the registers, then SND.NXT after the segment and
        # whether that passes SND.MAX: to_max - n - fin < 0 (to_max + ~n + (1 - fin), one
        # chain each)
        n = Signal(16)
        m.d.comb += n.eq(Mux(closed, 0, Mux(room_least, room, Mux(usable_least, usable, left))))
        m.d.sync += [
            # (n != 0: not closed, and room not 0 if room is n; usable and left are not 0
            # unless closed)
            o.send.eq(~all_out & ((~closed & ~(room_least & room_zero)) | fin)),
            o.length.eq(n),
            o.fin.eq(fin),
            o.end.eq(_add_carry(nxt, n, fin)),
            o.extends.eq(_add_carry(to_max, ~Cat(n, C(0, 16)), ~fin)[31]),
            o.resend.eq(resend),
        ]
        return m
