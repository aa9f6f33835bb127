"""Programs that make a simulated host (the golden model or the RTL NIC) talk to Linux's TCP.

A program is two halves run at the same time: the simulated host's processes (cooperative
tasks on the host's socket API: ``model.host.Process`` calls, retried while they would
block) and Linux's clients or servers (ordinary Python sockets in a subprocess inside the
namespace). ``run_program`` pumps the wire between them through ``tb.linux_bridge.LinuxBridge``
and returns a *report*: what each side received (length and SHA-256), how each connection
ended, the retransmissions of each side by cause, and the run's wall time and clocks.
The same program on the model and on the RTL must give the same outcome (``outcome``).

The host's server follows the seed's pattern: the accepting process reads the first byte (a
command), forks, closes its copy of the connection, and the child reads the rest:

- ``E``: echo every following byte until EOF, then close (a half close from the kernel);
- ``F``: read ``"<size> <seed>\\n"`` and serve that file (seeded bytes), then close;
- ``R``: read `size` bytes, answer ``!``, then read on until the kernel's RST (SO_LINGER 0)
  ends the connection, and report the error.

The host's client connects to a Linux server, sends its bytes, half-closes (SHUT_WR) and
reads the server's answer to EOF.
"""

import dataclasses
import hashlib
import json
import random
import select
import time

from model.constants import SHUT_WR, SOCK_STREAM
from model.errors import Errno, SocketError, WouldBlock
from tb.linux_bridge import Impairment, LinuxBridge, resets

__all__ = ["LINUX_IP", "LINUX_MAC", "HOST_IP", "HOST_MAC", "SERVER_PORT", "Program", "PROGRAMS",
           "payload", "try_call", "run_program", "outcome", "expected_outcome"]

LINUX_IP, LINUX_MAC = "192.0.2.1", "02:00:00:00:00:01"
HOST_IP, HOST_MAC = "192.0.2.2", "02:00:00:00:00:02"
SERVER_PORT = 7
CHUNK = 2048                # bytes per host send/recv call (the NIC's rings are 2 KiB)
RETRY_SECONDS = 0.05        # a blocked task is retried at least this often


def payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclasses.dataclass(frozen=True)
class Program:
    """One exchange between the host and Linux.

    Parameters
    ----------
    doc : what the program shows.
    linux : groups of Linux connections; the connections of a group run at once, the
        groups one after the other. Each is a dict: ``{"kind": "echo" | "file" | "reset",
        "size", "seed"}`` (a client of the host's server) or ``{"kind": "serve", "port",
        "size", "seed"}`` (a Linux server for the host's client).
    host_clients : ``(port, size, seed)`` per connection the host opens to a Linux server.
    impairment : the bridge's seeded loss, duplication and reordering, or None.
    timeout : seconds for the whole exchange.
    """
    doc: str
    linux: tuple = ()
    host_clients: tuple = ()
    impairment: Impairment | None = None
    timeout: float = 60.0

    @property
    def server_connections(self) -> int:
        return sum(1 for group in self.linux for c in group if c["kind"] != "serve")


KIB = 1024
PROGRAMS = {
    "kernel_connects": Program(
        "the kernel opens three connections at once to the host's server: two echoes (each "
        "half-closed by the kernel) and a file",
        linux=(({"kind": "echo", "size": 12 * KIB, "seed": 1},
                {"kind": "echo", "size": 3 * KIB, "seed": 2},
                {"kind": "file", "size": 8 * KIB, "seed": 3}),)),
    "host_connects": Program(
        "the host connects to a Linux server, sends, half-closes and reads the answer to EOF",
        linux=(({"kind": "serve", "port": 9000, "size": 8 * KIB, "seed": 4},),),
        host_clients=((9000, 12 * KIB, 5),)),
    "kernel_resets": Program(
        "the kernel aborts a connection with an RST (SO_LINGER 0) while the host's child "
        "reads; then a new connection to the same server is echoed",
        linux=(({"kind": "reset", "size": 300, "seed": 6},),
               ({"kind": "echo", "size": 2 * KIB, "seed": 7},))),
    "lossy_echo": Program(
        "an echo through the bridge's seeded loss (5%), duplication (3%) and reordering (5%)",
        linux=(({"kind": "echo", "size": 16 * KIB, "seed": 8},),),
        impairment=Impairment(seed=12, loss=0.05, duplicate=0.03, reorder=0.05),
        timeout=90.0),
    "echo_1mib": Program(
        "1 MiB each way: the kernel sends 1 MiB, the host's child echoes it",
        linux=(({"kind": "echo", "size": 1024 * KIB, "seed": 9},),),
        timeout=900.0),
    "demo": Program(
        "the kernel opens three connections at once: 1 MiB echoed (1 MiB each way), a 256 KiB "
        "file and a 64 KiB echo; then the host connects to a Linux server, 64 KiB each way",
        linux=(({"kind": "echo", "size": 1024 * KIB, "seed": 10},
                {"kind": "file", "size": 256 * KIB, "seed": 11},
                {"kind": "echo", "size": 64 * KIB, "seed": 12}),
               ({"kind": "serve", "port": 9000, "size": 64 * KIB, "seed": 13},)),
        host_clients=((9000, 64 * KIB, 14),),
        timeout=1800.0),
}

