"""cocotb benchmarks of the NIC: receive and transmit rates and latencies, in clocks.

Run by ``tb/bench_run.py`` (``make bench``) through ``cocotb_tools.runner``; the plan comes in
``BENCH_PLAN`` (a :class:`Plan` as JSON) and the figures go to the JSON file ``BENCH_OUT``.

The NIC's OS is ``tb.nic_os.NicHost``; the peer is this bench, which crafts its frames with
``model.packet.build_tcp_frame``. Every connection is opened by the normal passive handshake
(the peer's SYN, with the MSS option the bench chooses, goes to host software, which installs
the connection; the hardware sends the SYN-ACK and takes the peer's ACK). Then, for the
measured part, the bench drives raw frames and host commands straight into the
:class:`~tb.nic_bench.NicBench` queues (all beats of a burst queued back to back: line rate
in) while a :class:`Probe` samples the ports, the ``debug`` port included (the engine's and
the dispatcher's steps, ``hdl.nic.DebugSignature``), once per clock.

- **Receive**: bursts of in-order data segments of one frame size, on one connection or
  round robin over all of them. Each burst fits the receive windows (every ring is read empty
  between bursts, outside the measurement), so no frame is cut by the window. Measured from
  the first beat accepted on ``rx`` to the last payload beat written into a receive ring; the
  bytes counted are those readable in order when the burst is over (read back and compared).
  A frame the receive FIFO dropped is sent again after the burst (not measured) so that the
  stream stays whole for the next one.
- **Transmit**: large host WRITEs on a connection whose MSS (the peer's SYN option) gives the
  frame size; the peer's window is 65535 and the peer ACKs each write once its last byte is on
  the wire. Measured from the first WRITE accepted to the last beat of the last data segment.
- **Transmit from several processes** (``Plan.tx_loads``): processes forked from the bench's
  (each granted every connection) keep one large WRITE in flight each, on one shared
  connection or each on its share of several; the NIC takes a write whole, in part or not
  at all (EAGAIN: the process tries again ``EAGAIN_BACKOFF`` clocks later, counted). The bytes
  on the wire are checked to be the accepted writes in the order the NIC answered them; the
  peer ACKs each write once its last byte is on the wire. Measured from the first WRITE
  accepted to the last beat of the last data segment.
- **Mixed load** (``Plan.mixed_sizes``): data frames back to back round robin over every
  connection but the writers' (the burst fits the windows) while each process writes on its
  own connection and READs its share of the receiving ones; the peer's ACKs go in on ``rx``
  between data frames. Each direction is measured from the first frame or command to its
  last beat (into a ring; out on the wire).
- **Latency** (an idle NIC, one connection): last beat of a data segment in -> the response of
  the first READ that returns its data (a READ is always waiting), last beat in -> first beat
  of the ACK out, and WRITE accepted -> first beat of its segment out.

Frame sizes are Ethernet sizes with the 4-byte FCS, as usual; the NIC's ports carry frames
without it, so a 64-byte frame is 60 bytes on the port (6 bytes of TCP payload) and a 1518-byte
frame 1514 (1460). Bytes per clock count port bytes; the physical limit is ``width / 8``.
"""

import json
import os
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cocotb
from amaranth.lib import data
from cocotb.task import bridge, resume
from cocotb.triggers import ReadOnly, RisingEdge

from hdl.config import ring_policy
from hdl.layouts import FrameBeat
from hdl.nic import COUNTERS, DispatchStep, EngineStep
from hdl.ports import CtlOp, HostOp, HostResponse
from hdl.engine.tcb import Errno
from model.constants import MSG_DONTWAIT
from model.errors import SocketError
from model.protocol import ETH_HEADER, IPV4_HEADER, TCP_HEADER, TcpFlag
from model.packet import TcpSegment, build_tcp_frame, parse_frame
from model.policy import Policy
from tb.nic_bench import NicBench, NicPort, pack
from tb.nic_os import NicHost
from tb.scenarios import DUT_IP, DUT_MAC, PEER_IP, PEER_MAC

__all__ = ["Plan", "FCS_BYTES", "TCP_HEADERS", "EAGAIN_BACKOFF", "Probe", "Writer", "Actor", "TxLink",
           "Bench"]

FCS_BYTES = 4
TCP_HEADERS = ETH_HEADER + IPV4_HEADER + TCP_HEADER   # without options
PORT = 80                             # the dut's listener
PEER_PORTS = 20000                    # the peer's port for connection i is PEER_PORTS + i
PEER_ISS = 0x4000_0000
PEER_WINDOW = 65535
LATENCY_MSS = 1460
MIXED_MSS = 1460                      # the writing processes' MSS in the mixed load
EAGAIN_BACKOFF = 32                   # clocks a process waits after an EAGAIN before it tries again
WRITER_STREAMS = 1000                 # the byte pattern of writer k is stream WRITER_STREAMS + k


@dataclass
class Plan:
    """What to measure, and on which NIC (one simulator run)."""
    width: int = 64
    connections: int = 64
    processes: int = 16
    ring_bytes: int = 2048                        # receive and send ring per connection
    rx_sizes: tuple = ()                          # receive: frame sizes
    rx_connections: tuple = ()                    # receive: spread over this many connections
    rx_frames: int = 128                          # frames offered per receive configuration
    tx_sizes: tuple = ()                          # transmit: frame sizes (a connection each)
    tx_segments: int = 128                        # data segments per transmit configuration
    latency_sizes: tuple = ()
    tx_loads: tuple = ()                          # (frame size, processes, connections) per row
    tx_load_segments: int = 512                   # data segments per such row (about)
    mixed_sizes: tuple = ()                       # mixed load: receive frame sizes
    mixed_processes: int = 4                      # mixed load: processes, a connection each
    mixed_frames: int = 480                       # mixed load: receive frames (window permitting)

    def policy(self) -> Policy:
        return ring_policy(self.ring_bytes)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        fields = json.loads(text)
        for name in ("rx_sizes", "rx_connections", "tx_sizes", "latency_sizes", "mixed_sizes"):
            fields[name] = tuple(fields[name])
        fields["tx_loads"] = tuple(tuple(row) for row in fields["tx_loads"])
        return cls(**fields)


