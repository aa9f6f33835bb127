"""Store-and-forward frame FIFO: whole frames in, whole frames out, a frame that does not fit
is dropped whole and counted.

The receive path writes every arriving frame here while the classifier looks at it; the
dispatcher later reads the frame out, pairing it through :attr:`FrameFifo.status` with the
classifier's verdict. The same block is the slow-path queue towards host software.
"""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.layouts import FrameBeat, check_data_width, check_power_of_two
from hdl.memories import NO_RW_CHECK, registered_read_port

__all__ = ["FrameStatus", "FrameFifo"]


class FrameStatus(data.StructLayout):
    """What became of one input frame: ``stored`` (it will appear on the output) and, if it
    was, its length in ``beats`` (0 for a dropped frame)."""

    def __init__(self, depth):
        super().__init__({"stored": 1, "beats": range(depth + 1)})


class FrameFifo(wiring.Component):
    """Frame FIFO in one block RAM of ``depth`` beats, committing each frame at its last beat.

    Input beats are written at a write pointer. When a frame's last beat is written the
    committed pointer moves past it and the frame becomes visible to the read side; a frame
    during which the storage was full at any beat is not written on: the write pointer goes
    back to the frame's start, the rest of its beats are consumed and discarded, and
    :attr:`dropped` counts it. A frame longer than ``depth`` beats is therefore always dropped.
    Either way one :attr:`status` entry per input frame, in input order, says which it was.

    The read side reads committed beats only, through a synchronous read port into an output
    register; both advance together when the output register is empty or taken, so :attr:`o`
    sends one beat per clock while ``o.ready`` is high, across back-to-back frames. A beat's
    storage is free again once it has been read into the pipeline, so with ``o.ready`` low the
    FIFO holds up to ``depth + 2`` beats. A frame's first beat reaches :attr:`o` three clocks
    after its last beat was accepted on :attr:`i`.

    Parameters
    ----------
    data_width : int
        Width of the frame streams in bits, 8 or 64.
    depth : int
        Storage in beats, a power of two and at least 16.
    status_depth : int
        Entries of the status queue, a power of two and at least 2.

    Members
    -------
    i : ``In(stream.Signature(FrameBeat(data_width)))``
        Frames in. ``i.ready`` is low only while the status queue is full, so a frame that
        does not fit is consumed (and dropped), never stalled.
    o : ``Out(stream.Signature(FrameBeat(data_width)))``
        The stored frames, in order, beat for beat as they went in.
    status : ``Out(stream.Signature(FrameStatus(depth)))``
        One entry per input frame, in input order, queued when its last beat is accepted.
    dropped : ``Out(32)``
        Frames dropped for lack of space, saturating.
    empty : ``Out(1)``
        No committed frame waiting, no frame being written and no beat in the output
        pipeline (status entries may still wait on :attr:`status`).
    """

    def __init__(self, data_width, depth, status_depth=16):
        self._data_width = check_data_width(data_width)
        self._depth = check_power_of_two("Depth", depth, 16)
        self._status_depth = check_power_of_two("Status queue depth", status_depth, 2)
        super().__init__({
            "i": In(stream.Signature(FrameBeat(data_width))),
            "o": Out(stream.Signature(FrameBeat(data_width))),
            "status": Out(stream.Signature(FrameStatus(depth))),
            "dropped": Out(32),
            "empty": Out(1),
        })

    @property
    def data_width(self):
        return self._data_width

    @property
    def depth(self):
        return self._depth

    @property
    def status_depth(self):
        return self._status_depth

    def elaborate(self, platform):
        m = Module()
        addr_bits = exact_log2(self._depth)

        # (a beat is read only once committed, and written only below `rd + depth`: no read
        # meets a write of its address, but the unused reads of an empty FIFO)
        m.submodules.storage = storage = Memory(
            shape=FrameBeat(self._data_width), depth=self._depth, init=[], attrs=NO_RW_CHECK)
        wp = storage.write_port()
        rp = registered_read_port(m, storage, name="rp")

        # Pointers count beats modulo 2 * depth, so that full and empty differ; the storage
        # address is their low bits. Always `rd <= commit <= wr <= rd + depth` (modulo).
        wr = Signal(addr_bits + 1)          # where the next beat of the current frame goes
        commit = Signal(addr_bits + 1)      # end of the committed frames = current frame's start
        rd = Signal(addr_bits + 1)          # next committed beat to read
        used = Signal(addr_bits + 1)
        full = Signal()
        m.d.comb += [
            used.eq(wr - rd),
            full.eq(used[addr_bits]),       # used == depth
        ]

        # -- Write side ----------------------------------------------------------------------
        m.submodules.status_queue = status_queue = fifo.SyncFIFOBuffered(
            width=FrameStatus(self._depth).size, depth=self._status_depth)
        in_frame = Signal()                 # some beats of the current frame were accepted
        dropping = Signal()                 # the current frame ran out of space: discard it
        accept = Signal()
        store = Signal()
        status = Signal(FrameStatus(self._depth))
        m.d.comb += [
            self.i.ready.eq(status_queue.w_rdy),
            accept.eq(self.i.valid & self.i.ready),
            store.eq(accept & ~dropping & ~full),
            wp.addr.eq(wr[:addr_bits]),
            wp.data.eq(self.i.payload),
            wp.en.eq(store),
            status.stored.eq(store),
            status.beats.eq(Mux(store, wr + 1 - commit, 0)),
            status_queue.w_data.eq(status),
            status_queue.w_en.eq(accept & self.i.payload.last),
        ]
        with m.If(accept):
            m.d.sync += in_frame.eq(~self.i.payload.last)
            with m.If(store):
                m.d.sync += wr.eq(wr + 1)
                with m.If(self.i.payload.last):
                    m.d.sync += commit.eq(wr + 1)
            with m.Else():
                m.d.sync += [wr.eq(commit), dropping.eq(~self.i.payload.last)]
                with m.If(self.i.payload.last & ~self.dropped.all()):
                    m.d.sync += self.dropped.eq(self.dropped + 1)

        wiring.connect(m, status_queue.r_stream, wiring.flipped(self.status))

        # -- Read side: the RAM's read and output registers, advancing together --------------
        advance = Signal()
        fetch = Signal()
        fetched = Signal()                  # the read register holds a beat for the output one
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            fetch.eq(advance & (rd != commit)),
            rp.addr.eq(rd[:addr_bits]),
            rp.en.eq(advance),
            self.o.payload.eq(rp.data),
        ]
        with m.If(advance):
            m.d.sync += [
                fetched.eq(fetch),
                self.o.valid.eq(fetched),
            ]
        with m.If(fetch):
            m.d.sync += rd.eq(rd + 1)

        m.d.comb += self.empty.eq((rd == commit) & ~in_frame & ~fetched & ~self.o.valid)
        return m