# --- Linux's side: one process, a thread per connection ------------------------------------

LINUX_SIDE = r"""
import hashlib, json, random, socket, struct, sys, threading
groups, host_ip, port, timeout = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

def data(spec):
    return random.Random(spec["seed"]).randbytes(spec["size"])

def drain(s, report):
    digest, n = hashlib.sha256(), 0
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        digest.update(chunk)
        n += len(chunk)
    report["received"], report["sha256"] = n, digest.hexdigest()

def send_then_shut(s, message, report):
    try:
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
    except Exception as exc:
        report["errors"].append("send: " + repr(exc))

def client(spec, report):
    s = socket.create_connection((host_ip, port), timeout=timeout)
    s.settimeout(timeout)
    if spec["kind"] == "reset":
        s.sendall(b"R" + data(spec))
        report["answer"] = s.recv(1).decode()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        return
    message = (b"E" + data(spec) if spec["kind"] == "echo"
               else b"F" + f"{spec['size']} {spec['seed']}\n".encode())
    sender = threading.Thread(target=send_then_shut, args=(s, message, report))
    sender.start()
    drain(s, report)
    sender.join(timeout)
    s.close()

def server(spec, listener, report):
    listener.settimeout(timeout)
    s, _ = listener.accept()
    s.settimeout(timeout)
    drain(s, report)
    s.sendall(data(spec))
    s.close()

reports = []
listeners = {}
for group in groups:
    for spec in group:
        if spec["kind"] == "serve":
            l = socket.socket()
            l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            l.bind(("0.0.0.0", spec["port"]))
            l.listen(4)
            listeners[id(spec)] = l
print("READY", flush=True)
for group in groups:
    threads = []
    for spec in group:
        report = {"kind": spec["kind"], "size": spec["size"], "seed": spec["seed"], "errors": []}
        reports.append(report)
        def run(spec=spec, report=report):
            try:
                if spec["kind"] == "serve":
                    server(spec, listeners[id(spec)], report)
                else:
                    client(spec, report)
            except Exception as exc:
                report["errors"].append(repr(exc))
        threads.append(threading.Thread(target=run))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(json.dumps(reports), flush=True)
"""

# --- the host's side: cooperative tasks on the socket API -----------------------------------


def try_call(call):
    """`call`'s result (a host socket call), or None while it would block (WouldBlock or
    EAGAIN)."""
    try:
        return call()
    except WouldBlock:
        return None
    except SocketError as exc:
        if exc.errno != Errno.EAGAIN:
            raise
        return None


def _wait(call):
    """A blocking call as a task: retry `call` (yielding between tries) until it completes."""
    while (result := try_call(call)) is None:
        yield
    return result


def _spawn(host):
    """A new process (``Host.spawn`` returns a Process, ``NicHost.spawn`` its pid)."""
    proc = host.spawn()
    return host.processes[proc] if isinstance(proc, int) else proc


class Tasks:
    """Round-robin generators; a task yields None when blocked, or a new task to start."""

    def __init__(self):
        self.running = []
        self.blocked = False        # every task was blocked at the last step


    def add(self, task):
        self.running.append(task)

    def step(self):
        """Advance every task once; True when all have finished, else None."""
        self.blocked = True
        for task in list(self.running):
            try:
                new = next(task)
            except StopIteration:
                self.running.remove(task)
                self.blocked = False
                continue
            if new is not None:
                self.running.append(new)
                self.blocked = False
        return True if not self.running else None


def _exchange(proc, fd, outgoing: bytes, results: dict, shut_after: bool):
    """Send `outgoing` and read to EOF at once; SHUT_WR after the last byte if `shut_after`.
    `results` gets "received" (the bytes)."""
    proc.fcntl_nonblock(fd, True)
    sent, received, eof, shut = 0, bytearray(), False, not shut_after
    while not (eof and sent == len(outgoing) and shut):
        progressed = False
        if sent < len(outgoing):
            n = try_call(lambda: proc.send(fd, outgoing[sent:sent + CHUNK]))
            if n:
                sent, progressed = sent + n, True
        if sent == len(outgoing) and not shut:
            proc.shutdown(fd, SHUT_WR)
            shut = progressed = True
        if not eof:
            chunk = try_call(lambda: proc.recv(fd, CHUNK))
            if chunk is not None:
                received += chunk
                eof, progressed = not chunk, True
        if not progressed:
            yield
    results["received"] = bytes(received)


