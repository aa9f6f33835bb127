"""Receive dispatcher: each stored frame, with its verdict, to the engine, the slow path or nowhere."""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from hdl.rx.classifier import FlowKey, ParsedFields, Verdict, VerdictRecord
from hdl.rx.frame_slicer import SliceCommand
from hdl.layouts import FrameBeat, check_data_width
from hdl.ports import RxAction, RxEvent, ConnHint, RxRoute
from hdl.tables.socket_table import KeyLayout, ResultLayout
from hdl.wire import L4Protocol

__all__ = ["DispatchStep", "RxDispatch"]

# Frames decided on while the engine takes earlier ones, and frames decided while earlier ones
# still stream.
PENDING_DEPTH = 4
ROUTE_QUEUE_DEPTH = 4
# Lookup results kept until their frames' verdicts: every frame whose key came and whose
# verdict did not yet (the classifier's verdict queue and its frames in flight), so that the
# lookups never wait for the verdicts.
RESULT_DEPTH = 16


class DispatchStep(enum.Enum, shape=3):
    """What the deciding side waits for; shown on its ``step`` output (the NIC's ``debug`` port)."""
    WAIT_FRAME = 0          # a frame's verdict, its lookup's result with it
    WAIT_ENGINE = 3         # the event going to the engine
    WAIT_ACTION = 4         # the engine's answer
    WAIT_STREAM = 5         # the route queue is full: the streaming side is behind


class _Pending(data.StructLayout):
    """A stored frame between the verdict side and the engine side: its fields, whether it
    goes to the engine (FAST and found: ``conn``) and else its route."""

    def __init__(self, conn_bits):
        super().__init__({"fields": ParsedFields(), "to_engine": 1, "conn": conn_bits,
                          "route": RxRoute})


class _Route(data.StructLayout):
    """Where one stored frame goes, decided ahead of its streaming."""

    def __init__(self):
        super().__init__({"route": RxRoute, "skip": 16, "length": 16})


