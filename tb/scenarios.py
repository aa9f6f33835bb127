"""Scenarios written once against the Backend interface, run on the golden model and on the RTL.

Each scenario is a function of a :class:`model.scenario.Runner` whose ``dut`` is the host
under test (``ModelBackend`` or the RTL's ``tb.nic_os.NicHost``) and whose ``peer`` is a
model host; :data:`SCENARIOS` maps names to ``(function, wire options)``. A scenario only
issues calls and lets time pass: what it shows is in the trace, which the scoreboard
compares entry by entry (every call's result, every segment's seq, ack, flags, window,
payload and checksum) between the model and the RTL. The few facts each scenario exists
to show are stated in its docstring (and, for some, checked on the model in
``tests/test_scenarios.py``).

Besides the registered scenarios, ``random:SEED`` names a seeded random scenario
(:func:`random_scenario`, for campaigns): ``get_scenario`` resolves both kinds of name.
"""

import random

from model.constants import (MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL, SHUT_WR, SO_KEEPALIVE, SO_LINGER,
                             SO_RCVBUF, SO_SNDBUF, SOL_SOCKET, SOL_TCP, TCP_MAXSEG, TCP_NODELAY)
from model.host import Host
from model.protocol import ETH_HEADER, IPV4_HEADER, TCP_HEADER, TcpFlag, TcpOption
from model.packet import (TcpSegment, UdpDatagram, build_raw_tcp_frame, build_tcp_frame,
                          build_udp_frame, parse_frame)
from model.policy import LINUX_RTO, LINUX_SACK, LINUX_WSCALE, Policy
from model.scenario import ModelBackend, Runner
from model.tcp import seq_add

from hdl.config import NIC_POLICY       # the policy the NIC is built with: 2 KiB rings

__all__ = ["SCENARIOS", "DUT_MAC", "DUT_IP", "PEER_MAC", "PEER_IP", "NIC_POLICY", "model_runner",
           "peer_host", "get_scenario", "random_scenario", "LENGTHS"]

DUT_MAC, DUT_IP = "02:00:00:00:00:01", "192.0.2.1"
PEER_MAC, PEER_IP = "02:00:00:00:00:02", "192.0.2.2"
PORT = 80
MSS, RING = NIC_POLICY.mss, NIC_POLICY.snd_buffer
PEER_ISS = 7            # the peer's first ISS, unless a scenario chooses another

SCENARIOS = {}


def scenario(*, connections=8, peer_policy=None, peer_iss=PEER_ISS, dut_iss=None, **wire):
    """Register a scenario: it needs a NIC of at least `connections` slots; the peer uses
    `peer_policy` (default: the model's default) and starts its sequence numbers at
    `peer_iss`; the dut at `dut_iss` (default: the policy's); `wire` are Wire options
    (seeded faults)."""
    def register(fn):
        SCENARIOS[fn.__name__] = Scenario(fn, wire, connections, peer_policy, peer_iss, dut_iss)
        return fn
    return register


class Scenario:
    def __init__(self, fn, wire, connections, peer_policy, peer_iss=PEER_ISS, dut_iss=None,
                 name=None):
        self.fn, self.wire, self.connections, self.peer_policy = fn, wire, connections, peer_policy
        self.peer_iss, self.dut_iss = peer_iss, dut_iss
        self.name = name or fn.__name__
        self.doc = (fn.__doc__ or "").strip()

    def __iter__(self):                        # (fn, wire), as a tuple
        return iter((self.fn, self.wire))

    def runner(self, dut):
        return Runner(dut, peer_host(self.peer_policy, self.peer_iss), **self.wire)


def peer_host(policy=None, iss_base=PEER_ISS):
    return ModelBackend(Host(PEER_MAC, PEER_IP, policy or Policy(), name="peer", iss_base=iss_base))


def get_scenario(name: str) -> Scenario:
    """A registered scenario, or ``random:SEED``: the seeded random scenario (`random_scenario`),
    or ``random:SEED:K``: the same program cut after its first K random steps (a campaign's
    shortest failing prefix), or ``long_path:BYTES`` (`long_path` with BYTES each way)."""
    if name.startswith("random:"):
        fields = name.split(":")[1:]
        if not 1 <= len(fields) <= 2 or not all(f.isdigit() for f in fields):
            raise KeyError(f"Random scenarios are named random:SEED or random:SEED:K, not {name!r}")
        return random_scenario(*map(int, fields))
    if name.startswith("long_path:"):
        size = name.split(":", 1)[1]
        if not size.isdigit():
            raise KeyError(f"Long-path transfers are named long_path:BYTES, not {name!r}")
        base = SCENARIOS["long_path"]
        return Scenario(lambda r: _long_path(r, int(size)), base.wire, base.connections,
                        base.peer_policy, name=name)
    return SCENARIOS[name]


def model_runner(name, processes, policy=NIC_POLICY):
    """The scenario's runner with the golden model as the dut, with the pids of a NIC of
    `processes` doorbell pages (page 0 is the OS's)."""
    spec = get_scenario(name)
    return spec.runner(ModelBackend(Host(DUT_MAC, DUT_IP, policy, name="dut", iss_base=spec.dut_iss,
                                         max_pid=processes - 1)))


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
    r.call(p1, "connect", fd, (PEER_IP, port), max_ticks=5000)
    conn, _ = r.call(server, "accept", lfd, side="peer", max_ticks=5000).value
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


@scenario()
def socket_options(r):
    """Socket options that shape a connection reach the NIC when it is installed: a dut
    listener with SO_RCVBUF 1000 and TCP_MAXSEG 600 advertises a window of at most 1000
    (the 2 KiB ring less the cap) and offers MSS 600 to a peer that writes 3000 bytes and
    reads 1500 back in 600-byte segments (a recv of 1500 with MSG_WAITALL is answered
    once the 1000 bytes the cap allows are in); an active socket with SO_SNDBUF 700 takes at most
    700 bytes at a time; once connected the caps are fixed (EISCONN); SO_LINGER {1, 0} makes
    its close() a RST. Every value reads back as the model reports it (Linux's doubling)."""
    p1 = r.dut.spawn()
    lfd = r.call(p1, "socket", "tcp").value
    r.call(p1, "getsockopt", lfd, SOL_SOCKET, SO_RCVBUF)
    r.call(p1, "setsockopt", lfd, SOL_SOCKET, SO_RCVBUF, 1000)
    r.call(p1, "setsockopt", lfd, SOL_TCP, TCP_MAXSEG, 600)
    r.call(p1, "setsockopt", lfd, SOL_TCP, TCP_MAXSEG, 50)          # EINVAL
    r.call(p1, "getsockopt", lfd, SOL_SOCKET, SO_RCVBUF)
    r.call(p1, "getsockopt", lfd, SOL_TCP, TCP_MAXSEG)
    r.call(p1, "bind", lfd, ("0.0.0.0", PORT))
    r.call(p1, "listen", lfd, 8)
    client = r.peer.spawn()
    cfd = r.call(client, "socket", "tcp", side="peer").value
    r.call(client, "connect", cfd, (DUT_IP, PORT), side="peer")
    fd, _ = r.call(p1, "accept", lfd).value
    r.call(p1, "getsockopt", fd, SOL_SOCKET, SO_RCVBUF)
    r.call(p1, "getsockopt", fd, SOL_TCP, TCP_MAXSEG)
    r.call(p1, "setsockopt", fd, SOL_SOCKET, SO_RCVBUF, 1500)       # EISCONN
    r.call(client, "send", cfd, bytes(range(250)) * 12, side="peer")
    r.run(300)                                                      # the window closes at 1000
    # MSG_WAITALL for more than SO_RCVBUF can hold: answered once the 1000 bytes are in
    r.call(p1, "recv", fd, 1500, MSG_WAITALL)
    r.run(50)
    for _ in range(2):
        r.call(p1, "recv", fd, 1000)
        r.run(50)
    r.call(p1, "send", fd, b"y" * 1500)
    r.call(client, "recv", cfd, 1500, MSG_WAITALL, side="peer")
    r.call(client, "close", cfd, side="peer")
    r.call(p1, "recv", fd, 10)
    r.call(p1, "close", fd)
    r.call(p1, "close", lfd)
    # an active open with a send cap, no Nagle and an abortive close
    server, slfd = _peer_listener(r, PORT + 1)
    afd = r.call(p1, "socket", "tcp").value
    r.call(p1, "setsockopt", afd, SOL_SOCKET, SO_SNDBUF, 700)
    r.call(p1, "setsockopt", afd, SOL_TCP, TCP_NODELAY, 1)
    r.call(p1, "setsockopt", afd, SOL_SOCKET, SO_KEEPALIVE, 1)     # EOPNOTSUPP
    r.call(p1, "setsockopt", afd, SOL_SOCKET, SO_LINGER, (1, 0))
    r.call(p1, "connect", afd, (PEER_IP, PORT + 1), max_ticks=5000)
    sfd, _ = r.call(server, "accept", slfd, side="peer", max_ticks=5000).value
    for name in (SO_SNDBUF, SO_KEEPALIVE, SO_LINGER):
        r.call(p1, "getsockopt", afd, SOL_SOCKET, name)
    r.call(p1, "getsockopt", afd, SOL_TCP, TCP_NODELAY)
    r.call(p1, "getsockopt", afd, SOL_TCP, TCP_MAXSEG)
    r.call(p1, "send", afd, b"z" * 2000, MSG_DONTWAIT)              # 700
    r.call(p1, "send", afd, b"z", MSG_DONTWAIT)                     # EAGAIN
    r.call(server, "recv", sfd, 2000, side="peer")
    r.run(20)
    r.call(p1, "send", afd, b"w" * 500)
    r.call(server, "recv", sfd, 2000, side="peer")
    r.call(p1, "close", afd)
    r.call(server, "recv", sfd, 10, side="peer")                    # ECONNRESET
    r.call(server, "close", sfd, side="peer")
    r.run(1200)