def _echo_child(proc, fd, results: dict):
    """Echo until EOF, then close: the bytes go back as they come (at most a ring's worth
    held), so the kernel's sender and receiver both make progress."""
    proc.fcntl_nonblock(fd, True)
    pending, eof, echoed = bytearray(), False, 0
    while not eof or pending:
        progressed = False
        if pending:
            n = try_call(lambda: proc.send(fd, bytes(pending[:CHUNK])))
            if n:
                del pending[:n]
                echoed, progressed = echoed + n, True
        if not eof and len(pending) < CHUNK:
            chunk = try_call(lambda: proc.recv(fd, CHUNK))
            if chunk is not None:
                pending += chunk
                eof, progressed = not chunk, True
        if not progressed:
            yield
    results.update(command="E", echoed=echoed)


def _file_child(proc, fd, results: dict):
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = yield from _wait(lambda: proc.recv(fd, 1))
        if not chunk:
            raise AssertionError(f"the file request ended early: {bytes(line)!r}")
        line += chunk
    size, seed = map(int, line.split())
    holder = {}
    yield from _exchange(proc, fd, payload(seed, size), holder, shut_after=False)
    results.update(command="F", served=size, then_received=len(holder["received"]))


def _reset_child(proc, fd, size: int, results: dict):
    got = bytearray()
    while len(got) < size:
        chunk = yield from _wait(lambda: proc.recv(fd, size - len(got)))
        if not chunk:
            break
        got += chunk
    yield from _wait(lambda: proc.send(fd, b"!"))
    end = "EOF"
    try:
        while (yield from _wait(lambda: proc.recv(fd, CHUNK))):
            pass
    except SocketError as exc:
        end = str(exc.errno)
    results.update(command="R", received=len(got), sha256=_sha(bytes(got)), end=end)


def _server(host, connections: int, reset_sizes: list, results: list):
    """The accepting process: per connection, read the command byte, fork, let the child
    serve the rest."""
    parent = _spawn(host)
    lfd = parent.socket(SOCK_STREAM)
    parent.bind(lfd, (host.ip, SERVER_PORT))
    parent.listen(lfd, 8)
    for _ in range(connections):
        fd, _peer = yield from _wait(lambda: parent.accept(lfd))
        command = yield from _wait(lambda: parent.recv(fd, 1))
        child = parent.fork()
        parent.close(fd)
        report = {}
        results.append(report)
        if command == b"E":
            yield _child(child, fd, _echo_child(child, fd, report))
        elif command == b"F":
            yield _child(child, fd, _file_child(child, fd, report))
        elif command == b"R":
            yield _child(child, fd, _reset_child(child, fd, reset_sizes.pop(0), report))
        else:
            raise AssertionError(f"unknown command {command!r}")
    parent.close(lfd)
    parent.exit()


def _child(proc, fd, body):
    yield from body
    proc.close(fd)
    proc.exit()


def _client(host, port: int, size: int, seed: int, results: list):
    proc = _spawn(host)
    fd = proc.socket(SOCK_STREAM)
    yield from _wait(lambda: proc.connect(fd, (LINUX_IP, port)) or True)
    holder = {}
    yield from _exchange(proc, fd, payload(seed, size), holder, shut_after=True)
    proc.close(fd)
    proc.exit()
    received = holder["received"]
    results.append({"command": "client", "sent": size, "received": len(received),
                    "sha256": _sha(received)})


# --- running one --------------------------------------------------------------------------


