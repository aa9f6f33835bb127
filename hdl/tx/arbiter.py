"""Transmit arbiter: whole frames from several sources onto one wire, round robin."""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.layouts import FrameBeat, check_data_width

__all__ = ["TxArbiter"]


class TxArbiter(wiring.Component):
    """Merge ``sources`` frame streams into :attr:`o` without interleaving frames.

    At a frame boundary the next source with a frame waiting (round robin from the one after
    the last winner) is connected to the wire in the same clock, so frames go out back to
    back: the beat after a frame's last may be the next frame's first, from any source. Once
    a first beat is offered, the choice holds until that frame's last beat is taken (a
    stream's payload does not change while it waits for ``ready``).

    Members
    -------
    i : In(stream.Signature(FrameBeat)) x sources, as ``i[k]``
    o : Out(stream.Signature(FrameBeat))
    busy : Out(1)
        A frame is part way through (its first beat is offered or taken, its last not yet).
    """

    def __init__(self, data_width, sources=2):
        check_data_width(data_width)
        if not isinstance(sources, int) or sources < 1:
            raise TypeError(f"Source count must be a positive integer, not {sources!r}")
        self._sources = sources
        beat = FrameBeat(data_width)
        super().__init__({
            **{f"i{k}": In(stream.Signature(beat)) for k in range(sources)},
            "o": Out(stream.Signature(beat)),
            "busy": Out(1),
        })

    @property
    def i(self):
        return [getattr(self, f"i{k}") for k in range(self._sources)]

    def elaborate(self, platform):
        m = Module()
        n = self._sources
        sources = self.i
        grant = Signal(range(n))        # the source of the frame in progress, or the last one
        locked = Signal()               # a frame's beats are offered or moving: keep `grant`

        # round robin at a boundary: the first waiting source after the last winner
        choice = Signal(range(n))
        m.d.comb += choice.eq(grant)
        for offset in reversed(range(1, n + 1)):
            k = (grant + offset) % n if n > 1 else Const(0)
            with m.If(Array(s.valid for s in sources)[k]):
                m.d.comb += choice.eq(k)
        selected = Signal(range(n))
        m.d.comb += selected.eq(Mux(locked, grant, choice))

        for k, source in enumerate(sources):
            with m.If(selected == k):
                wiring.connect(m, wiring.flipped(source), wiring.flipped(self.o))
        with m.If(self.o.valid):
            m.d.sync += [grant.eq(selected),
                         locked.eq(~(self.o.ready & self.o.payload.last))]
        m.d.comb += self.busy.eq(locked | self.o.valid)
        return m
