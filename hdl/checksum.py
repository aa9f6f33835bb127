"""Streaming Internet checksum (RFC 1071) over a frame stream."""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.layouts import FrameBeat, check_data_width

__all__ = ["ChecksumResult", "Checksum", "ones_add"]


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


def ones_add(m, a, b, name):
    """16-bit one's-complement sum of `a` and `b` in one carry chain's time: `a + b` and
    `a + b + 1` side by side (the latter as ``(2a + 1) + (2b + 1)``, whose bit 0 carries the
    1 in), the second taken when the first carries out. It is 0 only if `a` and `b` are."""
    plain = Signal(17, name=f"{name}_plain")
    plus_one = Signal(18, name=f"{name}_plus_one")
    m.d.comb += [
        plain.eq(a + b),
        plus_one.eq(Cat(C(1, 1), a) + Cat(C(1, 1), b)),
    ]
    return Mux(plain[16], plus_one[1:17], plain[:16])


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
    chain of at most 32 bits and a few LUT levels (over 200 MHz on an ECP5 at speed 8):

    1. each lane's frame offset is compared with ``start`` and ``end`` (one carry chain per
       comparison) and the lane enables are registered with the beat's data;
    2. an adder tree masks the bytes, aligned to 16-bit words at even frame offsets, and adds
       the words in pairs, one registered level per cycle (:attr:`TREE_STAGES` levels; at 8 bits
       the one word is only delayed);
    3. a 32-bit accumulator adds each beat's sum with no end-around carry (a frame holds at
       most 32768 words below offset 65535, so the exact sum fits in 31 bits);
    4. at the frame's end, the accumulator's halves, their bytes swapped when ``start`` is odd
       (section 2(B)), are added with end-around carry;
    5. ``initial`` is added with end-around carry, and ``ok`` found from the two addends.
       ``initial`` is read only here, in the clock the result is registered, so a user may
       compute it from the frame's header for as long as the frame and the four stages
       before take (the receive classifier's pseudo-header sum).

    Each end-around carry addition computes ``a + b`` and ``a + b + 1`` side by side and
    picks one by the first's carry out, so it takes one carry chain, not two.

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
        One's-complement value added to the sum (the TCP/UDP pseudo-header sum, or 0). Read in
        the clock the frame's result is registered: ``LATENCY - 1`` cycles after the clock
        accepting the last beat (later by the clocks ``o`` held the unit), so it may be
        computed from the frame's bytes during the frame and after it.
    o : ``Out(stream.Signature(ChecksumResult()))``
        One result per frame, :attr:`LATENCY` cycles after its last beat. While a result is
        not taken the whole unit holds (and ``i.ready`` is low); a consumer that keeps
        ``o.ready`` high gets a fixed-latency result and an input that never stalls.
    """

    #: Registered adder levels after the lane enables (4 words of a 64-bit beat: 2 levels).
    TREE_STAGES = 2
    #: Cycles from the cycle accepting a frame's last beat to the cycle in which ``o.valid``
    #: presents its result: lane enables, :attr:`TREE_STAGES` adder levels, accumulator,
    #: halves added, ``initial`` added.
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
                    "odd": Signal(name=f"{name}_odd")}

        def follow(dst, src):
            return [dst[key].eq(src[key]) for key in ("valid", "last", "odd")]

        # -- Stage 1: lane enables, registered with the beat's data ---------------------------
        # Beat index within the frame; the frame offset of lane k is index * lanes + k. It
        # stops at offset 0x10000, past any `end`, so longer frames never wrap around.
        beats = Signal(17 - lane_bits)
        index = beats[:16 - lane_bits]
        with m.If(accept):
            with m.If(beat.last):
                m.d.sync += beats.eq(0)
            with m.Elif(~beats[-1]):
                m.d.sync += beats.eq(beats + 1)
        # Each lane compares its own frame offset (the beat index, with the stop bit, and the
        # lane's constant low bits) with `start` and `end`: one carry chain per comparison and
        # one LUT to the enable register. The bytes are masked in the first adder level.
        start, end = Signal(18, name="start18"), Signal(18, name="end18")
        m.d.comb += [start.eq(self.start), end.eq(self.end)]
        enables = Signal(lanes)
        data = Signal(self._data_width)
        # (Comparisons as the top bit of a subtraction: a user that ties `start` to 0 would
        # make `offset >= start` constant, which verilator flags.)
        from_start = [Signal(18, name=f"from_start{lane}") for lane in range(lanes)]
        to_end = [Signal(18, name=f"to_end{lane}") for lane in range(lanes)]
        for lane in range(lanes):
            offset = Signal(18, name=f"offset{lane}")
            m.d.comb += [
                offset.eq(Cat(C(lane, lane_bits), beats)),
                from_start[lane].eq((offset | (1 << 17)) - start),    # bit 17: offset >= start
                to_end[lane].eq(offset - end),                        # bit 17: offset < end
            ]
        # (They are loaded whenever the pipeline advances: an invalid beat is never added.)
        with m.If(advance):
            m.d.sync += data.eq(beat.data)
            m.d.sync += [enables[lane].eq(beat.keep[lane] & from_start[lane][17] &
                                          to_end[lane][17])
                         for lane in range(lanes)]
        lane_bytes = [Mux(enables[lane], data[8 * lane:8 * lane + 8], 0) for lane in range(lanes)]
        # Words are aligned to even frame offsets; an odd `start` is corrected after the
        # accumulator by swapping the bytes of its sum (RFC 1071 section 2(B), byte-order
        # independence), before `initial` is added.
        if lanes == 1:
            high = Signal()       # the byte is at an even offset: the high byte of its word
            with m.If(advance):
                m.d.sync += high.eq(~index[0])
            words = [Mux(high, Cat(C(0, 8), lane_bytes[0]), Cat(lane_bytes[0], C(0, 8)))]
        else:
            words = [Cat(lane_bytes[2 * k + 1], lane_bytes[2 * k]) for k in range(lanes // 2)]
        masked = stage("masked")
        with m.If(advance):
            m.d.sync += [
                masked["valid"].eq(self.i.valid),
                masked["last"].eq(beat.last),
                masked["odd"].eq(self.start[0]),
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

        # -- Stage 4: the accumulator's halves added with end-around carry, their bytes
        # swapped first when `start` is odd (swapping commutes with one's-complement addition).
        acc_odd = summed["odd"]
        half = Signal(16)
        half_done = Signal()
        with m.If(advance):
            m.d.sync += [
                half.eq(ones_add(m, Mux(acc_odd, _swap(acc[:16]), acc[:16]),
                                  Mux(acc_odd, _swap(acc[16:]), acc[16:]), "half")),
                half_done.eq(summed["valid"] & summed["last"]),
            ]

        # -- Stage 5: `initial` added with end-around carry. The sum is 0xFFFF (`ok`) when the
        # two add up to exactly 0xFFFF (each bit set in one of them) or both are 0xFFFF, so
        # `ok` needs no carry chain.
        initial = self.initial
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(half_done),
                self.o.payload.sum.eq(ones_add(m, half, initial, "sum")),
                self.o.payload.ok.eq((half ^ initial).all() | (half.all() & initial.all())),
            ]
        return m