def _read_line(proc, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no line from Linux's side in {timeout} s")
    return proc.stdout.readline().strip()


def run_program(program: Program, host, device, linger: float = 0.3) -> dict:
    """Run `program` between `host` and Linux behind `device` (a ``tb.netns.NamespacedDevice``
    whose peer is `host`); returns the report. The bridge is ``report["bridge"]`` (not
    JSON) for the caller's pcap; on an exception it is attached as ``exc.bridge``."""
    # no permanent neighbour entry: Linux resolves the host by ARP, and the host's software
    # (the NIC's slow path) answers
    device.ns.ip("neigh", "del", HOST_IP, "dev", device.ifname)
    bridge = LinuxBridge(device.device, host, impairment=program.impairment, clock="waiting")
    linux = device.ns.popen(device.ns.python_argv(
        LINUX_SIDE, json.dumps(program.linux), HOST_IP, str(SERVER_PORT), str(program.timeout)))
    try:
        if (line := _read_line(linux, 10)) != "READY":
            raise RuntimeError(f"Linux's side did not start: {line!r} {linux.stderr.read()[-2000:]}")
        host_results = []
        tasks = Tasks()
        reset_sizes = [c["size"] for group in program.linux for c in group if c["kind"] == "reset"]
        if program.server_connections:
            tasks.add(_server(host, program.server_connections, reset_sizes, host_results))
        for port, size, seed in program.host_clients:
            tasks.add(_client(host, port, size, seed, host_results))
        cycles = getattr(getattr(host, "port", None), "cycles", None)
        started, ticks0 = time.monotonic(), host.now
        retry = {"inputs": -1, "at": 0.0}

        def step():
            # a blocked call is tried again only after a frame reached the host or a while
            # has passed (a timer): each try is a host command, clocks of simulation
            now = time.monotonic()
            if not tasks.blocked or bridge.host_inputs != retry["inputs"] or now > retry["at"]:
                retry.update(inputs=bridge.host_inputs, at=now + RETRY_SECONDS)
                tasks.step()
            return True if not tasks.running and linux.poll() is not None else None

        bridge.run_until(step, timeout=program.timeout, what="the exchange")
        wall = time.monotonic() - started
        if cycles is not None:
            cycles = host.port.cycles - cycles
        end = time.monotonic() + linger                 # the last ACKs, for the pcap
        while time.monotonic() < end:
            bridge.pump(wait=0.01)
        out, err = linux.communicate(timeout=10)
        if linux.returncode != 0:
            raise RuntimeError(f"Linux's side failed ({linux.returncode}): {err.strip()[-2000:]}")
        linux_reports = json.loads(out.strip().splitlines()[-1])
    except BaseException as exc:
        if linux.poll() is None:
            linux.kill()
        try:
            out, err = linux.communicate(timeout=5)
            exc.add_note(f"Linux's side (exit {linux.returncode}): stdout {out.strip()[-1000:]!r}; "
                         f"stderr {err.strip()[-2000:]!r}")
        except Exception:               # the exception being raised matters more
            pass
        exc.bridge = bridge
        raise
    moved = sum(c["size"] for group in program.linux for c in group)
    moved += sum(c["size"] for group in program.linux for c in group if c["kind"] == "echo")
    moved += sum(size for _, size, _ in program.host_clients)
    aborts, late = resets(bridge.trace)
    return {"linux": linux_reports,
            "host": sorted((_jsonable(r) for r in host_results), key=json.dumps),
            "resets": aborts, "late_resets": late,
            "retransmissions": bridge.retransmissions(),
            "fates": bridge.fates(), "frames": len(bridge.trace), "bytes": moved,
            "wall_s": round(wall, 3), "waited_s": round(bridge.waited, 3),
            "ticks": host.now - ticks0, "clocks": cycles,
            "drops": dict(getattr(host, "drop_counts", lambda: {})()), "bridge": bridge}


def _jsonable(result: dict) -> dict:
    if "received" in result and isinstance(result["received"], bytes):
        result = {**result, "received": len(result["received"]),
                  "sha256": _sha(result["received"])}
    return result


def outcome(report: dict) -> dict:
    """What a run must deliver, without its timing: what each side received and how each
    connection ended (the part the model and the RTL must agree on). The RSTs counted are
    aborts; an RST answering a stray segment after a clean close (``late_resets``) is not
    part of it, as whether a fault falls on such a segment is a matter of timing."""
    return {"linux": report["linux"], "host": report["host"], "resets": report["resets"]}


def expected_outcome(program: Program) -> dict:
    """The outcome of `program` when every byte arrives and every close is clean."""
    linux, host = [], []
    resets = {"linux": 0, "host": 0}
    for group in program.linux:
        for c in group:
            entry = {"kind": c["kind"], "size": c["size"], "seed": c["seed"], "errors": []}
            data = payload(c["seed"], c["size"])
            if c["kind"] == "echo":
                entry.update(received=len(data), sha256=_sha(data))
                host.append({"command": "E", "echoed": len(data)})
            elif c["kind"] == "file":
                entry.update(received=len(data), sha256=_sha(data))
                host.append({"command": "F", "served": len(data), "then_received": 0})
            elif c["kind"] == "reset":
                entry.update(answer="!")
                host.append({"command": "R", "received": len(data), "sha256": _sha(data),
                             "end": "ECONNRESET"})
                resets["linux"] += 1
            else:
                client = next(h for h in program.host_clients if h[0] == c["port"])
                sent = payload(client[2], client[1])
                entry.update(received=len(sent), sha256=_sha(sent))
                host.append({"command": "client", "sent": len(sent), "received": len(data),
                             "sha256": _sha(data)})
            linux.append(entry)
    return {"linux": linux, "host": sorted(host, key=json.dumps), "resets": resets}