class RxDispatch(wiring.Component):
    """Route every received frame by its classifier verdict and its socket.

    Frames wait in a frame FIFO (:class:`~hdl.rx.frame_fifo.FrameFifo`) while the
    :class:`~hdl.rx.classifier.Classifier` decides on them; both report one entry per frame in
    the same order, so the dispatcher pairs them. A frame the FIFO dropped is counted in
    :attr:`fifo_full` unless the classifier dropped it too (a frame longer than the FIFO is
    OVERSIZE): one frame, one drop cause. DROP frames are read out and discarded; SLOW frames go whole to the slow path;
    FAST frames are looked up in the :class:`~hdl.tables.socket_table.SocketTable` (TCP by its
    4-tuple, UDP by its local address and port) and a miss goes to the slow path too (an
    unknown flow is host software's business). A hit becomes an :class:`RxEvent` for the
    engine, whose :class:`RxAction` says whether the payload is stored (it then goes
    through the :class:`~hdl.rx.frame_slicer.FrameSlicer` to the connection's ring), the
    frame goes to the slow path (the connection is closed) or nothing is kept.

    Four sides run at once. The lookup side asks the socket table for every frame's flow key
    as the classifier gives it, while the frame still streams in (``key``: one per frame,
    before its verdict), and keeps the results in order (at most ``RESULT_DEPTH`` asked and
    not yet paired); the verdict side pairs each verdict with its frame's result and queues
    every stored frame (up to ``PENDING_DEPTH``), a FAST one found in the table for the
    engine (or, when none is queued and the engine side waits, offers it to the engine at
    once); the engine side takes them in order, passes each found frame's event to the
    engine and queues the route the engine answers; the streaming side moves each frame
    whole, in order, where its route says. So the lookup is done by the time the verdict
    comes, and the engine's decision on a frame overlaps the streaming of up to
    ``ROUTE_QUEUE_DEPTH`` frames before it (the engine's ring commands for it are served
    after the earlier payloads, in order).

    Members
    -------
    key : In(stream.Signature(FlowKey()))
        The classifier's flow key of every frame, in frame order, before its verdict.
    verdict : In(stream.Signature(VerdictRecord()))
    status : In(stream.Signature(StructLayout({"stored": 1, ...})))
        The frame FIFO's per-frame report: was the frame stored?
    frames : In(stream.Signature(FrameBeat(data_width)))
        The frame FIFO's output.
    lookup, result
        The socket table's lookup port.
    event : Out(stream.Signature(RxEvent)), action : In(stream.Signature(RxAction))
        To and from the engine.
    engine_taking : In(1)
        The engine takes an ``event`` offered in this clock in this clock: only then is a
        frame offered straight from the verdict side (it is never offered and withdrawn).
    hint : Out(ConnHint)
        The connection the oldest frame without a verdict was found at (if it was): its
        event is likely the engine's next once the events queued before it are taken.
    slice_cmd, slice_data
        To the frame slicer: its command and the frame.
    slow : Out(stream.Signature(FrameBeat(data_width)))
        Whole frames for host software.
    slow_frames, engine_frames : Out(32)
        Frames sent to the slow path, and to the engine.
    fifo_full : Out(32)
        Frames the FIFO did not store although the classifier did not drop them.
    idle : Out(1)
        Waiting for a frame, none announced.
    step : Out(DispatchStep)
        The deciding side's step (for debugging and profiling only).
    """

    def __init__(self, data_width, conn_bits, status_layout):
        check_data_width(data_width)
        self._data_width = data_width
        beat = FrameBeat(data_width)
        self._conn_bits = conn_bits
        super().__init__({
            "key": In(stream.Signature(FlowKey())),
            "verdict": In(stream.Signature(VerdictRecord())),
            "status": In(stream.Signature(status_layout)),
            "frames": In(stream.Signature(beat)),
            "lookup": Out(stream.Signature(KeyLayout())),
            "result": In(stream.Signature(ResultLayout(conn_bits))),
            "event": Out(stream.Signature(RxEvent(conn_bits))),
            "action": In(stream.Signature(RxAction())),
            "engine_taking": In(1),
            "hint": Out(ConnHint(conn_bits)),
            "slice_cmd": Out(stream.Signature(SliceCommand())),
            "slice_data": Out(stream.Signature(beat)),
            "slow": Out(stream.Signature(beat)),
            "slow_frames": Out(32),
            "engine_frames": Out(32),
            "fifo_full": Out(32),
            "idle": Out(1),
            "step": Out(DispatchStep),
        })

    def elaborate(self, platform):
        m = Module()
        udp_of = lambda fields: fields.protocol == L4Protocol.UDP

        # The lookup side: every frame's key to the socket table (it answers in order, a
        # lookup per clock) once its result has a place in `results`; `asked` counts the
        # results asked for and not yet paired with their verdicts.
        m.submodules.results = results = SyncFIFOBuffered(width=self.result.payload.shape().size,
                                                          depth=RESULT_DEPTH)
        asked = Signal(range(RESULT_DEPTH + 1))
        k = self.key.payload
        key = self.lookup.payload
        m.d.comb += [key.protocol.eq(k.protocol),
                     key.local_ip.eq(k.dst_ip), key.local_port.eq(k.dst_port),
                     key.remote_ip.eq(Mux(udp_of(k), 0, k.src_ip)),
                     key.remote_port.eq(Mux(udp_of(k), 0, k.src_port)),
                     self.lookup.valid.eq(self.key.valid & (asked != RESULT_DEPTH)),
                     self.key.ready.eq(self.lookup.ready & (asked != RESULT_DEPTH)),
                     results.w_en.eq(self.result.valid), results.w_data.eq(self.result.payload),
                     self.result.ready.eq(1)]           # `asked` keeps a place for every result

        # The verdict side: each verdict with its frame's FIFO status and lookup result; every
        # stored frame's entry queues for the engine side.
        m.submodules.pending = pending = SyncFIFOBuffered(width=_Pending(self._conn_bits).size,
                                                          depth=PENDING_DEPTH)
        v = self.verdict.payload
        found = Signal(self.result.payload.shape())
        entry = Signal(_Pending(self._conn_bits))
        fast = v.verdict == Verdict.FAST
        m.d.comb += [found.eq(results.r_data),
                     entry.fields.eq(v.fields), entry.to_engine.eq(fast & found.hit),
                     entry.conn.eq(found.id),
                     entry.route.eq(Mux(v.verdict == Verdict.DROP, RxRoute.DISCARD, RxRoute.SLOW)),
                     pending.w_data.eq(entry)]
        m.d.comb += [self.hint.valid.eq(results.r_rdy & found.hit), self.hint.conn.eq(found.id)]
        offered = self.verdict.valid & self.status.valid & results.r_rdy
        stored = self.status.payload.stored
        # A stored frame for the engine, with nothing queued before it, the engine side
        # waiting and the engine taking, goes to the engine straight from here, its entry
        # never queued (the queue's two clocks saved); else it queues.
        step = Signal(DispatchStep)
        direct = ((step == DispatchStep.WAIT_FRAME) & (pending.level == 0) & offered & stored
                  & entry.to_engine & self.engine_taking)
        take = Signal()                     # the head verdict (status, result) is done with
        queue = offered & (~stored | pending.w_rdy) & ~direct  # (an unstored frame: no entry)
        m.d.comb += [take.eq(queue | (direct & self.event.ready)),
                     self.verdict.ready.eq(take), self.status.ready.eq(take),
                     results.r_en.eq(take), pending.w_en.eq(queue & stored)]
        m.d.sync += asked.eq(asked + (self.key.valid & self.key.ready) - take)
        with m.If(take & ~stored & (v.verdict != Verdict.DROP)):   # else counted by its cause
            m.d.sync += self.fifo_full.eq(self.fifo_full + 1)

        # The engine side: each entry in order; a found frame's event and the engine's action;
        # every frame's route into `routes` for the streaming side.
        m.submodules.routes = routes = SyncFIFOBuffered(width=_Route().size, depth=ROUTE_QUEUE_DEPTH)
        head = Signal(_Pending(self._conn_bits))
        decided = Signal(_Route())
        # past WAIT_FRAME, the frame being routed: where its payload is, its route once decided
        # (held while the route queue is full), and whether it is the queue's head (one offered
        # to the engine directly never was in the queue)
        current = Signal(_Route())
        current_queued = Signal()
        m.d.comb += [head.eq(pending.r_data), routes.w_data.eq(decided),
                     decided.skip.eq(Mux(step == DispatchStep.WAIT_FRAME,
                                         head.fields.payload_offset, current.skip)),
                     decided.length.eq(Mux(step == DispatchStep.WAIT_FRAME,
                                           head.fields.payload_length, current.length))]

        def route(to):
            """The frame goes `to`, if the route queue has room; its entry is done (the
            queue's head in WAIT_FRAME; later, `current`, if it came from the queue)."""
            m.d.comb += decided.route.eq(to)
            with m.If(routes.w_rdy):
                m.d.comb += [routes.w_en.eq(1),
                             pending.r_en.eq((step == DispatchStep.WAIT_FRAME) | current_queued)]
                m.d.sync += step.eq(DispatchStep.WAIT_FRAME)
            with m.Else():
                m.d.sync += [current.route.eq(to), step.eq(DispatchStep.WAIT_STREAM)]

        def offer(frame, queued):
            """`frame` (a _Pending: the queue's head if `queued`) to the engine as its event."""
            f = frame.fields
            e = self.event.payload
            m.d.comb += [self.event.valid.eq(1), e.conn.eq(frame.conn), e.udp.eq(udp_of(f)),
                         e.src_ip.eq(f.src_ip), e.src_port.eq(f.src_port),
                         e.seq.eq(f.seq), e.ack.eq(f.ack), e.flags.eq(f.flags),
                         e.window.eq(f.window), e.payload_offset.eq(f.payload_offset),
                         e.payload_length.eq(f.payload_length), e.mss.eq(f.mss),
                         e.wscale_offered.eq(f.wscale_offered), e.wscale.eq(f.wscale),
                         e.sack_permitted.eq(f.sack_permitted)]
            with m.If(self.event.ready):
                m.d.sync += [step.eq(DispatchStep.WAIT_ACTION),
                             self.engine_frames.eq(self.engine_frames + 1),
                             current.skip.eq(f.payload_offset),
                             current.length.eq(f.payload_length),
                             current_queued.eq(queued)]

        with m.Switch(step):
            with m.Case(DispatchStep.WAIT_FRAME, DispatchStep.WAIT_ENGINE):
                with m.If(pending.r_rdy & head.to_engine):
                    offer(head, queued=1)
                    with m.If(~self.event.ready):
                        m.d.sync += step.eq(DispatchStep.WAIT_ENGINE)
                with m.Elif(pending.r_rdy):
                    m.d.sync += [current.skip.eq(head.fields.payload_offset),
                                 current.length.eq(head.fields.payload_length),
                                 current_queued.eq(1)]
                    route(head.route)
                with m.Elif(direct):
                    offer(entry, queued=0)

            with m.Case(DispatchStep.WAIT_ACTION):
                m.d.comb += self.action.ready.eq(1)
                with m.If(self.action.valid):
                    route(self.action.payload.route)

            with m.Case(DispatchStep.WAIT_STREAM):
                route(current.route)

        # The streaming side: each frame, in order, leaves the FIFO to where its route says.
        streaming = Signal(_Route())
        cmd_sent = Signal()
        m.d.comb += streaming.eq(routes.r_data)
        beat_done = self.frames.valid & self.frames.ready & self.frames.payload.last
        with m.If(routes.r_rdy):
            with m.Switch(streaming.route):
                with m.Case(RxRoute.DISCARD):
                    m.d.comb += self.frames.ready.eq(1)
                with m.Case(RxRoute.SLOW):
                    wiring.connect(m, wiring.flipped(self.frames), wiring.flipped(self.slow))
                with m.Case(RxRoute.STORE):
                    # the slicer takes its command with the frame's last beat
                    m.d.comb += [self.slice_cmd.valid.eq(~cmd_sent),
                                 self.slice_cmd.payload.skip.eq(streaming.skip),
                                 self.slice_cmd.payload.length.eq(streaming.length)]
                    with m.If(self.slice_cmd.ready):
                        m.d.sync += cmd_sent.eq(1)
                    wiring.connect(m, wiring.flipped(self.frames), wiring.flipped(self.slice_data))
            with m.If(beat_done):
                m.d.comb += routes.r_en.eq(1)
                m.d.sync += cmd_sent.eq(0)
                with m.If(streaming.route == RxRoute.SLOW):
                    m.d.sync += self.slow_frames.eq(self.slow_frames + 1)

        m.d.comb += [self.idle.eq((step == DispatchStep.WAIT_FRAME) & ~self.verdict.valid
                                  & ~self.status.valid & ~self.key.valid & (asked == 0)
                                  & ~pending.r_rdy & ~routes.r_rdy),
                     self.step.eq(step)]
        return m
