"""A first-in first-out queue whose output register an entry written into it empty reaches in
one clock."""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BypassQueue"]


class BypassQueue(wiring.Component):
    """A queue of `depth` entries whose output is a register.

    Amaranth's :class:`~amaranth.lib.fifo.SyncFIFOBuffered` reads its block RAM through a read
    register, so an entry written into it empty is on its output two clocks later. Here the
    output register takes an entry written while the queue is empty (and the register free or
    being read) at once, in the next clock; the others wait in a ``SyncFIFOBuffered`` of
    ``depth - 1`` behind it, in order.

    Parameters
    ----------
    shape : shape-like
        An entry's shape.
    depth : int
        Entries the queue holds, its output register's included (at least 2).

    Members
    -------
    w : ``In(stream.Signature(shape))``
        Entries in. ``w.ready`` is the inner queue's room (never ``r.ready``: no combinational
        path runs through the queue).
    r : ``Out(stream.Signature(shape))``
        Entries out, in order, from the output register.
    level : ``Out(range(depth + 1))``
        Entries held, the output register's included.
    """

    def __init__(self, shape, depth):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise TypeError(f"Depth must be an integer of at least 2, not {depth!r}")
        self._depth = depth
        super().__init__({
            "w": In(stream.Signature(shape)),
            "r": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        entry = Value.cast(self.w.payload)
        m.submodules.inner = inner = fifo.SyncFIFOBuffered(width=len(entry), depth=self._depth - 1)
        free = Signal()         # the output register is empty or read in this clock
        bypass = Signal()       # an entry written now goes straight to the output register
        m.d.comb += [
            free.eq(~self.r.valid | self.r.ready),
            bypass.eq(free & (inner.level == 0)),
            self.w.ready.eq(inner.w_rdy),
            inner.w_en.eq(self.w.valid & ~bypass),
            inner.w_data.eq(entry),
            inner.r_en.eq(free),
        ]
        # The level is a register of its own (not the inner level plus the output register's
        # valid), so a user's compare of it is one carry chain from a register.
        written = self.w.valid & self.w.ready
        taken = self.r.valid & self.r.ready
        with m.If(written & ~taken):
            m.d.sync += self.level.eq(self.level + 1)
        with m.Elif(taken & ~written):
            m.d.sync += self.level.eq(self.level - 1)
        with m.If(free):
            with m.If(inner.r_rdy):
                m.d.sync += [self.r.valid.eq(1), Value.cast(self.r.payload).eq(inner.r_data)]
            with m.Elif(self.w.valid & bypass):
                m.d.sync += [self.r.valid.eq(1), Value.cast(self.r.payload).eq(entry)]
            with m.Else():
                m.d.sync += self.r.valid.eq(0)
        return m
