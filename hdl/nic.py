"""The NIC: receive path, socket table, TCP/UDP engine, transmit path, host and control ports.

``python -m flow.build nic`` writes ``build/verilog/nic.v`` (top module ``nic``).
"""

from amaranth import *
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from model.classify import max_frame
from model.drops import CLASSIFIER_CAUSES, DropCause

from hdl.config import NIC_POLICY
from hdl.rx.classifier import Classifier, Verdict
from hdl.control_port import ControlPort
from hdl.rx.frame_fifo import FrameFifo
from hdl.rx.frame_slicer import FrameSlicer
from hdl.layouts import FrameBeat, check_data_width
from hdl.ports import (STROBED_INPUTS, STROBED_OUTPUTS, ConnEvent, PortStrobes, control_ports,
                       host_ports)
from hdl.rx.dispatch import DispatchStep, RxDispatch
from hdl.tables.socket_table import SocketTable
from hdl.engine.tcp_engine import EngineStep, TcpEngine
from hdl.engine.observe import EngineObservation
from hdl.engine.timers import Timers
from hdl.tx.arbiter import TxArbiter
from hdl.tx.framer import TxFramer

__all__ = ["COUNTERS", "DROP_COUNTERS", "DebugSignature", "DispatchStep", "EngineStep", "NIC"]

#: The drop causes the NIC counts (model/drops.py), each frame under one of them only.
NIC_DROP_CAUSES = (*CLASSIFIER_CAUSES, DropCause.RX_FIFO_FULL, DropCause.SLOW_FIFO_FULL,
                   DropCause.NO_SOCKET, DropCause.QUEUE_FULL)
_DROP_TEXT = {
    DropCause.RX_FIFO_FULL: "no room in the receive frame FIFO (not counted if the classifier dropped it)",
    DropCause.SLOW_FIFO_FULL: "no room in the slow-path queue",
    DropCause.NO_SOCKET: "UDP datagrams from other than a connected socket's peer",
    DropCause.QUEUE_FULL: "UDP datagrams dropped for lack of ring space",
}

# What READ_COUNTER(index) reads, by index.
COUNTERS = (
    ("rx_fast", "frames the classifier sent to the fast path"),
    ("rx_slow", "frames the classifier sent to the slow path"),
    ("rx_drop", "frames the classifier dropped (by cause in the drop_ counters)"),
    *((f"drop_{cause.name.lower()}", f"dropped: {_DROP_TEXT.get(cause, 'classifier: ' + cause.name)}")
      for cause in NIC_DROP_CAUSES),
    ("to_engine", "frames matched by the socket table"),
    ("to_slow", "frames sent to host software (slow verdict, unknown flow, closed connection)"),
    ("ooo_refused", "segments refused whole: they would need another out-of-order range"),
    ("slice_truncated", "frames shorter than their payload (never for a checked frame)"),
    ("tx_frames", "frames sent"),
)

#: READ_COUNTER's index of each cause's drop counter: every frame the NIC drops is counted
#: in exactly one of them.
DROP_COUNTERS = {cause: [name for name, _ in COUNTERS].index(f"drop_{cause.name.lower()}")
                 for cause in NIC_DROP_CAUSES}


class DebugSignature(wiring.Signature):
    """The NIC's ``debug`` port: what the testbench's profiles sample once per clock.

    Members
    -------
    engine_step : Out(EngineStep)
        The TCP/UDP engine's step (``hdl.engine.tcp_engine.EngineStep``).
    dispatch_step : Out(DispatchStep)
        The receive dispatcher's step (``hdl.rx.dispatch.DispatchStep``).
    ring_beat : Out(1)
        A payload beat goes into a connection's receive ring this clock.
    engine_event : Out(EngineObservation)
        The event the engine takes (step ``LATCH``: connection, source, state before, ring
        fill), the kind of the TCP segment it processes (step ``TCP_START``) and the timer
        that fires (step ``TIMER``), as ``hdl.engine.observe`` describes them
        (``tb/coverage.py`` counts them).
    rx_waiting : Out(1), rx_waiting_conn : Out(conn_bits)
        The receive path offers the engine a segment or datagram for ``rx_waiting_conn``.
    strobes : Out(PortStrobes)
        The stream ports' ``ready`` / ``valid`` and ``idle``, as the ports carry them.
    send_ring_writer_error : Out(1)
        The send ring took a write that was not at its tail or did not fit its free bytes
        (``StreamBuffer.writer_error``, sticky): the engine broke the ring's contract.
    """

    def __init__(self, conn_bits, rcv_bytes, snd_bytes):
        super().__init__({"engine_step": Out(EngineStep), "dispatch_step": Out(DispatchStep),
                          "ring_beat": Out(1),
                          "engine_event": Out(EngineObservation(conn_bits, rcv_bytes, snd_bytes)),
                          "rx_waiting": Out(1), "rx_waiting_conn": Out(conn_bits),
                          "strobes": Out(PortStrobes()),
                          "send_ring_writer_error": Out(1)})