@scenario()
def n_to_m(r):
    """Three writers share one connection (fork): each write arrives contiguous, in call
    order; two readers (parent and child) alternate and together get the exact stream."""
    p1, fd, server, conn = _connected(r)
    writers = [p1, r.call(p1, "fork").value, r.call(p1, "fork").value]
    sizes = [700, 17, 1460, 2048, 1, 999, 333, 1500, 64]
    for i, size in enumerate(sizes):
        r.call(writers[i % 3], "send", fd, bytes([0x41 + i]) * size)
        r.call(server, "recv", conn, 4096, side="peer")
    r.call(server, "send", conn, bytes(range(256)) * 8, side="peer")
    readers = [p1, writers[1]]
    for i, n in enumerate([1, 700, 13, 300, 1000, 34]):
        r.call(readers[i % 2], "recv", fd, n)
    r.call(p1, "recv", fd, 10, MSG_DONTWAIT)
    for w in writers:
        r.call(w, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)


@scenario()
def access_denied(r):
    """A process that was never given the fd gets EBADF for every call on it, even when it
    writes that connection's number into its own doorbell page, and changes nothing."""
    p1, fd, server, conn = _connected(r)
    r.call(server, "send", conn, b"secret data", side="peer")
    r.run(3)
    stranger = r.dut.spawn()
    r.call(stranger, "recv", fd, 100)
    r.call(stranger, "recv", fd, 100, MSG_PEEK)
    r.call(stranger, "send", fd, b"injected")
    r.call(stranger, "shutdown", fd, SHUT_WR)
    r.call(stranger, "close", fd)
    r.call(stranger, "poll", [(fd, 1)])
    r.run(3)
    r.call(p1, "recv", fd, 100)
    r.call(p1, "send", fd, b"mine")
    r.call(server, "recv", conn, 100, side="peer")
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)


@scenario()
def eof_and_reset(r):
    """FIN gives EOF after all data; RST gives ECONNRESET; close() with unread data sends
    RST; shutdown(SHUT_WR) sends FIN and the socket still reads."""
    # FIN: the data, then end of file (twice)
    p1, fd, server, conn = _connected(r, 81)
    r.call(server, "send", conn, b"last words", side="peer")
    r.call(server, "close", conn, side="peer")
    r.call(p1, "recv", fd, 4)
    r.call(p1, "recv", fd, 100)
    r.call(p1, "recv", fd, 100)
    r.call(p1, "recv", fd, 100)
    r.call(p1, "poll", [(fd, 5)])
    r.call(p1, "send", fd, b"too late?")
    r.call(p1, "close", fd)
    # close() with unread data: RST
    p2, fd2, server2, conn2 = _connected(r, 82)
    r.call(server2, "send", conn2, b"unread", side="peer")
    r.run(3)
    r.call(p2, "close", fd2)
    r.call(server2, "recv", conn2, 100, side="peer")
    r.call(server2, "close", conn2, side="peer")
    # the peer aborts: ECONNRESET, then the error is gone
    p3, fd3, server3, conn3 = _connected(r, 83)
    r.call(p3, "send", fd3, b"you will not read this")
    r.run(3)
    r.call(server3, "close", conn3, side="peer")
    r.call(p3, "poll", [(fd3, 5)])
    r.call(p3, "getsockopt_error", fd3)
    r.call(p3, "recv", fd3, 100)
    r.call(p3, "send", fd3, b"x")
    r.call(p3, "close", fd3)
    # shutdown(SHUT_WR): FIN out, still reading
    p4, fd4, server4, conn4 = _connected(r, 84)
    r.call(p4, "shutdown", fd4, SHUT_WR)
    r.call(server4, "recv", conn4, 100, side="peer")
    r.call(p4, "send", fd4, b"no")
    r.call(server4, "send", conn4, b"but I can still talk", side="peer")
    r.call(p4, "recv", fd4, 100)
    peer = next(t for t in r.peer.host.tcbs.values() if t.local[1] == 84)
    late = TcpSegment(84, peer.remote[1], seq_add(peer.snd_nxt, 1), peer.rcv_nxt,
                      TcpFlag.ACK | TcpFlag.PSH, 1000, b"late")
    r.call(server4, "close", conn4, side="peer")
    r.call(p4, "recv", fd4, 100)
    r.call(p4, "close", fd4)
    # TIME-WAIT, as Linux: data is ACKed and restarts 2 MSL, so data after the first 2 MSL
    # is still ACKed (the ACKs are lost: the peer, closed, would answer them with a RST)
    r.wire.block = lambda side, frame: side == "a"
    frame = build_tcp_frame(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP, late)
    for _ in range(2):
        r.run(600)
        r.inject(frame)
    r.run(1100)
    r.wire.block = None


