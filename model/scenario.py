"""One scenario, two backends: the contract a host under test implements, and a runner.

A scenario is written once against `Backend`, the smallest interface that lets a test drive
a host: processes issuing socket calls, frames arriving from the wire, time passing. The
golden model implements it in `ModelBackend`; the RTL backend (cocotb + a thin host driver
playing the OS) implements the same methods. `Runner` joins the host under test ("dut") to
a peer (any Backend, normally a model Host) through a seeded `Wire` and records a `trace`:
every call with its result, and every transmitted TCP/UDP segment (seq, ack, flags, window,
payload, checksum). The scoreboard compares two traces with `compare_traces`; on a mismatch
it writes a pcapng of each side with `write_pcap` (simulation timestamps, each frame's fate).

Backend contract
----------------
``ip: str``, ``mac: bytes``
    The host's addresses.
``now: int``
    Its clock in ticks.
``spawn() -> int``
    Create a process; return its pid.
``call(pid, op, *args) -> Result``
    Run socket call `op` (a `model.host.Process` method name: "socket", "bind", "listen",
    "accept", "connect", "recv", "recvfrom", "send", "sendto", "shutdown", "close", "poll",
    "fcntl_nonblock", "getsockopt_error", "setsockopt", "getsockopt", "dup") as process `pid`. Two ops name processes
    by pid: "fork" returns the child's pid, and ``"send_fd", fd, other_pid`` returns the fd
    in `other_pid`. The result is a value, an errno name, or "blocked" (a blocking call that
    must be retried, unchanged, after the wire or the clock has moved).
``calls(batch) -> list[Result]``
    Several calls outstanding at once: `batch` is a list of ``(pid, op, *args)``. All of them
    are issued before the host settles; their results come back in list order. The host
    command port is one stream, so the NIC serves the batch's data-path commands back to back
    in list order; the model runs the calls one after the other in list order. The two agree
    when the calls use different connections, or are data-path calls (send, recv, poll,
    shutdown, SO_ERROR) whose order on one connection is the list order. A call that changes
    the fd table (close, fork, dup, send_fd) of a connection another call of the batch uses
    has no defined order. The default runs ``call`` for each in turn.
``receive_frame(frame: bytes)``, ``transmit() -> list[bytes]``
    Frames in from the wire; frames sent since the last `transmit`. A frame may be 0 or 1
    bytes long (a runt: dropped and counted, never a crash).
``receive_frames(frames: list[bytes])``
    Frames arriving back to back, with no time to settle in between (the default hands them
    to `receive_frame` in order).
``receive_frames_busy(frames: list[bytes])``
    Frames back to back while host software takes nothing from the slow path: on the NIC its
    slow-path FIFO fills and drops what does not fit (SLOW_FIFO_FULL); the model (the
    default: `receive_frames`) has no such queue.
``race(frames, batch) -> list[Result]``
    Frames arriving and calls issued at the same instant: on the NIC the frames' beats and
    the calls' host commands are queued together and the host settles once, so the engine may
    take either first; the model (the default) takes the frames, then runs the calls. Only
    for what both orders leave equal (calls that do not block, frames that change nothing the
    calls see).
``advance(ticks: int)``
    Move the clock, firing every timer at its deadline.
``next_deadline() -> int | None``
    The earliest pending timer (None: none). A backend that cannot tell returns ``now + 1``.
``add_neighbor(ip, mac)``
    Static neighbour entry.
``drop_counts() -> dict[str, int]``
    Frames dropped so far by cause: ``model.drops.DropCause`` name -> count, zero entries
    omitted. Every dropped frame is counted once, under one cause, whether the NIC or host
    software dropped it (the RTL's NIC counters are read over the control port).
"""

import os
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import SocketError, WouldBlock
from .host import Host
from .packet import PacketError, flag_names, parse_frame
from .wire import Wire, WireEvent

__all__ = ["Result", "BLOCKED", "Backend", "ModelBackend", "run_call", "Runner", "segment_entry",
           "brief", "compare_traces", "write_pcap"]


@dataclass(frozen=True)
class Result:
    value: Any = None
    errno: str | None = None
    blocked: bool = False

    def __str__(self):
        if self.blocked:
            return "BLOCKED"
        return f"-1 {self.errno}" if self.errno else repr(self.value)


