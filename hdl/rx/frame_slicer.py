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
    second register where its range is turned into beat indices and lane masks, and input
    beats pass through two registers to meet it, so the output is two beats behind the input
    and up to two commands wait inside the slicer. With a command waiting and ``o.ready``
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
        m.d.comb += [
            beat_free.eq(~beat_valid | take),
            self.i.ready.eq(~raw_beat_valid | beat_free),
            cmd_free.eq(~cmd_valid | (take & beat.last)),
            self.cmd.ready.eq(~raw_valid | cmd_free),
            take.eq(advance & beat_valid & cmd_valid),
        ]
        with m.If(self.i.ready):
            m.d.sync += raw_beat_valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += raw_beat.eq(self.i.payload)
        with m.If(beat_free):
            m.d.sync += beat_valid.eq(raw_beat_valid)
            with m.If(raw_beat_valid):
                m.d.sync += beat.eq(raw_beat)
        with m.If(self.cmd.ready):
            m.d.sync += raw_valid.eq(self.cmd.valid)
            with m.If(self.cmd.valid):
                m.d.sync += raw.eq(self.cmd.payload)
        with m.If(cmd_free):
            m.d.sync += cmd_valid.eq(raw_valid)
            with m.If(raw_valid):
                skip = raw.skip
                end = _widened(m, _widened(m, skip, 17, "cmd_skip") +
                               _widened(m, raw.length, 17, "cmd_length"),
                               17, "cmd_end")
                final_byte = _widened(m, end - _widened(m, 1, 17, "cmd_one"), 17, "cmd_final")
                m.d.sync += [
                    first_beat.eq(skip[lane_bits:]),
                    final_beat.eq(final_byte[lane_bits:]),
                    empty.eq(raw.length == 0),
                ]
                if lanes == 1:
                    m.d.sync += [first_lanes.eq(1), final_lanes.eq(1), final_lane.eq(1)]
                else:
                    m.d.sync += first_lane.eq(skip[:lane_bits])
                    with m.Switch(skip[:lane_bits]):
                        for lane in range(lanes):
                            with m.Case(lane):
                                m.d.sync += first_lanes.eq(((1 << lanes) - 1) & ~((1 << lane) - 1))
                    with m.Switch(final_byte[:lane_bits]):
                        for lane in range(lanes):
                            with m.Case(lane):
                                m.d.sync += [
                                    final_lanes.eq((2 << lane) - 1),
                                    final_lane.eq(1 << lane),
                                ]

        # Position of the registered beat in its frame, and which of its lanes are kept.
        beat_index = Signal(beat_bits)
        after_first = Signal()
        at_first = Signal()
        before_final = Signal()
        at_final = Signal()
        m.d.comb += [
            after_first.eq(beat_index > first_beat),
            at_first.eq(beat_index == first_beat),
            before_final.eq(beat_index < final_beat),
            at_final.eq(beat_index == final_beat),
        ]
        in_range = Signal(lanes)
        kept = Signal(lanes)
        upper = Signal(lanes)     # kept lanes from `skip % lanes` up: go to the residual
        lower = Signal(lanes)     # kept lanes below it: complete the residual's output beat
        m.d.comb += [
            in_range.eq((Mux(after_first, ~0, 0) | Mux(at_first, first_lanes, 0)) &
                        (Mux(before_final, ~0, 0) | Mux(at_final, final_lanes, 0))),
            kept.eq(Mux(empty, 0, beat.keep & in_range)),
            upper.eq(kept & first_lanes),
            lower.eq(kept & ~first_lanes),
        ]
        final_here = Signal()     # the range's final byte is in this beat
        final_seen = Signal()     # ... or in an earlier one
        m.d.comb += [
            final_here.eq(at_final & (beat.keep & final_lane).any()),
            final_seen.eq(final_here | (beat_index > final_beat)),
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
                with m.If(beat.last):
                    m.d.sync += beat_index.eq(0)
                with m.Elif(~beat_index.all()):
                    m.d.sync += beat_index.eq(beat_index + 1)
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
