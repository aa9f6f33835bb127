"""Streaming Internet checksum (RFC 1071) over a frame stream."""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import FrameBeat, check_data_width

__all__ = ["ChecksumResult", "Checksum"]


class ChecksumResult(data.StructLayout):
    """One checksum result per frame.

    ``sum`` is the folded 16-bit one's-complement sum of the selected bytes plus ``initial``
    (zero only if everything summed was zero, as in ``model.checksum.ones_complement_sum``);
    ``ok`` is ``sum == 0xFFFF``: the checksum field inside the summed region is correct.
    The value to write into a checksum field is ``~sum``.
    """

    def __init__(self):
        super().__init__({"sum": 16, "ok": 1})


def _add(m, a, b, name):
    """``a + b`` in a named signal one bit wider than `a`.

    Amaranth's Verilog does not widen operands, and ``verilator -Wall`` flags an operator whose
    operands differ in width (a one-bit operand excepted), so `b` must be as wide as `a` or
    one bit wide.
    """
    assert len(b) in (len(a), 1), (name, len(a), len(b))
    total = Signal(len(a) + 1, name=name)
    m.d.comb += total.eq(a + b)
    return total


def _at_least(m, a, b, name):
    """``a >= b`` for equal-width unsigned values, as the carry out of ``a + ~b + 1``.

    Written this way because a parent that drives `b` from a value with constant leading zero
    bits would otherwise see those bits dropped from the comparison in the Verilog (which
    ``verilator -Wall`` flags); ``~b`` has none.
    """
    assert len(a) == len(b)
    difference = Signal(len(a) + 1, name=name)
    m.d.comb += difference.eq(a + ~b + 1)
    return difference[-1]


def _fold(m, value, name):
    """One's-complement fold of an unsigned value of at most 32 bits to 16 bits (combinational)."""
    partial = _add(m, value[:16], value[16:], f"{name}_partial")
    folded = Signal(16, name=name)
    m.d.comb += folded.eq(_add(m, partial[:16], partial[16], f"{name}_carry"))
    return folded


