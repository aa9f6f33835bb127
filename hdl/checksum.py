"""Streaming Internet checksum (RFC 1071) over a frame stream."""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.layouts import FrameBeat, check_data_width

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


def _swap(value):
    """The two bytes of a 16-bit value exchanged."""
    return Cat(value[8:16], value[:8])


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

    The sum is pipelined so that no register-to-register path holds more than one carry
    chain of at most 32 bits and a few LUT levels (156.25 MHz on an ECP5 at speed 8):

    1. ``start``/``end`` are compared with the beat's frame offset and the selected bytes,
       masked and aligned to 16-bit words at even frame offsets, are registered;
    2. an adder tree adds the words in pairs, one registered level per cycle
       (:attr:`TREE_STAGES` levels; at 8 bits the one word is only delayed);
    3. a 32-bit accumulator adds each beat's sum with no end-around carry (a frame holds at
       most 32768 words below offset 65535, so the exact sum fits in 31 bits);
    4. at the frame's end, the accumulator's halves and ``initial`` are added;
    5. that sum is folded to 16 bits (RFC 1071 end-around carry), and its bytes swapped back
       when ``start`` is odd (section 2(B)); ``ok`` comes from the unfolded sum in parallel.

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

    #: Registered adder levels after the masked words (4 words of a 64-bit beat: 2 levels).
    TREE_STAGES = 2
    #: Cycles from the cycle accepting a frame's last beat to the cycle in which ``o.valid``
    #: presents its result: masked words, :attr:`TREE_STAGES` adder levels, accumulator,
    #: final additions, fold.
    LATENCY = 1 + TREE_STAGES + 1 + 1 + 1

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
        lane_bits = (lanes - 1).bit_length()
        beat = self.i.payload

        # Everything advances together unless a result waits for a consumer.
        advance = Signal()
        accept = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance),
            accept.eq(self.i.valid & advance),
        ]

        # Each stage carries the frame's end and what the final stages need with it.
        def stage(name):
            return {"valid": Signal(name=f"{name}_valid"), "last": Signal(name=f"{name}_last"),
                    "odd": Signal(name=f"{name}_odd"), "initial": Signal(16, name=f"{name}_initial")}

        def follow(dst, src):
            return [dst[key].eq(src[key]) for key in ("valid", "last", "odd", "initial")]

        # -- Stage 1: lane enables and masked words ------------------------------------------
        # Beat index within the frame; the frame offset of lane k is index * lanes + k. It
        # stops at offset 0x10000, past any `end`, so longer frames never wrap around.
        beats = Signal(17 - lane_bits)
        index = beats[:16 - lane_bits]
        with m.If(accept):
            with m.If(beat.last):
                m.d.sync += beats.eq(0)
            with m.Elif(~beats[-1]):
                m.d.sync += beats.eq(beats + 1)
        # Lane k is at or after `start` if the beat is past start's beat, or is start's beat
        # and k >= start % lanes; it is before `end` likewise. One comparison per beat, not per
        # lane: the lanes only differ in constant low bits.
        start_index, end_index = self.start[lane_bits:], self.end[lane_bits:]
        past_start, at_start = Signal(), Signal()
        before_end, at_end = Signal(), Signal()
        m.d.comb += [
            past_start.eq(index > start_index),
            at_start.eq(index == start_index),
            before_end.eq(index < end_index),
            at_end.eq(index == end_index),
        ]
        lane_bytes = []
        for lane in range(lanes):
            # (the last lane is always at or after start's lane and never before end's)
            after_start = past_start | at_start
            if lane < lanes - 1:
                after_start = past_start | (at_start & (self.start[:lane_bits] <= lane))
            ahead_of_end = before_end
            if lane < lanes - 1:
                ahead_of_end = before_end | (at_end & (self.end[:lane_bits] > lane))
            enable = Signal(name=f"enable{lane}")
            m.d.comb += enable.eq(beat.keep[lane] & ~beats[-1] & after_start & ahead_of_end)
            lane_bytes.append(Mux(enable, beat.data[8 * lane:8 * lane + 8], 0))
        # Words are aligned to even frame offsets; an odd `start` is corrected at the end by
        # swapping the bytes of the folded sum (RFC 1071 section 2(B), byte-order independence),
        # so `initial` is swapped here to match.
        if lanes == 1:
            words = [Signal(16, name="word0")]
            with m.If(accept):
                m.d.sync += words[0].eq(Mux(index[0], Cat(lane_bytes[0], C(0, 8)),
                                            Cat(C(0, 8), lane_bytes[0])))
        else:
            words = [Signal(16, name=f"word{k}") for k in range(lanes // 2)]
            with m.If(accept):
                m.d.sync += [words[k].eq(Cat(lane_bytes[2 * k + 1], lane_bytes[2 * k]))
                             for k in range(lanes // 2)]
        masked = stage("masked")
        with m.If(advance):
            m.d.sync += [
                masked["valid"].eq(self.i.valid),
                masked["last"].eq(beat.last),
                masked["odd"].eq(self.start[0]),
                masked["initial"].eq(Mux(self.start[0], _swap(self.initial), self.initial)),
            ]

        # -- Stage 2: adder tree, one registered level per cycle ------------------------------
        previous = masked
        for level in range(self.TREE_STAGES):
            current = stage(f"tree{level}")
            if len(words) > 1:
                sums = [Signal(len(words[k]) + 1, name=f"sum{level}_{k // 2}")
                        for k in range(0, len(words), 2)]
                with m.If(advance):
                    m.d.sync += [sums[k // 2].eq(words[k] + words[k + 1])
                                 for k in range(0, len(words), 2)]
            else:
                sums = [Signal(len(words[0]), name=f"delay{level}")]
                with m.If(advance):
                    m.d.sync += sums[0].eq(words[0])
            with m.If(advance):
                m.d.sync += follow(current, previous)
            words, previous = sums, current
        assert len(words) == 1, "TREE_STAGES too small for the data width"
        beat_sum = words[0]

        # -- Stage 3: accumulator (exact; the fold waits for the frame's end) -----------------
        acc = Signal(32)
        fresh = Signal(init=1)      # the next beat starts a frame
        summed = stage("summed")
        with m.If(advance):
            m.d.sync += follow(summed, previous)
            with m.If(previous["valid"]):
                m.d.sync += [
                    acc.eq(Mux(fresh, 0, acc) + beat_sum),
                    fresh.eq(previous["last"]),
                ]

        # -- Stage 4: the accumulator's halves and the initial value (at most 18 bits) --------
        total = Signal(18)
        total_odd = Signal()
        total_done = Signal()
        with m.If(advance):
            m.d.sync += [
                total.eq(acc[:16] + acc[16:] + summed["initial"]),
                total_odd.eq(summed["odd"]),
                total_done.eq(summed["valid"] & summed["last"]),
            ]

        # -- Stage 5: fold with end-around carry; `ok` when the total is a nonzero multiple of
        # 0xFFFF (the folded sum is then 0xFFFF), straight from the unfolded total.
        partial = Signal(17)
        folded = Signal(16)
        m.d.comb += [
            partial.eq(total[:16] + total[16:]),
            folded.eq(partial[:16] + partial[16]),
        ]
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(total_done),
                self.o.payload.sum.eq(Mux(total_odd, _swap(folded), folded)),
                self.o.payload.ok.eq((total == 0xFFFF) | (total == 0x1FFFE) | (total == 0x2FFFD)),
            ]
        return m