def payload_of(size: int) -> int:
    """TCP payload bytes of a frame of `size` bytes (FCS included)."""
    return size - FCS_BYTES - TCP_HEADERS


def _step_name(enum, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"step {value}"


def steps_per(counter: Counter, enum, events: int) -> dict:
    """Cycles per event in each step (`counter`: cycles per step value), the largest first."""
    return {_step_name(enum, k): round(v / events, 2) for k, v in counter.most_common()}


class Probe:
    """Samples the NIC's ports once per clock, in the read-only phase, while a measurement runs.

    It runs beside :class:`~tb.nic_bench.NicBench`'s own loop and time-stamps with the
    bench's cycle count, so its records and the bench's queues speak of the same clocks. Records:
    ``rx`` (cycles of accepted receive beats), ``rx_stalls`` (beats offered, not accepted),
    ``ring`` (payload beats written into a receive ring), ``tx_frames`` ((first, last) beat
    of every transmitted frame), ``tx_underruns`` (clocks inside a frame on tx without a beat:
    the sink is always ready, so a MAC would have run dry), ``host_cmds`` and ``host_rsps``
    (cycles of accepted host commands and of responses), ``busy`` (last cycle the NIC was not idle), and per engine
    step (``tcp_engine``) and dispatcher step (``rx_dispatch``) the cycles spent there.
    """

    def __init__(self, bench: NicBench):
        self.bench = bench
        d = bench.dut
        self.beat = FrameBeat(bench.data_width)
        self._rx = (d.rx__valid, d.rx__ready)
        self._ring = d.debug__ring_beat
        self._tx = (d.tx__valid, d.tx__payload)
        self._cmd = (d.host_cmd__valid, d.host_cmd__ready)
        self._rsp = d.host_rsp__valid
        self._engine_step = d.debug__engine_step
        self._dispatch_step = d.debug__dispatch_step
        self._idle = d.idle
        self.rx, self.ring, self.host_cmds, self.host_rsps = [], [], [], []
        self.rx_stalls = 0
        self.tx_frames = []
        self.tx_underruns = 0
        self._tx_first = None
        self.busy = None
        self.engine_steps = Counter()
        self.dispatch_steps = Counter()
        self.running = False

    def start(self) -> "Probe":
        self.running = True
        cocotb.start_soon(self._run())
        return self

    def stop(self):
        self.running = False

    async def _run(self):
        clk = self.bench.dut.clk
        while True:
            await ReadOnly()
            if not self.running:
                return
            self._sample(self.bench.cycles)
            await RisingEdge(clk)

    def _sample(self, now: int):
        valid, ready = self._rx
        if int(valid.value):
            if int(ready.value):
                self.rx.append(now)
            else:
                self.rx_stalls += 1
        if int(self._ring.value):
            self.ring.append(now)
        valid, payload = self._tx
        if int(valid.value):                     # the bench's tx sink is always ready
            if self._tx_first is None:
                self._tx_first = now
            if data.Const(self.beat, int(payload.value)).last:
                self.tx_frames.append((self._tx_first, now))
                self._tx_first = None
        elif self._tx_first is not None:
            self.tx_underruns += 1
        valid, ready = self._cmd
        if int(valid.value) and int(ready.value):
            self.host_cmds.append(now)
        if int(self._rsp.value):
            self.host_rsps.append(now)
        step = int(self._engine_step.value)
        if step:
            self.engine_steps[step] += 1
        step = int(self._dispatch_step.value)
        if step:
            self.dispatch_steps[step] += 1
        if not int(self._idle.value):
            self.busy = now


@dataclass(eq=False)
class Conn:
    """One connection, as the peer (this bench) keeps it."""
    index: int
    slot: int               # the NIC's connection number
    fd: int                 # the dut process's descriptor
    port: int               # the peer's port
    mss: int                # the MSS option the peer sent
    peer_seq: int           # the peer's next sequence number
    nic_seq: int            # the NIC's next sequence number (what the peer acknowledges)
    sent: int = 0           # payload bytes the peer has sent
    read: int = 0           # payload bytes the application has read


@dataclass(eq=False)
class Writer:
    """A process's large WRITEs on one connection: `total` bytes, `write_bytes` at a time."""
    conn: Conn
    stream: int             # the byte pattern it writes (``stream_bytes``)
    total: int
    write_bytes: int
    done: int = 0           # bytes the NIC took
    retry_at: int = 0       # after an EAGAIN: the clock of its next try

    def chunk(self) -> bytes:
        return stream_bytes(self.stream, self.done, min(self.write_bytes, self.total - self.done))


@dataclass(eq=False)
class Actor:
    """A process with at most one host command in flight: WRITEs for its writers and READs
    of its receive connections (``Conn``), taken round robin."""
    proc: object
    items: list = field(default_factory=list)       # Writer or Conn (a connection it reads)
    turn: int = 0
    busy: bool = False
    retry_at: dict = field(default_factory=dict)    # connection read -> clock of its next READ

    @property
    def writers(self) -> list:
        return [item for item in self.items if isinstance(item, Writer)]


@dataclass(eq=False)
class TxLink:
    """One writing connection as the peer sees it: the writes in the order the NIC accepted
    them (the stream it must send), what came on the wire, the write ends not yet ACKed."""
    conn: Conn
    base: int                                       # the NIC's sequence number at the start
    expected: bytearray = field(default_factory=bytearray)
    wire: bytearray = field(default_factory=bytearray)
    ends: deque = field(default_factory=deque)


def push(source, items):
    """Queue `items` on a :class:`~tb.nic_bench.NicBench` source and drive it at once: the
    bench drives its sources right after each clock edge, and takes a source's first item at
    the next edge if the port is ready, so an item queued later must be driven now."""
    source.queue.extend(items)
    source.drive()


# the stream of connection i is the byte (offset + 13 i) mod 251, cut from one long buffer
_PATTERN = bytes(k % 251 for k in range(251 + 65536))


def stream_bytes(index: int, offset: int, n: int) -> bytes:
    start = (offset + 13 * index) % 251
    return _PATTERN[start:start + n]


class Bench:
    """The benchmarks: a NIC under :class:`~tb.nic_os.NicHost`, with this bench as its peer.

    The measured parts are coroutines (``_rx_burst``, ``_transmit``, ``_latency``) run from the
    bridge thread through ``cocotb.task.resume``; everything between them (the handshakes,
    reading the rings empty, the peer's recoveries) goes through the OS as a scenario would.
    """

    def __init__(self, nic: NicBench, plan: Plan, log=print):
        self.nic = nic
        self.plan = plan
        self.log = log
        self.port = NicPort(nic)
        self.lanes = plan.width // 8
        self.host = NicHost(self.port, DUT_MAC, DUT_IP, policy=plan.policy(),
                            connections=plan.connections, name="dut")
        self.host.add_neighbor(PEER_IP, PEER_MAC)
        self.proc = self.host.processes[self.host.spawn()]
        self.listener = self.proc.socket("tcp")
        self.proc.bind(self.listener, ("0.0.0.0", PORT))
        self.proc.listen(self.listener, plan.connections)
        self.conns: list[Conn] = []
        self._workers = []

    # ----- frames and commands ------------------------------------------------------------

    def frame(self, conn: Conn, flags, payload: bytes = b"", mss=None) -> bytes:
        """A segment from the peer on `conn` at its next sequence number, ACKing the NIC's."""
        seg = TcpSegment(conn.port, PORT, conn.peer_seq & 0xFFFF_FFFF, conn.nic_seq & 0xFFFF_FFFF,
                         flags, PEER_WINDOW, payload, mss)
        return build_tcp_frame(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP, seg)

    def data_frame(self, conn: Conn, n: int) -> bytes:
        """The peer's next `n` bytes on `conn` as one segment (the peer's state moves on)."""
        frame = self.frame(conn, TcpFlag.ACK | TcpFlag.PSH, stream_bytes(conn.index, conn.sent, n))
        conn.peer_seq += n
        conn.sent += n
        return frame

    def host_command(self, conn: Conn, op, **fields) -> int:
        return pack(self.nic.host_layout, {"pid": self.proc.pid, "conn": conn.slot, "op": op,
                                           **fields})

    def counters(self) -> dict:
        return {name: int(self.port.control({"op": CtlOp.READ_COUNTER, "index": i}).value)
                for i, (name, _) in enumerate(COUNTERS)}

    # ----- set-up: the normal passive handshake, with the peer's MSS option --------------------

    def open(self, mss: int) -> Conn:
        index = len(self.conns)
        conn = Conn(index, slot=-1, fd=-1, port=PEER_PORTS + index, mss=mss,
                    peer_seq=PEER_ISS + index * 0x100_0000, nic_seq=0)
        self.host.transmit()
        self.host.receive_frame(self.frame(conn, TcpFlag.SYN, mss=mss))
        replies = [parse_frame(f).tcp for f in self.host.transmit()]
        synack = [s for s in replies if s is not None and s.flags & TcpFlag.SYN]
        if len(synack) != 1 or synack[0].ack != (conn.peer_seq + 1) & 0xFFFF_FFFF:
            raise AssertionError(f"connection {index}: no SYN-ACK for the peer's SYN: {replies}")
        conn.peer_seq += 1
        conn.nic_seq = synack[0].seq + 1
        self.host.receive_frame(self.frame(conn, TcpFlag.ACK))
        conn.fd, _ = self.proc.accept(self.listener)
        conn.slot = self.proc.fds[conn.fd].conn
        self.conns.append(conn)
        return conn

    def send_again(self, frames: list[bytes], conns: list[Conn]):
        """The peer sends `frames` (not delivered in order) again, one at a time, and every
        connection of `conns` is read to what the peer sent (not measured)."""
        for frame in frames:
            self.host.receive_frame(frame)
        for conn in conns:
            if conn.read != conn.sent:
                self.drain(conn)
            if conn.read != conn.sent:
                raise AssertionError(f"connection {conn.index}: {conn.sent - conn.read} bytes "
                                     f"missing after the peer sent them again")

    def drain(self, conn: Conn) -> int:
        """Read everything readable on `conn` (checked against what the peer sent)."""
        got = 0
        while True:
            try:
                chunk = self.proc.recv(conn.fd, self.plan.ring_bytes, MSG_DONTWAIT)
            except SocketError as err:
                if err.errno != "EAGAIN":
                    raise
                break
            if not chunk:
                raise AssertionError(f"connection {conn.index}: end of file")
            expected = stream_bytes(conn.index, conn.read, len(chunk))
            if chunk != expected:
                raise AssertionError(f"connection {conn.index}: bytes {conn.read}.. read back wrong")
            conn.read += len(chunk)
            got += len(chunk)
        self.host.transmit()                            # the NIC's ACKs and window updates
        return got

    # ----- receive -------------------------------------------------------------------------------

    async def _rx_burst(self, frames: list[bytes]) -> Probe:
        probe = Probe(self.nic).start()
        for frame in frames:
            self.nic.rx.queue.extend(self.nic.beats(frame))
        await self.nic.settle()
        probe.stop()
        return probe

    def receive(self, size: int, connections: int) -> dict:
        """Bursts of `size`-byte data frames round robin over the first `connections`."""
        n = payload_of(size)
        conns = self.conns[:connections]
        per_burst = min(self.plan.rx_frames, connections * (self.plan.ring_bytes // n))
        offered = 0
        totals = Counter()
        engine_steps, dispatch_steps = Counter(), Counter()
        before = self.counters()
        while offered < self.plan.rx_frames:
            count = min(per_burst, self.plan.rx_frames - offered)
            starts = {c.index: c.sent for c in conns}
            placed, frames = [], []                 # (connection, its offset) per frame
            for k in range(count):
                conn = conns[k % connections]
                placed.append((conn, conn.sent - starts[conn.index]))
                frames.append(self.data_frame(conn, n))
            dropped = self.counters()["drop_rx_fifo_full"]
            probe = resume(self._rx_burst)(frames)
            dropped = self.counters()["drop_rx_fifo_full"] - dropped
            offered += count
            # in order and readable when the burst is over: read back and checked
            delivered = {c.index: self.drain(c) for c in conns}
            in_order = [delivered[conn.index] >= offset + n for conn, offset in placed]
            ring_end = probe.ring[-1] if probe.ring else probe.rx[-1]
            totals.update(
                cycles=ring_end - probe.rx[0] + 1, cycles_to_idle=probe.busy - probe.rx[0] + 1,
                rx_cycles=probe.rx[-1] - probe.rx[0] + 1, stalls=probe.rx_stalls,
                frames_in_order=sum(in_order), payload_delivered=sum(delivered.values()),
                port_bytes=sum(len(f) for f in frames), beats=len(probe.rx),
                segments=count - dropped)
            engine_steps.update(probe.engine_steps)
            dispatch_steps.update(probe.dispatch_steps)
            self.send_again([f for f, ok in zip(frames, in_order) if not ok], conns)
        diff = {k: v - before[k] for k, v in self.counters().items()}
        port = size - FCS_BYTES
        cycles, segments = totals["cycles"], max(totals["segments"], 1)
        return {
            "frame_bytes": size, "port_bytes": port, "payload_bytes": n,
            "connections": connections, "frames_offered": offered,
            "frames_per_burst": per_burst, "bursts": -(-offered // per_burst),
            "frames_dropped": diff["drop_rx_fifo_full"], "frames_stored": offered - diff["drop_rx_fifo_full"],
            "segments_refused": diff["ooo_refused"], "frames_in_order": totals["frames_in_order"],
            "backpressure_cycles": totals["stalls"],
            "payload_bytes_delivered": totals["payload_delivered"],
            "cycles": cycles, "cycles_to_idle": totals["cycles_to_idle"],
            "payload_bytes_per_clock": totals["payload_delivered"] / cycles,
            "frame_bytes_per_clock": totals["frames_in_order"] * port / cycles,
            "line_rate_ratio": totals["frames_in_order"] * port / cycles / self.lanes,
            "accepted_bytes_per_clock": totals["port_bytes"] / totals["rx_cycles"],
            "beats_per_frame": totals["beats"] / offered,
            "engine_cycles_per_segment": sum(engine_steps.values()) / segments,
            "engine_steps": steps_per(engine_steps, EngineStep, segments),
            "dispatch_steps": steps_per(dispatch_steps, DispatchStep, segments),
        }

    # ----- transmit ------------------------------------------------------------------------------

    async def _transmit(self, conn: Conn, writes: list[bytes]) -> dict:
        """WRITE each of `writes` (the next as soon as the last is answered, again after an
        EAGAIN); the peer ACKs a write when its last byte is on the wire."""
        nic = self.nic
        probe = Probe(nic).start()
        base = conn.nic_seq
        ends, total = [], 0
        for chunk in writes:
            total += len(chunk)
            ends.append(base + total)
        queue = list(writes)
        acked = retries = 0
        segments = []                   # (end of its data, payload bytes, port bytes)

        def issue(chunk):
            push(nic.host_cmd, [self.host_command(conn, HostOp.WRITE, length=len(chunk))])
            push(nic.host_wdata, nic.beats(chunk))

        issue(queue[0])
        while acked < len(ends):
            await nic.cycle()
            for value in nic.host_rsp.items:
                rsp = data.Const(HostResponse(), value)
                if rsp.status == Errno.EAGAIN:
                    retries += 1
                    issue(queue[0])
                elif rsp.status != Errno.OK or int(rsp.count) != len(queue[0]):
                    raise AssertionError(f"WRITE of {len(queue[0])} bytes answered {rsp}")
                else:
                    queue.pop(0)
                    if queue:
                        issue(queue[0])
            nic.host_rsp.items.clear()
            for frame in nic.take(nic.tx):
                seg = parse_frame(frame).tcp
                if seg is None or seg.dst_port != conn.port or not seg.payload:
                    raise AssertionError(f"unexpected frame while transmitting: {seg}")
                end = base + ((seg.seq + len(seg.payload) - base) & 0xFFFF_FFFF)
                segments.append((end, len(seg.payload), len(frame)))
            while acked < len(ends) and segments and segments[-1][0] >= ends[acked]:
                conn.nic_seq = ends[acked]
                push(nic.rx, nic.beats(self.frame(conn, TcpFlag.ACK)))
                acked += 1
        await nic.settle()
        probe.stop()
        return {"probe": probe, "segments": segments, "retries": retries, "ends": ends}

    def transmit(self, conn: Conn, size: int) -> dict:
        """Host WRITEs on `conn`, whose MSS makes `size`-byte frames."""
        mss = conn.mss
        per_write = max(1, min(self.plan.tx_segments, (self.plan.ring_bytes // 2) // mss))
        count = -(-self.plan.tx_segments // per_write)
        writes = [stream_bytes(conn.index, k * per_write * mss, per_write * mss)
                  for k in range(count)]
        result = resume(self._transmit)(conn, writes)
        probe, segments = result["probe"], result["segments"]
        frames = probe.tx_frames
        if len(frames) != len(segments):
            raise AssertionError(f"{len(frames)} frames seen on tx, {len(segments)} parsed")
        cycles = frames[-1][1] - probe.host_cmds[0] + 1
        payload = sum(n for _, n, _ in segments)
        port = sum(f for _, _, f in segments)
        # the wire while a write's segments flow: first beat of its first to last of its last
        burst_cycles, first = 0, 0
        for boundary in result["ends"]:
            last = first
            while segments[last][0] < boundary:
                last += 1
            burst_cycles += frames[last][1] - frames[first][0] + 1
            first = last + 1
        gaps = [b[0] - a[1] - 1 for a, b in zip(frames, frames[1:])]
        return {
            "frame_bytes": size, "port_bytes": size - FCS_BYTES, "mss": mss,
            "writes": count, "write_bytes": per_write * mss, "segments": len(segments),
            "write_retries": result["retries"], "payload_bytes_sent": payload, "cycles": cycles,
            "payload_bytes_per_clock": payload / cycles,
            "frame_bytes_per_clock": port / cycles,
            "line_rate_ratio": port / cycles / self.lanes,
            "burst_frame_bytes_per_clock": port / burst_cycles,
            "burst_line_rate_ratio": port / burst_cycles / self.lanes,
            "min_gap_cycles": min(gaps) if gaps else 0,
            "tx_underrun_cycles": probe.tx_underruns,
            "engine_cycles_per_segment": sum(probe.engine_steps.values()) / len(segments),
            "engine_steps": steps_per(probe.engine_steps, EngineStep, len(segments)),
        }

    # ----- transmit from several processes, and mixed load ---------------------------------------

    def workers(self, count: int) -> list:
        """`count` processes forked from the bench's own (each holds, and is granted, every
        connection); made once, shared by every load measurement."""
        while len(self._workers) < count:
            self._workers.append(self.proc.fork())
        return self._workers[:count]

    async def _load(self, actors: list["Actor"], frames=()) -> dict:
        """Run `actors` (processes with one host command in flight each) while `frames`
        ((connection, its stream offset after the frame, frame) each) go in on rx back to back; the peer ACKs each write once its last byte is on the wire (its
        ACK goes in on rx at the next frame boundary). Returns the probe and the bookkeeping."""
        nic = self.nic
        probe = Probe(nic).start()
        now = 0
        links = {}                                  # connection index -> TxLink
        for actor in actors:
            for writer in actor.writers:
                links.setdefault(writer.conn.index, TxLink(writer.conn, writer.conn.nic_seq))
        by_port = {link.conn.port: link for link in links.values()}
        pending_frames, acks = deque(frames), deque()
        fed = Counter()                             # receive connection -> payload bytes queued
        inflight = deque()                          # (actor, item, op, bytes) in command order
        rdata, reads = bytearray(), deque()         # read data not yet checked; (conn, count)
        frames_out = []                             # (kind, port bytes) per frame on tx
        stats = Counter()

        def feed():
            if len(nic.rx.queue) > 1:
                return
            if acks:
                push(nic.rx, nic.beats(acks.popleft()))
                stats["peer_acks"] += 1
            elif pending_frames:
                conn, end, frame = pending_frames.popleft()
                push(nic.rx, nic.beats(frame))
                fed[conn.index] = end

        def issue(actor):
            for k in range(len(actor.items)):
                item = actor.items[(actor.turn + k) % len(actor.items)]
                if isinstance(item, Writer):
                    if item.done >= item.total or now < item.retry_at:
                        continue
                    chunk = item.chunk()
                    push(nic.host_cmd, [self.host_command(item.conn, HostOp.WRITE, pid=actor.proc.pid,
                                                          length=len(chunk))])
                    push(nic.host_wdata, nic.beats(chunk))
                    inflight.append((actor, item, HostOp.WRITE, chunk))
                else:
                    conn = item
                    if fed[conn.index] <= conn.read or now < actor.retry_at.get(conn.index, 0):
                        continue
                    push(nic.host_cmd, [self.host_command(conn, HostOp.READ, pid=actor.proc.pid,
                                                          length=self.plan.ring_bytes, nonblock=1)])
                    inflight.append((actor, conn, HostOp.READ, None))
                actor.turn = (actor.turn + k + 1) % len(actor.items)
                actor.busy = True
                return

        def answered(actor, item, op, chunk, rsp):
            actor.busy = False
            status, count = rsp.status, int(rsp.count)
            if op == HostOp.WRITE:
                if status == Errno.EAGAIN or (status == Errno.OK and count == 0):
                    stats["write_retries"] += 1
                    item.retry_at = now + EAGAIN_BACKOFF
                    return
                if status != Errno.OK or count > len(chunk):
                    raise AssertionError(f"WRITE of {len(chunk)} bytes answered {rsp}")
                link = links[item.conn.index]
                link.expected += chunk[:count]
                link.ends.append(link.base + len(link.expected))
                item.done += count
                stats["writes"] += 1
                stats["partial_writes"] += count < len(chunk)
                return
            if status == Errno.EAGAIN:
                stats["read_eagain"] += 1
                actor.retry_at[item.index] = now + EAGAIN_BACKOFF
                return
            if status != Errno.OK or count == 0:
                raise AssertionError(f"READ on connection {item.index} answered {rsp}")
            reads.append((item, count))
            stats["reads"] += 1

        def check_reads():
            while reads and len(rdata) >= reads[0][1]:
                conn, count = reads.popleft()
                got = bytes(rdata[:count])
                del rdata[:count]
                if got != stream_bytes(conn.index, conn.read, count):
                    raise AssertionError(f"connection {conn.index}: bytes {conn.read}.. read back wrong")
                conn.read += count
                stats["read_bytes"] += count

        def on_tx(frame):
            seg = parse_frame(frame).tcp
            if seg is None:
                raise AssertionError(f"unexpected frame on tx: {frame.hex()}")
            link = by_port.get(seg.dst_port)
            if not seg.payload:
                if seg.flags & (TcpFlag.SYN | TcpFlag.FIN | TcpFlag.RST):
                    raise AssertionError(f"unexpected segment on tx: {seg}")
                frames_out.append(("ack", len(frame)))
                return
            if link is None:
                raise AssertionError(f"data on a connection that does not write: {seg}")
            offset = (seg.seq - link.base) & 0xFFFF_FFFF
            if offset != len(link.wire):
                raise AssertionError(f"connection {link.conn.index}: a segment at {offset}, "
                                     f"expected {len(link.wire)} (sent again?)")
            link.wire += seg.payload
            if link.wire != link.expected[:len(link.wire)]:
                raise AssertionError(f"connection {link.conn.index}: bytes {offset}.. on the wire "
                                     f"are not the writes in the order they were accepted")
            frames_out.append(("data", len(frame)))
            acked = None
            while link.ends and link.ends[0] <= link.base + len(link.wire):
                acked = link.ends.popleft()
            if acked is not None:
                link.conn.nic_seq = acked
                acks.append(self.frame(link.conn, TcpFlag.ACK))

        def finished():
            return (all(w.done >= w.total for a in actors for w in a.writers)
                    and all(not link.ends for link in links.values())
                    and not pending_frames and not acks and not nic.rx.queue)

        while True:
            done = finished()
            if done and not inflight:
                break
            feed()
            if not done:
                for actor in actors:
                    if not actor.busy:
                        issue(actor)
            await nic.cycle()
            now += 1
            for value in nic.host_rsp.items:
                actor, item, op, chunk = inflight.popleft()
                answered(actor, item, op, chunk, data.Const(HostResponse(), value))
            nic.host_rsp.items.clear()
            for chunk in nic.take(nic.host_rdata):
                rdata += chunk
            check_reads()
            for frame in nic.take(nic.tx):
                on_tx(frame)
        await nic.settle()
        for frame in nic.take(nic.tx):
            on_tx(frame)
        for chunk in nic.take(nic.host_rdata):
            rdata += chunk
        check_reads()
        probe.stop()
        if reads or rdata:
            raise AssertionError(f"READ data missing or left over: {len(rdata)} bytes, {len(reads)} reads")
        for link in links.values():
            if link.wire != link.expected:
                raise AssertionError(f"connection {link.conn.index}: {len(link.expected)} bytes "
                                     f"written, {len(link.wire)} on the wire")
        if len(probe.tx_frames) != len(frames_out):
            raise AssertionError(f"{len(probe.tx_frames)} frames seen on tx, {len(frames_out)} parsed")
        return {"probe": probe, "frames_out": frames_out, "stats": stats, "links": links}

    def transmit_load(self, conns: list[Conn], size: int, processes: int) -> dict:
        """Large WRITEs from `processes` processes over `conns` (whose MSS makes `size`-byte
        frames): with one connection every process writes on it, else process p writes on
        every `processes`-th connection from the p-th. Each process has one WRITE in flight."""
        mss = conns[0].mss
        procs = self.workers(processes)
        pairs = [(p, c) for p, proc in enumerate(procs)
                 for c in (conns if len(conns) < processes else conns[p::processes])]
        share = -(-self.plan.tx_load_segments * mss // len(pairs))
        write_bytes = max(1, min(-(-share // mss), (self.plan.ring_bytes // 2) // mss)) * mss
        actors = [Actor(proc) for proc in procs]
        for k, (p, conn) in enumerate(pairs):
            actors[p].items.append(Writer(conn, stream=WRITER_STREAMS + k, total=share,
                                          write_bytes=write_bytes))
        result = resume(self._load)(actors)
        probe, frames_out, stats = result["probe"], result["frames_out"], result["stats"]
        if any(kind != "data" for kind, _ in frames_out):
            raise AssertionError(f"frames other than data on tx: {frames_out}")
        frames = probe.tx_frames
        cycles = frames[-1][1] - probe.host_cmds[0] + 1
        port = sum(n for _, n in frames_out)
        payload = sum(len(link.wire) for link in result["links"].values())
        segments = len(frames_out)
        gaps = [b[0] - a[1] - 1 for a, b in zip(frames, frames[1:])]
        return {
            "frame_bytes": size, "port_bytes": size - FCS_BYTES, "mss": mss,
            "processes": processes, "connections": len(conns), "writers": len(pairs),
            "write_bytes": write_bytes, "payload_bytes_written": len(pairs) * share,
            "writes": stats["writes"], "partial_writes": stats["partial_writes"],
            "write_retries": stats["write_retries"], "peer_acks": stats["peer_acks"],
            "segments": segments, "payload_bytes_sent": payload,
            "mean_frame_bytes": port / segments + FCS_BYTES, "cycles": cycles,
            "payload_bytes_per_clock": payload / cycles, "frame_bytes_per_clock": port / cycles,
            "line_rate_ratio": port / cycles / self.lanes,
            "min_gap_cycles": min(gaps) if gaps else 0,
            "tx_underrun_cycles": probe.tx_underruns,
            "engine_cycles_per_segment": sum(probe.engine_steps.values()) / segments,
            "engine_steps": steps_per(probe.engine_steps, EngineStep, segments),
        }

    def mixed(self, size: int, tx_conns: list[Conn], rx_conns: list[Conn]) -> dict:
        """`size`-byte data frames back to back round robin over `rx_conns` while one process
        per connection of `tx_conns` makes large WRITEs on it and READs its share of
        `rx_conns` (every len(tx_conns)-th from its own). The frames fit the receive windows
        (rings read empty first); what is not read during the run is read after it. The
        writes together fill as many clocks of the wire as the frames take on ``rx``."""
        n = payload_of(size)
        processes = len(tx_conns)
        for conn in rx_conns:
            self.drain(conn)
        per_conn = min(self.plan.ring_bytes // n, -(-self.plan.mixed_frames // len(rx_conns)))
        frames = []
        for _ in range(per_conn):
            for conn in rx_conns:
                frame = self.data_frame(conn, n)
                frames.append((conn, conn.sent, frame))
        # the writes offered: what the wire carries at line rate while the frames come in
        mss = tx_conns[0].mss
        in_clocks = sum(-(-len(frame) // self.lanes) for _, _, frame in frames)
        share = max(mss, -(-in_clocks * self.lanes * mss // ((mss + TCP_HEADERS) * processes)))
        write_bytes = max(1, (self.plan.ring_bytes // 2) // mss) * mss
        actors = []
        for p, proc in enumerate(self.workers(processes)):
            actor = Actor(proc, [Writer(tx_conns[p], stream=WRITER_STREAMS + p, total=share,
                                        write_bytes=write_bytes)])
            actor.items += rx_conns[p::processes]
            actors.append(actor)
        before = self.counters()
        result = resume(self._load)(actors, frames)
        diff = {k: v - before[k] for k, v in self.counters().items()}
        probe, frames_out, stats = result["probe"], result["frames_out"], result["stats"]
        read_during = stats["read_bytes"]
        for conn in rx_conns:
            self.drain(conn)
        in_order = [conn.read >= end for conn, end, _ in frames]
        self.send_again([frame for (_, _, frame), ok in zip(frames, in_order) if not ok], rx_conns)
        start = min(probe.rx[0], probe.host_cmds[0])
        rx_end = probe.ring[-1]
        data_ends = [f[1] for f, (kind, _) in zip(probe.tx_frames, frames_out) if kind == "data"]
        tx_end = data_ends[-1]
        rx_cycles, tx_cycles = rx_end - start + 1, tx_end - start + 1
        cycles = max(rx_end, tx_end) - start + 1
        port = size - FCS_BYTES
        rx_bytes = sum(in_order) * port
        tx_bytes = sum(b for kind, b in frames_out if kind == "data")
        acks_out = [b for kind, b in frames_out if kind == "ack"]
        tx_payload = sum(len(link.wire) for link in result["links"].values())
        return {
            "frame_bytes": size, "port_bytes": port, "payload_bytes": n,
            "rx_connections": len(rx_conns), "tx_connections": processes, "processes": processes,
            "tx_mss": mss, "cycles": cycles,
            "rx_frames_offered": len(frames), "rx_frames_dropped": diff["drop_rx_fifo_full"],
            "rx_segments_refused": diff["ooo_refused"], "rx_frames_in_order": sum(in_order),
            "rx_backpressure_cycles": probe.rx_stalls, "rx_cycles": rx_cycles,
            "rx_payload_bytes_delivered": sum(in_order) * n,
            "rx_frame_bytes_per_clock": rx_bytes / rx_cycles,
            "rx_line_rate_ratio": rx_bytes / rx_cycles / self.lanes,
            "peer_acks": stats["peer_acks"],
            "reads": stats["reads"], "read_eagain": stats["read_eagain"],
            "bytes_read_during": read_during,
            "tx_write_bytes": write_bytes, "tx_payload_bytes_written": processes * share,
            "tx_writes": stats["writes"], "tx_partial_writes": stats["partial_writes"],
            "tx_write_retries": stats["write_retries"],
            "tx_segments": len(data_ends), "tx_payload_bytes_sent": tx_payload,
            "tx_mean_frame_bytes": tx_bytes / max(len(data_ends), 1) + FCS_BYTES,
            "tx_cycles": tx_cycles, "tx_frame_bytes_per_clock": tx_bytes / tx_cycles,
            "tx_line_rate_ratio": tx_bytes / tx_cycles / self.lanes,
            "tx_ack_frames": len(acks_out), "tx_underrun_cycles": probe.tx_underruns,
            "tx_port_bytes_per_clock": (tx_bytes + sum(acks_out)) / cycles,
            "line_rate_ratio": (rx_bytes + tx_bytes) / cycles / (2 * self.lanes),
            "engine_steps": steps_per(probe.engine_steps, EngineStep, len(frames) + len(data_ends)),
        }

    # ----- latency -----------------------------------------------------------------------------

    async def _latency(self, beats: list[int], command: int | None = None, wdata=(),
                       poll: int | None = None) -> dict:
        """Queue `beats` on rx and/or one host `command` (with `wdata`) on an idle NIC. With
        `poll` (a READ command), keep one READ waiting until one returns data."""
        nic = self.nic
        if nic.host_rsp.items or nic.host_rdata.items or nic.tx.items:
            raise AssertionError("a latency measurement must start on an idle NIC, all taken")
        probe = Probe(nic).start()
        nic.rx.queue.extend(beats)
        if command is not None:
            nic.host_cmd.queue.append(command)
            nic.host_wdata.queue.extend(wdata)
        responses = []
        if poll is not None:
            push(nic.host_cmd, [poll])
            for source in nic.sources:
                source.drive()
            while True:
                await nic.cycle()
                for value in nic.host_rsp.items:
                    responses.append(data.Const(HostResponse(), value))
                nic.host_rsp.items.clear()
                if responses and responses[-1].count:
                    break
                if not nic.host_cmd.queue and len(responses) == len(probe.host_cmds):
                    push(nic.host_cmd, [poll])
        await nic.settle()
        probe.stop()
        return {"probe": probe, "responses": responses}

    def latency(self, conn: Conn, size: int) -> dict:
        n = payload_of(size)
        # last byte in -> readable by a READ (one READ always waiting)
        self.host.transmit()
        poll = self.host_command(conn, HostOp.READ, length=n, nonblock=1)
        result = resume(self._latency)(self.nic.beats(self.data_frame(conn, n)), poll=poll)
        probe, responses = result["probe"], result["responses"]
        data_read = b"".join(self.nic.take(self.nic.host_rdata))
        if responses[-1].count != n or data_read != stream_bytes(conn.index, conn.read, n):
            raise AssertionError(f"the polling READ got {responses[-1].count} of {n} bytes")
        conn.read += n
        last_in = probe.rx[-1]
        readable = probe.host_rsps[len(responses) - 1] - last_in
        in_ring = probe.ring[-1] - last_in
        polls = len(responses)
        self.host.transmit()
        # last byte in -> first byte of the ACK out
        result = resume(self._latency)(self.nic.beats(self.data_frame(conn, n)))
        probe = result["probe"]
        acks = [parse_frame(f).tcp for f in self.host.transmit()]
        if not acks or acks[0].ack != conn.peer_seq & 0xFFFF_FFFF or acks[0].payload:
            raise AssertionError(f"no ACK for the segment: {acks}")
        ack_out = probe.tx_frames[0][0] - probe.rx[-1]
        self.drain(conn)
        # WRITE accepted -> first byte of its segment out
        chunk = stream_bytes(conn.index, 0, n)
        command = self.host_command(conn, HostOp.WRITE, length=n)
        result = resume(self._latency)([], command, self.nic.beats(chunk))
        probe = result["probe"]
        rsp = [data.Const(HostResponse(), v) for v in self.nic.take(self.nic.host_rsp)]
        segs = [parse_frame(f).tcp for f in self.host.transmit()]
        if len(rsp) != 1 or rsp[0].status != Errno.OK or int(rsp[0].count) != n:
            raise AssertionError(f"a WRITE of {n} bytes answered {rsp}")
        if len(segs) != 1 or segs[0].payload != chunk:
            raise AssertionError(f"a WRITE of {n} bytes sent {segs}")
        write_out = probe.tx_frames[0][0] - probe.host_cmds[0]
        conn.nic_seq += n
        self.host.receive_frame(self.frame(conn, TcpFlag.ACK))
        self.host.transmit()
        return {"frame_bytes": size, "payload_bytes": n,
                "rx_to_readable": readable, "rx_to_ring": in_ring, "polls": polls,
                "rx_to_ack_out": ack_out, "write_to_wire": write_out,
                "write_underrun_cycles": probe.tx_underruns}


def run(bench: Bench, log=print) -> dict:
    """Every benchmark of the plan; returns the figures (``BENCH_OUT``'s content)."""
    plan = bench.plan
    wanted = max((*plan.rx_connections, len(plan.tx_sizes) + bool(plan.latency_sizes),
                  plan.mixed_processes + 1 if plan.mixed_sizes else 0), default=0)
    started, cycles0 = time.monotonic(), bench.port.cycles
    for size in plan.tx_sizes:
        bench.open(payload_of(size))                  # transmit: this MSS gives `size` frames

    def with_mss(mss: int) -> list[Conn]:
        return [c for c in bench.conns if c.mss == mss]

    for size, _, connections in plan.tx_loads:       # reuses the connections of that MSS
        missing = connections - len(with_mss(payload_of(size)))
        if len(bench.conns) + max(missing, 0) > plan.connections:
            raise ValueError(f"the plan needs more than the NIC's {plan.connections} connections")
        for _ in range(missing):
            bench.open(payload_of(size))
    if max(wanted, len(bench.conns)) > plan.connections:
        raise ValueError(f"the plan needs {wanted} connections, the NIC has {plan.connections}")
    while len(bench.conns) < wanted:
        bench.open(LATENCY_MSS)
    log(f"{len(bench.conns)} connections open after {bench.port.cycles} clocks")
    figures = {"receive": [], "transmit": [], "latency": [], "transmit_load": [], "mixed": []}
    nic = {"nic_connections": plan.connections, "ring_bytes": plan.ring_bytes}
    for size in plan.rx_sizes:
        for connections in plan.rx_connections:
            row = {**bench.receive(size, connections), **nic}
            figures["receive"].append(row)
            log(f"receive {size} B x {connections}: {row['frame_bytes_per_clock']:.2f} B/clk, "
                f"{row['engine_cycles_per_segment']:.1f} engine clocks/segment, "
                f"{row['frames_dropped']} dropped")
    for size, conn in zip(plan.tx_sizes, bench.conns):
        row = {**bench.transmit(conn, size), **nic}
        figures["transmit"].append(row)
        log(f"transmit {size} B: {row['frame_bytes_per_clock']:.2f} B/clk")
    if plan.latency_sizes and bench.conns[-1].mss != LATENCY_MSS:
        raise ValueError(f"the latency connection must have MSS {LATENCY_MSS}")
    for size in plan.latency_sizes:
        row = {**bench.latency(bench.conns[-1], size), **nic}
        figures["latency"].append(row)
        log(f"latency {size} B: {row}")
    for size, processes, connections in plan.tx_loads:
        conns = with_mss(payload_of(size))[:connections]
        row = {**bench.transmit_load(conns, size, processes), **nic}
        figures["transmit_load"].append(row)
        log(f"transmit {size} B, {processes} processes on {connections} connection(s): "
            f"{row['frame_bytes_per_clock']:.2f} B/clk, {row['write_retries']} EAGAIN")
    for size in plan.mixed_sizes:
        writers = with_mss(MIXED_MSS)[-plan.mixed_processes:]
        if len(writers) < plan.mixed_processes:
            raise ValueError(f"the mixed load needs {plan.mixed_processes} connections of MSS "
                             f"{MIXED_MSS}")
        readers = [c for c in bench.conns if c not in writers]
        row = {**bench.mixed(size, writers, readers), **nic}
        figures["mixed"].append(row)
        log(f"mixed {size} B: receive {row['rx_frame_bytes_per_clock']:.2f} B/clk, transmit "
            f"{row['tx_frame_bytes_per_clock']:.2f} B/clk, {row['rx_frames_dropped']} dropped")
    figures["sim"] = {"cycles": bench.port.cycles - cycles0,
                      "wall_s": round(time.monotonic() - started, 3)}
    return figures


@cocotb.test()
async def benchmarks(dut):
    """Every benchmark of BENCH_PLAN; the figures go to BENCH_OUT."""
    plan = Plan.from_json(os.environ["BENCH_PLAN"])
    out = Path(os.environ["BENCH_OUT"])
    nic = NicBench(dut, data_width=plan.width, connections=plan.connections,
                   processes=plan.processes)
    await nic.start()

    def body():
        return run(Bench(nic, plan, log=dut._log.info), log=dut._log.info)

    figures = await bridge(body)()
    figures["plan"] = asdict(plan)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1) + "\n")
