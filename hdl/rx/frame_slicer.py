"""Frame slicer: keep one byte range of each frame, realigned to lane 0, drop the rest.

The receive path's payload extractor: a TCP or UDP payload sits at an unaligned frame offset
(54 or so); the slicer moves exactly those bytes, packed from lane 0, to the stream buffer.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.layouts import FrameBeat, check_data_width

__all__ = ["SliceCommand", "FrameSlicer"]


class SliceCommand(data.StructLayout):
    """Which bytes of one frame to keep: frame offsets ``skip <= offset < skip + length``."""

    def __init__(self):
        super().__init__({"skip": 16, "length": 16})


def _widened(m, value, width, name):
    """`value` zero-extended to `width` bits in a named signal, so operators see equal widths
    (``verilator -Wall`` flags every operator whose operands differ in width)."""
    sized = Signal(width, name=name)
    m.d.comb += sized.eq(value)
    return sized


class FrameSlicer(wiring.Component):
    """Cut bytes ``[skip, skip + length)`` out of each frame, packed from lane 0.

    For every frame on :attr:`i` the slicer takes one command from :attr:`cmd` and emits the
    selected bytes on :attr:`o` as one frame (every beat full but the last, ``last`` on the
    final beat); every other byte of the input frame is consumed and discarded. A command with
    ``length`` 0 emits no beat at all. The kept bytes are realigned by a residual register
    holding the upper lanes of the previous input beat, plus one beat to flush the residual
    when the range ends in a lane at or above ``skip % lanes``; that flush beat overlaps the
    next frame's first beat.

    The input and the command are registered before any logic (a block RAM read port may
    drive :attr:`i` directly), and so is the output; a command then spends one cycle in a
    second register where its range is turned into beat indices and lane masks (and the lanes
    kept of the frame's first beat), and input beats pass through two registers to meet it,
    so the output is two beats behind the input and up to two commands wait inside the
    slicer. The lanes kept of every later beat are worked out in the cycle the beat before it
    is taken, so that no comparison lies between a beat and the output register (over
    200 MHz on an ECP5 at speed 8). With a command waiting and ``o.ready``
    high the slicer takes one input beat per clock, across back-to-back frames with no idle
    cycle between them; ``o.ready`` low stalls everything.

    A frame that ends before ``skip + length`` (a "short" frame) ends its output early with
    ``last``: the output holds the bytes that were there (possibly none: then the one output
    beat has ``keep`` 0), :attr:`truncated` pulses and :attr:`truncated_frames` counts it. Frames
    must be shorter than 128 KiB.

    Parameters
    ----------
    data_width : int
        Width of the frame streams in bits, 8 or 64.

    Members
    -------
    cmd : ``In(stream.Signature(SliceCommand()))``
        One command per input frame, in frame order; it is taken with the frame's last beat.
    i : ``In(stream.Signature(FrameBeat(data_width)))``
        The frames to slice.
    o : ``Out(stream.Signature(FrameBeat(data_width)))``
        The kept bytes of each frame with ``length`` > 0, one output frame per input frame.
    truncated : ``Out(1)``
        High for one cycle when the last beat of a short frame is taken.
    truncated_frames : ``Out(16)``
        Number of short frames so far, saturating at 65535.
    """

    def __init__(self, data_width):
        self._data_width = check_data_width(data_width)
        super().__init__({
            "cmd": In(stream.Signature(SliceCommand())),
            "i": In(stream.Signature(FrameBeat(data_width))),
            "o": Out(stream.Signature(FrameBeat(data_width))),
            "truncated": Out(1),
            "truncated_frames": Out(16),
        })

    @property
    def data_width(self):
        return self._data_width

    def elaborate(self, platform):
        m = Module()
        lanes = self._data_width // 8
        lane_bits = exact_log2(lanes)
        beat_bits = 17 - lane_bits          # beat index within a frame of < 128 KiB

        # Everything advances together unless an output beat waits for the consumer.
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # Input register: a beat waits here until its command is there and the output moves.
        beat_valid = Signal()
        beat = Signal(FrameBeat(self._data_width))
        take = Signal()           # the registered beat is used this cycle

        # Command register, with the frame's range turned into beat indices and lane masks:
        # byte `skip` is in beat `first_beat`, whose lanes from `skip % lanes` up are
        # `first_lanes`; the range's final byte (`skip + length - 1`) is lane `final_lane`
        # (one-hot) of beat `final_beat`, whose lanes up to it are `final_lanes`.
        cmd_valid = Signal()
        first_beat = Signal(beat_bits)
        first_lanes = Signal(lanes)
        first_lane = Signal(range(lanes), name="first_lane")     # skip % lanes
        final_beat = Signal(beat_bits)
        final_lanes = Signal(lanes)
        final_lane = Signal(lanes)
        empty = Signal()          # length 0: nothing is kept
        # The command arrives in `raw` and its range is worked out from there into the
        # registers above, so that the arithmetic starts at a register and the handshake
        # (which depends on `o.ready`) only enables registers.
        raw_valid = Signal()
        raw = Signal(SliceCommand())
        cmd_free = Signal()       # the command registers take `raw` at the end of this cycle
        # The input beat likewise passes through `raw_beat` first, so that it meets its command.
        raw_beat_valid = Signal()
        raw_beat = Signal(FrameBeat(self._data_width))
        beat_free = Signal()      # `beat` takes `raw_beat` at the end of this cycle
        # The handshake is written out flat, as few LUT levels from `o.ready` as it can be, and
        # the data registers load whenever their stage is free (what they take is only used once
        # its valid bit says so), so that their enables need no valid bit.
        m.d.comb += [
            take.eq(advance & beat_valid & cmd_valid),
            beat_free.eq(~beat_valid | (advance & cmd_valid)),
            self.i.ready.eq(~raw_beat_valid | ~beat_valid | (advance & cmd_valid)),
            cmd_free.eq(~cmd_valid | (advance & beat_valid & beat.last)),
            self.cmd.ready.eq(~raw_valid | ~cmd_valid | (advance & beat_valid & beat.last)),
        ]
        with m.If(self.i.ready):
            m.d.sync += [raw_beat_valid.eq(self.i.valid), raw_beat.eq(self.i.payload)]
        with m.If(beat_free):
            m.d.sync += [beat_valid.eq(raw_beat_valid), beat.eq(raw_beat)]
        with m.If(self.cmd.ready):
            m.d.sync += [raw_valid.eq(self.cmd.valid), raw.eq(self.cmd.payload)]
        # The range worked out from `raw`; comb signals, so outside any `If` (else they would
        # be 0 outside it).
        skip, length = raw.skip, raw.length
        end = _widened(m, _widened(m, skip, 17, "cmd_skip") + _widened(m, length, 17, "cmd_length"),
                       17, "cmd_end")
        final_byte = _widened(m, end - _widened(m, 1, 17, "cmd_one"), 17, "cmd_final")
        raw_first_lanes = Signal(lanes)
        raw_final_lanes = Signal(lanes)
        raw_final_lane = Signal(lanes)
        if lanes == 1:
            m.d.comb += [raw_first_lanes.eq(1), raw_final_lanes.eq(1), raw_final_lane.eq(1)]
        else:
            with m.Switch(skip[:lane_bits]):
                for lane in range(lanes):
                    with m.Case(lane):
                        m.d.comb += raw_first_lanes.eq(((1 << lanes) - 1) & ~((1 << lane) - 1))
            # The final byte's lane, `(skip + length - 1) % lanes`, as a table of the low bits:
            # `first_range` needs it early, not from the end of the carry chain for `final_byte`
            # (and an adder of the low bits alone would be merged into that chain).
            with m.Switch(Cat(skip[:lane_bits], length[:lane_bits])):
                for low in range(lanes * lanes):
                    lane = ((low % lanes) + (low // lanes) - 1) % lanes
                    with m.Case(low):
                        m.d.comb += [
                            raw_final_lanes.eq((2 << lane) - 1),
                            raw_final_lane.eq(1 << lane),
                        ]
        # The lanes kept of the frame's first beat (index 0), without the adder: the range
        # starts in it if `skip < lanes`, and also ends in it if `skip + length <= lanes`.
        raw_empty = Signal()
        raw_first_at0 = Signal()
        raw_final_at0 = Signal()
        low_end = _widened(m, _widened(m, skip[:lane_bits], lane_bits + 2, "cmd_skip_low") +
                           _widened(m, length[:lane_bits + 1], lane_bits + 2, "cmd_length_low"),
                           lane_bits + 2, "cmd_end_low")
        m.d.comb += [
            raw_empty.eq(length == 0),
            raw_first_at0.eq(skip[lane_bits:] == 0),
            raw_final_at0.eq(raw_first_at0 & (length[lane_bits + 1:] == 0) &
                             (low_end <= _widened(m, lanes, lane_bits + 2, "cmd_lanes"))),
        ]
        first_range = Signal(lanes)     # lanes of beat 0 in the range (0 if `empty`)
        final_at0 = Signal()            # the range's final byte is in beat 0
        with m.If(cmd_free):
            m.d.sync += [
                cmd_valid.eq(raw_valid),
                first_beat.eq(skip[lane_bits:]),
                final_beat.eq(final_byte[lane_bits:]),
                empty.eq(raw_empty),
                first_lanes.eq(raw_first_lanes),
                final_lanes.eq(raw_final_lanes),
                final_lane.eq(raw_final_lane),
                first_range.eq(Mux(raw_first_at0 & ~raw_empty,
                                   raw_first_lanes & Mux(raw_final_at0, raw_final_lanes, ~0), 0)),
                final_at0.eq(raw_final_at0),
            ]
            if lanes > 1:
                m.d.sync += first_lane.eq(skip[:lane_bits])

        # Position of the registered beat in its frame, and which of its lanes are kept. No
        # comparison sits between the beat and the output: at index 0 the lanes come from the
        # command (`first_range`), further on from `later_from_skip` and `later_to_final`, worked out from `next_index`
        # (registered) in the cycle the beat before was taken.
        at_zero = Signal(init=1)        # the registered beat is its frame's first (index 0)
        next_index = Signal(beat_bits, init=1)   # index of the beat after the registered one
        # Past index 0, the registered beat's lanes at or after `skip`, and up to the final byte
        # (none if `empty`): one LUT level each.
        later_from_skip = Signal(lanes)
        later_to_final = Signal(lanes)
        later_at_final = Signal()       # ... the range's final byte is in it
        later_past_final = Signal()     # ... or in a beat before it
        # Four comparisons (carry chains) and no equality (a LUT tree): "at" is "up to" and
        # not "before", so each lane needs one more LUT level only.
        next_after_first = Signal()     # the beat after the registered one is past `first_beat`
        next_from_first = Signal()      # ... is `first_beat` or past it
        next_before_final = Signal()    # ... is before `final_beat`
        next_to_final = Signal()        # ... is `final_beat` or before it
        m.d.comb += [
            next_after_first.eq(next_index > first_beat),
            next_from_first.eq(next_index >= first_beat),
            next_before_final.eq(next_index < final_beat),
            next_to_final.eq(next_index <= final_beat),
        ]
        with m.If(take):
            with m.If(beat.last):
                m.d.sync += [at_zero.eq(1), next_index.eq(1)]
            with m.Else():
                m.d.sync += [
                    at_zero.eq(0),
                    next_index.eq(next_index + 1),
                    later_from_skip.eq(Mux(next_after_first, ~0, 0) |
                                       Mux(next_from_first, first_lanes, 0)),
                    later_to_final.eq(Mux(empty, 0, Mux(next_before_final, ~0, 0) |
                                                    Mux(next_to_final, final_lanes, 0))),
                    later_at_final.eq(next_to_final & ~next_before_final),
                    later_past_final.eq(~next_to_final),
                ]
        in_range = Signal(lanes)
        at_final = Signal()
        kept = Signal(lanes)
        upper = Signal(lanes)     # kept lanes from `skip % lanes` up: go to the residual
        lower = Signal(lanes)     # kept lanes below it: complete the residual's output beat
        m.d.comb += [
            in_range.eq(Mux(at_zero, first_range, later_from_skip & later_to_final)),
            at_final.eq(Mux(at_zero, final_at0, later_at_final)),
            kept.eq(beat.keep & in_range),
            upper.eq(kept & first_lanes),
            lower.eq(kept & ~first_lanes),
        ]
        final_here = Signal()     # the range's final byte is in this beat
        final_seen = Signal()     # ... or in an earlier one
        m.d.comb += [
            final_here.eq(at_final & (beat.keep & final_lane).any()),
            final_seen.eq(final_here | (~at_zero & later_past_final)),
        ]
        ends = Signal()           # no kept byte follows this beat
        frame_short = Signal()
        m.d.comb += [
            ends.eq(final_here | beat.last),
            frame_short.eq(beat.last & ~final_seen & ~empty),
        ]

        # Residual: the upper lanes of the previous kept beat, starting at lane `res_shift`.
        res_data = Signal(self._data_width)
        res_keep = Signal(lanes)
        res_shift = Signal(range(lanes), name="res_shift")
        flush = Signal()          # the residual ends its output frame: send it on its own
        middle = Signal()         # the residual continues into the registered beat
        m.d.comb += middle.eq(res_keep.any() & ~flush)

        # Output beat: lanes `res_shift..` of the residual followed by the low lanes of the
        # registered beat (none when flushing).
        next_data = Signal(self._data_width)
        next_keep = Signal(lanes)
        low_data = Signal(self._data_width)
        low_keep = Signal(lanes)
        m.d.comb += [
            low_data.eq(Mux(flush, 0, beat.data)),
            low_keep.eq(Mux(flush, 0, lower)),
        ]
        if lanes == 1:
            m.d.comb += [next_data.eq(res_data), next_keep.eq(res_keep)]
        else:
            with m.Switch(res_shift):
                for shift in range(lanes):
                    with m.Case(shift):
                        m.d.comb += [
                            next_data.eq(Cat(res_data[8 * shift:], low_data[:8 * shift])),
                            next_keep.eq(Cat(res_keep[shift:], low_keep[:shift])),
                        ]

        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(flush | (take & middle)),
                self.o.payload.data.eq(next_data),
                self.o.payload.keep.eq(next_keep),
                self.o.payload.last.eq(flush | (ends & ~upper.any())),
            ]
            with m.If(flush):
                m.d.sync += [flush.eq(0), res_keep.eq(0)]
            with m.If(take):
                # The residual's data and shift only matter while `res_keep` has lanes, and it
                # gets lanes only here: load them on every beat taken, so that their enable
                # does not wait for `upper`.
                m.d.sync += res_data.eq(beat.data)
                if lanes > 1:
                    m.d.sync += res_shift.eq(first_lane)
                with m.If(upper.any()):
                    m.d.sync += [
                        res_keep.eq(upper),
                        flush.eq(ends),
                    ]
                with m.Elif(middle):
                    m.d.sync += res_keep.eq(0)
                with m.Elif(frame_short):
                    # Nothing of the range was in the frame: end the output with an empty beat.
                    m.d.sync += [flush.eq(1), res_keep.eq(0)]

        m.d.comb += self.truncated.eq(take & frame_short)
        with m.If(self.truncated & ~self.truncated_frames.all()):
            m.d.sync += self.truncated_frames.eq(self.truncated_frames + 1)
        return m
