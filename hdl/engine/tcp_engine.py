"""The TCP/UDP engine: every connection's state machine, its rings, and the access check.

This is the hardware twin of ``model/tcp.py`` (``Tcb.process``, ``Tcb.dispatch``,
``Tcb.on_timer``) and of the data-path half of ``model/host.py`` (``recv``, ``send``,
``poll``, ``shutdown``, the last ``close``), for many connections at once.
"""

from amaranth import *
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from model.constants import UDP_MAX_PAYLOAD, UDP_RECORD_BYTES
from model.policy import RTT_SAMPLE_BITS, Policy
from model.protocol import SACK_BLOCK_BYTES, SACK_MAX_BLOCKS

from hdl.tables.access_table import AccessControl
from hdl.layouts import FrameBeat, check_data_width
from hdl.ports import (HOST_CONN_BITS, ConnEvent, ControlResponse, CtlOp, EventKind, HostOp,
                    HostResponse, RxAction, RxEvent, ConnHint, RxRoute, control_ports,
                    host_ports)
from hdl.buffers.stream_buffer import QUERY_LATENCY, StreamBuffer, ring_free
from hdl.engine.tcb import (RECEIVING, SYNCHRONIZED, ConnKind, ConnRecord, Errno, TcpState, one_of,
                            seq_le, ring_count_bits, seq_lt, snd_wnd_bits)
from hdl.engine.host_call import HostCall, HostNext
from hdl.engine.host_gate import HostGate
from hdl.engine.observe import EngineObservation, EventSource, observe
from hdl.engine.rtt import RttEstimator
from hdl.engine.rx_ack import LATENCY as ACK_LATENCY
from hdl.engine.rx_ack import RxAck
from hdl.engine.rx_check import LATENCY as CHECK_LATENCY
from hdl.engine.rx_check import CheckNext, RxCheck
from hdl.engine.rx_fast_path import RxFastPath, advertised_window, receive_window
from hdl.engine.timer_fire import LATENCY as TIMER_LATENCY
from hdl.engine.timer_fire import TimerFire, TimerNext
from hdl.engine.timers import TIMERS, Timers
from hdl.engine.tx_segmenter import TxSegmenter
from hdl.tx.framer import TxHeader
from hdl.wire import L4Protocol, TcpFlags

__all__ = ["EngineStep", "TcpEngine", "TX_HEADER_QUEUE_DEPTH", "RING_READ_QUEUE_DEPTH"]

#: Segment headers the engine may emit ahead of the framer (each frame's header is taken as
#: the frame before it starts out).
TX_HEADER_QUEUE_DEPTH = 8
#: The largest ring: a 1 MiB receive window says itself with window scale 5.
MAX_RING_BYTES = 2 ** 20
#: Decided reads each ring holds behind the one whose beats go out
#: (:attr:`StreamBuffer.read_queue`): a host READ, or a segment's payload, is handed over
#: without waiting for the data port to finish the reads before it.
RING_READ_QUEUE_DEPTH = 4


class EngineStep(enum.Enum, shape=7):
    """What the engine waits for or does next: one register, switched with ``m.Switch``,
    so a misspelt step is an AttributeError at elaboration. The engine shows it on its
    ``step`` output (the NIC's ``debug`` port), for profiles of where the clocks go."""
    IDLE = 0
    LOAD = 1                # connection record and ring states being read
    LATCH = 2
    WRITE_BACK = 3
    PUSH_SYNC_EVENT = 4
    PUSH_CLOSED_EVENT = 5
    REQUERY_1 = 6           # ring states settling after a ring command
    REQUERY_2 = 7
    EMIT = 8                # a segment's header (and payload read) going to the framer
    TCP_START = 9           # receive: TCP (model.tcp.Tcb.process)
    TCP_CHECK = 10          # the check verdict applied (hdl/engine/rx_check.py)
    TCP_SYN_SENT_INIT = 11
    TCP_ACK = 14
    TCP_ACK_RELEASE = 15
    TCP_ACK_WAIT = 16       # the ACK verdict's second clock (hdl/engine/rx_ack.py)
    TCP_ACK_APPLY = 17
    TCP_DATA = 18
    TCP_DATA_WRITE = 19
    TCP_DECIDE = 20         # the fast path's first clock (hdl/engine/rx_fast_path.py)
    TCP_FIN = 21
    TCP_TAKE_FIN = 22
    CLEAR_SEND_RING = 23
    ACTION = 24             # tell the receive path what to do with the frame; answer an INJECT
    UDP_START = 25          # receive: UDP datagram into its socket's ring
    UDP_HEADER_CMD = 26
    UDP_PAYLOAD_CMD = 28
    DISPATCH = 30           # what to send (model.tcp.Tcb.dispatch)
    DISPATCH_OUTBOX = 31
    DISPATCH_SYN = 32
    DISPATCH_SEGMENT = 33
    DISPATCH_ACK = 34
    DISPATCH_PERSIST = 35
    TICK_START = 36         # timers (model.tcp.Tcb.on_timer): each connection the tick finds due
    TICK_NEXT = 37
    TIMER = 38              # the timer verdict's clocks (hdl/engine/timer_fire.py)
    TIMER_WAIT = 40
    TIMER_FIRE = 39
    HOST_DECODE = 43        # host commands (model.host.Process), checked by the host gate,
    HOST_RESPOND = 44       # decided by hdl/engine/host_call.py
    HOST_READ_DATA = 47
    HOST_WINDOW_UPDATE = 48
    UDP_READ_HEADER = 54
    UDP_READ_CAPTURE = 55
    UDP_READ_DATA = 56
    UDP_READ_RELEASE = 57
    UDP_SEND = 58
    UDP_SEND_PAYLOAD = 59
    UDP_ROUTE = 69          # a datagram's destination and its neighbour entry, registered
    CTL_DECODE = 60         # control commands
    CTL_LOADED = 61
    CTL_INIT_RINGS = 62
    CTL_RESPOND = 63
    DEADLINE_NEXT = 64      # NEXT_DEADLINE: the timers unit's answer (hdl/engine/timers.py)
    FAST_STORE = 65         # receive fast path, waiting for the ring (TcpEngine: fast_store)
    RTT_SAMPLE = 66         # an RTT sample through the estimator (Policy.rtt_estimation)
    LOAD_WAIT = 67          # the rings' states on their way (StreamBuffer's QUERY_LATENCY)
    REQUERY_3 = 68




class _Event(enum.Enum, shape=2):
    RX = 0
    HOST = 1
    CONTROL = 2
    TICK = 3


class _Outbox(enum.Enum, shape=3):
    """A segment queued by processing or a timer, sent first by dispatch (``Tcb.outbox``)."""
    NONE = 0
    RST_REPLY = 1   # <SEQ=ob_seq><CTL=RST>, no ACK: reply to an unacceptable ACK
    ABORT = 2       # <SEQ=SND.MAX><CTL=RST,ACK>: close() with unread data
    PROBE = 3       # <SEQ=SND.UNA-1><CTL=ACK>: zero-window probe
    FAST = 4        # fast retransmit of the first segment at SND.UNA