BLOCKED = Result(blocked=True)


class Backend:
    """The interface a scenario drives (see the module docstring)."""
    ip: str
    mac: bytes
    now: int

    def spawn(self) -> int:
        raise NotImplementedError

    def call(self, pid: int, op: str, *args) -> Result:
        raise NotImplementedError

    def calls(self, batch: list[tuple]) -> list[Result]:
        return [self.call(pid, op, *args) for pid, op, *args in batch]

    def receive_frame(self, frame: bytes):
        raise NotImplementedError

    def receive_frames(self, frames: list[bytes]):
        for frame in frames:
            self.receive_frame(frame)

    def transmit(self) -> list[bytes]:
        raise NotImplementedError

    def receive_frames_busy(self, frames: list[bytes]):
        self.receive_frames(frames)

    def race(self, frames: list[bytes], batch: list[tuple]) -> list[Result]:
        self.receive_frames(frames)
        return self.calls(batch)

    def advance(self, ticks: int):
        raise NotImplementedError

    def next_deadline(self) -> int | None:
        return self.now + 1

    def add_neighbor(self, ip: str, mac):
        raise NotImplementedError

    def drop_counts(self) -> dict[str, int]:
        raise NotImplementedError


def run_call(processes: dict, pid: int, op: str, args: tuple) -> Result:
    """Run socket call `op` as process `pid` of `processes` (``model.host.Process`` objects, or
    the RTL driver's, which share its API) and turn what it raises into a Result."""
    proc = processes.get(pid)
    if proc is None:
        raise ValueError(f"No process with pid {pid!r}")
    try:
        if op == "fork":
            return Result(proc.fork().pid)
        if op == "send_fd":
            fd, other = args
            return Result(proc.send_fd(fd, processes[other]))
        if op.startswith("_") or not callable(getattr(proc, op, None)):
            raise ValueError(f"Unknown socket call {op!r}")
        return Result(getattr(proc, op)(*args))
    except SocketError as err:
        return Result(errno=str(err.errno))
    except WouldBlock:
        return BLOCKED


class ModelBackend(Backend):
    """The golden model as a Backend: a `model.host.Host` and its processes by pid."""

    def __init__(self, host: Host):
        self.host = host
        self.ip, self.mac = host.ip, host.mac

    @property
    def now(self) -> int:
        return self.host.now

    def spawn(self) -> int:
        return self.host.spawn().pid

    def call(self, pid: int, op: str, *args) -> Result:
        return run_call(self.host.processes, pid, op, args)

    def receive_frame(self, frame: bytes):
        self.host.receive_frame(frame)

    def transmit(self) -> list[bytes]:
        return self.host.transmit()

    def advance(self, ticks: int):
        self.host.advance(ticks)

    def next_deadline(self) -> int | None:
        return self.host.next_deadline()

    def add_neighbor(self, ip: str, mac):
        self.host.add_neighbor(ip, mac)

    def drop_counts(self) -> dict[str, int]:
        return {cause.name: n for cause, n in sorted(self.host.drops.items()) if n}


def segment_entry(time: int, side: str, frame: bytes) -> tuple:
    """A trace entry for one transmitted frame: what the scoreboard compares."""
    try:
        parsed = parse_frame(frame)
    except PacketError as err:
        return ("tx", time, side, "unparsable", err.cause.name, frame.hex())
    if parsed.tcp is not None:
        t = parsed.tcp
        return ("tx", time, side, "tcp", t.seq, t.ack, flag_names(t.flags), t.window, t.payload, t.checksum)
    if parsed.udp is not None:
        u = parsed.udp
        return ("tx", time, side, "udp", u.src_port, u.dst_port, u.payload, u.checksum)
    return ("tx", time, side, "arp", parsed.arp.op, parsed.arp.target_ip)


