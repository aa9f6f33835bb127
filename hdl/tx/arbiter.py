"""Transmit arbiter: whole frames from several sources onto one wire, round robin."""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.layouts import FrameBeat, check_data_width

__all__ = ["TxArbiter"]


class TxArbiter(wiring.Component):
    """Merge ``sources`` frame streams into :attr:`o` without interleaving frames.

    When the wire is free the next source with a frame waiting (round robin from the one
    after the last winner) is granted the wire until its frame's last beat.

    Members
    -------
    i : In(stream.Signature(FrameBeat)) x sources, as ``i[k]``
    o : Out(stream.Signature(FrameBeat))
    busy : Out(1)
        A frame is part way through.
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
        grant = Signal(range(n))
        last_winner = Signal(range(n))
        busy = self.busy
        sources = self.i

        with m.If(~busy):
            # round robin: the first waiting source after the last winner
            for offset in reversed(range(1, n + 1)):
                k = Signal(range(n), name=f"candidate_{offset}")
                m.d.comb += k.eq((last_winner + offset) % n if n > 1 else 0)
                with m.If(Array(s.valid for s in sources)[k]):
                    m.d.sync += [grant.eq(k), last_winner.eq(k), busy.eq(1)]
        with m.Else():
            for k, source in enumerate(sources):
                with m.If(grant == k):
                    wiring.connect(m, wiring.flipped(source), wiring.flipped(self.o))
            with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                m.d.sync += busy.eq(0)
        return m
