"""The golden model against the Linux kernel's own TCP, over a TAP device in a namespace.

Each test creates a private network namespace holding one TAP interface (192.0.2.1, Linux)
whose other end is this process; the model Host (192.0.2.2) is pumped through it by
``tb.linux_bridge.LinuxBridge`` at one tick per millisecond of wall time. Linux's side is a
plain Python socket program running inside the namespace. 1 MiB of seeded pseudo-random
bytes goes each way at the same time, both ends half-close, and both check every byte.

Nothing leaves the namespace: the addresses (TEST-NET-1) exist only there and the namespace
and interface are removed when the test ends, passed or failed. On a failure the traffic is
written to ``build/linux_peer/<test>.pcapng`` and the assertion message names it.

Skipped only when not root or /dev/net/tun is absent, and never when ``CI`` is set.
"""

import contextlib
import hashlib
import json
import os
import random
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from dataclasses import replace

from model.constants import SHUT_WR, SOCK_STREAM
from model.host import Host
from model.policy import DEFAULT_POLICY, LINUX_LIKE_OOO_RANGES, LINUX_SACK, LINUX_WSCALE
from tb.linux_bridge import TO_HOST, TO_LINUX, Impairment, LinuxBridge
from tb.linux_programs import try_call as _try
from tb.netns import NamespacedDevice, unavailable_reason

pytestmark = pytest.mark.netns

LINUX_IP, LINUX_MAC = "192.0.2.1", "02:00:00:00:00:01"
MODEL_IP, MODEL_MAC = "192.0.2.2", "02:00:00:00:00:02"
SIZE = 1 << 20
SEED_LINUX, SEED_MODEL = 0x11A5, 0x30DE1
EXCHANGE_TIMEOUT = 15.0  # seconds for each wait on the wire; a passing test takes about 2 s
TEST_LIMIT = 30.0        # seconds for a whole test, even if a model call never returns
PCAP_DIR = Path(__file__).resolve().parents[2] / "build" / "linux_peer"


def payload(seed: int) -> bytes:
    return random.Random(seed).randbytes(SIZE)


def _device(mode: str):
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this test must run, not skip")
        pytest.skip(reason)
    return NamespacedDevice(mode=mode, address=f"{LINUX_IP}/24", mac=LINUX_MAC,
                            peer_ip=MODEL_IP, peer_mac=MODEL_MAC)


@pytest.fixture
def tap():
    with _device("tap") as device:
        yield device


@pytest.fixture
def tun():
    with _device("tun") as device:
        yield device


# --- the harness on its own: a raw responder answers a Linux UDP socket -------------------

UDP_PING = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.bind((sys.argv[1], 5000))
s.sendto(b"ping", (sys.argv[2], 7))
data, peer = s.recvfrom(100)
print(data.decode(), peer[0], peer[1])
"""


def _udp_echo(device, wrap, unwrap):
    proc = device.ns.popen(device.ns.python_argv(UDP_PING, device.ip, device.peer_ip))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proc.poll() is None:
        frame = device.device.read(timeout=0.05)
        if frame is None:
            continue
        packet = unwrap(frame)
        if UDP in packet and packet[UDP].dport == 7:
            assert packet[IP].src == device.ip and packet[IP].dst == device.peer_ip
            reply = IP(src=device.peer_ip, dst=device.ip) / UDP(sport=7, dport=packet[UDP].sport)
            device.device.write(wrap(reply / packet[UDP].payload.load.replace(b"ping", b"pong")))
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert out.split() == ["pong", device.peer_ip, "7"]


def test_tap_harness_udp_echo(tap):
    _udp_echo(tap, lambda ip: bytes(Ether(src=MODEL_MAC, dst=LINUX_MAC) / ip), Ether)


def test_tun_harness_udp_echo(tun):
    _udp_echo(tun, bytes, IP)


def test_namespace_is_removed(tap):
    name = tap.ns.name
    assert name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "tap0" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
    tap.close()
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    tap.close()  # idempotent


# --- the model against Linux ---------------------------------------------------------------

LINUX_PEER = r"""
import hashlib, json, random, socket, sys, threading
role, ip, port, size, seed, timeout = sys.argv[1:7]
port, size, seed, timeout = int(port), int(size), int(seed), float(timeout)
data = random.Random(seed).randbytes(size)
if role == "client":
    s = socket.create_connection((ip, port), timeout=timeout)
else:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ip, port))
    listener.listen(1)
    listener.settimeout(timeout)
    print("LISTENING", flush=True)
    s, _ = listener.accept()
s.settimeout(timeout)
errors = []
def send():
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except Exception as exc:
        errors.append("send: " + repr(exc))
sender = threading.Thread(target=send)
sender.start()
digest, received = hashlib.sha256(), 0
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        digest.update(chunk)
        received += len(chunk)
except Exception as exc:
    errors.append("recv: " + repr(exc))
sender.join(timeout)
s.close()
print(json.dumps({"received": received, "sha256": digest.hexdigest(), "errors": errors}), flush=True)
"""


class ModelStream:
    """Both directions of one model connection at once, advanced by non-blocking calls.

    ``step()`` sends what the send buffer takes, half-closes (SHUT_WR) after the last byte,
    reads what has arrived, and returns True once everything is sent and EOF is read.
    """

    CHUNK = 16384

    def __init__(self, proc, fd: int, data: bytes):
        self.proc, self.fd, self.data = proc, fd, data
        self.sent, self.received = 0, bytearray()
        self.shut, self.eof = False, False

    def step(self):
        while self.sent < len(self.data):
            n = _try(lambda: self.proc.send(self.fd, self.data[self.sent:self.sent + self.CHUNK]))
            if n is None:
                break
            self.sent += n
        if self.sent == len(self.data) and not self.shut:
            self.proc.shutdown(self.fd, SHUT_WR)
            self.shut = True
        while not self.eof:
            chunk = _try(lambda: self.proc.recv(self.fd, 65536))
            if chunk is None:
                break
            self.received += chunk
            self.eof = not chunk
        return True if self.shut and self.eof else None


def _first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no line from the Linux peer in {timeout} s")
    return proc.stdout.readline().strip()


@contextlib.contextmanager
def wall_limit(seconds: float):
    """Raise TimeoutError in this thread after `seconds`, even inside a model call that loops.

    Every wait in the test has its own timeout; this one bounds a model call that never
    returns. It needs the main thread (SIGALRM), where pytest and its xdist workers run tests.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the test ran longer than {seconds} s (stuck inside a model call?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def evidence(request, tap, bridge_ref: list, linux: list):
    """On any failure, write the pcap and re-raise with where it is and what Linux said."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, pytest.skip.Exception)):
            raise
        notes = []
        if bridge_ref:
            path = PCAP_DIR / f"{request.node.name}-{os.getpid()}.pcapng"
            bridge_ref[0].write_pcap(str(path))
            notes.append(f"pcap of the TAP traffic: {path}")
            notes.append(f"model drops: {dict(bridge_ref[0].host.drops)}")
        for proc in linux:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                out, err = proc.communicate(timeout=5)
                notes.append(f"Linux peer exit {proc.returncode}; stdout: {out.strip()!r}; "
                             f"stderr: {err.strip()[-2000:]!r}")
        with contextlib.suppress(Exception):
            tcp = [line for line in tap.ns.snmp().splitlines() if line.startswith("Tcp:")]
            notes.append("Linux TCP counters: " + " | ".join(
                f"{k}={v}" for k, v in zip(tcp[0].split()[1:], tcp[1].split()[1:])))
        raise AssertionError(f"{type(exc).__name__}: {exc}\n" + "\n".join(notes)) from exc


def _make_host():
    host = Host(MODEL_MAC, MODEL_IP)
    host.add_neighbor(LINUX_IP, LINUX_MAC)
    return host


def _check(stream: ModelStream, linux: subprocess.Popen, bridge):
    bridge.run_until(linux.poll, timeout=EXCHANGE_TIMEOUT, what="the Linux peer")
    out, err = linux.communicate(timeout=5)
    assert linux.returncode == 0, f"Linux peer failed: {err.strip()[-2000:]}"
    report = json.loads(out.strip().splitlines()[-1])
    assert report["errors"] == [], report["errors"]
    expected_by_linux = payload(SEED_MODEL)
    assert (report["received"], report["sha256"]) == (
        SIZE, hashlib.sha256(expected_by_linux).hexdigest()), "Linux received other bytes"
    expected_by_model = payload(SEED_LINUX)
    received = bytes(stream.received)
    assert received == expected_by_model, (
        f"the model received {len(received)} bytes, first difference at "
        f"{_first_difference(received, expected_by_model)}")
    resets = [(direction, i) for i, (_, direction, frame, _fate) in enumerate(bridge.trace)
              if TCP in (packet := Ether(frame)) and packet[TCP].flags.R]
    assert resets == [], f"the connection did not end cleanly: RST at (direction, frame) {resets}"


def _serve_linux_client(tap, bridge, linux: list, port: int, size: int, data: bytes):
    """A model listener on `port`, the Linux peer as its client sending `size` bytes: the
    accepted connection sends `data` and reads until EOF (ModelStream); returns the stream."""
    proc = bridge.host.spawn()
    listener = proc.socket(SOCK_STREAM)
    proc.bind(listener, (MODEL_IP, port))
    proc.listen(listener, 1)
    linux.append(tap.ns.popen(tap.ns.python_argv(
        LINUX_PEER, "client", MODEL_IP, str(port), str(size), str(SEED_LINUX),
        str(EXCHANGE_TIMEOUT))))
    # a blocking accept(): WouldBlock until a connection is established
    fd, _ = bridge.run_until(lambda: _try(lambda: proc.accept(listener)), timeout=5,
                             what="accept()")
    proc.fcntl_nonblock(fd, True)
    stream = ModelStream(proc, fd, data)
    bridge.run_until(stream.step, timeout=EXCHANGE_TIMEOUT, what="the model's exchange")
    proc.close(fd)
    proc.close(listener)
    return stream


def test_linux_client_to_model_listener(tap, request):
    bridge_ref, linux = [], []
    with evidence(request, tap, bridge_ref, linux), wall_limit(TEST_LIMIT):
        bridge = LinuxBridge(tap.device, _make_host())
        bridge_ref.append(bridge)
        stream = _serve_linux_client(tap, bridge, linux, 5001, SIZE, payload(SEED_MODEL))
        _check(stream, linux[0], bridge)


def test_model_client_to_linux_listener(tap, request):
    bridge_ref, linux = [], []
    with evidence(request, tap, bridge_ref, linux), wall_limit(TEST_LIMIT):
        linux.append(tap.ns.popen(tap.ns.python_argv(
            LINUX_PEER, "server", LINUX_IP, "5002", str(SIZE), str(SEED_LINUX),
            str(EXCHANGE_TIMEOUT))))
        assert _read_line(linux[0], timeout=10) == "LISTENING"

        host = _make_host()
        bridge = LinuxBridge(tap.device, host)
        bridge_ref.append(bridge)
        proc = host.spawn()
        fd = proc.socket(SOCK_STREAM)
        # a blocking connect(): WouldBlock until the handshake is done, then the same call
        # is retried and returns
        bridge.run_until(lambda: _try(lambda: proc.connect(fd, (LINUX_IP, 5002)) or True),
                         timeout=5, what="connect()")
        proc.fcntl_nonblock(fd, True)
        stream = ModelStream(proc, fd, payload(SEED_MODEL))
        bridge.run_until(stream.step, timeout=EXCHANGE_TIMEOUT, what="the model's exchange")
        proc.close(fd)
        _check(stream, linux[0], bridge)


# --- SACK: Linux sending through a lossy wire to the model ----------------------------------

SACK_SIZE = 512 * 1024
SACK_LOSS = Impairment(seed=2018, loss=0.1, directions=(TO_HOST,))


def _resends(trace: list, settle: float = 0.02) -> tuple[int, int, int]:
    """From the bridge's trace: (Linux's data segments resent, of them those whose bytes the
    host had already reported holding, in its cumulative ACK or a SACK block, at least
    `settle` seconds before, Linux's data segments dropped). A frame's time is when the
    bridge read it, which under load can be well after Linux sent it: `settle` keeps a
    resend that crossed the ACK on the way from counting. Sequence numbers are compared as
    they are (the transfer is far shorter than 2**31)."""
    reported = []                       # (time, lo, hi) the host's ACKs said it holds
    high = None                         # highest end of Linux's data sent
    resent = unneeded = dropped = 0
    for crossing in trace:
        packet = Ether(crossing.frame)
        if TCP not in packet:
            continue
        tcp = packet[TCP]
        if crossing.direction == TO_LINUX:
            if tcp.flags.A:
                reported.append((crossing.time, 0, tcp.ack))
                for kind, value in tcp.options:
                    if kind == "SAck":
                        reported += [(crossing.time, lo, hi) for lo, hi in zip(value[::2], value[1::2])]
            continue
        length = len(bytes(tcp.payload))
        if not length:
            continue
        seq, end = tcp.seq, tcp.seq + length
        if high is not None and seq < high:
            resent += 1
            known = [(lo, hi) for t, lo, hi in reported if t <= crossing.time - settle]
            unneeded += any(lo <= seq and end <= hi for lo, hi in known)
        high = end if high is None else max(high, end)
        dropped += crossing.fate == "dropped"
    return resent, unneeded, dropped


def _sack_blocks_sent(trace: list) -> int:
    """The most SACK blocks one of the host's ACKs carried."""
    most = 0
    for crossing in trace:
        packet = Ether(crossing.frame)
        if crossing.direction == TO_LINUX and TCP in packet:
            for kind, value in packet[TCP].options:
                if kind == "SAck":
                    most = max(most, len(value) // 2)
    return most


@pytest.mark.parametrize("sack", [True, False], ids=["sack", "no_sack"])
def test_linux_sender_resends_only_the_holes_with_sack(tap, request, sack):
    """Linux sends 512 KiB to the model through a wire that drops 10% of Linux's segments
    (seeded; ACKs all arrive). With SACK on both sides (the model: 4 ranges, Linux's window
    scale) the model's ACKs report two or more holes at once and Linux resends no segment
    whose bytes the model had reported holding (cumulative ACK or SACK block): only the
    holes, and what the model could not keep (a fifth range is refused, unsaid). Without SACK
    (the model does not offer it) the same wire shows what that saves: the counts are in the
    test's output."""
    bridge_ref, linux = [], []
    with evidence(request, tap, bridge_ref, linux), wall_limit(TEST_LIMIT):
        policy = replace(DEFAULT_POLICY, **LINUX_WSCALE, max_ooo_ranges=LINUX_LIKE_OOO_RANGES,
                         **(LINUX_SACK if sack else {}))
        host = Host(MODEL_MAC, MODEL_IP, policy)
        host.add_neighbor(LINUX_IP, LINUX_MAC)
        bridge = LinuxBridge(tap.device, host, impairment=SACK_LOSS)
        bridge_ref.append(bridge)
        stream = _serve_linux_client(tap, bridge, linux, 5003, SACK_SIZE, b"")
        bridge.run_until(linux[0].poll, timeout=EXCHANGE_TIMEOUT, what="the Linux peer")
        assert linux[0].returncode == 0, linux[0].communicate(timeout=5)[1][-2000:]
        assert bytes(stream.received) == random.Random(SEED_LINUX).randbytes(SACK_SIZE)
        resent, unneeded, dropped = _resends(bridge.trace)
        blocks = _sack_blocks_sent(bridge.trace)
        print(f"sack={sack}: {dropped} of Linux's segments dropped, {resent} resent, "
              f"{unneeded} of them reported held; at most {blocks} SACK blocks in an ACK; "
              f"model drops {dict(host.drops)}")
        assert dropped >= 10
        if sack:
            assert blocks >= 2 and unneeded == 0, (resent, unneeded, dropped, blocks)
        else:
            assert blocks == 0