class NIC(wiring.Component):
    """A TCP/UDP offload NIC that keeps UNIX socket semantics on its data path.

    Receive: frames go into a frame FIFO and, at the same time, through the
    :class:`~hdl.rx.classifier.Classifier`; the :class:`~hdl.rx.dispatch.RxDispatch` pairs
    each stored frame with its verdict, finds its socket in the
    :class:`~hdl.tables.socket_table.SocketTable` and hands it to the
    :class:`~hdl.engine.tcp_engine.TcpEngine`, whose payload goes through the
    :class:`~hdl.rx.frame_slicer.FrameSlicer` into the connection's receive ring. Everything
    the fast path does not take goes whole to the slow-path queue (counted when it is full).

    Transmit: the engine's segments (data, ACKs, retransmissions, probes, RSTs) and UDP
    datagrams are built by the :class:`~hdl.tx.framer.TxFramer`; the
    :class:`~hdl.tx.arbiter.TxArbiter` merges them with raw frames from host software.

    Parameters
    ----------
    data_width : int
        8 or 64.
    connections : int
        Connection slots (TCP connections and UDP sockets), a power of two.
    processes : int
        Doorbell pages, a power of two.
    policy : model.policy.Policy
        The wire-visible policy, shared with the golden model; ``rcv_buffer`` and
        ``snd_buffer`` are the per-connection ring sizes (default ``hdl.config.NIC_POLICY``,
        2 KiB rings).
    socket_entries : int
        Socket table capacity (power of two, at least 16).
    rx_fifo_beats, slow_fifo_beats : int
        Frame FIFO depths in beats.
    tick_cycles : int
        Clock cycles per tick of the timers' clock; 0: ticks come only from the ``tick``
        input (a testbench, or a timebase elsewhere). At least ``connections + 3``: a tick
        waits for a whole scan of the timers after the one before
        (:meth:`hdl.engine.timers.Timers.tick_interval`).
    neighbors : int
        Neighbour table entries (UDP destinations).
    debug : bool
        Add the ``debug`` port (for testbenches; off in the synthesised NIC).

    Members
    -------
    rx : In(stream.Signature(FrameBeat)), tx : Out(stream.Signature(FrameBeat))
        The wire, frames without FCS.
    host_cmd, host_wdata, host_rsp, host_rdata
        The processes' doorbell port (``hdl.ports``).
    ctl_cmd, ctl_rsp
        The OS's privileged port (``hdl.ports.ControlCommand``).
    slow_rx : Out(stream.Signature(FrameBeat)), slow_tx : In(stream.Signature(FrameBeat))
        Frames for host software, and raw frames from it.
    events : Out(stream.Signature(ConnEvent))
        Connections that completed their handshake or reached CLOSED.
    tick : In(1)
        One pulse per timer tick (besides the internal prescaler, if any).
    idle : Out(1)
        Nothing is waiting or in progress anywhere in the NIC: no frame received and not yet
        handled, no command or segment in the works, nothing queued for host software.
    debug : Out(DebugSignature())
        Only with ``debug=True``: the engine's and the dispatcher's steps, the receive
        rings' write beats, once per clock (``tb/bench.py`` profiles with them), and the
        engine's events (``tb/coverage.py`` counts them).
    """

    def __init__(self, *, data_width=64, connections=64, processes=64, policy=None,
                 socket_entries=None, rx_fifo_beats=None, slow_fifo_beats=None, tick_cycles=0,
                 neighbors=8, debug=False):
        check_data_width(data_width)
        if policy is None:
            policy = NIC_POLICY
        if not isinstance(tick_cycles, int) or tick_cycles < 0:
            raise TypeError(f"Tick length must be a non-negative number of cycles, not {tick_cycles!r}")
        if 0 < tick_cycles < Timers.tick_interval(connections):
            raise ValueError(f"Tick length must be 0 or at least {Timers.tick_interval(connections)} "
                             f"cycles with {connections} connections (the timers' scan), not "
                             f"{tick_cycles}")
        self._data_width = data_width
        self._connections = connections
        self._processes = processes
        self._policy = policy
        self._socket_entries = socket_entries or max(16, 2 * connections)
        lanes = data_width // 8
        # room for two maximum frames (1518 bytes at the default MTU) by default
        self._rx_fifo_beats = rx_fifo_beats or 1 << (2 * max_frame(policy.mtu, True) // lanes).bit_length()
        self._slow_fifo_beats = slow_fifo_beats or self._rx_fifo_beats
        self._tick_cycles = tick_cycles
        self._neighbors = neighbors
        self.engine = TcpEngine(data_width=data_width, connections=connections,
                                processes=processes, policy=policy, neighbors=neighbors,
                                debug=debug)
        conn_bits = exact_log2(connections)
        pid_bits = exact_log2(processes)
        beat = FrameBeat(data_width)
        members = {
            "rx": In(stream.Signature(beat)),
            "tx": Out(stream.Signature(beat)),
            **host_ports(pid_bits, beat),
            **control_ports(conn_bits, pid_bits),
            "slow_rx": Out(stream.Signature(beat)),
            "slow_tx": In(stream.Signature(beat)),
            "events": Out(stream.Signature(ConnEvent(conn_bits))),
            "tick": In(1),
            "idle": Out(1),
        }
        if debug:
            members["debug"] = Out(DebugSignature(conn_bits, policy.rcv_buffer, policy.snd_buffer))
        super().__init__(members)

    @property
    def policy(self):
        return self._policy

    @property
    def data_width(self):
        return self._data_width

    def elaborate(self, platform):
        m = Module()
        W = self._data_width
        conn_bits = exact_log2(self._connections)
        pid_bits = exact_log2(self._processes)

        m.submodules.rx_fifo = rx_fifo = FrameFifo(W, self._rx_fifo_beats)
        m.submodules.classifier = classifier = Classifier(W, mtu=self._policy.mtu)
        m.submodules.dispatch = dispatch = RxDispatch(W, conn_bits, rx_fifo.status.payload.shape())
        # (a debug build is a simulation build: as the engine's memories, the socket table's
        # block RAMs then return garbage for a read that meets a write of its row)
        m.submodules.socket_table = socket_table = SocketTable(
            self._socket_entries, id_width=conn_bits,
            poison_collisions="debug" in self.signature.members)
        m.submodules.slicer = slicer = FrameSlicer(W)
        m.submodules.slow_fifo = slow_fifo = FrameFifo(W, self._slow_fifo_beats)
        m.submodules.engine = engine = self.engine
        m.submodules.framer = framer = TxFramer(
            W, wscale=self._policy.wscale if self._policy.window_scaling else None,
            sack=self._policy.sack, given_sums=engine.payload_sums)
        m.submodules.arbiter = arbiter = TxArbiter(W, 2)
        m.submodules.control = control = ControlPort(conn_bits, pid_bits, len(COUNTERS))
        m.submodules.events = events = fifo.SyncFIFOBuffered(
            width=len(self.events.payload.as_value()), depth=16)

        # receive: every beat goes to the frame FIFO and the classifier together
        m.d.comb += [
            rx_fifo.i.payload.eq(self.rx.payload), classifier.i.payload.eq(self.rx.payload),
            rx_fifo.i.valid.eq(self.rx.valid & classifier.i.ready),
            classifier.i.valid.eq(self.rx.valid & rx_fifo.i.ready),
            self.rx.ready.eq(rx_fifo.i.ready & classifier.i.ready),
            classifier.our_mac.eq(control.our_mac), classifier.our_ip.eq(control.our_ip),
        ]
        wiring.connect(m, classifier.key, dispatch.key)
        wiring.connect(m, classifier.verdict, dispatch.verdict)
        wiring.connect(m, rx_fifo.status, dispatch.status)
        wiring.connect(m, rx_fifo.o, dispatch.frames)
        wiring.connect(m, dispatch.lookup, socket_table.lookup)
        wiring.connect(m, socket_table.result, dispatch.result)
        wiring.connect(m, dispatch.event, engine.rx_event)
        m.d.comb += [engine.rx_hint.eq(dispatch.hint),
                     dispatch.engine_taking.eq(engine.rx_taking)]
        wiring.connect(m, engine.rx_action, dispatch.action)
        wiring.connect(m, dispatch.slice_cmd, slicer.cmd)
        wiring.connect(m, dispatch.slice_data, slicer.i)
        wiring.connect(m, slicer.o, engine.rx_payload)
        wiring.connect(m, dispatch.slow, slow_fifo.i)
        wiring.connect(m, slow_fifo.o, wiring.flipped(self.slow_rx))
        m.d.comb += slow_fifo.status.ready.eq(1)

        # host and control ports
        wiring.connect(m, wiring.flipped(self.host_cmd), engine.host_cmd)
        wiring.connect(m, wiring.flipped(self.host_wdata), engine.host_wdata)
        wiring.connect(m, engine.host_rsp, wiring.flipped(self.host_rsp))
        wiring.connect(m, engine.host_rdata, wiring.flipped(self.host_rdata))
        wiring.connect(m, wiring.flipped(self.ctl_cmd), control.cmd)
        wiring.connect(m, control.rsp, wiring.flipped(self.ctl_rsp))
        wiring.connect(m, control.socket_cmd, socket_table.cmd)
        wiring.connect(m, socket_table.rsp, control.socket_rsp)
        wiring.connect(m, control.access_control, engine.access_control)
        wiring.connect(m, control.engine_cmd, engine.ctl_cmd)
        wiring.connect(m, engine.ctl_rsp, control.engine_rsp)
        m.d.comb += [control.access_done.eq(engine.access_done),
                     engine.our_mac.eq(control.our_mac), engine.our_ip.eq(control.our_ip)]

        # connection events, queued for the OS
        wiring.connect(m, engine.events, events.w_stream)
        wiring.connect(m, events.r_stream, wiring.flipped(self.events))

        # transmit
        wiring.connect(m, engine.tx_header, framer.header)
        wiring.connect(m, engine.tx_payload, framer.payload)
        if engine.payload_sums:
            wiring.connect(m, engine.tx_payload_sum, framer.given_sum)
        wiring.connect(m, framer.o, arbiter.i0)
        wiring.connect(m, wiring.flipped(self.slow_tx), arbiter.i1)
        wiring.connect(m, arbiter.o, wiring.flipped(self.tx))

        # frames accepted by the framer and not yet on the wire
        tx_frames = Signal(32)
        framer_open = Signal(8)
        header_in = framer.header.valid & framer.header.ready
        frame_out = framer.o.valid & framer.o.ready & framer.o.payload.last
        m.d.sync += framer_open.eq(framer_open + header_in - frame_out)
        with m.If(self.tx.valid & self.tx.ready & self.tx.payload.last):
            m.d.sync += tx_frames.eq(tx_frames + 1)

        # the timers' clock
        tick = Signal()
        if self._tick_cycles:
            prescaler = Signal(range(self._tick_cycles))
            m.d.sync += prescaler.eq(Mux(prescaler == self._tick_cycles - 1, 0, prescaler + 1))
            m.d.comb += tick.eq(self.tick | (prescaler == self._tick_cycles - 1))
        else:
            m.d.comb += tick.eq(self.tick)
        m.d.comb += engine.tick.eq(tick)

        counters = [
            classifier.verdict_counts[Verdict.FAST], classifier.verdict_counts[Verdict.SLOW],
            classifier.verdict_counts[Verdict.DROP],
            *(classifier.drop_counts[cause] for cause in CLASSIFIER_CAUSES),
            dispatch.fifo_full, slow_fifo.dropped, engine.udp_no_socket, engine.udp_queue_full,
            dispatch.engine_frames, dispatch.slow_frames, engine.rx_refused,
            slicer.truncated_frames, tx_frames,
        ]
        assert len(counters) == len(COUNTERS)
        for i, value in enumerate(counters):
            m.d.comb += control.counters[i].eq(value)

        m.d.comb += self.idle.eq(engine.idle & dispatch.idle & control.idle & rx_fifo.empty & ~self.rx.valid
                                 & (framer_open == 0) & ~arbiter.busy & ~framer.o.valid
                                 & slow_fifo.empty & ~slow_fifo.status.valid & ~events.r_rdy)
        if "debug" in self.signature.members:
            m.d.comb += [self.debug.engine_step.eq(engine.step),
                         self.debug.dispatch_step.eq(dispatch.step),
                         self.debug.ring_beat.eq(slicer.o.valid & slicer.o.ready),
                         self.debug.engine_event.eq(engine.observe),
                         self.debug.rx_waiting.eq(dispatch.event.valid),
                         self.debug.rx_waiting_conn.eq(dispatch.event.payload.conn),
                         self.debug.strobes.idle.eq(self.idle),
                         self.debug.send_ring_writer_error.eq(engine.send_ring_writer_error)]
            for name in STROBED_INPUTS:
                m.d.comb += self.debug.strobes[f"{name}_ready"].eq(getattr(self, name).ready)
            for name in STROBED_OUTPUTS:
                m.d.comb += self.debug.strobes[f"{name}_valid"].eq(getattr(self, name).valid)
        return m