@scenario()
def host_limits(r):
    """Every length a write can carry is taken as the model takes it: writes of 65,536 bytes
    and more (the send ring's 16-bit write length once wrapped them) take what the ring has
    room for, their other bytes are discarded, and the next process's write on another
    connection reaches only its own peer. Pids run out at the NIC's last doorbell page:
    fork() gets EAGAIN, and a pid is given out again once its process has exited."""
    p1, fd, server, conn = _connected(r, 85)
    q1, fd2, server2, conn2 = _connected(r, 86)
    for size in (65536, 65546):
        r.call(p1, "send", fd, bytes([0x41 + size % 7]) * size)
        r.call(q1, "send", fd2, b"hello")
        r.call(server2, "recv", conn2, 100, side="peer")
        r.call(server, "recv", conn, 2048, MSG_WAITALL, side="peer")
    r.run(3)
    r.call(p1, "send", fd, b"B" * 3000, MSG_DONTWAIT)
    r.call(server, "recv", conn, 2048, MSG_WAITALL, side="peer")
    children = [r.call(q1, "fork").value for _ in range(13)]   # pids 3 to 15
    r.call(q1, "fork")                          # every page taken: EAGAIN
    r.call(children[3], "exit")
    child = r.call(q1, "fork").value            # the freed pid again
    r.call(child, "send", fd2, b"from a recycled pid")
    r.call(server2, "recv", conn2, 100, side="peer")
    for pid in [p1, q1, child] + children[:3] + children[4:]:
        r.call(pid, "exit")
    r.call(server, "close", conn, side="peer")
    r.call(server2, "close", conn2, side="peer")
    r.run(1100)


def _transfer(r, p1, fd, server, conn, size, chunk=1000):
    """`size` bytes each way, in sends of at most `chunk`, read as they come."""
    out = bytes((i * 7 + 3) & 0xFF for i in range(size))
    back = bytes((i * 13 + 1) & 0xFF for i in range(size))
    for start in range(0, size, chunk):
        n = min(chunk, size - start)
        r.call(p1, "send", fd, out[start:start + n])
        r.call(server, "send", conn, back[start:start + n], side="peer")
        r.call(server, "recv", conn, n, MSG_WAITALL, side="peer")
        r.call(p1, "recv", fd, n, MSG_WAITALL)


@scenario(seed=5, reorder=0.3, reorder_extra=4)
def out_of_order(r):
    """Segments arrive out of order both ways: the receivers keep out-of-order ranges and
    deliver them once the holes are filled (the NIC keeps 4; on the peer, which keeps 1, a
    segment needing a second range is refused and retransmitted)."""
    p1, fd, server, conn = _connected(r)
    _transfer(r, p1, fd, server, conn, 12000, chunk=1800)
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)


@scenario(seed=1, drop=0.1, duplicate=0.1, reorder=0.1, corrupt=0.01)
def lossy_wire(r):
    """10% loss, duplication and reordering and 1% corruption both ways: retransmission
    on timeout with backoff, fast retransmit, and the stream arrives exact."""
    p1, fd, server, conn = _connected(r)
    _transfer(r, p1, fd, server, conn, 16000)
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(3000)


@scenario(latency=150, peer_policy=Policy(**LINUX_RTO))
def long_path(r):
    """A 300-tick round trip, longer than the fixed RTO: with RTT estimation
    (``NicConfig(linux_rto=True)``) the RTO follows the samples (900 ticks after the
    handshake's) and nothing is sent twice; then the peer goes silent and the RTO doubles from
    the estimate (Karn: the resent segment's ACK gives no sample). With the fixed RTO the
    transfer's segments go twice.
    ``long_path:BYTES`` transfers BYTES each way instead of 6,000."""
    _long_path(r, 6000)


def _long_path(r, size):
    p1, fd, server, conn = _connected(r)
    _transfer(r, p1, fd, server, conn, size, chunk=2000)
    _silent_peer(r, p1, fd, server, conn, b"anyone? " * 50, silence=3000, then=2000, linger=1500)


def _silent_peer(r, p1, fd, server, conn, message, *, silence, then, linger):
    """`message` is sent while the peer's frames are lost for `silence` ticks; then the peer
    reads it, `then` ticks pass, both close, and `linger` ticks pass."""
    r.wire.block = lambda side, frame: side == "b"
    r.call(p1, "send", fd, message)
    r.run(silence)
    r.wire.block = None
    r.call(server, "recv", conn, len(message), MSG_WAITALL, side="peer")
    r.run(then)
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(linger)


@scenario(peer_policy=Policy(**LINUX_WSCALE, rcv_buffer=3000))
def window_scaled(r):
    """A peer that offers window scaling with Linux's shift (7): its 3,000-byte buffer's
    window fields count 128-byte units (23 when empty, 0 below 128 bytes free). A NIC built
    with window scaling (``NicConfig(window_scaling=True)``) offers it on its SYN and, asked,
    on its SYN-ACK, and scales the peer's windows (unscaled, 23 would be 23 bytes); on the
    reference NIC (no option) neither side scales. Both opens, data both ways, the peer's
    window closed and opened again."""
    p1, fd, server, conn = _connected(r)
    _transfer(r, p1, fd, server, conn, 4000, chunk=1500)
    r.call(p1, "send", fd, bytes(range(256)) * 8, MSG_DONTWAIT)
    r.call(p1, "send", fd, bytes(range(256)) * 8, MSG_DONTWAIT)
    r.run(500)                      # the peer's window closes: the NIC probes
    r.call(server, "recv", conn, 4096, MSG_WAITALL, side="peer")
    p2, fd2, client, cfd = _accepted(r, PORT + 1)
    _transfer(r, p2, fd2, client, cfd, 3000, chunk=1500)
    for p, f in ((p1, fd), (p2, fd2)):
        r.call(p, "close", f)
    r.call(server, "close", conn, side="peer")
    r.call(client, "close", cfd, side="peer")
    r.run(1100)


@scenario(latency=150, peer_policy=Policy(**LINUX_RTO, **LINUX_WSCALE, rcv_buffer=1 << 20,
                                          snd_buffer=1 << 20))
def big_window(r):
    """A 300-tick round trip and a peer with 1 MiB buffers and Linux's window scale: 96 KiB
    each way in one write, all of it in flight at once where the NIC's rings allow. A NIC
    built with rings above 64 KiB and window scaling (``NicConfig(window=131072,
    window_scaling=True)``: shift 2) sends and takes more than 64 KiB per round trip; with 2
    KiB rings the same transfer goes 2 KiB per round trip."""
    p1, fd, server, conn = _connected(r)
    size = 96 * 1024
    out = bytes((i * 7 + 3) & 0xFF for i in range(size))
    back = bytes((i * 13 + 1) & 0xFF for i in range(size))
    while out:                              # a write beyond the send ring is taken in part
        out = out[r.call(p1, "send", fd, out).value:]
    r.call(server, "send", conn, back, MSG_DONTWAIT, side="peer")   # its buffer takes it all
    r.call(server, "recv", conn, size, MSG_WAITALL, side="peer")
    got = 0
    while got < size:                       # a read waits for at most a ring's worth
        got += len(r.call(p1, "recv", fd, size - got, MSG_WAITALL).value)
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1500)


@scenario(seed=5, drop=0.1, reorder=0.3, reorder_extra=4,
          peer_policy=Policy(**LINUX_SACK, max_ooo_ranges=4))
def sack_holes(r):
    """A peer that offers SACK (Linux's layout) and holds 4 out-of-order ranges, on a wire that
    drops 10% and reorders 30% of the segments both ways, and flights of 15 small segments,
    so that holes come several at a time. A NIC built with SACK (``NicConfig(sack=True)``)
    offers SACK-permitted on its SYN and, asked, on its SYN-ACK, then reports what its ring
    holds in SACK blocks (most recently written first; on the Linux-like build its ACKs carry
    1 to 4 blocks) and sends data segments shorter by the option's bytes (RFC 6691); on a NIC
    without, neither side sends blocks. Both opens, data both ways."""
    p1, fd, server, conn = _connected(r)
    _small_sends(r, p1, fd, server, conn, rounds=4)
    _transfer(r, p1, fd, server, conn, 4000, chunk=2000)
    p2, fd2, client, cfd = _accepted(r, PORT + 1)
    _small_sends(r, p2, fd2, client, cfd, rounds=2)
    for p, f in ((p1, fd), (p2, fd2)):
        r.call(p, "close", f)
    r.call(server, "close", conn, side="peer")
    r.call(client, "close", cfd, side="peer")
    r.run(3000)