class TcpEngine(wiring.Component):
    """Connection records, receive and send rings, and one engine that serves them all.

    The engine takes one event at a time (a control command, a received segment or
    datagram, a host command, a timer tick), reads the connection's record from block RAM
    and its two rings' state, carries out exactly what ``model/tcp.py`` does for that
    event, sends what ``Tcb.dispatch`` would send at that moment, and writes the record
    back. Policies (window, ACK timing, segment sizing, RTO, backoff, persist, TIME-WAIT)
    are read from the model's :class:`~model.policy.Policy` at elaboration, so there is one
    written policy for both.

    Each connection owns a receive ring and a send ring in two
    :class:`~hdl.buffers.stream_buffer.StreamBuffer` instances. Ring offsets are sequence numbers:
    the receive ring's tail is RCV.NXT (less a received FIN), its free space the window;
    the send ring holds [SND.UNA, SND.UNA + queued) and segments are read from it at
    ``seq - head``, so a retransmission reads the same bytes again. A UDP socket's receive
    ring holds datagram records (``model.constants.UDP_RECORD_BYTES`` of length and source, then
    the payload), so datagram boundaries are kept and a short read discards the rest.

    A received payload is written into its ring while the engine goes on (the ring's state,
    and so RCV.NXT, is decided from the command before the bytes move, and the ring serves
    its later commands after them). The commonest segment, in-order data in ESTABLISHED that
    fits the window and acknowledges nothing new, on a connection with nothing to send, no
    out-of-order range and no FIN pending, takes a fast path (``fast_store``: the record and
    ring states latched, a clock for the decision of :class:`~hdl.engine.rx_fast_path.RxFastPath`,
    the ring write and the ACK's fields in one step, the receive path's action with the
    write-back, the ACK), as Beehive splits its receive pipe; everything else takes the steps
    below one by one. The unit's decision and effects are checked against the model case by
    case, and the engine's against the model's by the differential tests.

    Host commands come through a :class:`~hdl.engine.host_gate.HostGate`, which checks each
    against the access table while the engine serves the events before it: a process without
    access gets EBADF, its WRITE data is drained, and nothing else happens.

    Parameters
    ----------
    data_width : int
        Width of every data stream, 8 or 64.
    connections : int
        Connection slots, a power of two (at least 2).
    processes : int
        Doorbell pages (process ids), a power of two (at least 2).
    policy : model.policy.Policy
        ``rcv_buffer`` and ``snd_buffer`` are the ring sizes (powers of two from 64 to 1 MiB;
        a receive ring above 32 KiB needs window scaling, ``Policy`` checks it; a UDP
        socket's ring is ``rcv_buffer`` and must equal ``udp_rcv_buffer``).
    neighbors : int
        Entries of the neighbour table used for UDP destinations.

    Members
    -------
    rx_event : In(stream.Signature(RxEvent))
        A segment or datagram the socket table matched; its frame waits in the receive
        path until :attr:`rx_action` says what to do with it.
    rx_action : Out(stream.Signature(RxAction))
        One per ``rx_event``: DISCARD, SLOW (the connection is closed: host software
        answers) or STORE (the payload follows on :attr:`rx_payload`).
    rx_payload : In(stream.Signature(FrameBeat))
        The payload of a STORE frame, packed from lane 0.
    rx_hint : In(ConnHint)
        The connection whose ``rx_event`` is likely next: an idle engine reads its record and
        ring states while it waits, and takes the event a clock or two sooner if it is that
        one's. (A host command whose connection the host gate named while checking it, the
        gate's ``hint``, is taken the same way.)
    rx_taking : Out(1)
        An ``rx_event`` offered in this clock is taken in this clock (the engine is idle and
        no control command comes first); it does not depend on ``rx_event``.
    host_cmd, host_wdata, host_rsp, host_rdata
        The processes' port (``hdl.ports.HostCommand``): one response per command, then
        ``count`` bytes of a READ on ``host_rdata`` as one frame.
    ctl_cmd, ctl_rsp : ControlCommand in, ControlResponse out (``hdl.ports``)
        The privileged operations that concern connection records, passed on by the control
        port: SET_NEIGHBOR, INSTALL_TCP, INSTALL_UDP, UDP_CONNECT, INJECT, READ_STATE, FREE,
        NEXT_DEADLINE, ADVANCE (the socket table's and the access table's go there; ``pid``
        and ``key`` are not read here).
    access_control : In(stream.Signature(AccessControl)), access_done : Out(1)
        The access table's control port (GRANT, REVOKE, CLEAR), for the control port.
    events : Out(stream.Signature(ConnEvent))
        A connection became synchronized, or reached CLOSED.
    tx_header, tx_payload
        To the :class:`~hdl.tx.framer.TxFramer`: one header per frame, its payload. Headers
        leave through a queue of ``TX_HEADER_QUEUE_DEPTH``, so a segment is handed over in
        a clock while the framer still sends the frames before it.
    tick : In(1)
        One pulse per tick of the virtual clock; timers count ticks.
    our_mac, our_ip : In(48), In(32)
    now : Out(32)
        Ticks so far.
    idle : Out(1)
        No event in progress or waiting to start (ticks included).
    step : Out(EngineStep)
        The step the engine is in (for debugging and profiling only).
    udp_no_socket, udp_queue_full : Out(32)
        Datagrams dropped: from a source other than a connected socket's peer, or for lack
        of ring space.
    observe : Out(EngineObservation)
        Only with ``debug=True``: the event the engine takes and the timer that fires
        (``hdl.engine.observe``; for the testbench's coverage). A debug build is for
        simulation: its block RAMs' reads that meet a write of their word return the word
        inverted (``poison_collisions`` of the rings, the timers and the access table).
    send_ring_writer_error : Out(1)
        Only with ``debug=True``: the send ring's ``writer_error`` (a WRITE not at its tail
        or longer than its free bytes: never, if HOST_DECODE clips as it should).
    """

    def __init__(self, *, data_width, connections, processes, policy=Policy(), neighbors=8,
                 debug=False):
        check_data_width(data_width)
        if not isinstance(connections, int) or connections < 2 or connections & (connections - 1):
            raise TypeError(f"Connection count must be a power of two of at least 2, not {connections!r}")
        if not isinstance(processes, int) or processes < 2 or processes & (processes - 1):
            raise TypeError(f"Process count must be a power of two of at least 2, not {processes!r}")
        if not isinstance(policy, Policy):
            raise TypeError(f"Policy must be a model.policy.Policy, not {policy!r}")
        for name in ("rcv_buffer", "snd_buffer"):
            size = getattr(policy, name)
            if size & (size - 1) or not 64 <= size <= MAX_RING_BYTES:
                raise TypeError(f"Policy {name} must be a power of two from 64 to {MAX_RING_BYTES} for the "
                                f"hardware rings, not {size!r}")
        if policy.udp_rcv_buffer != policy.rcv_buffer:
            raise TypeError(f"Policy udp_rcv_buffer must equal rcv_buffer (one ring size), "
                            f"not {policy.udp_rcv_buffer!r} and {policy.rcv_buffer!r}")
        if policy.max_retries > 15 or policy.persist_max > 0xFFFF or (
                policy.rto_max > 0xFFFF and not policy.rtt_estimation):
            raise TypeError("Policy max_retries must be at most 15 and timer values at most 65535 "
                            "ticks (an estimated RTO: Policy's own bound)")
        if policy.dupack_threshold not in (1, 2, 3):
            raise TypeError(f"Policy dupack_threshold must be 1 to 3, not {policy.dupack_threshold!r}")
        if connections > 2 ** HOST_CONN_BITS:
            raise TypeError(f"Connection count must be at most {2 ** HOST_CONN_BITS} (the host "
                            f"command's connection field), not {connections!r}")
        if not isinstance(neighbors, int) or neighbors < 1:
            raise TypeError(f"Neighbour count must be a positive integer, not {neighbors!r}")
        self._data_width = data_width
        # the send ring gives each TCP payload's sum (64 bits: at 8, P per byte would double it)
        self._payload_sums = data_width == 64
        self._connections = connections
        self._processes = processes
        self._policy = policy
        self._neighbors = neighbors
        self._debug = bool(debug)
        conn_bits = exact_log2(connections)
        pid_bits = exact_log2(processes)
        beat = FrameBeat(data_width)
        debug_members = ({"observe": Out(EngineObservation(conn_bits, policy.rcv_buffer,
                                                           policy.snd_buffer)),
                          "send_ring_writer_error": Out(1)} if debug else {})
        super().__init__({
            "rx_event": In(stream.Signature(RxEvent(conn_bits))),
            "rx_action": Out(stream.Signature(RxAction())),
            "rx_payload": In(stream.Signature(beat)),
            "rx_hint": In(ConnHint(conn_bits)),
            "rx_taking": Out(1),
            **host_ports(pid_bits, beat),
            **control_ports(conn_bits, pid_bits),
            "access_control": In(stream.Signature(AccessControl(conn_bits, pid_bits))),
            "access_done": Out(1),
            "events": Out(stream.Signature(ConnEvent(conn_bits))),
            "tx_header": Out(stream.Signature(TxHeader(SACK_MAX_BLOCKS if policy.sack else 0))),
            "tx_payload": Out(stream.Signature(beat)),
            # each TCP payload's sum, from the send ring's range sums (see `payload_sums`)
            **({"tx_payload_sum": Out(stream.Signature(16))} if self._payload_sums else {}),
            "tick": In(1),
            "our_mac": In(48),
            "our_ip": In(32),
            "now": Out(32),
            "idle": Out(1),
            "step": Out(EngineStep),
            "udp_no_socket": Out(32),
            "udp_queue_full": Out(32),
            "rx_refused": Out(32),
            **debug_members,
        })

    @property
    def payload_sums(self):
        """Whether ``tx_payload_sum`` gives each TCP payload's sum (64-bit engines)."""
        return self._payload_sums

    @property
    def policy(self):
        return self._policy

    def elaborate(self, platform):
        m = Module()
        P = self._policy
        W = self._data_width
        L = W // 8
        N = self._connections
        conn_bits = exact_log2(N)
        R, S = P.rcv_buffer, P.snd_buffer
        record_beats = UDP_RECORD_BYTES // L

        # ----- storage -------------------------------------------------------------------
        # a debug build is a simulation build: its block RAMs' reads that meet a write of
        # their word come out inverted (undefined in silicon), so the tests would see a use
        poison = self._debug
        m.submodules.rx_ring = rx_ring = StreamBuffer(W, N, R, P.max_ooo_ranges,
                                                      read_queue=RING_READ_QUEUE_DEPTH,
                                                      poison_collisions=poison)
        # (the send ring's writes are the WRITEs, each at the tail and clipped to the free
        # bytes by HOST_DECODE: their beats go in before the ring's decision; a segment's
        # payload is read at its sequence number, which the ring holds: a positioned read,
        # decided without the ring's state)
        m.submodules.tx_ring = tx_ring = StreamBuffer(W, N, S, 0, read_queue=RING_READ_QUEUE_DEPTH,
                                                      poison_collisions=poison,
                                                      range_sums=self._payload_sums,
                                                      tail_writes=True, positioned_reads=True)
        if self._payload_sums:
            # the framer sends a TCP segment once its sum is in, its payload following
            wiring.connect(m, tx_ring.read_sum, wiring.flipped(self.tx_payload_sum))
        # host commands come checked against the access table (hdl/engine/host_gate.py)
        m.submodules.host_gate = gate = HostGate(connections=N, processes=self._processes,
                                                 poison_collisions=poison)
        wiring.connect(m, wiring.flipped(self.host_cmd), gate.cmd)
        wiring.connect(m, wiring.flipped(self.access_control), gate.access_control)
        m.d.comb += [self.access_done.eq(gate.access_done), self.rx_refused.eq(rx_ring.refused_count)]

        # the headers of segments emitted and not yet taken by the framer, which takes the next
        # one only as the frame before it starts out: EMIT hands its header over and goes on
        m.submodules.tx_headers = tx_headers = SyncFIFO(width=len(self.tx_header.payload.as_value()),
                                                        depth=TX_HEADER_QUEUE_DEPTH)
        m.d.comb += [self.tx_header.valid.eq(tx_headers.r_rdy),
                     self.tx_header.payload.eq(tx_headers.r_data),
                     tx_headers.r_en.eq(self.tx_header.ready)]

        rtt = P.rtt_estimation
        ws = P.window_scaling
        # our window fields: shifted right by the policy's count once both SYNs offered
        # scaling (a build constant: a shift of wires, no barrel shifter)
        our_shift = P.wscale if ws else 0
        sack = P.sack
        ring_bits = ring_count_bits(P)
        m.submodules.records = records = Memory(shape=ConnRecord(rtt, ws, sack, ring_bits),
                                                depth=N, init=[])
        rec_wr = records.write_port()
        rec_rd = records.read_port(transparent_for=(rec_wr,))

        # ----- registers -----------------------------------------------------------------
        step = Signal(EngineStep)
        ret = Signal(EngineStep)                 # where EMIT and REQUERY return to
        after_action = Signal(EngineStep)        # where ACTION returns to for a STORE
        then = Signal(EngineStep)                # where HOST_RESPOND and CTL_RESPOND go next
        ev = Signal(_Event)
        ctl_owed = Signal()                 # a control command waits for its response
        conn = Signal(conn_bits)
        t = Signal(ConnRecord(rtt, ws, sack, ring_bits))   # the record being worked on
        state0 = Signal(TcpState)           # its state and kind when loaded
        kind0 = Signal(ConnKind)
        rxq = Signal.like(rx_ring.query)    # ring states, latched
        txq = Signal.like(tx_ring.query)
        rx_free = Signal(range(R + 1))      # their free bytes
        tx_free = Signal(range(S + 1))
        m.d.comb += [rx_free.eq(ring_free(rxq, R)), tx_free.eq(ring_free(txq, S))]
        # the clock, and which connections a tick finds due (hdl/engine/timers.py)
        m.submodules.timers = timers = Timers(connections=N, poison_collisions=poison)
        now = timers.now
        m.d.comb += timers.tick.eq(self.tick)

        # the segment being processed (model: seg)
        seg_seq = Signal(32)
        seg_ack = Signal(32)
        seg_flags = Signal(TcpFlags())
        seg_wnd = Signal(16)
        seg_plen = Signal(16)               # payload length as received
        seg_last = Signal(32)               # SEG.SEQ + SEG.LEN - 1 (SEG.LEN counts SYN and FIN)
        seg_mss = Signal(16)                # a SYN's MSS option (0: none)
        seg_wscale_offered = Signal()       # a SYN's window scale option, and its shift count
        seg_wscale = Signal(4)
        seg_sack_permitted = Signal()       # a SYN's SACK-permitted option
        seg_src_ip = Signal(32)
        seg_src_port = Signal(16)
        seg_udp = Signal()
        from_wire = Signal()                # the receive path waits for an rx_action
        payload_kept = Signal()             # model: payload, after the zero-window rule
        fin_kept = Signal()                 # model: fin, after the zero-window rule
        route = Signal(RxRoute)

        ob = Signal(_Outbox)
        ob_seq = Signal(32)

        # the segment being emitted
        e_seq = Signal(32)
        e_ack = Signal(32)
        e_flags = Signal(TcpFlags())
        e_wnd = Signal(16)
        e_len = Signal(ring_bits)           # a segment's payload, or a host read's count
        acked_bytes = Signal(range(S + 1))  # what an ACK releases from the send ring
        e_syn_option = Signal()
        e_wscale_option = Signal()          # the SYN carries the window scale option too
        e_sack_permitted_option = Signal()  # ... and the SACK-permitted option
        e_sack_count = Signal(range(SACK_MAX_BLOCKS + 1))   # the SACK blocks it carries
        e_sack = Signal.like(self.tx_header.payload.sack) if sack else None
        e_udp = Signal()
        # a UDP datagram's destination (a TCP segment's is its record's template, which does
        # not change from the step that makes the segment to its EMIT)
        udp_dst_mac = Signal(48)
        udp_dst_ip = Signal(32)
        udp_dst_port = Signal(16)
        udp_hits = Signal(self._neighbors)  # the neighbour entries that hold udp_dst_ip
        hdr_sent = Signal()
        read_sent = Signal()

        # host and control commands
        hc = Signal.like(self.host_cmd.payload)
        cc = Signal.like(self.ctl_cmd.payload)
        rsp = Signal(HostResponse())
        crsp = Signal(ControlResponse())
        drain_after = Signal()              # HOST_RESPOND then drains the WRITE data
        write_back_at_action = Signal()     # the fast path: ACTION writes the record back
        write_back_at_emit = Signal()       # ... or its ACK's EMIT does, in its first clock

        # data routing, changed only between transfers
        wdata_to_ring = Signal()            # host_wdata -> send ring, until its beats are in
        wdata_to_framer = Signal()          # host_wdata -> framer payload (UDP send)
        wdata_drain = Signal()              # host_wdata consumed and dropped
        rdata_to_engine = Signal()          # receive ring read data -> UDP record capture
        ring_hdr = Signal()                 # receive ring write data <- UDP record header
        framer_reads = Signal(8)            # send-ring reads whose data is still on its way
        host_reads = Signal(8)              # receive-ring reads whose data is still on its way

        # UDP record headers (length, source), a beat at a time: one going into the receive
        # ring (`ring_hdr`; it may still be going out while the engine serves the next event)
        # and one captured from it for a host read (`rdata_to_engine`), each with registers
        # of its own: below 64 bits both can be under way at once
        hdr_beat = Signal(range(max(record_beats, 2)))
        hdr_bytes = Signal(8 * UDP_RECORD_BYTES)
        rec_len = Signal(16)
        rec_beat = Signal(range(max(record_beats, 2)))
        rec_bytes = Signal(8 * UDP_RECORD_BYTES)

        neighbor_valid = Signal(self._neighbors)
        neighbor_ip = Array(Signal(32, name=f"neighbor_ip_{i}") for i in range(self._neighbors))
        neighbor_mac = Array(Signal(48, name=f"neighbor_mac_{i}") for i in range(self._neighbors))

        udp_no_socket = Signal(32)
        udp_queue_full = Signal(32)
        m.d.comb += [self.udp_no_socket.eq(udp_no_socket), self.udp_queue_full.eq(udp_queue_full),
                     self.now.eq(now)]

        def goto(target):
            m.d.sync += step.eq(target)

        def call(target, back):
            m.d.sync += [step.eq(target), ret.eq(back)]

        def requery(back):
            call(EngineStep.REQUERY_1, back)

        def respond(next_step):
            """Answer the host command with `rsp`, then continue at `next_step`."""
            m.d.sync += [step.eq(EngineStep.HOST_RESPOND), then.eq(next_step)]

        def answer_ebadf(command=hc):
            """Answer the host command EBADF and drain its WRITE data; nothing else happens."""
            m.d.sync += [rsp.status.eq(Errno.EBADF),
                         drain_after.eq((command.op == HostOp.WRITE) & (command.length != 0))]
            respond(EngineStep.IDLE)

        def finish():
            """Send what the connection has to send, tell the receive path, write back."""
            goto(EngineStep.DISPATCH)

        wscale_ok = t.wscale_ok if ws else C(0, 1)

        def window_limit(space):
            return receive_window(P, wscale_ok, space)

        def advertised(window):
            return advertised_window(P, wscale_ok, window)

        # ----- derived quantities (model.tcp.Tcb properties) -------------------------------
        rcv_nxt = Signal(32)
        rcv_space = Signal(range(R + 1))    # the ring's free bytes within the cap (rcv.free)
        rcv_wnd = Signal(range(R + 1))      # ... at most what the window field can say
        syn_wnd = Signal(16)                # a SYN's window: never scaled
        adv_wnd = Signal(range(R + 1))      # the window a segment sent now says, in bytes
        peer_wnd = Signal(snd_wnd_bits(ws))     # the segment's window, scaled
        snd_space = Signal(range(S + 1))    # send_space: the ring's free bytes within the cap
        queued = Signal(range(S + 1))       # len(send_queue)
        readable = Signal(range(R + 1))
        offset = Signal(32)                 # SND.NXT - SND.UNA
        unsent = Signal(signed(34))
        eff_mss = t.eff_mss
        state = t.state
        # Tcb._sack_blocks (how many: the ring's valid ranges come first) and _data_room, the
        # effective MSS less the SACK option's bytes (RFC 6691), at least 1
        sack_blocks = Signal(range(SACK_MAX_BLOCKS + 1))
        data_room = Signal(16)
        if sack:
            said = [rxq.ranges[k] for k in range(min(P.max_ooo_ranges, SACK_MAX_BLOCKS))]
            option_bytes = Signal(8)
            m.d.comb += [
                sack_blocks.eq(Mux(t.sack_ok, sum((r.valid for r in said), Const(0, 1)), 0)),
                option_bytes.eq(4 + SACK_BLOCK_BYTES * sack_blocks),
                data_room.eq(Mux(sack_blocks == 0, eff_mss,
                                 Mux(eff_mss > option_bytes, eff_mss - option_bytes, 1))),
            ]
        else:
            m.d.comb += data_room.eq(eff_mss)
        m.d.comb += [
            rcv_nxt.eq(rxq.tail + t.fin_received),
            # the rings' free bytes within the socket's caps (SO_RCVBUF, SO_SNDBUF)
            rcv_space.eq(Mux(rx_free > t.rcv_reserve, rx_free - t.rcv_reserve, 0)),
            rcv_wnd.eq(window_limit(rcv_space)),
            syn_wnd.eq(Mux(rcv_space > 0xFFFF, 0xFFFF, rcv_space) if R > 0xFFFF else rcv_space),
            adv_wnd.eq(advertised(rcv_wnd)),
            # RFC 7323 2.3: a SYN's window is never scaled, so every use of it takes seg_wnd
            peer_wnd.eq(seg_wnd << t.snd_wscale if ws else seg_wnd),
            snd_space.eq(Mux(tx_free > t.snd_reserve, tx_free - t.snd_reserve, 0)),
            queued.eq(txq.tail - txq.head),
            readable.eq(rxq.tail - rxq.head),
            offset.eq(t.snd_nxt - t.snd_una),
            unsent.eq(queued - offset),
        ]
        # the receive fast path (Beehive's split, hdl/engine/rx_fast_path.py): an in-order
        # segment of data in ESTABLISHED that fits the window and acknowledges nothing new,
        # on a connection with nothing to send, no range held and no FIN pending; every other
        # segment takes the steps of Tcb.process one by one. Its decision follows the record,
        # ring states and segment registers by a clock (TCP_DECIDE).
        m.submodules.rx_fast_path = rx_fast_path = RxFastPath(P, ring_bits)
        fast = rx_fast_path.decision
        m.d.comb += [getattr(rx_fast_path.inputs, name).eq(value) for name, value in {
            "tcp": t.kind == ConnKind.TCP, "state": t.state, "fin_queued": t.fin_queued,
            "fin_received": t.fin_received, "fin_pending": t.fin_seq_valid, "orphan": t.orphan,
            "ranges_held": Cat(r.valid for r in rxq.ranges).any() if P.max_ooo_ranges else 0,
            "outbox": ob != _Outbox.NONE,
            "snd_una": t.snd_una, "snd_nxt": t.snd_nxt, "snd_wl1": t.snd_wl1, "snd_wl2": t.snd_wl2,
            **({"wscale_ok": t.wscale_ok, "snd_wscale": t.snd_wscale} if ws else {}),
            "rcv_reserve": t.rcv_reserve, "rx_head": rxq.head, "rx_tail": rxq.tail,
            "tx_head": txq.head, "tx_tail": txq.tail, "seq": seg_seq, "ack": seg_ack,
            "flags": seg_flags, "window": seg_wnd, "length": seg_plen}.items()]
        # a host command's verdict (hdl/engine/host_call.py: model.host's calls), from the
        # record, the rings' counts and the command; HOST_DECODE applies it
        m.submodules.host_call = host_call = HostCall(pid_bits=len(hc.pid), ring_bits=ring_bits)
        host_verdict = host_call.verdict
        m.d.comb += [getattr(host_call.inputs, name).eq(value) for name, value in {
            "kind": t.kind, "state": t.state, "error": t.error, "reset": t.reset,
            "fin_received": t.fin_received, "was_connected": t.was_connected,
            "shut_rd": t.shut_rd, "shut_wr": t.shut_wr, "peer_valid": t.template.peer_valid,
            "readable": readable, "snd_space": snd_space, "rcv_cap": R - t.rcv_reserve,
            "snd_cap": S - t.snd_reserve, "command": hc}.items()]
        # what a segment does before its ACK field (hdl/engine/rx_check.py:
        # Tcb._check_segment); its verdict follows the record, ring states and segment by two
        # clocks (TCP_DECIDE, TCP_START)
        m.submodules.rx_check = rx_check = RxCheck(P, ring_bits)
        check = rx_check.verdict
        m.d.comb += [getattr(rx_check.inputs, name).eq(value) for name, value in {
            "state": state, "iss": t.iss, "irs": t.irs, "snd_una": t.snd_una,
            "snd_nxt": t.snd_nxt, "snd_max": t.snd_max, "fin_queued": t.fin_queued,
            "passive": t.passive, "adv_mss": t.adv_mss, "rcv_nxt": rcv_nxt, "rcv_wnd": rcv_wnd,
            "seq": seg_seq, "last": seg_last, "ack": seg_ack, "flags": seg_flags,
            "window": seg_wnd, "peer_wnd": peer_wnd, "length": seg_plen, "mss": seg_mss,
            "wscale_offered": seg_wscale_offered, "wscale": seg_wscale,
            "sack_permitted": seg_sack_permitted}.items()]
        # what a segment's ACK field does (hdl/engine/rx_ack.py: Tcb._process_ack); its
        # verdict follows the record and segment by two clocks (TCP_ACK, TCP_ACK_WAIT)
        m.submodules.rx_ack = rx_ack = RxAck(P, ring_bits)
        ack_verdict = rx_ack.verdict
        m.d.comb += [getattr(rx_ack.inputs, name).eq(value) for name, value in {
            "state": state, "iss": t.iss, "snd_una": t.snd_una, "snd_nxt": t.snd_nxt,
            "snd_max": t.snd_max, "snd_wnd": t.snd_wnd, "snd_wl1": t.snd_wl1,
            "snd_wl2": t.snd_wl2, "queued": queued, "dupacks": t.dupacks,
            "fin_acked": t.fin_acked, "orphan": t.orphan, "seq": seg_seq, "ack": seg_ack,
            "peer_wnd": peer_wnd, "carries_data": (seg_plen != 0) | seg_flags.fin}.items()]
        # what a tick does to a connection it finds due (hdl/engine/timer_fire.py:
        # Tcb.on_timer); its verdict follows the record by two clocks (TIMER, TIMER_WAIT)
        m.submodules.timer_fire = timer_fire = TimerFire(P)
        timer_verdict = timer_fire.verdict
        m.d.comb += [getattr(timer_fire.inputs, name).eq(value) for name, value in {
            "live": (t.kind == ConnKind.TCP) & (state != TcpState.CLOSED), "state": state,
            "now": now, "close_armed": t.close_armed, "close_deadline": t.close_deadline,
            "rto_armed": t.rto_armed, "rto_deadline": t.rto_deadline,
            "persist_armed": t.persist_armed, "persist_deadline": t.persist_deadline,
            "persist_probes": t.persist_probes, "retries": t.retries,
            "window_zero": t.snd_wnd == 0, "queued": queued != 0,
            **({"rto": t.rto, "rto_base": t.rto_base} if rtt else {})}.items()]
        in_synchronized = one_of(state, *SYNCHRONIZED)
        in_syn_states = one_of(state, TcpState.SYN_SENT, TcpState.SYN_RECEIVED)

        if not rtt:
            rto_table = Array(Const(P.rto_after(k), 16) for k in range(16))
        persist_table = Array(Const(P.persist_after(k), 16) for k in range(16))

        if rtt:
            # Policy.rtt_estimation: the record keeps Tcb.rto (`rto`, after `retries` expiries)
            # and the RTO after none (`rto_base`); a sample goes through the estimator's
            # pipeline in the RTT_SAMPLE step, and an expiry doubles `rto` (min(2 rto_after(k),
            # rto_max) is rto_after(k + 1)), so no RTO is computed anywhere else
            m.submodules.rtt_estimator = estimator = RttEstimator(P)
            rtt_wait = Signal(range(RttEstimator.LATENCY + 1))
            rtt_then = Signal(EngineStep)       # where RTT_SAMPLE continues
            rtt_r = Signal(RTT_SAMPLE_BITS)
            m.d.comb += [estimator.state.eq(t.rtt), estimator.sample.eq(1),
                         estimator.r.eq(rtt_r), estimator.expiries.eq(0)]

        def enter_closed():
            """``Tcb._enter_closed``; the caller then empties the send ring (CLEAR_SEND_RING)."""
            m.d.sync += [t.state.eq(TcpState.CLOSED), t.rto_armed.eq(0), t.persist_armed.eq(0),
                         t.close_armed.eq(0), t.ack_needed.eq(0)]

        def enter_reset(error):
            m.d.sync += [t.error.eq(error), t.reset.eq(1)]
            enter_closed()

        def enter_time_wait():
            m.d.sync += [t.state.eq(TcpState.TIME_WAIT), t.rto_armed.eq(0), t.persist_armed.eq(0),
                         t.close_armed.eq(1), t.close_deadline.eq(now + P.time_wait)]

        def flags(**bits):
            return Cat(*(bits.get(name, Const(0, 1)) for name, _ in TcpFlags()))

        def segment(*, seq, ack, flags, window, length=0, syn_option=0, wscale_option=0,
                    sack_permitted_option=0):
            """The TCP segment that the EMIT step sends (``Tcb._segment``'s fields); `window`
            in bytes: ``advertised`` for any segment but a SYN, whose window is unscaled; its
            `length` payload bytes are the send ring's from `seq` (ring offsets are sequence
            numbers), which dispatch only names within the bytes queued. A
            segment with ACK but not SYN or RST carries the held ranges as SACK blocks once
            both SYNs offered SACK (``Tcb._sack_blocks``: the ring keeps them most recently
            written first)."""
            field = window
            if our_shift and not syn_option:
                field = Mux(t.wscale_ok, window >> our_shift, window)
            if ws:
                m.d.sync += e_wscale_option.eq(wscale_option)
            if sack:
                bits = TcpFlags()(flags)
                m.d.sync += [
                    e_sack_permitted_option.eq(sack_permitted_option),
                    e_sack_count.eq(Mux(bits.ack & ~bits.syn & ~bits.rst, sack_blocks, 0)),
                    *(edge.eq(value) for k in range(min(P.max_ooo_ranges, SACK_MAX_BLOCKS))
                      for edge, value in ((e_sack[k].left, rxq.ranges[k].lo),
                                          (e_sack[k].right, rxq.ranges[k].hi))),
                ]
            m.d.sync += [e_seq.eq(seq), e_ack.eq(ack), e_flags.eq(flags), e_wnd.eq(field),
                         e_len.eq(length), e_syn_option.eq(syn_option),
                         e_udp.eq(0), hdr_sent.eq(0), read_sent.eq(length == 0)]

        def emit(back, **fields):
            """Send one TCP segment and continue at `back`."""
            segment(**fields)
            call(EngineStep.EMIT, back)

        def read_payload(position, length, *, offer):
            """Offer the send ring the positioned read of a segment's `length` payload bytes
            from `position` while `offer`; whether it is taken in this clock."""
            m.d.comb += [tx_ring.read_cmd.valid.eq(offer),
                         tx_ring.read_cmd.payload.length.eq(length),
                         tx_ring.read_cmd.payload.positioned.eq(1),
                         tx_ring.read_cmd.payload.position.eq(position),
                         # (no send-ring read skips; driven here, with the rest)
                         tx_ring.read_cmd.payload.skip.eq(0),
                         tx_ring.read_cmd.payload.peek.eq(1)]
            taken = offer & tx_ring.read_cmd.ready
            m.d.comb += framer_read_starts.eq(taken)
            return taken

        def sent(window, *, end=None, extends=None, resend=None):
            """``Tcb._sent``: bookkeeping for a segment that dispatch hands out, which says
            `window`; for one with SEG.LEN > 0, its `end` (SEG.SEQ + SEG.LEN), whether that
            `extends` beyond SND.MAX and whether it is a `resend` (it starts before SND.MAX)."""
            m.d.sync += [t.last_adv_wnd.eq(window), t.ack_needed.eq(0)]
            if end is None:
                return
            with m.If(extends):
                m.d.sync += t.snd_max.eq(end)
            with m.If(~t.rto_armed):
                m.d.sync += [t.rto_armed.eq(1),
                             t.rto_deadline.eq(now + (t.rto if rtt else rto_table[t.retries]))]
            if rtt:
                with m.If(resend):
                    m.d.sync += t.rtt_timing.eq(0)          # Karn: no sample from a resend
                with m.Elif(~t.rtt_timing):
                    m.d.sync += [t.rtt_timing.eq(1), t.rtt_seq.eq(end), t.rtt_start.eq(now)]

        def write_back():
            """The record goes back to its RAM, and its timers to the timers unit."""
            m.d.comb += rec_wr.en.eq(1)
            m.d.comb += [timers.update.valid.eq(1), timers.update.payload.conn.eq(conn)]
            for name in TIMERS:
                m.d.comb += [
                    timers.update.payload[name].armed.eq(
                        (t.kind == ConnKind.TCP) & t[f"{name}_armed"]),
                    timers.update.payload[name].deadline.eq(t[f"{name}_deadline"])]

        def rtt_ack(then):
            """``Tcb._rtt_ack`` and ``rto = rto_after(0)`` for an ACK that advances SND.UNA,
            then on at `then`; written after the caller's own step and deadline, which it
            overrides (no code without Policy.rtt_estimation)."""
            if not rtt:
                return
            m.d.sync += [t.rto.eq(t.rto_base), t.rto_deadline.eq(now + t.rto_base)]
            with m.If(t.rtt_timing & seq_le(t.rtt_seq, seg_ack)):
                elapsed = Signal(32, name="rtt_elapsed")
                m.d.comb += elapsed.eq(now - t.rtt_start)
                m.d.sync += [t.rtt_timing.eq(0), rtt_then.eq(then), rtt_wait.eq(0),
                             rtt_r.eq(Mux(elapsed >> RTT_SAMPLE_BITS != 0,
                                          2 ** RTT_SAMPLE_BITS - 1, elapsed))]
                goto(EngineStep.RTT_SAMPLE)

        def fast_store():
            """The receive fast path, all of Tcb.process and Tcb.dispatch for its segment:
            the check (RxCheck): acceptable, no RST or SYN, ACK set; TCP_ACK: nothing newly
            acknowledged, no duplicate (it carries data); TCP_ACK_APPLY: the send window;
            TCP_DATA and TCP_DATA_WRITE: the payload goes in whole, so the tail moves by its
            length (no range held); TCP_FIN: none; DISPATCH: no outbox and nothing unsent, so
            DISPATCH_ACK's pure ACK of the new RCV.NXT, sent after the receive path's action."""
            m.d.comb += [rx_ring.write_cmd.valid.eq(1),
                         rx_ring.write_cmd.payload.offset.eq(seg_seq),
                         rx_ring.write_cmd.payload.length.eq(seg_plen),
                         rx_ring.write_cmd.payload.reserve.eq(t.rcv_reserve),
                         fast_write.eq(1)]
            with m.If(rx_ring.write_cmd.ready):
                with m.If(fast.window_update):
                    m.d.sync += [t.snd_wnd.eq(fast.snd_wnd), t.snd_wl1.eq(seg_seq),
                                 t.snd_wl2.eq(seg_ack)]
                with m.If(fast.persist_stop):
                    m.d.sync += [t.persist_armed.eq(0), t.persist_probes.eq(0)]
                sent(fast.adv_wnd)
                segment(seq=t.snd_nxt, ack=fast.ack, flags=flags(ack=1), window=fast.adv_wnd)
                # the record is final after this clock (the state does not change, so no
                # event goes to the host); the receive path learns STORE in this clock if it
                # takes it, and the ACK's EMIT writes the record back and ends the event; else
                # ACTION waits for the receive path and writes it back
                m.d.sync += [route.eq(RxRoute.STORE), ret.eq(EngineStep.IDLE)]
                m.d.comb += [self.rx_action.valid.eq(from_wire),
                             self.rx_action.payload.route.eq(RxRoute.STORE)]
                with m.If(from_wire & self.rx_action.ready):
                    m.d.sync += [from_wire.eq(0), write_back_at_emit.eq(1)]
                    goto(EngineStep.EMIT)
                with m.Else():
                    m.d.sync += [after_action.eq(EngineStep.EMIT), write_back_at_action.eq(1)]
                    goto(EngineStep.ACTION)
            with m.Else():
                goto(EngineStep.FAST_STORE)

        # a ring command on the connection queried is still to be decided (a command on
        # another connection does not hold this one's state back)
        rings_pending = rx_ring.query_pending | tx_ring.query_pending
        # What IDLE reads: the connection of the event or command offered, else the one the
        # receive path expects next (`rx_hint`), else that of the host command the gate
        # checks (its `hint`), else the last clock's. `prefetched`: the engine was IDLE last
        # clock, reading `read_conn` with no ring command on it to be decided, so an event or
        # host command of that connection taken now finds its record and ring states read as
        # LOAD_WAIT would have them: it goes to LATCH at once. And if that was so two clocks
        # ago too (`prefetched_2`, `read_conn_2`), they are there now, as LATCH would find
        # them: IDLE latches them itself (`latch_in_idle`).
        idle_conn = Signal(conn_bits)
        read_conn = Signal(conn_bits)
        prefetched = Signal()
        read_conn_2 = Signal(conn_bits)
        prefetched_2 = Signal()
        m.d.comb += idle_conn.eq(
            Mux(self.rx_event.valid, self.rx_event.payload.conn,
                Mux(gate.checked.valid, gate.checked.payload.command.conn[:conn_bits],
                    Mux(self.rx_hint.valid, self.rx_hint.conn,
                        Mux(gate.hint.valid, gate.hint.conn, read_conn)))))
        m.d.sync += [read_conn.eq(idle_conn),
                     prefetched.eq((step == EngineStep.IDLE) & ~rings_pending),
                     read_conn_2.eq(read_conn), prefetched_2.eq(prefetched)]
        latch_in_idle = Signal()            # IDLE takes an event and latches its connection
        idle_latch_source = Signal(_Event)  # ... a segment's or a host command's
        idle_latch_conn = Signal(conn_bits)

        def take_prefetched(source, event_conn, then):
            """IDLE takes an event (`source`) of connection `event_conn` whose record and
            ring states were read ahead: it latches them and goes on at `then`, or goes to
            LATCH if they come in the next clock. (The caller's Elif and Else follow: they
            are to be read.)"""
            with m.If(prefetched_2 & prefetched & (read_conn_2 == event_conn)
                      & (read_conn == event_conn)):
                m.d.comb += [latch_in_idle.eq(1), idle_latch_source.eq(source),
                             idle_latch_conn.eq(event_conn)]
                latch()
                goto(then)
            with m.Elif(prefetched & (read_conn == event_conn)):
                goto(EngineStep.LATCH)

        def latch():
            """The record and the rings' states, read for `conn`, become the event's."""
            m.d.sync += [t.eq(rec_rd.data), state0.eq(rec_rd.data.state),
                         kind0.eq(rec_rd.data.kind),
                         rxq.eq(rx_query), txq.eq(tx_ring.query)]
        # (IDLE takes a control command first, then a received segment)
        m.d.comb += self.rx_taking.eq((step == EngineStep.IDLE) & ~self.ctl_cmd.valid)
        # The receive ring's tail after the last write it took, when that was the fast
        # path's: in order, the whole payload, no range held before or after, so the ring
        # decides tail = fast.ack. A segment of the same connection right behind it need not
        # wait for that decision: its LATCH takes this tail instead of the query's. Any other
        # write or an install ends it.
        fast_write = Signal()
        fwd_valid = Signal()
        fwd_conn = Signal(conn_bits)
        fwd_tail = Signal(32)
        use_fwd = Signal()
        with m.If(rx_ring.write_cmd.valid & rx_ring.write_cmd.ready):
            m.d.sync += [fwd_valid.eq(fast_write), fwd_conn.eq(conn), fwd_tail.eq(fast.ack)]
        with m.If(rx_ring.init.valid & rx_ring.init.ready):
            m.d.sync += fwd_valid.eq(0)
        rx_query = Signal.like(rx_ring.query)   # the receive ring's state as LATCH takes it
        m.d.comb += rx_query.eq(rx_ring.query)
        with m.If(use_fwd):
            m.d.comb += rx_query.tail.eq(fwd_tail)

        # the next segment the window allows (Tcb._next_segment), worked out in a pipeline
        # that follows the record and ring state as they change (valid once they have held)
        m.submodules.tx_segmenter = tx_segmenter = TxSegmenter(P)
        next_segment = tx_segmenter.decision
        m.d.comb += [getattr(tx_segmenter.inputs, name).eq(value) for name, value in {
            "snd_una": t.snd_una, "snd_nxt": t.snd_nxt, "snd_max": t.snd_max,
            "snd_wnd": t.snd_wnd, "tx_head": txq.head, "tx_tail": txq.tail,
            "data_room": data_room, "fin_queued": t.fin_queued, "fin_acked": t.fin_acked}.items()]

        # ----- port defaults ---------------------------------------------------------------
        rec_rd_en = Signal()
        m.d.comb += [rec_rd.addr.eq(conn), rec_rd.en.eq(rec_rd_en),
                     rec_wr.addr.eq(conn), rec_wr.data.eq(t),
                     rx_ring.query_conn.eq(conn), tx_ring.query_conn.eq(conn)]
        for ring in (rx_ring, tx_ring):
            m.d.comb += [ring.write_cmd.payload.conn.eq(conn), ring.read_cmd.payload.conn.eq(conn),
                         ring.init.payload.conn.eq(conn), ring.read_resp.ready.eq(1)]
        # the receive ring's decisions are read back from its state (`requery`), not from its
        # write responses (given at the decision, before the bytes move)
        m.d.comb += rx_ring.write_resp.ready.eq(1)

        # receive ring write data: the receive path's payload, or a UDP record header
        hdr_word = Signal(W)
        if record_beats == 1:
            m.d.comb += hdr_word.eq(hdr_bytes)
        else:
            m.d.comb += hdr_word.eq(hdr_bytes.word_select(hdr_beat, W))
        with m.If(ring_hdr):
            m.d.comb += [rx_ring.write_data.valid.eq(1),
                         rx_ring.write_data.payload.data.eq(hdr_word),
                         rx_ring.write_data.payload.keep.eq((1 << L) - 1),
                         rx_ring.write_data.payload.last.eq(hdr_beat == record_beats - 1)]
            with m.If(rx_ring.write_data.ready):
                m.d.sync += hdr_beat.eq(hdr_beat + 1)
                with m.If(hdr_beat == record_beats - 1):
                    m.d.sync += [ring_hdr.eq(0), hdr_beat.eq(0)]
        with m.Else():
            wiring.connect(m, wiring.flipped(self.rx_payload), rx_ring.write_data)

        # receive ring read data: to the host, or captured as a UDP record header
        with m.If(rdata_to_engine):
            m.d.comb += rx_ring.read_data.ready.eq(1)
            with m.If(rx_ring.read_data.valid):
                if record_beats == 1:
                    m.d.sync += rec_bytes.eq(rx_ring.read_data.payload.data)
                else:
                    m.d.sync += rec_bytes.word_select(rec_beat, W).eq(rx_ring.read_data.payload.data)
                m.d.sync += rec_beat.eq(rec_beat + 1)
                with m.If(rx_ring.read_data.payload.last):
                    m.d.sync += [rdata_to_engine.eq(0), rec_beat.eq(0)]
        with m.Else():
            wiring.connect(m, rx_ring.read_data, wiring.flipped(self.host_rdata))
        host_read_ends = self.host_rdata.valid & self.host_rdata.ready & self.host_rdata.payload.last

        # host write data: to the send ring, to the framer (UDP), or drained; a WRITE's beats
        # go to the send ring from its command until the ring has them all.
        # The send ring's only writes are WRITEs, each taking `taken` bytes: the ring takes
        # min(length, its free bytes less the reserve), and its free bytes only grow between
        # the query LATCH took and the decision (releases; the ring holds a query of the
        # connection while a command on it is undecided). So the engine answers and goes on
        # from the command; the ring's answer only ends `tx_write_undecided`, which with
        # `write_busy` (from the decision until the ring has its bytes) has the beats go to it.
        tx_write_starts = Signal()
        tx_write_undecided = Signal()
        m.d.comb += tx_ring.write_resp.ready.eq(1)
        with m.If(tx_ring.write_resp.valid):
            m.d.sync += tx_write_undecided.eq(0)
        with m.If(tx_write_starts):
            m.d.sync += tx_write_undecided.eq(1)
        m.d.comb += wdata_to_ring.eq(tx_write_undecided | tx_ring.write_busy)
        with m.If(wdata_to_ring):
            wiring.connect(m, wiring.flipped(self.host_wdata), tx_ring.write_data)
        with m.Elif(wdata_drain):
            m.d.comb += self.host_wdata.ready.eq(1)
            with m.If(self.host_wdata.valid & self.host_wdata.payload.last):
                m.d.sync += wdata_drain.eq(0)
        # framer payload: send-ring reads, or the host's UDP datagram
        with m.If(wdata_to_framer):
            wiring.connect(m, wiring.flipped(self.host_wdata), wiring.flipped(self.tx_payload))
            with m.If(self.host_wdata.valid & self.host_wdata.ready & self.host_wdata.payload.last):
                m.d.sync += wdata_to_framer.eq(0)
        with m.Else():
            wiring.connect(m, tx_ring.read_data, wiring.flipped(self.tx_payload))
        framer_read_ends = (~wdata_to_framer & tx_ring.read_data.valid & tx_ring.read_data.ready
                            & tx_ring.read_data.payload.last)

        framer_read_starts = Signal()
        host_read_starts = Signal()
        m.d.sync += [framer_reads.eq(framer_reads + framer_read_starts - framer_read_ends),
                     host_reads.eq(host_reads + host_read_starts - host_read_ends)]

        # the framer header, from the emit registers and the template
        hdr = Signal.like(self.tx_header.payload)
        m.d.comb += tx_headers.w_data.eq(hdr)
        m.d.comb += [
            hdr.dst_mac.eq(Mux(e_udp, udp_dst_mac, t.template.remote_mac)),
            hdr.src_mac.eq(self.our_mac), hdr.src_ip.eq(self.our_ip),
            hdr.dst_ip.eq(Mux(e_udp, udp_dst_ip, t.template.remote_ip)),
            hdr.protocol.eq(Mux(e_udp, L4Protocol.UDP, L4Protocol.TCP)),
            hdr.src_port.eq(t.template.local_port),
            hdr.dst_port.eq(Mux(e_udp, udp_dst_port, t.template.remote_port)),
            hdr.seq.eq(e_seq), hdr.ack.eq(e_ack), hdr.flags.eq(e_flags), hdr.window.eq(e_wnd),
            hdr.mss.eq(t.adv_mss), hdr.mss_option.eq(e_syn_option),
            hdr.wscale_option.eq(e_wscale_option), hdr.length.eq(e_len),
            hdr.sack_permitted_option.eq(e_sack_permitted_option),
        ]
        if sack:
            m.d.comb += [hdr.sack_count.eq(e_sack_count), hdr.sack.eq(e_sack)]

        m.d.comb += self.idle.eq((step == EngineStep.IDLE) & timers.idle
                                 & ~self.rx_event.valid & ~self.host_cmd.valid & gate.idle
                                 & ~self.ctl_cmd.valid
                                 & (framer_reads == 0) & (host_reads == 0) & ~rx_ring.busy
                                 & (tx_headers.level == 0)
                                 & ~tx_ring.busy
                                 & ~wdata_drain & ~wdata_to_ring & ~ring_hdr)
        # (IDLE latching a segment's connection does LATCH's work: it shows as LATCH)
        m.d.comb += self.step.eq(Mux(latch_in_idle, EngineStep.LATCH, step))

        # ----- the engine ----------------------------------------------------------------
        with m.Switch(step):
            with m.Case(EngineStep.IDLE):
                # one event at a time: control, received frames, host commands, then a
                # timer tick (its due connections, found by the timers unit, each in turn).
                # The record and the rings' states of the segment's or host command's
                # connection are read in any case (a read that is not used does no harm):
                # LOAD_WAIT follows unless a ring command on it is still to be decided.
                # With neither, those of the connection the receive path expects next, or
                # the last clock's (`prefetched`)
                m.d.comb += [rec_rd.addr.eq(idle_conn), rec_rd_en.eq(1),
                             rx_ring.query_conn.eq(idle_conn), tx_ring.query_conn.eq(idle_conn)]
                m.d.sync += [ob.eq(_Outbox.NONE), from_wire.eq(0), ctl_owed.eq(0), use_fwd.eq(0),
                             route.eq(RxRoute.DISCARD), rsp.eq(0), crsp.eq(0), drain_after.eq(0),
                             write_back_at_action.eq(0), write_back_at_emit.eq(0)]
                with m.If(self.ctl_cmd.valid):
                    m.d.comb += self.ctl_cmd.ready.eq(1)
                    m.d.sync += [cc.eq(self.ctl_cmd.payload), conn.eq(self.ctl_cmd.payload.conn),
                                 ev.eq(_Event.CONTROL), ctl_owed.eq(1)]
                    goto(EngineStep.CTL_DECODE)
                with m.Elif(self.rx_event.valid):
                    p = self.rx_event.payload
                    m.d.comb += self.rx_event.ready.eq(1)
                    m.d.sync += [conn.eq(p.conn), ev.eq(_Event.RX), from_wire.eq(1),
                                 seg_udp.eq(p.udp), seg_seq.eq(p.seq), seg_ack.eq(p.ack),
                                 seg_last.eq(p.seq + (p.payload_length + p.flags.syn
                                                      + p.flags.fin - 1)),
                                 seg_flags.eq(p.flags), seg_wnd.eq(p.window),
                                 seg_plen.eq(p.payload_length), seg_mss.eq(p.mss),
                                 seg_wscale_offered.eq(p.wscale_offered), seg_wscale.eq(p.wscale),
                                 seg_sack_permitted.eq(p.sack_permitted),
                                 seg_src_ip.eq(p.src_ip), seg_src_port.eq(p.src_port)]
                    # the rings' states are there two clocks on (QUERY_LATENCY) unless a
                    # command on that connection is still to be decided (but for a fast path
                    # write, whose tail is known)
                    forward = fwd_valid & (fwd_conn == p.conn) & ~rx_ring.query_read_pending
                    take_prefetched(_Event.RX, p.conn,
                                    Mux(p.udp, EngineStep.UDP_START, EngineStep.TCP_DECIDE))
                    with m.Elif(tx_ring.query_pending | (rx_ring.query_pending & ~forward)):
                        goto(EngineStep.LOAD)
                    with m.Else():
                        m.d.sync += use_fwd.eq(forward)
                        goto(EngineStep.LOAD_WAIT)
                with m.Elif(gate.checked.valid
                            & ((~wdata_to_ring & ~wdata_drain)
                               | (gate.checked.payload.command.op != HostOp.WRITE))):
                    # (a WRITE's beats still moving into the send ring, or being drained, hold
                    # the next WRITE, whose beats come after them, but not a command without
                    # data. Taken at once, a WRITE would have the engine emit segments whose
                    # bytes are still to come from the host: the framer would wait for them,
                    # and the frames behind, the ACKs among them, with it.)
                    command = gate.checked.payload.command
                    m.d.comb += gate.checked.ready.eq(1)
                    # (a connection number past the last slot is never allowed)
                    m.d.sync += [hc.eq(command), conn.eq(command.conn[:conn_bits]),
                                 ev.eq(_Event.HOST)]
                    with m.If(~gate.checked.payload.allowed):
                        # no access: EBADF; the process learns nothing and disturbs nothing
                        answer_ebadf(command)
                    with m.Else():
                        take_prefetched(_Event.HOST, command.conn[:conn_bits],
                                        EngineStep.HOST_DECODE)
                        with m.Elif(rings_pending):
                            goto(EngineStep.LOAD)
                        with m.Else():
                            goto(EngineStep.LOAD_WAIT)
                with m.Elif(timers.tick_ready):
                    m.d.comb += timers.tick_take.eq(1)
                    m.d.sync += ev.eq(_Event.TICK)
                    goto(EngineStep.TICK_START)

            # ----- loading and writing back a connection ---------------------------------
            with m.Case(EngineStep.LOAD):
                m.d.comb += rec_rd_en.eq(1)
                m.d.sync += use_fwd.eq(0)
                with m.If(~rings_pending):
                    goto(EngineStep.LOAD_WAIT)

            with m.Case(EngineStep.LOAD_WAIT):
                # (the record's read port holds its word: its enable is low)
                assert QUERY_LATENCY == 2, "LOAD_WAIT and REQUERY_2 wait the query's second clock"
                goto(EngineStep.LATCH)

            with m.Case(EngineStep.LATCH):
                latch()
                with m.Switch(ev):
                    with m.Case(_Event.RX):
                        goto(Mux(seg_udp, EngineStep.UDP_START, EngineStep.TCP_DECIDE))
                    with m.Case(_Event.HOST):
                        goto(EngineStep.HOST_DECODE)
                    with m.Case(_Event.CONTROL):
                        goto(EngineStep.CTL_LOADED)
                    with m.Case(_Event.TICK):
                        goto(EngineStep.TIMER)

            with m.Case(EngineStep.REQUERY_1):
                # the rings' states are in their RAMs; the query shows them QUERY_LATENCY
                # cycles later
                with m.If(~rings_pending):
                    goto(EngineStep.REQUERY_2)
            with m.Case(EngineStep.REQUERY_2):
                goto(EngineStep.REQUERY_3)
            with m.Case(EngineStep.REQUERY_3):
                m.d.sync += [rxq.eq(rx_ring.query), txq.eq(tx_ring.query), step.eq(ret)]

            with m.Case(EngineStep.WRITE_BACK):
                # the record goes back; host software hears of a completed handshake and of
                # a connection that reached CLOSED
                write_back()
                tcp0 = (kind0 == ConnKind.TCP)
                with m.If(tcp0 & one_of(state0, TcpState.SYN_SENT, TcpState.SYN_RECEIVED)
                          & in_synchronized):
                    goto(EngineStep.PUSH_SYNC_EVENT)
                with m.Elif(tcp0 & (state0 != TcpState.CLOSED) & (state == TcpState.CLOSED)):
                    goto(EngineStep.PUSH_CLOSED_EVENT)
                with m.Else():
                    goto(Mux(ev == _Event.TICK, EngineStep.TICK_NEXT, EngineStep.IDLE))

            with m.Case(EngineStep.PUSH_SYNC_EVENT):
                m.d.comb += [self.events.valid.eq(1), self.events.payload.conn.eq(conn),
                             self.events.payload.kind.eq(EventKind.SYNCHRONIZED)]
                with m.If(self.events.ready):
                    goto(Mux(ev == _Event.TICK, EngineStep.TICK_NEXT, EngineStep.IDLE))

            with m.Case(EngineStep.PUSH_CLOSED_EVENT):
                m.d.comb += [self.events.valid.eq(1), self.events.payload.conn.eq(conn),
                             self.events.payload.kind.eq(EventKind.CLOSED)]
                with m.If(self.events.ready):
                    goto(Mux(ev == _Event.TICK, EngineStep.TICK_NEXT, EngineStep.IDLE))

            # ----- emitting one segment ----------------------------------------------------
            with m.Case(EngineStep.EMIT):
                with m.If(write_back_at_emit):
                    write_back()
                    m.d.sync += write_back_at_emit.eq(0)
                m.d.comb += tx_headers.w_en.eq(~hdr_sent)
                hdr_now = ~hdr_sent & tx_headers.w_rdy
                read_now = read_payload(e_seq, e_len, offer=~read_sent)
                with m.If(hdr_now):
                    m.d.sync += hdr_sent.eq(1)
                with m.If(read_now):
                    m.d.sync += read_sent.eq(1)
                with m.If((hdr_sent | hdr_now) & (read_sent | read_now)):
                    m.d.sync += step.eq(ret)

            # ----- receive: TCP (Tcb.process) ---------------------------------------------
            with m.Case(EngineStep.TCP_START):
                with m.If(fast.take):
                    fast_store()
                with m.Elif((t.kind != ConnKind.TCP) | (state == TcpState.CLOSED)):
                    # no connection (the model has deleted its TCB): host software answers
                    m.d.sync += route.eq(RxRoute.SLOW)
                    goto(EngineStep.ACTION)
                with m.Else():
                    goto(EngineStep.TCP_CHECK)

            with m.Case(EngineStep.TCP_CHECK):
                # Tcb._check_segment: SYN-SENT, TIME-WAIT, SYN-RECEIVED's special cases, then
                # the sequence number check, RST, SYN and the ACK bit; its verdict follows the
                # record and segment as LATCH left them by TCP_DECIDE and TCP_START
                assert CHECK_LATENCY == 2, "TCP_DECIDE and TCP_START wait the check verdict"
                v = check
                m.d.sync += [payload_kept.eq(v.payload_kept), fin_kept.eq(v.fin_kept),
                             t.state.eq(v.state), t.snd_nxt.eq(v.snd_nxt)]
                with m.If(v.ack_needed):
                    m.d.sync += t.ack_needed.eq(1)
                with m.If(v.syn_acked):
                    m.d.sync += [t.snd_una.eq(seg_ack), t.rto_armed.eq(0), t.retries.eq(0)]
                with m.If(v.window_update):
                    m.d.sync += [t.snd_wnd.eq(v.snd_wnd), t.snd_wl1.eq(seg_seq),
                                 t.snd_wl2.eq(v.snd_wl2)]
                with m.If(v.syn_taken):
                    m.d.sync += [t.irs.eq(seg_seq), t.eff_mss.eq(v.eff_mss)]
                    if ws:                          # Tcb._negotiate_options
                        m.d.sync += [t.wscale_ok.eq(v.wscale_ok), t.snd_wscale.eq(v.snd_wscale)]
                    if sack:
                        m.d.sync += t.sack_ok.eq(v.sack_ok)
                with m.If(v.rst_reply):
                    m.d.sync += [ob.eq(_Outbox.RST_REPLY), ob_seq.eq(seg_ack)]
                with m.If(v.time_wait_restart):
                    m.d.sync += [t.close_armed.eq(1), t.close_deadline.eq(now + P.time_wait)]
                with m.If(v.reset):
                    m.d.sync += [t.error.eq(v.error), t.reset.eq(1)]
                with m.If(v.closed):
                    enter_closed()
                with m.Switch(v.next):
                    with m.Case(CheckNext.DISPATCH):
                        finish()
                    with m.Case(CheckNext.ACK):
                        goto(EngineStep.TCP_ACK)
                    with m.Case(CheckNext.SYN_SENT_INIT):
                        goto(EngineStep.TCP_SYN_SENT_INIT)
                    with m.Case(CheckNext.CLOSE):
                        goto(EngineStep.CLEAR_SEND_RING)
                if rtt:
                    with m.If(v.syn_acked):         # (a handshake's next is one of two)
                        rtt_ack(Mux(v.next == CheckNext.SYN_SENT_INIT,
                                    EngineStep.TCP_SYN_SENT_INIT, EngineStep.DISPATCH))

            with m.Case(EngineStep.TCP_DECIDE):
                # the record, ring states and segment settle into the fast path's registers
                goto(EngineStep.TCP_START)

            with m.Case(EngineStep.FAST_STORE):
                fast_store()

            if rtt:
                with m.Case(EngineStep.RTT_SAMPLE):
                    # the sample's new estimate and RTO, LATENCY clocks after its inputs settled
                    with m.If(rtt_wait == RttEstimator.LATENCY):
                        m.d.sync += [t.rtt.eq(estimator.after), t.rto.eq(estimator.rto),
                                     t.rto_base.eq(estimator.rto),
                                     t.rto_deadline.eq(now + estimator.rto), step.eq(rtt_then)]
                    with m.Else():
                        m.d.sync += rtt_wait.eq(rtt_wait + 1)

            with m.Case(EngineStep.TCP_SYN_SENT_INIT):
                # the receive ring starts at IRS + 1
                m.d.comb += [rx_ring.init.valid.eq(1), rx_ring.init.payload.offset.eq(t.irs + 1)]
                with m.If(rx_ring.init.ready):
                    requery(EngineStep.DISPATCH)

            with m.Case(EngineStep.TCP_ACK):
                # fifth: ACK (Tcb._process_ack): the ACK verdict's registers follow the
                # record, as the steps before left it, and the segment (RxAck)
                assert ACK_LATENCY == 2, "TCP_ACK and TCP_ACK_WAIT wait the ACK verdict's clocks"
                goto(EngineStep.TCP_ACK_WAIT)

            with m.Case(EngineStep.TCP_ACK_WAIT):
                goto(EngineStep.TCP_ACK_APPLY)

            with m.Case(EngineStep.TCP_ACK_APPLY):
                v = ack_verdict
                with m.If(v.unsent):
                    m.d.sync += t.ack_needed.eq(1)         # acknowledges what we never sent
                    finish()
                with m.Else():
                    m.d.sync += [t.snd_una.eq(v.snd_una), t.snd_nxt.eq(v.snd_nxt),
                                 t.fin_acked.eq(v.fin_acked), t.dupacks.eq(v.dupacks),
                                 t.state.eq(v.state), acked_bytes.eq(v.released)]
                    with m.If(v.advanced):
                        m.d.sync += [t.retries.eq(0), t.rto_armed.eq(v.rto_running),
                                     t.rto_deadline.eq(now + P.rto_initial)]
                    with m.If(v.fast_retransmit):
                        m.d.sync += ob.eq(_Outbox.FAST)
                        if rtt:
                            m.d.sync += t.rtt_timing.eq(0)      # Karn: no sample from a resend
                    with m.If(v.window_update):
                        m.d.sync += [t.snd_wnd.eq(peer_wnd), t.snd_wl1.eq(seg_seq),
                                     t.snd_wl2.eq(seg_ack)]
                    with m.If(v.persist_stop):
                        m.d.sync += [t.persist_armed.eq(0), t.persist_probes.eq(0)]
                    with m.If(v.fin_wait_2_timer):
                        m.d.sync += [t.close_armed.eq(1),
                                     t.close_deadline.eq(now + P.fin_wait_2_timeout)]
                    with m.If(v.time_wait):
                        enter_time_wait()
                    with m.If(v.closed):
                        enter_closed()                      # (the whole send ring goes)
                        goto(EngineStep.CLEAR_SEND_RING)
                    with m.Else():
                        goto(EngineStep.TCP_ACK_RELEASE)
                        with m.If(v.advanced):
                            rtt_ack(EngineStep.TCP_ACK_RELEASE)

            with m.Case(EngineStep.TCP_ACK_RELEASE):
                # the acknowledged bytes leave the send ring
                with m.If(acked_bytes == 0):
                    goto(EngineStep.TCP_DATA)
                with m.Else():
                    m.d.comb += [tx_ring.read_cmd.valid.eq(1),
                                 tx_ring.read_cmd.payload.length.eq(acked_bytes),
                                 tx_ring.read_cmd.payload.discard.eq(1)]
                    with m.If(tx_ring.read_cmd.ready):
                        # the ring's head moves by exactly that (no requery: the ring's
                        # later commands are decided after this one)
                        m.d.sync += txq.head.eq(txq.head + acked_bytes)
                        goto(EngineStep.TCP_DATA)

            with m.Case(EngineStep.TCP_DATA):
                # seventh: segment text
                with m.If(payload_kept & one_of(state, *RECEIVING)):
                    with m.If(t.orphan & seq_lt(rcv_nxt, seg_seq + seg_plen)):
                        # data for a closed socket: RST in reply, and the connection is gone
                        m.d.sync += [ob.eq(_Outbox.RST_REPLY), ob_seq.eq(seg_ack)]
                        enter_closed()
                        goto(EngineStep.CLEAR_SEND_RING)
                    with m.Else():
                        m.d.sync += t.ack_needed.eq(1)
                        goto(EngineStep.TCP_DATA_WRITE)
                with m.Else():
                    goto(EngineStep.TCP_FIN)

            with m.Case(EngineStep.TCP_DATA_WRITE):
                # the ring clips the write to its window (within the cap) and merges
                # out-of-order ranges
                m.d.comb += [rx_ring.write_cmd.valid.eq(1),
                             rx_ring.write_cmd.payload.offset.eq(seg_seq),
                             rx_ring.write_cmd.payload.length.eq(seg_plen),
                             rx_ring.write_cmd.payload.reserve.eq(t.rcv_reserve)]
                with m.If(rx_ring.write_cmd.ready):
                    # the ring's decision (its new tail) is in its state RAM some clocks on; the
                    # payload follows on its own and the engine does not wait for it: later
                    # ring commands are served after it, in order
                    m.d.sync += [route.eq(RxRoute.STORE), after_action.eq(EngineStep.REQUERY_1),
                                 ret.eq(EngineStep.TCP_FIN)]
                    goto(EngineStep.ACTION)

            with m.Case(EngineStep.TCP_FIN):
                # eighth: FIN, taken when everything before it is in; one beyond a hole is
                # remembered by its sequence number
                new_fin = fin_kept & ~t.fin_received & one_of(state, *RECEIVING)
                fin_seq = Signal(32)
                m.d.comb += fin_seq.eq(Mux(new_fin, seg_seq + seg_plen, t.fin_seq))
                with m.If(new_fin):
                    m.d.sync += [t.ack_needed.eq(1), t.fin_seq.eq(fin_seq), t.fin_seq_valid.eq(1)]
                with m.If((new_fin | t.fin_seq_valid) & ~t.fin_received & (fin_seq == rcv_nxt)):
                    goto(EngineStep.TCP_TAKE_FIN)
                with m.Else():
                    finish()

            with m.Case(EngineStep.TCP_TAKE_FIN):
                m.d.sync += t.fin_received.eq(1)
                with m.If(one_of(state, TcpState.ESTABLISHED, TcpState.SYN_RECEIVED)):
                    m.d.sync += t.state.eq(TcpState.CLOSE_WAIT)
                with m.Elif(state == TcpState.FIN_WAIT_1):
                    with m.If(t.fin_acked):
                        enter_time_wait()
                    with m.Else():
                        m.d.sync += t.state.eq(TcpState.CLOSING)
                with m.Elif(state == TcpState.FIN_WAIT_2):
                    enter_time_wait()
                finish()

            with m.Case(EngineStep.CLEAR_SEND_RING):
                # Tcb._enter_closed: the send queue is dropped
                m.d.comb += [tx_ring.init.valid.eq(1), tx_ring.init.payload.offset.eq(txq.tail)]
                with m.If(tx_ring.init.ready):
                    requery(EngineStep.DISPATCH)

            with m.Case(EngineStep.ACTION):
                # the end of every event: the receive path learns what to do with the frame
                # (a STORE before its payload is written: the payload completes the write),
                # an INJECT or INSTALL is answered, the record is written back
                with m.If(from_wire):
                    m.d.comb += [self.rx_action.valid.eq(1), self.rx_action.payload.route.eq(route)]
                    with m.If(self.rx_action.ready):
                        m.d.sync += from_wire.eq(0)
                        with m.If(route == RxRoute.STORE):
                            m.d.sync += step.eq(after_action)
                            with m.If(write_back_at_action):
                                write_back()
                        with m.Elif(route == RxRoute.SLOW):
                            goto(EngineStep.IDLE)             # nothing was changed
                        with m.Else():
                            goto(EngineStep.WRITE_BACK)
                with m.Elif(ctl_owed):
                    m.d.sync += then.eq(EngineStep.WRITE_BACK)
                    goto(EngineStep.CTL_RESPOND)
                with m.Else():
                    goto(EngineStep.WRITE_BACK)

            # ----- receive: UDP -------------------------------------------------------------
            with m.Case(EngineStep.UDP_START):
                tpl = t.template
                with m.If(t.kind != ConnKind.UDP):
                    m.d.sync += route.eq(RxRoute.SLOW)
                    goto(EngineStep.ACTION)
                with m.Elif(tpl.peer_valid & ((seg_src_ip != tpl.remote_ip)
                                              | (seg_src_port != tpl.remote_port))):
                    m.d.sync += udp_no_socket.eq(udp_no_socket + 1)
                    goto(EngineStep.ACTION)
                with m.Elif(rx_free < seg_plen + UDP_RECORD_BYTES):
                    m.d.sync += udp_queue_full.eq(udp_queue_full + 1)
                    goto(EngineStep.ACTION)
                with m.Elif(ring_hdr):
                    pass    # the header before this one is still going out (8 beats at 8 bits)
                with m.Else():
                    m.d.sync += [hdr_bytes.eq(Cat(seg_plen[8:16], seg_plen[0:8],
                                                  seg_src_ip[24:32], seg_src_ip[16:24],
                                                  seg_src_ip[8:16], seg_src_ip[0:8],
                                                  seg_src_port[8:16], seg_src_port[0:8])),
                                 hdr_beat.eq(0)]
                    goto(EngineStep.UDP_HEADER_CMD)

            with m.Case(EngineStep.UDP_HEADER_CMD):
                # The header's beats come from the engine (`ring_hdr`), not from `rx_payload`:
                # they may go only once the ring has taken the beats of the writes before
                # (the ring decides a write while those of the one before still come, and
                # takes whatever beats are offered in order: an earlier frame's payload on its
                # way from the slicer would otherwise get this header's beats)
                with m.If(~rx_ring.write_busy):
                    m.d.comb += [rx_ring.write_cmd.valid.eq(1),
                                 rx_ring.write_cmd.payload.offset.eq(rxq.tail),
                                 rx_ring.write_cmd.payload.length.eq(UDP_RECORD_BYTES)]
                    with m.If(rx_ring.write_cmd.ready):
                        # the ring takes the header's beats before its next command's
                        m.d.sync += ring_hdr.eq(1)
                        goto(EngineStep.UDP_PAYLOAD_CMD)

            with m.Case(EngineStep.UDP_PAYLOAD_CMD):
                m.d.comb += [rx_ring.write_cmd.valid.eq(1),
                             rx_ring.write_cmd.payload.offset.eq(rxq.tail + UDP_RECORD_BYTES),
                             rx_ring.write_cmd.payload.length.eq(seg_plen)]
                with m.If(rx_ring.write_cmd.ready):
                    m.d.sync += [route.eq(RxRoute.STORE), after_action.eq(EngineStep.WRITE_BACK)]
                    goto(EngineStep.ACTION)

            # ----- what to send (Tcb.dispatch) ----------------------------------------------
            with m.Case(EngineStep.DISPATCH):
                m.d.sync += ob.eq(_Outbox.NONE)
                with m.If(t.kind != ConnKind.TCP):
                    goto(EngineStep.ACTION)
                with m.Else():
                    # queued earlier: carries today's ACK and window
                    with m.Switch(ob):
                        with m.Case(_Outbox.NONE):
                            goto(EngineStep.DISPATCH_OUTBOX)
                        with m.Case(_Outbox.RST_REPLY):
                            emit(EngineStep.DISPATCH_OUTBOX, seq=ob_seq, ack=0, flags=flags(rst=1),
                                 window=0)
                        with m.Case(_Outbox.ABORT):
                            m.d.sync += t.ack_needed.eq(0)
                            emit(EngineStep.DISPATCH_OUTBOX, seq=ob_seq, ack=rcv_nxt,
                                 flags=flags(rst=1, ack=1), window=0)
                        with m.Case(_Outbox.PROBE):
                            m.d.sync += [t.ack_needed.eq(0), t.last_adv_wnd.eq(adv_wnd)]
                            emit(EngineStep.DISPATCH_OUTBOX, seq=t.snd_una - 1, ack=rcv_nxt,
                                 flags=flags(ack=1), window=adv_wnd)
                        with m.Case(_Outbox.FAST):
                            n = Signal(16)
                            m.d.comb += n.eq(Mux(data_room < queued, data_room, queued))
                            fin = t.fin_queued & (n == queued) & ((t.snd_max - t.snd_una)[:32] > n)
                            m.d.sync += [t.ack_needed.eq(0), t.last_adv_wnd.eq(adv_wnd)]
                            emit(EngineStep.DISPATCH_OUTBOX, seq=t.snd_una, ack=rcv_nxt,
                                 flags=flags(ack=1, psh=n != 0, fin=fin), window=adv_wnd,
                                 length=n)

            with m.Case(EngineStep.DISPATCH_OUTBOX):
                with m.If(in_syn_states):
                    goto(EngineStep.DISPATCH_SYN)
                with m.Elif(in_synchronized):
                    goto(EngineStep.DISPATCH_SEGMENT)
                with m.Else():
                    goto(EngineStep.ACTION)

            with m.Case(EngineStep.DISPATCH_SYN):
                with m.If(t.snd_nxt == t.iss):
                    is_rcvd = state == TcpState.SYN_RECEIVED
                    m.d.sync += t.snd_nxt.eq(t.iss + 1)
                    sent(syn_wnd, end=t.iss + 1, extends=seq_lt(t.snd_max, t.iss + 1),
                         resend=seq_lt(t.iss, t.snd_max))
                    emit(EngineStep.ACTION, seq=t.iss, ack=Mux(is_rcvd, rcv_nxt, 0),
                         flags=flags(syn=1, ack=is_rcvd), window=syn_wnd, syn_option=1,
                         # our SYN offers scaling; a SYN-ACK only when the peer's SYN did
                         wscale_option=(~is_rcvd | t.wscale_ok) if ws else 0,
                         sack_permitted_option=(~is_rcvd | t.sack_ok) if sack else 0)
                with m.Elif(t.ack_needed & (state == TcpState.SYN_RECEIVED)):
                    # a challenge ACK or the answer to an unacceptable segment: a pure ACK
                    # (a retransmitted SYN rewound SND.NXT to ISS: the SYN-ACK again)
                    sent(adv_wnd)
                    emit(EngineStep.ACTION, seq=t.snd_nxt, ack=rcv_nxt, flags=flags(ack=1),
                         window=adv_wnd)
                with m.Else():
                    goto(EngineStep.ACTION)

            with m.Case(EngineStep.DISPATCH_SEGMENT):
                # Tcb._next_segment, one segment per visit, once the segmenter's decision is
                # that of the record and ring state now. (Its `valid` speaks of the last
                # clock's inputs; this step is entered only from DISPATCH_OUTBOX, EMIT and
                # itself waiting, which change none of them.)
                with m.If(tx_segmenter.valid):
                    with m.If(~next_segment.send):
                        goto(EngineStep.DISPATCH_ACK)
                    with m.Else():
                        m.d.sync += t.snd_nxt.eq(next_segment.end)
                        sent(adv_wnd, end=next_segment.end, extends=next_segment.extends,
                             resend=next_segment.resend)
                        emit(EngineStep.DISPATCH_SEGMENT, seq=t.snd_nxt, ack=rcv_nxt,
                             flags=flags(ack=1, psh=next_segment.length != 0,
                                         fin=next_segment.fin),
                             window=adv_wnd, length=next_segment.length)
                        # its payload's read offered now, a clock before EMIT (the ring
                        # takes it while the write of its bytes is being decided)
                        with m.If(read_payload(t.snd_nxt, next_segment.length,
                                               offer=next_segment.length != 0)):
                            m.d.sync += read_sent.eq(1)

            with m.Case(EngineStep.DISPATCH_ACK):
                with m.If(t.ack_needed):
                    sent(adv_wnd)
                    emit(EngineStep.DISPATCH_PERSIST, seq=t.snd_nxt, ack=rcv_nxt, flags=flags(ack=1),
                         window=adv_wnd)
                with m.Else():
                    goto(EngineStep.DISPATCH_PERSIST)

            with m.Case(EngineStep.DISPATCH_PERSIST):
                with m.If((unsent > 0) & (t.snd_wnd == 0) & ~t.rto_armed & ~t.persist_armed):
                    m.d.sync += [t.persist_armed.eq(1),
                                 t.persist_deadline.eq(now + persist_table[t.persist_probes])]
                goto(EngineStep.ACTION)

            # ----- timers (Tcb.on_timer) ------------------------------------------------------
            with m.Case(EngineStep.TICK_START):
                with m.If(timers.due_valid):
                    m.d.comb += timers.due_take.eq(1)
                    m.d.sync += conn.eq(timers.due_conn)
                    goto(EngineStep.LOAD)
                with m.Elif(timers.due_done):
                    goto(EngineStep.IDLE)

            with m.Case(EngineStep.TICK_NEXT):
                m.d.sync += ob.eq(_Outbox.NONE)
                goto(EngineStep.TICK_START)

            with m.Case(EngineStep.TIMER):
                # the timer verdict's registers follow the record loaded (TimerFire)
                assert TIMER_LATENCY == 2, "TIMER and TIMER_WAIT wait the timer verdict's clocks"
                goto(EngineStep.TIMER_WAIT)

            with m.Case(EngineStep.TIMER_WAIT):
                goto(EngineStep.TIMER_FIRE)

            with m.Case(EngineStep.TIMER_FIRE):
                # Tcb.on_timer: what fired, and the timer fields it leaves
                v = timer_verdict
                m.d.sync += [t.retries.eq(v.retries), t.rto_deadline.eq(v.rto_deadline),
                             t.persist_deadline.eq(v.persist_deadline),
                             t.persist_probes.eq(v.persist_probes)]
                if rtt:
                    m.d.sync += t.rto.eq(v.rto)
                with m.If(v.closed):
                    enter_closed()
                with m.If(v.timed_out):
                    enter_reset(Errno.ETIMEDOUT)
                with m.If(v.zero_window):
                    # the peer's window is closed: probe instead, without counting a retry
                    m.d.sync += [t.rto_armed.eq(0), t.snd_nxt.eq(t.snd_una), t.persist_armed.eq(1)]
                with m.If(v.rto_fired):
                    m.d.sync += [t.snd_nxt.eq(t.snd_una), t.dupacks.eq(0)]
                if rtt:
                    with m.If(v.zero_window | v.rto_fired):
                        m.d.sync += t.rtt_timing.eq(0)      # Karn: no sample from a resend
                with m.If(v.probe):
                    m.d.sync += ob.eq(_Outbox.PROBE)
                with m.Switch(v.next):
                    with m.Case(TimerNext.NONE):
                        goto(EngineStep.TICK_NEXT)
                    with m.Case(TimerNext.CLOSED):
                        goto(EngineStep.CLEAR_SEND_RING)
                    with m.Case(TimerNext.DISPATCH):
                        goto(EngineStep.DISPATCH)

            # ----- host commands ------------------------------------------------------------
            with m.Case(EngineStep.HOST_RESPOND):
                # a WRITE's beats that no ring takes are drained in the background, after
                # those the send ring still takes (see `wdata_to_ring`)
                m.d.comb += [self.host_rsp.valid.eq(1), self.host_rsp.payload.eq(rsp)]
                with m.If(self.host_rsp.ready):
                    m.d.sync += step.eq(then)
                    with m.If(drain_after):
                        m.d.sync += wdata_drain.eq(1)

            with m.Case(EngineStep.HOST_DECODE):
                # the command's verdict (hdl/engine/host_call.py): its answer, the record's
                # new fields, and what follows; a WRITE waits here for the send ring to take
                # its command
                v = host_verdict
                m.d.sync += [rsp.status.eq(v.status), rsp.count.eq(v.count),
                             rsp.revents.eq(v.revents), rsp.error.eq(v.error),
                             drain_after.eq(v.drain), t.state.eq(v.state),
                             t.shut_rd.eq(v.shut_rd), t.shut_wr.eq(v.shut_wr)]
                with m.If(v.fin_queued):
                    m.d.sync += t.fin_queued.eq(1)
                with m.If(v.closed):
                    enter_closed()
                with m.If(v.abort_rst):
                    m.d.sync += [ob.eq(_Outbox.ABORT), ob_seq.eq(t.snd_max)]
                with m.If(v.orphan):
                    m.d.sync += t.orphan.eq(1)
                with m.If(v.fin_wait_2_timer):
                    m.d.sync += [t.close_armed.eq(1), t.close_deadline.eq(now + P.fin_wait_2_timeout)]
                with m.If(v.clear_error):
                    m.d.sync += t.error.eq(Errno.OK)
                with m.If(v.free):
                    m.d.sync += t.kind.eq(ConnKind.FREE)
                with m.Switch(v.next):
                    for verdict, then_step in ((HostNext.IDLE, EngineStep.IDLE),
                                               (HostNext.WRITE_BACK, EngineStep.WRITE_BACK),
                                               (HostNext.DISPATCH, EngineStep.DISPATCH),
                                               (HostNext.CLEAR_SEND_RING,
                                                EngineStep.CLEAR_SEND_RING)):
                        with m.Case(verdict):
                            respond(then_step)
                    with m.Case(HostNext.READ_DATA):
                        m.d.sync += e_len.eq(v.count)
                        respond(EngineStep.HOST_READ_DATA)
                    with m.Case(HostNext.UDP_READ):
                        goto(EngineStep.UDP_READ_HEADER)
                    with m.Case(HostNext.UDP_ROUTE):
                        goto(EngineStep.UDP_ROUTE)
                    with m.Case(HostNext.WRITE_RING):
                        # append at the tail: the ring takes `count` = min(length, free) bytes,
                        # contiguous (free is at most the ring size, so it fits the ring's
                        # write length whatever the 32-bit length); the beats after the ring's
                        # last are drained (HOST_RESPOND). The answer and the new tail need not
                        # wait for the ring's decision: it takes `count` (see
                        # `tx_write_undecided`).
                        lanes = self._data_width // 8
                        beats_sent = (hc.length + (lanes - 1)) >> exact_log2(lanes)     # 33 bits
                        beats_taken = (v.count + (lanes - 1)) >> exact_log2(lanes)
                        m.d.comb += [tx_ring.write_cmd.valid.eq(1),
                                     tx_ring.write_cmd.payload.offset.eq(txq.tail),
                                     tx_ring.write_cmd.payload.length.eq(v.count),
                                     tx_ring.write_cmd.payload.reserve.eq(t.snd_reserve)]
                        with m.If(tx_ring.write_cmd.ready):
                            m.d.comb += tx_write_starts.eq(1)
                            m.d.sync += [drain_after.eq(beats_sent != beats_taken),
                                         txq.tail.eq(txq.tail + v.count)]
                            respond(EngineStep.DISPATCH)

            with m.Case(EngineStep.HOST_READ_DATA):
                # the bytes go out on host_rdata; the ring moves its head unless peeking
                with m.If(e_len == 0):
                    goto(EngineStep.IDLE)
                with m.Else():
                    m.d.comb += [rx_ring.read_cmd.valid.eq(1),
                                 rx_ring.read_cmd.payload.length.eq(e_len),
                                 rx_ring.read_cmd.payload.peek.eq(hc.peek)]
                    with m.If(rx_ring.read_cmd.ready):
                        m.d.comb += host_read_starts.eq(1)
                        with m.If(hc.peek):
                            goto(EngineStep.IDLE)
                        with m.Else():
                            # the head moves by the count (the ring gives what it holds)
                            m.d.sync += rxq.head.eq(rxq.head + e_len)
                            goto(EngineStep.HOST_WINDOW_UPDATE)

            with m.Case(EngineStep.HOST_WINDOW_UPDATE):
                # Tcb.receive: a window update when the window grew by enough
                grown = Signal(signed(ring_bits + 2))
                m.d.comb += grown.eq(adv_wnd - t.last_adv_wnd)
                half_cap = (R - t.rcv_reserve) >> 1     # Tcb.rcv.capacity // 2
                limit = Mux(eff_mss < half_cap, eff_mss, half_cap)
                with m.If(in_synchronized & ~t.fin_received & (grown >= limit)):
                    m.d.sync += t.ack_needed.eq(1)
                    goto(EngineStep.DISPATCH)
                with m.Else():
                    goto(EngineStep.IDLE)

            with m.Case(EngineStep.UDP_READ_HEADER):
                # the record header is peeked into the engine once earlier reads are out
                with m.If(host_reads == 0):
                    m.d.comb += [rx_ring.read_cmd.valid.eq(1),
                                 rx_ring.read_cmd.payload.length.eq(UDP_RECORD_BYTES),
                                 rx_ring.read_cmd.payload.peek.eq(1)]
                    with m.If(rx_ring.read_cmd.ready):
                        m.d.sync += [rdata_to_engine.eq(1), rec_beat.eq(0)]
                        goto(EngineStep.UDP_READ_CAPTURE)

            with m.Case(EngineStep.UDP_READ_CAPTURE):
                with m.If(~rdata_to_engine):
                    b = rec_bytes
                    length = Cat(b[8:16], b[0:8])
                    count = Mux(hc.length < length, hc.length, length)
                    m.d.sync += [rec_len.eq(length),
                                 rsp.src_ip.eq(Cat(b[40:48], b[32:40], b[24:32], b[16:24])),
                                 rsp.src_port.eq(Cat(b[56:64], b[48:56])),
                                 rsp.count.eq(count), e_len.eq(count)]
                    respond(EngineStep.UDP_READ_DATA)

            with m.Case(EngineStep.UDP_READ_DATA):
                with m.If(e_len == 0):
                    goto(EngineStep.UDP_READ_RELEASE)
                with m.Else():
                    m.d.comb += [rx_ring.read_cmd.valid.eq(1),
                                 rx_ring.read_cmd.payload.length.eq(e_len),
                                 rx_ring.read_cmd.payload.skip.eq(UDP_RECORD_BYTES),
                                 rx_ring.read_cmd.payload.peek.eq(1)]
                    with m.If(rx_ring.read_cmd.ready):
                        m.d.comb += host_read_starts.eq(1)
                        goto(EngineStep.UDP_READ_RELEASE)

            with m.Case(EngineStep.UDP_READ_RELEASE):
                # the whole record leaves the ring: a truncated datagram's rest is discarded
                with m.If(hc.peek):
                    goto(EngineStep.IDLE)
                with m.Else():
                    m.d.comb += [rx_ring.read_cmd.valid.eq(1),
                                 rx_ring.read_cmd.payload.length.eq(rec_len + UDP_RECORD_BYTES),
                                 rx_ring.read_cmd.payload.discard.eq(1)]
                    with m.If(rx_ring.read_cmd.ready):
                        goto(EngineStep.IDLE)

            with m.Case(EngineStep.UDP_ROUTE):
                # Process._send_udp: the destination, and which neighbour entries hold it
                dest_ip = Mux(hc.dest_valid, hc.dest_ip, t.template.remote_ip)
                m.d.sync += [udp_dst_ip.eq(dest_ip),
                             udp_dst_port.eq(Mux(hc.dest_valid, hc.dest_port,
                                                 t.template.remote_port)),
                             udp_hits.eq(Cat(neighbor_valid[i] & (neighbor_ip[i] == dest_ip)
                                             for i in range(self._neighbors)))]
                goto(EngineStep.UDP_SEND)

            with m.Case(EngineStep.UDP_SEND):
                # Process._send_udp: the destination, its size, its neighbour entry
                mac = Signal(48)
                for i in reversed(range(self._neighbors)):
                    with m.If(udp_hits[i]):
                        m.d.comb += mac.eq(neighbor_mac[i])
                with m.If(~hc.dest_valid & ~t.template.peer_valid):
                    m.d.sync += [rsp.status.eq(Errno.EDESTADDRREQ), drain_after.eq(hc.length != 0)]
                    respond(EngineStep.IDLE)
                with m.Elif(hc.length > UDP_MAX_PAYLOAD):
                    m.d.sync += [rsp.status.eq(Errno.EMSGSIZE), drain_after.eq(1)]
                    respond(EngineStep.IDLE)
                with m.Elif(udp_hits == 0):
                    m.d.sync += [rsp.status.eq(Errno.EHOSTUNREACH), drain_after.eq(hc.length != 0)]
                    respond(EngineStep.IDLE)
                with m.Else():
                    m.d.sync += [e_udp.eq(1), udp_dst_mac.eq(mac), e_len.eq(hc.length),
                                 hdr_sent.eq(0), rsp.count.eq(hc.length)]
                    goto(EngineStep.UDP_SEND_PAYLOAD)

            with m.Case(EngineStep.UDP_SEND_PAYLOAD):
                # the header goes to the framer once earlier send-ring reads are out (IDLE took
                # this WRITE only once the beats of the one before were taken); then the
                # host's bytes flow straight into the framer's payload buffer
                with m.If(~hdr_sent):
                    with m.If(framer_reads == 0):
                        m.d.comb += tx_headers.w_en.eq(1)
                        with m.If(tx_headers.w_rdy):
                            m.d.sync += [hdr_sent.eq(1), wdata_to_framer.eq(e_len != 0)]
                with m.Elif(~wdata_to_framer):
                    respond(EngineStep.IDLE)

            # ----- control commands -----------------------------------------------------------
            with m.Case(EngineStep.CTL_DECODE):
                m.d.sync += then.eq(EngineStep.IDLE)
                with m.Switch(cc.op):
                    with m.Case(CtlOp.SET_NEIGHBOR):
                        for i in range(self._neighbors):
                            with m.If(cc.index == i):
                                m.d.sync += [neighbor_valid[i].eq(cc.flag), neighbor_ip[i].eq(cc.ip),
                                             neighbor_mac[i].eq(cc.mac)]
                        goto(EngineStep.CTL_RESPOND)
                    with m.Case(CtlOp.INSTALL_TCP):
                        # a fresh record: Tcb.__post_init__, then open_active or open_passive
                        passive = cc.state == TcpState.SYN_RECEIVED
                        peer_mss = Mux(passive & (cc.mss != 0), cc.mss, P.default_mss)
                        # the socket's options (0: the default): the caps and our MSS
                        adv_mss = Mux(cc.adv_mss == 0, P.mss, cc.adv_mss)
                        rcv_cap = Mux(cc.rcv_cap == 0, R, cc.rcv_cap)
                        snd_cap = Mux(cc.snd_cap == 0, S, cc.snd_cap)
                        m.d.sync += [
                            t.eq(0), t.kind.eq(ConnKind.TCP),
                            t.state.eq(Mux(passive, TcpState.SYN_RECEIVED, TcpState.SYN_SENT)),
                            t.passive.eq(passive), t.was_connected.eq(passive),
                            t.iss.eq(cc.iss), t.snd_una.eq(cc.iss), t.snd_nxt.eq(cc.iss),
                            t.snd_max.eq(cc.iss),
                            t.irs.eq(Mux(passive, cc.irs, 0)),
                            t.snd_wnd.eq(Mux(passive, cc.window, 0)),
                            t.snd_wl1.eq(Mux(passive, cc.irs, 0)),
                            t.snd_wl2.eq(Mux(passive, cc.iss, 0)),
                            t.eff_mss.eq(Mux(peer_mss < adv_mss, peer_mss, adv_mss)),
                            t.rcv_reserve.eq(R - rcv_cap), t.snd_reserve.eq(S - snd_cap),
                            t.adv_mss.eq(adv_mss),
                            t.template.remote_mac.eq(cc.mac), t.template.remote_ip.eq(cc.ip),
                            t.template.remote_port.eq(cc.port),
                            t.template.local_port.eq(cc.local_port),
                            state0.eq(TcpState.CLOSED), kind0.eq(ConnKind.FREE),
                            e_seq.eq(Mux(passive, cc.irs + 1, 0)), e_ack.eq(cc.iss + 1),
                            hdr_sent.eq(0), read_sent.eq(0),
                        ]
                        if rtt:
                            m.d.sync += [t.rto.eq(P.rto_initial), t.rto_base.eq(P.rto_initial)]
                        if ws:                      # Tcb.open_passive's _negotiate_options
                            offered = passive & cc.wscale_offered
                            m.d.sync += [t.wscale_ok.eq(offered),
                                         t.snd_wscale.eq(Mux(offered, cc.wscale, 0))]
                        if sack:
                            m.d.sync += t.sack_ok.eq(passive & cc.sack_permitted)
                        goto(EngineStep.CTL_INIT_RINGS)
                        with m.If((cc.rcv_cap > R) | (cc.snd_cap > S) | (cc.adv_mss > P.mss)):
                            m.d.sync += crsp.status.eq(Errno.EINVAL)      # the record is not written
                            goto(EngineStep.CTL_RESPOND)
                    with m.Case(CtlOp.INSTALL_UDP):
                        m.d.sync += [t.eq(0), t.kind.eq(ConnKind.UDP),
                                     t.template.local_port.eq(cc.local_port),
                                     state0.eq(TcpState.CLOSED), kind0.eq(ConnKind.FREE),
                                     e_seq.eq(0), e_ack.eq(0), hdr_sent.eq(0), read_sent.eq(0)]
                        goto(EngineStep.CTL_INIT_RINGS)
                    with m.Case(CtlOp.FREE):
                        m.d.sync += [t.eq(0), state0.eq(TcpState.CLOSED), kind0.eq(ConnKind.FREE),
                                     then.eq(EngineStep.WRITE_BACK)]
                        goto(EngineStep.CTL_RESPOND)
                    with m.Case(CtlOp.UDP_CONNECT, CtlOp.INJECT, CtlOp.READ_STATE):
                        goto(EngineStep.LOAD)
                    with m.Case(CtlOp.NEXT_DEADLINE):
                        goto(EngineStep.DEADLINE_NEXT)
                    with m.Case(CtlOp.ADVANCE):
                        m.d.comb += [timers.advance.valid.eq(1), timers.advance.payload.eq(cc.seq)]
                        goto(EngineStep.CTL_RESPOND)
                    with m.Default():
                        m.d.sync += crsp.status.eq(Errno.EINVAL)
                        goto(EngineStep.CTL_RESPOND)

            with m.Case(EngineStep.CTL_LOADED):
                with m.Switch(cc.op):
                    with m.Case(CtlOp.UDP_CONNECT):
                        m.d.sync += [t.template.remote_ip.eq(cc.ip), t.template.remote_port.eq(cc.port),
                                     t.template.remote_mac.eq(cc.mac), t.template.peer_valid.eq(1),
                                     then.eq(EngineStep.WRITE_BACK)]
                        goto(EngineStep.CTL_RESPOND)
                    with m.Case(CtlOp.READ_STATE):
                        m.d.sync += [crsp.state.eq(state), crsp.kind.eq(t.kind), crsp.error.eq(t.error),
                                     crsp.value.eq(t.eff_mss), then.eq(EngineStep.WRITE_BACK)]
                        with m.If(cc.flag):
                            m.d.sync += t.error.eq(Errno.OK)
                        with m.If(cc.mark):
                            m.d.sync += t.was_connected.eq(1)
                        goto(EngineStep.CTL_RESPOND)
                    with m.Default():               # INJECT: a segment from the slow path
                        m.d.sync += [seg_seq.eq(cc.seq), seg_ack.eq(cc.ack), seg_flags.eq(cc.flags),
                                     seg_last.eq(cc.seq + (cc.flags.syn + cc.flags.fin - 1)),
                                     seg_wnd.eq(cc.window), seg_plen.eq(0), seg_mss.eq(cc.mss),
                                     seg_wscale_offered.eq(cc.wscale_offered),
                                     seg_wscale.eq(cc.wscale),
                                     seg_sack_permitted.eq(cc.sack_permitted),
                                     seg_udp.eq(0), from_wire.eq(0)]
                        goto(EngineStep.TCP_DECIDE)

            with m.Case(EngineStep.CTL_INIT_RINGS):
                # both rings start empty at their first sequence numbers (e_seq, e_ack)
                rx_init_now = ~hdr_sent & rx_ring.init.ready
                tx_init_now = ~read_sent & tx_ring.init.ready
                m.d.comb += [rx_ring.init.valid.eq(~hdr_sent), rx_ring.init.payload.offset.eq(e_seq),
                             tx_ring.init.valid.eq(~read_sent), tx_ring.init.payload.offset.eq(e_ack)]
                with m.If(rx_init_now):
                    m.d.sync += hdr_sent.eq(1)
                with m.If(tx_init_now):
                    m.d.sync += read_sent.eq(1)
                with m.If((hdr_sent | rx_init_now) & (read_sent | tx_init_now)):
                    requery(EngineStep.DISPATCH)

            with m.Case(EngineStep.DEADLINE_NEXT):
                m.d.comb += timers.query_req.eq(1)
                with m.If(timers.query_valid):
                    m.d.sync += [crsp.value.eq(timers.query_earliest), crsp.flag.eq(timers.query_any)]
                    goto(EngineStep.CTL_RESPOND)

            with m.Case(EngineStep.CTL_RESPOND):
                m.d.comb += [self.ctl_rsp.valid.eq(1), self.ctl_rsp.payload.eq(crsp)]
                with m.If(self.ctl_rsp.ready):
                    m.d.sync += [ctl_owed.eq(0), step.eq(then)]

        if "send_ring_writer_error" in self.signature.members:
            m.d.comb += self.send_ring_writer_error.eq(tx_ring.writer_error)
        if "observe" in self.signature.members:
            assert [(e.name, e.value) for e in _Event] == [(e.name, e.value) for e in EventSource]
            # (an event latched in IDLE: its registers are written as it is latched)
            observe(m, self.observe, latch=(step == EngineStep.LATCH) | latch_in_idle,
                    tcp_start=step == EngineStep.TCP_START, timer=step == EngineStep.TIMER,
                    source=Mux(latch_in_idle, idle_latch_source, ev),
                    conn=Mux(latch_in_idle, idle_latch_conn, conn),
                    rec=rec_rd.data, rxq=rx_query,
                    txq=tx_ring.query, t=t, t_rxq=rxq, now=now, queued=queued,
                    max_retries=P.max_retries, seg={"flags": seg_flags, "seq": seg_seq,
                                                    "ack": seg_ack, "plen": seg_plen},
                    rcv_bytes=R, snd_bytes=S)
        return m
