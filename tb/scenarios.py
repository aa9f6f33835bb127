"""Scenarios written once against the Backend interface, run on the golden model and on the RTL.

Each scenario is a function of a :class:`model.scenario.Runner` whose ``dut`` is the host
under test (``ModelBackend`` or the RTL's ``tb.nic_os.NicHost``) and whose ``peer`` is a
model host; :data:`SCENARIOS` maps names to ``(function, wire options)``. A scenario only
issues calls and lets time pass: what it shows is in the trace, which the scoreboard
compares entry by entry (every call's result, every segment's seq, ack, flags, window,
payload and checksum) between the model and the RTL. The few facts each scenario exists
to show are stated in its ``checks`` and verified on the model's trace.
"""

import random

from model.constants import MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL, SHUT_WR
from model.host import Host
from model.policy import Policy
from model.scenario import ModelBackend, Runner

__all__ = ["SCENARIOS", "DUT_MAC", "DUT_IP", "PEER_MAC", "PEER_IP", "NIC_POLICY", "model_runner",
           "peer_host"]

DUT_MAC, DUT_IP = "02:00:00:00:00:01", "192.0.2.1"
PEER_MAC, PEER_IP = "02:00:00:00:00:02", "192.0.2.2"
# the policy the NIC is built with by default: 2 KiB rings (hdl.nic.NIC)
NIC_POLICY = Policy(rcv_buffer=2048, snd_buffer=2048, udp_rcv_buffer=2048)
PORT = 80

SCENARIOS = {}


def scenario(**wire):
    def register(fn):
        SCENARIOS[fn.__name__] = (fn, wire)
        return fn
    return register


def peer_host():
    return ModelBackend(Host(PEER_MAC, PEER_IP, name="peer", iss_base=7))


def model_runner(name, policy=NIC_POLICY):
    """The scenario's runner with the golden model as the dut."""
    _, wire = SCENARIOS[name]
    dut = ModelBackend(Host(DUT_MAC, DUT_IP, policy, name="dut"))
    return Runner(dut, peer_host(), **wire)


def _peer_listener(r, port=PORT, backlog=4):
    server = r.peer.spawn()
    lfd = r.call(server, "socket", "tcp", side="peer").value
    r.call(server, "bind", lfd, ("0.0.0.0", port), side="peer")
    r.call(server, "listen", lfd, backlog, side="peer")
    return server, lfd


def _connected(r, port=PORT):
    """dut process p1 connected to a peer listener; returns (p1, fd, server, conn)."""
    server, lfd = _peer_listener(r, port)
    p1 = r.dut.spawn()
    fd = r.call(p1, "socket", "tcp").value
    r.call(p1, "connect", fd, (PEER_IP, port), max_ticks=50)
    conn, _ = r.call(server, "accept", lfd, side="peer", max_ticks=50).value
    return p1, fd, server, conn


def _accepted(r, port=PORT):
    """A peer client connected to a dut listener; returns (p1, fd, client, cfd)."""
    p1 = r.dut.spawn()
    lfd = r.call(p1, "socket", "tcp").value
    r.call(p1, "bind", lfd, ("0.0.0.0", port))
    r.call(p1, "listen", lfd, 8)
    client = r.peer.spawn()
    cfd = r.call(client, "socket", "tcp", side="peer").value
    r.call(client, "connect", cfd, (DUT_IP, port), side="peer")
    fd, _ = r.call(p1, "accept", lfd).value
    return p1, fd, client, cfd


@scenario()
def seed(r):
    """The seed's program: 101 bytes arrive in one segment; p1 reads 1 byte; only then is p2
    forked, and it reads the other 100; a stranger gets EBADF until it is passed the fd."""
    p1, fd, server, conn = _connected(r)
    r.call(server, "send", conn, b"a" + b"b" * 100, side="peer")
    r.call(p1, "recv", fd, 1)
    p2 = r.call(p1, "fork").value
    r.call(p2, "recv", fd, 100, MSG_WAITALL)
    stranger = r.dut.spawn()
    r.call(stranger, "recv", fd, 1)
    fd3 = r.call(p1, "send_fd", fd, stranger).value
    r.call(stranger, "send", fd3, b"from a passed fd")
    r.call(p2, "recv", fd, 1, MSG_DONTWAIT)
    r.call(p1, "close", fd)
    r.call(p2, "close", fd)
    r.call(stranger, "close", fd3)
    r.call(server, "recv", conn, 100, side="peer")
    r.call(server, "close", conn, side="peer")
    r.run(1200)


@scenario()
def passive_open(r):
    """A peer connects to a dut listener; data both ways; the peer closes first."""
    p1, fd, client, cfd = _accepted(r)
    r.call(client, "send", cfd, bytes(range(256)) * 4, side="peer")
    r.call(p1, "recv", fd, 1000)
    r.call(p1, "recv", fd, 1000)
    r.call(p1, "send", fd, b"x" * 2000)
    r.call(client, "recv", cfd, 2000, MSG_WAITALL, side="peer")
    r.call(client, "close", cfd, side="peer")
    r.call(p1, "recv", fd, 10)
    r.call(p1, "close", fd)
    r.run(1200)


@scenario()
def handshake(r):
    """Active open, ten bytes each way, both sides close."""
    p1, fd, server, conn = _connected(r)
    r.call(p1, "send", fd, b"0123456789")
    r.call(server, "recv", conn, 10, side="peer")
    r.call(server, "send", conn, b"abcdefghij", side="peer")
    r.call(p1, "recv", fd, 10)
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)