def _small_sends(r, p1, fd, server, conn, *, rounds, sends=15, size=120):
    """`rounds` times, `sends` sends of `size` bytes each way at once (a flight of that many
    segments, many holes when some are lost), then both read them all."""
    for k in range(rounds):
        for n in range(sends):
            r.call(p1, "send", fd, bytes([k, n]) * (size // 2))
            r.call(server, "send", conn, bytes([n, k]) * (size // 2), side="peer")
        r.call(server, "recv", conn, sends * size, MSG_WAITALL, side="peer")
        r.call(p1, "recv", fd, sends * size, MSG_WAITALL)


@scenario()
def rto_backoff(r):
    """The peer goes silent: the NIC retransmits from SND.UNA on its own at 200, 400, 800...
    ticks; when the peer is back, the stream completes."""
    p1, fd, server, conn = _connected(r)
    _silent_peer(r, p1, fd, server, conn, b"hello? " * 100, silence=3500, then=10, linger=1100)


@scenario(peer_policy=Policy(rcv_buffer=3000))
def zero_window(r):
    """A reader that stops makes the window 0 (both directions); persist probes follow;
    reading again opens the window and the transfer resumes."""
    p1, fd, server, conn = _connected(r)
    # the dut's receive window closes: the peer probes
    r.call(server, "send", conn, bytes(range(256)) * 12, MSG_DONTWAIT, side="peer")
    r.run(700)
    r.call(p1, "recv", fd, 1000)
    r.call(p1, "recv", fd, 4000)
    r.run(10)
    r.call(p1, "recv", fd, 4000)
    # the peer's window closes: the NIC probes
    for i in range(3):
        r.call(p1, "send", fd, bytes([0x61 + i]) * 2048, MSG_DONTWAIT)
        r.run(5)
    r.run(900)
    r.call(server, "recv", conn, 5000, side="peer")
    r.run(300)
    r.call(server, "recv", conn, 5000, MSG_DONTWAIT, side="peer")
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)


@scenario()
def udp(r):
    """Datagram boundaries kept; a short read truncates its datagram (the rest is gone);
    MSG_PEEK; datagrams back to back; a connected socket takes only its peer's datagrams;
    sendto."""
    p1 = r.dut.spawn()
    ufd = r.call(p1, "socket", "udp").value
    r.call(p1, "bind", ufd, ("0.0.0.0", 5353))
    peer = r.peer.spawn()
    pfd = r.call(peer, "socket", "udp", side="peer").value
    r.call(peer, "bind", pfd, ("0.0.0.0", 1111), side="peer")
    for payload in (b"first datagram", b"", b"x" * 1472, b"short"):
        r.call(peer, "sendto", pfd, payload, (DUT_IP, 5353), side="peer")
    r.run(3)
    r.call(p1, "recvfrom", ufd, 5)
    r.call(p1, "recvfrom", ufd, 100, MSG_PEEK)
    r.call(p1, "recvfrom", ufd, 100)
    r.call(p1, "recvfrom", ufd, 2000)
    child = r.call(p1, "fork").value
    r.call(child, "recvfrom", ufd, 100)
    r.call(child, "recvfrom", ufd, 100, MSG_DONTWAIT)
    r.call(p1, "sendto", ufd, b"reply", (PEER_IP, 1111))
    r.call(p1, "sendto", ufd, b"x" * 1473, (PEER_IP, 1111))
    r.call(p1, "sendto", ufd, b"lost", ("192.0.2.99", 1111))
    r.call(peer, "recvfrom", pfd, 100, side="peer")
    # a full ring drops whole datagrams
    for i in range(4):
        r.call(peer, "sendto", pfd, bytes([i]) * 700, (DUT_IP, 5353), side="peer")
    r.run(3)
    for _ in range(4):
        r.call(p1, "recvfrom", ufd, 1000, MSG_DONTWAIT)
    # back to back on the wire: each record's header goes into the ring after the payload of
    # the datagram before it, which may still be on its way from the slicer; and empty ones
    # queued behind a long one, each arriving while the record header of the one before (8
    # beats at 8 bits) may still be going in (random:3031 hung the NIC so at 8 bits)
    lengths = (1, 1, 9, 1, 1000, 0, 0, 0, 2)
    r.inject_burst([build_udp_frame(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP,
                                    UdpDatagram(1111, 5353, bytes([0x30 + i]) * n))
                    for i, n in enumerate(lengths)])
    r.run(3)
    for _ in lengths:
        r.call(p1, "recvfrom", ufd, 100, MSG_DONTWAIT)
    # connected: only the peer's datagrams
    r.call(p1, "connect", ufd, (PEER_IP, 2222))
    r.call(peer, "sendto", pfd, b"not from 2222", (DUT_IP, 5353), side="peer")
    other = r.call(peer, "socket", "udp", side="peer").value
    r.call(peer, "bind", other, ("0.0.0.0", 2222), side="peer")
    r.call(peer, "sendto", other, b"from 2222", (DUT_IP, 5353), side="peer")
    r.run(3)
    r.call(p1, "recvfrom", ufd, 100, MSG_DONTWAIT)
    r.call(p1, "recvfrom", ufd, 100, MSG_DONTWAIT)
    r.call(p1, "send", ufd, b"to my peer")
    r.call(peer, "recvfrom", other, 100, side="peer")
    r.call(p1, "close", ufd)
    r.call(child, "close", ufd)
    r.call(peer, "sendto", pfd, b"nobody home", (DUT_IP, 5353), side="peer")
    r.run(3)
    r.trace.append(("drops", r.now, r.dut.drop_counts()))


def _held_data(r):
    """Hold the peer's data segments back (``r.wire.block``); returns the list they go to."""
    held = []

    def hold(side, frame):
        tcp = parse_frame(frame).tcp
        if side == "b" and tcp is not None and tcp.payload:
            held.append(frame)
            return True
        return False
    r.wire.block = hold
    return held


def _crafted(frame, payload=None, **craft):
    """The peer's TCP `frame` rebuilt with another `payload`, raw `options` or a `vlan` tag."""
    parsed = parse_frame(frame)
    seg = parsed.tcp
    if payload is not None:
        seg.payload = payload
    return build_raw_tcp_frame(parsed.src_mac, parsed.dst_mac, parsed.src_ip, parsed.dst_ip, seg, **craft)


@scenario()
def bad_frames(r):
    """Frames carrying the connection's next bytes that the receive path must drop, each
    counted once under one cause: from VLAN 5 (host software's; it has no VLAN 5), 9000 and
    1515 bytes long (OVERSIZE, MTU 1500). And segments it must keep and acknowledge, as Linux
    does: a TCP option of length 0, an option running past the header, and a frame of exactly
    1514 bytes. The drop counts are in the trace."""
    p1, fd, server, conn = _connected(r)
    held = _held_data(r)
    r.call(server, "send", conn, b"first", side="peer")
    r.inject(_crafted(held[0], vlan=5))
    headers = ETH_HEADER + IPV4_HEADER + TCP_HEADER
    r.inject(_crafted(held[0], payload=b"J" * (9000 - headers)))
    r.inject(_crafted(held[0], payload=b"L" * (1515 - headers)))
    r.inject(_crafted(held[0], options=bytes([TcpOption.TIMESTAMP, 0])))
    r.call(server, "send", conn, b"second", side="peer")
    r.inject(_crafted(held[1], options=bytes([TcpOption.NOP, TcpOption.TIMESTAMP, 10, 0])))
    r.wire.block = None
    r.call(p1, "recv", fd, 100)
    r.call(server, "send", conn, b"M" * 1460, side="peer")
    r.call(p1, "recv", fd, 1460, MSG_WAITALL)
    r.trace.append(("drops", r.now, r.dut.drop_counts()))
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)
    r.trace.append(("drops", r.now, r.dut.drop_counts()))


@scenario(connections=64)
def many_connections(r):
    """64 connections live at once (63 accepted from the peer and one opened by the dut),
    with interleaved traffic on all of them."""
    p1 = r.dut.spawn()
    lfd = r.call(p1, "socket", "tcp").value
    r.call(p1, "bind", lfd, ("0.0.0.0", PORT))
    r.call(p1, "listen", lfd, 64)
    client = r.peer.spawn()
    pairs = []
    for _ in range(63):
        cfd = r.call(client, "socket", "tcp", side="peer").value
        r.call(client, "connect", cfd, (DUT_IP, PORT), side="peer")
        fd, _ = r.call(p1, "accept", lfd).value
        pairs.append((fd, cfd))
    server, slfd = _peer_listener(r, 9000)
    ofd = r.call(p1, "socket", "tcp").value
    r.call(p1, "connect", ofd, (PEER_IP, 9000))
    oconn, _ = r.call(server, "accept", slfd, side="peer").value
    for round_ in range(2):
        for i, (fd, cfd) in enumerate(pairs):
            r.call(client, "send", cfd, bytes([i]) * (i + round_ + 1), side="peer")
        r.call(p1, "send", ofd, b"also busy")
        r.run(2)
        for i, (fd, cfd) in enumerate(reversed(pairs)):
            r.call(p1, "recv", fd, 100)
            r.call(p1, "send", fd, bytes([0xFF - i]) * 3)
        r.call(server, "recv", oconn, 100, side="peer")
        r.run(2)
    for fd, cfd in pairs:
        r.call(client, "recv", cfd, 100, MSG_DONTWAIT, side="peer")
        r.call(p1, "close", fd)
        r.call(client, "close", cfd, side="peer")
    r.call(p1, "close", ofd)
    r.call(server, "close", oconn, side="peer")
    r.run(1100)


@scenario()
def runts(r):
    """Frames of 0, 1 and 13 bytes (shorter than an Ethernet header), alone and back to back
    with a good segment: each is dropped (RUNT) and nothing else changes."""
    p1, fd, server, conn = _connected(r)
    r.inject(b"")
    r.inject(b"\x01")
    r.call(server, "send", conn, b"still", side="peer")
    good = r.frames("peer")[-1]
    r.inject_burst([b"", good, b"\x01", bytes(13), b""])
    r.call(p1, "recv", fd, 100)
    r.call(p1, "close", fd)
    r.call(server, "close", conn, side="peer")
    r.run(1100)


@scenario()
def concurrent_writes(r):
    """Issue 14: two processes write on two connections in the same cycle, one 64 KiB
    send() and one "hello": each peer gets exactly its own process's bytes."""
    p1, fd, server, conn = _connected(r, 85)
    q1, fd2, server2, conn2 = _connected(r, 86)
    big = bytes([0xA5]) * 65536
    r.calls([(p1, "send", fd, big, MSG_DONTWAIT), (q1, "send", fd2, b"hello", MSG_DONTWAIT)])
    r.call(server2, "recv", conn2, 100, side="peer")
    r.call(server, "recv", conn, RING, MSG_WAITALL, side="peer")
    r.run(2)                                # the peer's ACKs free the send ring
    r.calls([(q1, "send", fd2, b"world", MSG_DONTWAIT), (p1, "send", fd, big, MSG_DONTWAIT)])
    r.call(server2, "recv", conn2, 100, side="peer")
    r.call(server, "recv", conn, RING, MSG_WAITALL, side="peer")
    r.calls([(p1, "close", fd), (q1, "close", fd2)])
    r.call(server, "close", conn, side="peer")
    r.call(server2, "close", conn2, side="peer")
    r.run(1100)


# The lengths a random program draws for a send's bytes and a recv's n: nothing, one byte,
# the edges of the MSS and of the NIC's 2 KiB rings, the 16-bit boundary, a megabyte.
LENGTHS = (0, 1, 2, 100, MSS - 1, MSS, MSS + 1, RING - 1, RING, RING + 1, 3000, 65535, 65536,
           2**20)
# what random_1 and random_2 (run on every simulator and width in CI) draw: the cheap ones
CI_LENGTHS = tuple(n for n in LENGTHS if n <= 3000)
_PATTERN = bytes(range(251))                # a prime length: no alignment with segments
_UDP_PORT, _PEER_UDP_PORT = 5353, 1111
_MAX_PIDS = 12                              # the NIC is built for 16 processes (pid 0: the OS)


def _data(rng, n):
    """`n` bytes, cheaply (one slice of a repeated pattern, whatever `n`)."""
    start = rng.randrange(len(_PATTERN))
    return (_PATTERN * (n // len(_PATTERN) + 2))[start:start + n]


def _length(rng, lengths):
    """Mostly the lengths up to 3000; the 64 KiB ones one time in 16 and a megabyte one time
    in 500 (each costs the simulation a clock per beat: 131,072 for the megabyte; a campaign
    of 500 seeds still draws it about a hundred times)."""
    small = [n for n in lengths if n <= 3000]
    large = [n for n in lengths if 3000 < n <= 65536]
    huge = [n for n in lengths if n > 65536]
    draw = rng.random()
    if huge and draw < 0.002:
        return rng.choice(huge)
    return rng.choice(large if large and draw < 1 / 16 else small)


class _Endpoint:
    """A connection (or the UDP pair) the random program uses: the dut's (pid, fd) users and
    the peer's (pid, fd)."""

    def __init__(self, kind, users, peer):
        self.kind, self.users, self.peer = kind, users, peer


# what a steered program (random:SEED) also draws, by weight: crafted segments relative to
# the dut's RCV.NXT on a live connection, malformed frames, a connect to a closed port, a peer
# that goes silent for a while (random_1 and random_2 draw none of them: weights 0)
STEERED = {"craft": 3, "bad_frame": 0.5, "refused": 0.3, "silence": 0.2}


def _random_ops(r, seed, steps, lengths=CI_LENGTHS, steered=False):
    """A seeded random program: two TCP connections (one opened by the dut, one by the peer)
    and a UDP socket pair, processes that fork, dup and pass fds, and `steps` random steps:
    sends and recvs of boundary lengths (MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT, blocking),
    the peer's sends and recvs, poll, shutdown, calls of several processes outstanding at
    once, and bursts of frames back to back (runts of 0 and 1 byte, datagrams, replays and
    corrupted copies of the peer's segments)."""
    rng = random.Random(seed)
    p1, fd, server, conn = _connected(r, 90)
    p2 = r.call(p1, "fork").value
    q1, fd2, client, cfd = _accepted(r, 91)
    u1 = r.dut.spawn()
    ufd = r.call(u1, "socket", "udp").value
    r.call(u1, "bind", ufd, ("0.0.0.0", _UDP_PORT))
    pu = r.peer.spawn()
    pufd = r.call(pu, "socket", "udp", side="peer").value
    r.call(pu, "bind", pufd, ("0.0.0.0", _PEER_UDP_PORT), side="peer")
    ends = [_Endpoint("tcp", [(p1, fd), (p2, fd)], (server, conn)),
            _Endpoint("tcp", [(q1, fd2)], (client, cfd)),
            _Endpoint("udp", [(u1, ufd)], (pu, pufd))]
    pids = {p1, p2, q1, u1}
    shut = set()

    def dut_call(end, user, kind):
        """A random data-path call of `user` on `end`: (pid, op, *args), max_ticks."""
        pid, dfd = user
        n = _length(rng, lengths)
        if kind == "send":
            if end.kind == "udp":
                return (pid, "sendto", dfd, _data(rng, n), (PEER_IP, _PEER_UDP_PORT)), 0
            flags = rng.choice([MSG_DONTWAIT, MSG_DONTWAIT, 0])
            return (pid, "send", dfd, _data(rng, n), flags), 300
        flags = rng.choice([MSG_DONTWAIT, MSG_DONTWAIT | MSG_PEEK, MSG_WAITALL, 0])
        return (pid, "recvfrom" if end.kind == "udp" else "recv", dfd, n, flags), 300

    for _ in range(steps):
        end = rng.choice(ends)
        user = rng.choice(end.users)
        # (the steered ops come last with weight 0 unless `steered`: the other draws stay)
        op = rng.choices(["send", "recv", "peer_send", "peer_recv", "run", "poll", "batch", "burst",
                          "fork", "dup", "pass", "shutdown", *STEERED],
                         [10, 10, 8, 6, 5, 2, 5, 2, 1, 1, 1, 0.3,
                          *(w if steered else 0 for w in STEERED.values())])[0]
        if op in ("send", "recv"):
            call, ticks = dut_call(end, user, op)
            r.call(*call, max_ticks=ticks)
        elif op == "peer_send":
            ppid, pfd = end.peer
            data = _data(rng, _length(rng, lengths))
            if end.kind == "udp":
                r.call(ppid, "sendto", pfd, data[:1472], (DUT_IP, _UDP_PORT), side="peer")
            else:
                r.call(ppid, "send", pfd, data, MSG_DONTWAIT, side="peer")
        elif op == "peer_recv":
            ppid, pfd = end.peer
            r.call(ppid, "recvfrom" if end.kind == "udp" else "recv", pfd,
                   _length(rng, lengths), MSG_DONTWAIT, side="peer")
        elif op == "run":
            r.run(rng.choice([1, 3, 50, 300]))
        elif op == "poll":
            r.call(user[0], "poll", [(user[1], 5)])
        elif op == "batch":
            # calls of several processes at once: on different connections, or on one
            # connection by several of its users (served in list order)
            chosen = rng.sample(ends, rng.randint(2, 3)) if rng.random() < 0.7 else [end] * 2
            batch = []
            for e in chosen:
                call, _ = dut_call(e, rng.choice(e.users), rng.choice(["send", "recv"]))
                batch.append(call)
            r.calls(batch, max_ticks=300)
        elif op == "burst":
            frames = []
            replays = [e.frame for e in r.wire.log[-20:] if e.side == "b"]
            for _ in range(rng.randint(2, 5)):
                what = rng.choice(["runt", "udp", "replay", "corrupt"])
                if what == "runt":
                    frames.append(rng.choice([b"", b"\x01"]))
                elif what == "udp":
                    dgram = UdpDatagram(_PEER_UDP_PORT, _UDP_PORT, _data(rng, rng.choice([0, 1, 100, 1472])))
                    frames.append(build_udp_frame(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP, dgram))
                elif replays:
                    frame = rng.choice(replays)
                    if what == "corrupt":
                        i = rng.randrange(len(frame))
                        frame = frame[:i] + bytes([frame[i] ^ 0x10]) + frame[i + 1:]
                    frames.append(frame)
            r.inject_burst(frames)
        elif op == "fork" and len(pids) < _MAX_PIDS and end.kind == "tcp":
            child = r.call(user[0], "fork").value
            pids.add(child)
            for e in ends:          # the child holds every fd its parent holds
                e.users += [(child, f) for pid, f in list(e.users) if pid == user[0]]
        elif op == "dup":
            new = r.call(user[0], "dup", user[1]).value
            if isinstance(new, int):
                end.users.append((user[0], new))
        elif op == "pass" and len(pids) < _MAX_PIDS:
            other = r.dut.spawn()
            pids.add(other)
            new = r.call(user[0], "send_fd", user[1], other).value
            if isinstance(new, int):
                end.users.append((other, new))
        elif op in STEERED:
            _steered_op(r, rng, op, end, u1)
        elif op == "shutdown" and end.kind == "tcp" and id(end) not in shut:
            shut.add(id(end))
            r.call(user[0], "shutdown", user[1], SHUT_WR)
    for end in ends[:2]:
        r.call(end.peer[0], "close", end.peer[1], side="peer")
    r.run(5)
    for end in ends:
        for pid, dfd in end.users:
            r.call(pid, "recvfrom" if end.kind == "udp" else "recv", dfd, 10000, MSG_DONTWAIT)
            r.call(pid, "close", dfd)
    r.run(1100)


# what a crafted segment may be on a connection whose real peer is still talking: not data or
# a FIN the peer never sent. Those would move the dut's RCV.NXT past the peer's SND.NXT, and the
# two ends would then answer each other's ACKs with ACKs forever, every tick (an ACK storm:
# neither the model nor the NIC rate-limits ACKs to unacceptable segments as Linux's
# tcp_invalid_ratelimit does), growing with every duplicate the wire makes
_LIVE_KINDS = ("SYN", "SYN_ACK", "ACK", "DATA_OUT_OF_WINDOW", "RST_EXACT", "RST_IN_WINDOW",
               "RST_OUTSIDE", "OLD_DUPLICATE")


def _steered_op(r, rng, op, end, pid):
    """One of the `STEERED` steps of a random program on endpoint `end` (`pid`: a dut process
    for the calls a step makes of its own)."""
    from tb.crafted_peer import CraftedPeer, bad_frames
    if op == "craft" and end.kind == "tcp":
        sock = r.peer.host.processes[end.peer[0]].fds.get(end.peer[1])
        tcb = sock.tcb if sock is not None else None
        if tcb is None:
            return
        peer = CraftedPeer(r, PEER_MAC, PEER_IP, tcb.local[1], DUT_MAC, DUT_IP, tcb.remote[1],
                           iss=tcb.iss, window=min(tcb.rcv_wnd, 0xFFFF))
        if peer.dut_segments():
            peer.acked = tcb.rcv_nxt            # what the real peer has acknowledged
            peer.send(rng.choice(_LIVE_KINDS), payload=_data(rng, rng.choice([1, 10, 100])))
    elif op == "bad_frame":
        frames = bad_frames(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP, _PEER_UDP_PORT, _UDP_PORT,
                            "192.0.2.99")
        r.inject(rng.choice(list(frames.values())))
    elif op == "refused":
        fd = r.call(pid, "socket", "tcp").value
        if rng.random() < 0.5:
            r.call(pid, "connect", fd, (PEER_IP, 9))          # nobody listens: RST
        else:
            r.call(pid, "fcntl_nonblock", fd, True)
            r.call(pid, "connect", fd, (PEER_IP, 9))
            r.run(3)
            call = rng.choice([("recv", 10), ("send", b"x"), ("getsockopt_error",)])
            r.call(pid, call[0], fd, *call[1:])
        r.call(pid, "recv", fd, 10, MSG_DONTWAIT)
        r.call(pid, "close", fd)
    elif op == "silence":
        before = r.wire.block
        r.wire.block = lambda side, frame: side == "b" or (before is not None and before(side, frame))
        r.run(rng.choice([500, 3000, 50_000]))
        r.wire.block = before


@scenario(seed=7, drop=0.05, reorder=0.05)
def random_1(r):
    """Seeded random calls on two connections and a UDP pair over a slightly lossy wire."""
    _random_ops(r, 1, 60)


@scenario(seed=3, duplicate=0.05, corrupt=0.02, peer_iss=2**32 - 3000)
def random_2(r):
    """Seeded random calls on two connections and a UDP pair; the wire duplicates and
    corrupts, and the peer's sequence numbers wrap."""
    _random_ops(r, 2, 60)


def random_scenario(seed: int, limit: int | None = None) -> Scenario:
    """The seeded random scenario ``random:SEED`` (for campaigns): the wire's faults, both
    ends' ISS (some near 2**32, so sequence numbers wrap) and the program, over every length
    class of `LENGTHS`, are drawn from `seed`. With a `limit` K (``random:SEED:K``) the
    program stops after its first K random steps (the set-up and the closing calls stay):
    the steps drawn are the same as the full program's first K. The scenario's ``steps`` is
    how many random steps it runs."""
    rng = random.Random(f"random:{seed}")
    wire = {"seed": seed}
    for fault, top in (("drop", 0.1), ("duplicate", 0.1), ("reorder", 0.1), ("corrupt", 0.02)):
        if rng.random() < 0.4:
            wire[fault] = round(rng.uniform(0, top), 3)
    near_wrap = lambda: 2**32 - rng.randrange(1, 70_000)
    peer_iss = rng.choice([PEER_ISS, near_wrap(), rng.randrange(2**32)])
    dut_iss = rng.choice([None, near_wrap(), rng.randrange(2**32)])
    steps = rng.randint(60, 160)
    name = f"random:{seed}"
    if limit is not None:
        if not 0 <= limit <= steps:
            raise KeyError(f"random:{seed} has {steps} steps: its prefixes are random:{seed}:0 "
                           f"to random:{seed}:{steps}, not random:{seed}:{limit}")
        steps, name = limit, f"random:{seed}:{limit}"

    def program(r):
        _random_ops(r, seed, steps, LENGTHS, steered=True)
    program.__doc__ = (f"Seeded random program {seed}: {steps} steps, wire {wire}, peer ISS "
                       f"{peer_iss}, dut ISS {dut_iss}.")
    spec = Scenario(program, wire, 8, None, peer_iss, dut_iss, name=name)
    spec.steps = steps
    return spec


# ----- crafted peers: every state x every segment kind, timers, errors, drop causes ------------
# (tb/crafted_peer.py: segments placed relative to what the dut last sent; the model peer
# never sees these 4-tuples). They exist for the coverage bins the programs above never reach
# (README, "Functional coverage"); each is also a differential check like every scenario.

# the segment kinds that leave a connection in the state it is in
_SAFE_KINDS = ("ACK", "OLD_DUPLICATE", "DATA_OUT_OF_WINDOW", "RST_OUTSIDE", "RST_IN_WINDOW",
               "DATA_IN_WINDOW")
# a second FIN changes nothing once the first has been received
_FIN_AGAIN = ("CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")
# states whose retransmission timer the walk lets fire (something of the dut's is unacknowledged)
_RTO_WALK = ("SYN_SENT", "SYN_RECEIVED", "FIN_WAIT_1", "CLOSE_WAIT", "CLOSING", "LAST_ACK")


def _crafted_peer(r, port, dut_port, ports):
    """A crafted peer on `port` (added to `ports`, the 4-tuples kept off the wire)."""
    from tb.crafted_peer import CraftedPeer
    ports.add(port)
    return CraftedPeer(r, PEER_MAC, PEER_IP, port, DUT_MAC, DUT_IP, dut_port, iss=1_000_000 + port)


def _crafted_listener(r):
    """The crafted peers' set-up: the set of their ports (kept off the wire; it grows as peers
    are made) and a dut process `p1` listening on PORT with fd `lfd`."""
    from tb.crafted_peer import CraftedPeer
    ports = set()
    CraftedPeer.block(r, ports)
    p1 = r.dut.spawn()
    lfd = r.call(p1, "socket", "tcp").value
    r.call(p1, "bind", lfd, ("0.0.0.0", PORT))
    r.call(p1, "listen", lfd, 8)
    return ports, p1, lfd


def _bring_up(r, state, port, listener, ports):
    """A dut connection driven into `state` by a crafted peer on `port`: returns (pid, fd,
    peer); fd is None in SYN-RECEIVED (the connection waits on `listener`'s queue)."""
    p1, lfd = listener
    if state == "SYN_SENT":
        fd = r.call(p1, "socket", "tcp").value
        r.call(p1, "fcntl_nonblock", fd, True)
        r.call(p1, "bind", fd, ("0.0.0.0", port))          # the dut's port: known in advance
        peer = _crafted_peer(r, port, port, ports)
        r.call(p1, "connect", fd, (PEER_IP, port))          # EINPROGRESS
        return p1, fd, peer
    peer = _crafted_peer(r, port, PORT, ports)
    peer.send("SYN")
    if state == "SYN_RECEIVED":
        return p1, None, peer
    peer.ack_all()
    peer.send("ACK")                                        # the handshake's last ACK
    fd, _ = r.call(p1, "accept", lfd).value
    if state in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT"):
        r.call(p1, "shutdown", fd, SHUT_WR)
        if state in ("FIN_WAIT_2", "TIME_WAIT"):
            peer.ack_all()
            peer.send("ACK")
        if state in ("CLOSING", "TIME_WAIT"):
            peer.send("FIN")                                # CLOSING: our FIN not yet acked
    elif state in ("CLOSE_WAIT", "LAST_ACK"):
        peer.send("FIN")
        if state == "LAST_ACK":
            r.call(p1, "shutdown", fd, SHUT_WR)
    return p1, fd, peer


def _walk(r, state, port, listener, ports):
    """Bring a connection to `state`, send it every segment kind that leaves the state as it
    is (and let its retransmission timer fire), then the ones that may end it."""
    pid, fd, peer = _bring_up(r, state, port, listener, ports)
    ack = state != "SYN_RECEIVED"           # there, segments without ACK are dropped unread
    for kind in _SAFE_KINDS + (("FIN",) if state in _FIN_AGAIN else ()):
        if state == "SYN_SENT" and kind in ("RST_IN_WINDOW", "DATA_IN_WINDOW", "OLD_DUPLICATE"):
            continue                        # no window yet: these are the kinds above
        peer.send(kind, ack=ack)
    if state == "SYN_SENT":
        peer.send("FIN")
    if state == "SYN_RECEIVED":
        peer.send("FIN", ack=False)
    if state == "CLOSE_WAIT":
        r.call(pid, "send", fd, b"unacknowledged", MSG_DONTWAIT)
    if state in _RTO_WALK:
        r.run(NIC_POLICY.rto_initial + 1)
    if state == "SYN_SENT":
        peer.rst_for_syn()                  # ECONNREFUSED
    elif state == "ESTABLISHED":
        # the RST and a segment right behind it: the second finds the connection CLOSED
        # before the OS has removed it from the socket table
        peer.send("SYN_ACK")
        peer.send("SYN")
        r.inject_burst([peer.frame(peer.segment("RST_EXACT")), peer.frame(peer.segment("ACK"))])
    else:
        for kind in ("SYN_ACK", "SYN", "RST_EXACT"):
            peer.send(kind)
    if fd is not None:
        r.call(pid, "recv", fd, 10000, MSG_DONTWAIT)
        r.call(pid, "recv", fd, 10000, MSG_DONTWAIT)
        r.call(pid, "close", fd)


_WALKED = ("SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSING",
           "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK")


@scenario()
def crafted_states(r):
    """A crafted peer drives one connection into each TCP state (both opens, both close
    orders, simultaneous close) and sends it every kind of segment there: an ACK, an old
    duplicate, data in and beyond the window, RSTs outside, inside and at RCV.NXT, a FIN
    again, a SYN and a SYN-ACK after the handshake (RFC 9293 3.10.7.4, RFC 5961's challenge
    ACKs); the retransmission timer fires in each state that has something unacknowledged.
    A simultaneous open (a SYN in SYN-SENT) is walked too."""
    ports, p1, lfd = _crafted_listener(r)
    for i, state in enumerate(_WALKED):
        _walk(r, state, 40001 + i, (p1, lfd), ports)
    # simultaneous open: a SYN answers the dut's SYN; the dut's SYN-ACK is acknowledged
    pid, fd, peer = _bring_up(r, "SYN_SENT", 40020, (p1, lfd), ports)
    peer.send("SYN")
    peer.ack_all()
    peer.send("ACK")
    r.call(pid, "connect", fd, (PEER_IP, 40020))
    peer.send("DATA_IN_WINDOW")
    r.call(pid, "recv", fd, 100)
    peer.send("RST_EXACT")
    r.call(pid, "close", fd)
    r.call(p1, "close", lfd)
    r.run(1100)


@scenario()
def crafted_errors(r):
    """Timers and errors a well-behaved peer never causes, with crafted peers: connects
    refused by an RST (READ, WRITE and SO_ERROR each take the pending ECONNREFUSED, then READ
    says ENOTCONN); a peer that goes silent with data outstanding until the last
    retransmission gives up (ETIMEDOUT, again by READ, WRITE and SO_ERROR); a window shrunk to
    0 with data in flight (the RTO turns into persist probes), then reset (SO_ERROR takes the
    ECONNRESET; on another, a send takes it and shutdown says ENOTCONN); an orphan in FIN-WAIT-2 closed by its timer; a stranger's forged doorbell writes of POLL, CLOSE and SO_ERROR (EBADF).
    Then a frame for each receive-path drop cause a good peer never sends; the drop counts
    are in the trace."""
    from tb.crafted_peer import bad_frames
    ports, p1, lfd = _crafted_listener(r)
    listener = (p1, lfd)
    # refused: the pending error goes to whichever call comes first
    refused = [_bring_up(r, "SYN_SENT", 41001 + i, listener, ports) for i in range(3)]
    for _, _, peer in refused:
        peer.rst_for_syn()
    (_, fd1, _), (_, fd2, _), (_, fd3, _) = refused
    r.call(p1, "recv", fd1, 100)
    r.call(p1, "recv", fd1, 100)
    r.call(p1, "send", fd2, b"refused")
    r.call(p1, "send", fd2, b"refused")
    r.call(p1, "getsockopt_error", fd3)
    r.call(p1, "getsockopt_error", fd3)
    r.call(p1, "poll", [(fd3, 5)])
    for fd in (fd1, fd2, fd3):
        r.call(p1, "close", fd)
    # silent peers: three connections with data outstanding, one whose window shrinks to 0
    silent = [_bring_up(r, "ESTABLISHED", 41011 + i, listener, ports) for i in range(4)]
    for _, fd, _ in silent:
        r.call(p1, "send", fd, b"anyone there?" * 20, MSG_DONTWAIT)
    shrunk = silent[3][2]
    shrunk.send("ACK", window=0)
    # an orphan in FIN-WAIT-2: closed, its FIN acknowledged, the peer's never comes
    _, fd_orphan, orphan = _bring_up(r, "ESTABLISHED", 41021, listener, ports)
    r.call(p1, "close", fd_orphan)
    orphan.ack_all()
    orphan.send("ACK")
    stranger = r.dut.spawn()
    victim = silent[0][1]
    r.call(stranger, "poll", [(victim, 5)])
    r.call(stranger, "getsockopt_error", victim)
    r.call(stranger, "close", victim)
    budget = sum(NIC_POLICY.rto_after(i) for i in range(NIC_POLICY.max_retries + 1))
    r.run(budget + 10)
    (_, fd1, _), (_, fd2, _), (_, fd3, _), (_, fd4, _) = silent
    r.call(p1, "recv", fd1, 100)
    r.call(p1, "send", fd2, b"late")
    r.call(p1, "getsockopt_error", fd3)
    r.call(p1, "poll", [(fd4, 5)])
    shrunk.send("RST_EXACT")
    r.call(p1, "getsockopt_error", fd4)                  # ECONNRESET
    _, fd5, reset = _bring_up(r, "ESTABLISHED", 41031, listener, ports)
    reset.send("RST_EXACT")
    r.call(p1, "send", fd5, b"too late")                # ECONNRESET
    r.call(p1, "shutdown", fd5, SHUT_WR)                # ENOTCONN
    r.call(p1, "close", fd5)
    for fd in (fd1, fd2, fd3, fd4):
        r.call(p1, "recv", fd, 100, MSG_DONTWAIT)
        r.call(p1, "close", fd)
    # every drop cause a good peer never causes, each counted once
    frames = bad_frames(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP, 1111, 5353, "192.0.2.99")
    for frame in frames.values():
        r.inject(frame)
    r.inject_burst(list(frames.values()))
    r.call(p1, "close", lfd)
    r.run(5)
    r.trace.append(("drops", r.now, r.dut.drop_counts()))


@scenario()
def crafted_races(r):
    """Frames and host commands for one connection reach the NIC in the same clock
    (``Runner.race``): ACKs that change nothing race polls, SO_ERROR and a nonblocking recv on
    the same connection (every order gives the same answers). Then a 64 KiB write keeps the
    engine busy while a burst of datagrams for no socket arrives behind an ACK for another
    connection: the receive FIFO overflows, and each datagram is counted once, as NO_SOCKET
    or (the RTL only: the model has no FIFO) RX_FIFO_FULL; the sum is in the trace. Last,
    broadcasts arrive while host software takes nothing from the slow path: each is counted
    once, as UNKNOWN_ETHERTYPE or (the RTL only) SLOW_FIFO_FULL."""
    ports, p1, lfd = _crafted_listener(r)
    _, fd_x, x = _bring_up(r, "ESTABLISHED", 42001, (p1, lfd), ports)
    _, fd_y, y = _bring_up(r, "ESTABLISHED", 42002, (p1, lfd), ports)
    noop = x.frame(x.segment("ACK"))
    for _ in range(2):
        r.race([noop, noop], [(p1, "poll", [(fd_x, 5)]), (p1, "recv", fd_x, 100, MSG_DONTWAIT),
                              (p1, "getsockopt_error", fd_x), (p1, "poll", [(fd_x, 5)]),
                              (p1, "poll", [(fd_x, 5)])])
    nowhere = build_udp_frame(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP,
                              UdpDatagram(_PEER_UDP_PORT, 7, _data(random.Random(0), 1472)))
    r.race([y.frame(y.segment("ACK"))] + [nowhere] * 6,
           [(p1, "send", fd_x, bytes(65536), MSG_DONTWAIT)])
    counts = r.dut.drop_counts()
    r.trace.append(("datagrams dropped", r.now,
                    counts.get("NO_SOCKET", 0) + counts.get("RX_FIFO_FULL", 0)))
    # broadcasts for host software while it is busy: the slow-path FIFO overflows
    stray = bytes.fromhex("ffffffffffff") + bytes.fromhex(PEER_MAC.replace(":", "")) \
        + bytes.fromhex("88b5") + bytes(1500)          # local experimental EtherType
    r.inject_burst([stray] * 6, os_busy=True)
    counts = r.dut.drop_counts()
    r.trace.append(("broadcasts dropped", r.now,
                    counts.get("UNKNOWN_ETHERTYPE", 0) + counts.get("SLOW_FIFO_FULL", 0)))
    x.ack_all()
    x.send("ACK")
    for peer, fd in ((x, fd_x), (y, fd_y)):
        peer.send("RST_EXACT")
        r.call(p1, "close", fd)
    r.call(p1, "close", lfd)
    r.run(5)
