"""Helpers for the model tests: two model hosts on a wire, and ways to drive them.

When a test fails, every wire it built is written as a pcapng to build/model/<test>-<n>.pcapng
(open it in Wireshark) and the path is added to the report.
"""

import os
from dataclasses import dataclass

import pytest

from model.errors import SocketError, WouldBlock
from model.host import Host, Process
from model.policy import DEFAULT_POLICY, Policy
from model.packet import parse_frame
from model.scenario import write_pcap
from model.wire import Wire

A_IP, B_IP = "192.0.2.1", "192.0.2.2"
A_MAC, B_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
PORT = 5000


@dataclass
class Pair:
    """Host a (client) and host b (server) on a wire, one connection between them."""
    a: Host
    b: Host
    wire: Wire
    pa: Process
    pb: Process
    ca: int = -1          # the client's fd on a
    sb: int = -1          # the accepted fd on b
    lb: int = -1          # the listening fd on b

    def tcb_a(self):
        return self.pa.socket_of(self.ca).tcb

    def tcb_b(self):
        return self.pb.socket_of(self.sb).tcb

    def settle(self, ticks: int = 50):
        self.wire.run(max_ticks=ticks)

    def segments(self, side: str | None = None):
        """(time, side, TcpSegment) for every frame the wire carried (side "a" or "b")."""
        out = []
        for event in self.wire.log:
            if side is None or event.side == side:
                tcp = parse_frame(event.frame).tcp
                if tcp is not None:
                    out.append((event.time, event.side, tcp))
        return out


def blocking(wire: Wire, fn, *args, max_ticks: int = 100_000):
    """Run a blocking call as the scenario runner does: retry while the world moves."""
    start = wire.now
    while True:
        try:
            return fn(*args)
        except WouldBlock:
            if wire.now - start > max_ticks or not wire.step():
                raise AssertionError(f"{fn.__name__}{args} still blocked after {wire.now - start} ticks")


def read_exactly(wire: Wire, proc: Process, fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = blocking(wire, proc.recv, fd, n - len(out))
        assert data, f"EOF after {len(out)} of {n} bytes"
        out += data
    return bytes(out)


def make_pair(policy: Policy = DEFAULT_POLICY, policy_b: Policy | None = None, connect: bool = True,
              iss_a: int | None = None, iss_b: int | None = None, **wire_options) -> Pair:
    a = Host(A_MAC, A_IP, policy, iss_base=iss_a, name="a")
    b = Host(B_MAC, B_IP, policy_b or policy, iss_base=iss_b if iss_b is not None else 0x2000_0000, name="b")
    wire = Wire(a, b, **wire_options)
    _WIRES.append(wire)
    pair = Pair(a, b, wire, a.spawn(), b.spawn())
    if connect:
        pair.lb = pair.pb.socket("tcp")
        pair.pb.bind(pair.lb, ("0.0.0.0", PORT))
        pair.pb.listen(pair.lb, 8)
        pair.ca = pair.pa.socket("tcp")
        blocking(wire, pair.pa.connect, pair.ca, (B_IP, PORT))
        pair.sb, addr = blocking(wire, pair.pb.accept, pair.lb)
        assert addr == (A_IP, pair.pa.getsockname(pair.ca)[1])
    return pair


_WIRES: list[Wire] = []
PCAP_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "build", "model")


@pytest.fixture(autouse=True)
def _forget_wires():
    _WIRES.clear()
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed and _WIRES:
        for i, wire in enumerate(_WIRES):
            path = os.path.normpath(os.path.join(PCAP_DIR, f"{item.name}-{i}.pcapng"))
            write_pcap(path, wire.log, {"a": "a", "b": "b"})
            report.sections.append(("pcap", f"wire {i} (seed {wire.seed}): {path}"))
    return report


@pytest.fixture
def pair() -> Pair:
    return make_pair()


def errno_of(fn, *args) -> str:
    try:
        fn(*args)
    except SocketError as err:
        return str(err.errno)
    raise AssertionError(f"{fn.__name__}{args} did not fail")