class Checksum(wiring.Component):
    """Internet checksum of a byte range of each frame, one beat per clock.

    The unit watches a frame stream and sums, as 16-bit big-endian words, the bytes at frame
    offsets ``start <= offset < end`` (bytes that ``keep`` marks invalid are never summed).
    A byte at an even distance from ``start`` is the high byte of its word, one at an odd
    distance the low byte; an odd-length region is padded with a zero low byte. It never
    stalls its input while ``o.ready`` is high, taking back-to-back frames with no idle cycle
    between them, and then the result of a frame appears on ``o`` exactly :attr:`LATENCY`
    cycles after the cycle in which the frame's last beat was accepted.

    The receive path sets ``start`` to the L3 or L4 header and ``end`` to the end of the IP
    packet (so Ethernet padding is excluded) and checks ``o.payload.ok``; the transmit path
    sums the L4 segment with its checksum field zero and writes ``~o.payload.sum`` into it.

    Parameters
    ----------
    data_width : int
        Width of the frame stream in bits, 8 or 64.

    Members
    -------
    i : ``In(stream.Signature(FrameBeat(data_width)))``
        The frame being summed. Every beat but the last must be full. ``i.ready`` is high
        unless a result waits on ``o`` and ``o.ready`` is low.
    start : ``In(16)``
        Frame offset of the first byte summed. Read on every beat: it must hold its value for
        the frame from the beat that contains byte ``start`` up to and including the last beat
        (its parity is taken with the last beat), so it may be computed from header bytes that
        arrive earlier in the same frame.
    end : ``In(16)``
        Frame offset one past the last byte summed, read on every beat like ``start``; bytes at
        offset 65535 and beyond are never summed. ``0xFFFF`` sums up to the end of the frame.
    initial : ``In(16)``
        One's-complement value added to the sum (the TCP/UDP pseudo-header sum, or 0). Taken
        with the frame's last beat, so it may also be computed during the frame.
    o : ``Out(stream.Signature(ChecksumResult()))``
        One result per frame, :attr:`LATENCY` cycles after its last beat. While a result is
        not taken the whole unit holds (and ``i.ready`` is low); a consumer that keeps
        ``o.ready`` high gets a fixed-latency result and an input that never stalls.
    """

    #: Cycles from the cycle accepting a frame's last beat to the cycle in which ``o.valid``
    #: presents its result.
    LATENCY = 2

    def __init__(self, data_width):
        self._data_width = check_data_width(data_width)
        super().__init__({
            "i": In(stream.Signature(FrameBeat(data_width))),
            "start": In(16),
            "end": In(16),
            "initial": In(16),
            "o": Out(stream.Signature(ChecksumResult())),
        })

    @property
    def data_width(self):
        return self._data_width

    def elaborate(self, platform):
        m = Module()
        lanes = self._data_width // 8
        beat = self.i.payload

        # Number of beats of the frame so far; the frame offset of lane 0 is beats * lanes.
        # It stops at offset 0x10000, past any `end`, so longer frames never wrap around.
        lane_bits = (lanes - 1).bit_length()
        beats = Signal(17 - lane_bits)
        # Running sum of the frame's words so far (exact; carries out of bit 31 wrap around,
        # which keeps the value modulo 0xFFFF, so frames of any length sum correctly).
        acc = Signal(32)

        lane_bytes = []
        for lane in range(lanes):
            position = Cat(C(lane, lane_bits), beats[:16 - lane_bits])
            enable = (beat.keep[lane] & ~beats[-1] &
                      _at_least(m, position, self.start, f"after_start{lane}") &
                      ~_at_least(m, position, self.end, f"after_end{lane}"))
            lane_byte = Signal(8, name=f"lane{lane}")
            m.d.comb += lane_byte.eq(Mux(enable, beat.data[8 * lane:8 * lane + 8], 0))
            lane_bytes.append(lane_byte)

        # Words are aligned to even frame offsets here; an odd `start` is corrected at the end
        # by swapping the bytes of the folded sum (RFC 1071 section 2(B), byte-order independence).
        if lanes == 1:
            word = Signal(16, name="word0")
            with m.If(beats[0]):
                m.d.comb += word.eq(lane_bytes[0])
            with m.Else():
                m.d.comb += word.eq(Cat(C(0, 8), lane_bytes[0]))
            words = [word]
        else:
            words = [Cat(lane_bytes[2 * k + 1], lane_bytes[2 * k]) for k in range(lanes // 2)]
        # Adder tree: each level is one bit wider.
        level = 0
        while len(words) > 1:
            words = [_add(m, words[k], words[k + 1], f"sum{level}_{k // 2}")
                     for k in range(0, len(words), 2)]
            level += 1
        beat_sum = words[0]

        # acc + beat_sum with end-around carry, split so that both operands of each adder
        # have the same width.
        split = len(beat_sum)
        low = _add(m, acc[:split], beat_sum, "acc_low")
        high = _add(m, acc[split:], low[split], "acc_high")
        acc_next = Signal(32)
        m.d.comb += acc_next.eq(Cat(low[:split], high[:32 - split]) + high[32 - split])

        # Everything advances together unless a result waits for a consumer.
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
        ]

        # Stage 1: the frame's full sum, latched with its last beat.
        frame_sum = Signal(32)
        frame_odd = Signal()
        frame_initial = Signal(16)
        frame_done = Signal()
        with m.If(advance):
            m.d.sync += frame_done.eq(0)
            with m.If(self.i.valid):
                with m.If(beat.last):
                    m.d.sync += [
                        beats.eq(0),
                        acc.eq(0),
                        frame_sum.eq(acc_next),
                        frame_odd.eq(self.start[0]),
                        frame_initial.eq(self.initial),
                        frame_done.eq(1),
                    ]
                with m.Else():
                    m.d.sync += [
                        beats.eq(Mux(beats[-1], beats, beats + 1)),
                        acc.eq(acc_next),
                    ]

        # Stage 2: fold, undo the odd-start alignment, add the initial value, fold again.
        data_fold = _fold(m, frame_sum, "data_fold")
        aligned = Signal(16)
        m.d.comb += aligned.eq(Mux(frame_odd, Cat(data_fold[8:], data_fold[:8]), data_fold))
        result = _fold(m, _add(m, aligned, frame_initial, "with_initial"), "result")
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(frame_done),
                self.o.payload.sum.eq(result),
                self.o.payload.ok.eq(result == 0xFFFF),
            ]
        return m