def brief(value, limit: int = 64) -> str:
    """`value` as repr gives it, but bytes longer than `limit` as ``<N bytes crc32 X>``:
    short enough for a trace line, and still different when any byte differs."""
    if isinstance(value, (bytes, bytearray)) and len(value) > limit:
        return f"<{len(value)} bytes crc32 {zlib.crc32(value):08x}>"
    if isinstance(value, tuple):
        inner = ", ".join(brief(v, limit) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(brief(v, limit) for v in value) + "]"
    return repr(value)


def _brief_result(result: Result) -> str:
    if result.blocked or result.errno:
        return str(result)
    return brief(result.value)


def _flow(frame: bytes) -> tuple:
    """The sort key of a frame's flow: (protocol, ports, addresses); () for ARP and the rest."""
    try:
        parsed = parse_frame(frame)
    except PacketError:
        return ()
    segment = parsed.tcp or parsed.udp
    if segment is None:
        return ()
    return ("tcp" if parsed.tcp else "udp", segment.src_port, segment.dst_port, parsed.src_ip,
            parsed.dst_ip)


class Runner:
    """Run a scenario: `dut` and `peer` (Backends) joined by a seeded `Wire`.

    ``call(pid, op, *args)`` runs a call on the dut (``side="peer"`` for the peer) and, while
    it is blocked, moves the wire and the clock and retries it; ``calls(batch)`` does the same
    for several calls outstanding at once; ``inject(frame)`` and ``inject_burst(frames)`` hand
    crafted frames to the dut; ``run(ticks)`` lets time pass. `trace` holds every call and result, every frame either side sent, and every frame
    `inject` handed to the dut.
    """

    def __init__(self, dut: Backend, peer: Backend, **wire_options):
        self.dut, self.peer = dut, peer
        self.wire = Wire(dut, peer, **wire_options)
        self.trace: list[tuple] = []
        self._logged = 0

    @property
    def now(self) -> int:
        return self.wire.now

    def _sync_log(self):
        self.wire.collect()
        for event in self.wire.log[self._logged:]:
            self.trace.append(segment_entry(event.time, "dut" if event.side == "a" else "peer", event.frame))
        self._logged = len(self.wire.log)

    def call(self, pid: int, op: str, *args, side: str = "dut", block: bool = True,
             max_ticks: int = 100_000) -> Result:
        backend = self.dut if side == "dut" else self.peer
        start = self.now
        result = backend.call(pid, op, *args)
        while result.blocked and block and self.now - start < max_ticks:
            self._sync_log()
            if not self.wire.step(start + max_ticks):
                break
            result = backend.call(pid, op, *args)
        self._sync_log()
        self.trace.append(("call", self.now, side, pid, op, brief(args), _brief_result(result)))
        return result

    def calls(self, batch: list[tuple], side: str = "dut", block: bool = True,
              max_ticks: int = 100_000) -> list[Result]:
        """Several calls outstanding at once: `batch` is a list of ``(pid, op, *args)``.

        All the calls are issued before the host settles (see ``Backend.calls``: on the NIC
        their host commands go back to back on the one host command port and are served in
        list order; on the model they run in list order). Blocked calls are retried, as a
        batch again, while the wire and the clock move, as `call` does. Each call's result
        goes into the trace, in list order, once all of them are done. What the host sends
        meanwhile is put on the wire in flow order (see `_put_in_flow_order`).
        """
        backend = self.dut if side == "dut" else self.peer
        batch = [tuple(call) for call in batch]
        start = self.now
        self._sync_log()
        results = backend.calls(batch)
        done = [self.now] * len(batch)
        self._put_in_flow_order(backend)
        while block and any(r.blocked for r in results) and self.now - start < max_ticks:
            self._sync_log()
            if not self.wire.step(start + max_ticks):
                break
            waiting = [i for i, r in enumerate(results) if r.blocked]
            for i, result in zip(waiting, backend.calls([batch[i] for i in waiting])):
                results[i], done[i] = result, self.now
            self._put_in_flow_order(backend)
        self._sync_log()
        for (pid, op, *args), result, time in zip(batch, results, done):
            self.trace.append(("call", time, side, pid, op, brief(tuple(args)), _brief_result(result)))
        return results

    def _put_in_flow_order(self, backend: Backend):
        """Put what `backend` sent on the wire, grouped by flow (stable, so each flow keeps its
        own order). Several flows served at once (a batch of calls, a burst of frames) may
        interleave their segments in any order on the NIC's transmit port; the order within
        one flow is what both backends define, and what the scoreboard compares."""
        frames = backend.transmit()
        self.wire.put("a" if backend is self.dut else "b", sorted(frames, key=_flow))
        self._sync_log()

    def inject(self, frame: bytes):
        """Deliver a crafted `frame` to the dut now, as if from the wire (traced as "rx")."""
        self._sync_log()
        entry = segment_entry(self.now, "rx", frame)
        self.trace.append(("rx",) + entry[1:])
        self.dut.receive_frame(frame)
        self._sync_log()

    def inject_burst(self, frames: list[bytes], os_busy: bool = False):
        """Deliver crafted `frames` to the dut back to back, with no time to settle between
        them (each traced as "rx"); the dut's answers go on the wire in flow order. With
        `os_busy`, host software takes nothing from the slow path meanwhile
        (``Backend.receive_frames_busy``)."""
        self._sync_log()
        for frame in frames:
            self.trace.append(("rx",) + segment_entry(self.now, "rx", frame)[1:])
        (self.dut.receive_frames_busy if os_busy else self.dut.receive_frames)(list(frames))
        self._put_in_flow_order(self.dut)

    def race(self, frames: list[bytes], batch: list[tuple]) -> list[Result]:
        """Crafted `frames` reach the dut at the instant the calls of `batch` (``(pid, op,
        *args)``, none of which may block) are issued (``Backend.race``); the frames are
        traced as "rx", then each call's result, in list order."""
        self._sync_log()
        for frame in frames:
            self.trace.append(("rx",) + segment_entry(self.now, "rx", frame)[1:])
        batch = [tuple(call) for call in batch]
        results = self.dut.race(list(frames), batch)
        self._put_in_flow_order(self.dut)
        for (pid, op, *args), result in zip(batch, results):
            self.trace.append(("call", self.now, "dut", pid, op, brief(tuple(args)), _brief_result(result)))
        return results

    def run(self, ticks: int):
        """Let `ticks` pass with the wire moving."""
        self.wire.run(max_ticks=ticks)
        self._sync_log()

    def frames(self, side: str) -> list[bytes]:
        return [e.frame for e in self.wire.log if (e.side == "a") == (side == "dut")]


def compare_traces(expected: list[tuple], actual: list[tuple], width: int = 100) -> str | None:
    """None when the traces are equal, else both side by side from the first difference."""
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e != a:
            break
    else:
        if len(expected) == len(actual):
            return None
        i = min(len(expected), len(actual))
    lines = [f"traces differ at entry {i}:", f"{'expected':<{width}} | actual"]
    for j in range(max(0, i - 3), min(max(len(expected), len(actual)), i + 8)):
        e = str(expected[j]) if j < len(expected) else "<missing>"
        a = str(actual[j]) if j < len(actual) else "<missing>"
        mark = "!" if j >= i else " "
        lines.append(f"{mark}{e[:width]:<{width}} | {a[:width]}")
    return "\n".join(lines)


# A tick of the virtual clock is 1 ms of pcap time (model/policy.py: 1 tick = 1 ms when the
# clock is mapped to wall time).
PCAP_SECONDS_PER_TICK = Decimal("0.001")


def write_pcap(path: str, frames: list, names: dict | None = None):
    """Write `frames` as a pcapng file (for Wireshark) using scapy.

    `frames` are `model.wire.WireEvent`s (a wire's log) or plain bytes. An event is written
    at its simulation time (tick x 1 ms from the epoch) with a packet comment that says its
    fate on the wire and its ticks (`WireEvent.describe`, sides named by `names`, default
    "a": "dut", "b": "peer"); a corrupted frame is written as it was delivered, so Wireshark
    flags its checksum. Plain bytes are written at time 0 without a comment.
    """
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter
    names = names or {"a": "dut", "b": "peer"}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    writer = PcapNgWriter(path)
    try:
        for frame in frames:
            if isinstance(frame, WireEvent):
                packet = Ether(frame.received if frame.received is not None else frame.frame)
                # scapy's writer truncates float(time) x 10**6 to whole microseconds; half a
                # microsecond more makes every tick land on its exact microsecond
                packet.time = frame.time * PCAP_SECONDS_PER_TICK + Decimal("0.0000005")
                packet.comments = [frame.describe(names).encode()]
            else:
                packet = Ether(frame)
                packet.time = Decimal(0)
            writer.write(packet)
    finally:
        writer.close()
