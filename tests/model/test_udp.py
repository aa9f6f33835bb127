"""UDP: datagram boundaries, truncating reads, connected sockets (issue, also-list)."""

import dataclasses

from conftest import A_IP, B_IP, blocking, errno_of, make_pair

from model.constants import MSG_DONTWAIT, MSG_PEEK, POLLIN, POLLOUT
from model.drops import DropCause
from model.policy import DEFAULT_POLICY as P


def udp_pair(**kw):
    pair = make_pair(connect=False, **kw)
    ua, ub = pair.pa.socket("udp"), pair.pb.socket("udp")
    pair.pa.bind(ua, ("0.0.0.0", 1111))
    pair.pb.bind(ub, (B_IP, 2222))
    return pair, ua, ub


def test_boundaries_and_truncation():
    pair, ua, ub = udp_pair()
    for payload in (b"one", b"", b"three" * 100, b"x" * 1472):
        assert pair.pa.sendto(ua, payload, (B_IP, 2222)) == len(payload)
    pair.settle(5)
    assert pair.pb.poll([(ub, POLLIN | POLLOUT)]) == [(ub, POLLIN | POLLOUT)]
    assert pair.pb.recvfrom(ub, 100) == (b"one", (A_IP, 1111))
    assert pair.pb.recv(ub, 100) == b""                       # an empty datagram is a datagram
    assert pair.pb.recv(ub, 7, MSG_PEEK) == b"threeth"
    assert pair.pb.recv(ub, 7) == b"threeth"                 # truncated: the rest is gone
    assert pair.pb.recv(ub, 5000) == b"x" * 1472
    assert errno_of(pair.pb.recv, ub, 10, MSG_DONTWAIT) == "EAGAIN"
    assert errno_of(pair.pa.sendto, ua, b"y" * 1473, (B_IP, 2222)) == "EMSGSIZE"


def test_connected_udp_and_filtering():
    pair, ua, ub = udp_pair()
    assert errno_of(pair.pa.send, ua, b"where to?") == "EDESTADDRREQ"
    pair.pa.connect(ua, (B_IP, 2222))
    pair.pb.connect(ub, (A_IP, 1111))
    pair.pa.send(ua, b"hello")
    pair.settle(5)
    assert pair.pb.recv(ub, 100) == b"hello"
    stranger = pair.pa.socket("udp")
    pair.pa.sendto(stranger, b"not from my peer", (B_IP, 2222))   # b is connected to 1111 only
    pair.settle(5)
    assert errno_of(pair.pb.recv, ub, 100, MSG_DONTWAIT) == "EAGAIN"
    assert pair.b.drops[DropCause.NO_SOCKET] == 1


def test_unbound_port_queue_limit_and_shared_socket():
    small = dataclasses.replace(P, udp_rcv_buffer=3100)    # 3 records of 8 + 1000 bytes
    pair, ua, ub = udp_pair(policy=small)
    pair.pa.sendto(ua, b"lost", (B_IP, 3333))
    for i in range(4):
        pair.pa.sendto(ua, bytes([i]) * 1000, (B_IP, 2222))
    pair.settle(5)
    assert pair.b.drops[DropCause.NO_SOCKET] == 1 and pair.b.drops[DropCause.QUEUE_FULL] == 1
    child = pair.pb.fork()
    assert child.recv(ub, 2000) == b"\0" * 1000
    assert pair.pb.recv(ub, 2000) == b"\1" * 1000
    assert child.recv(ub, 2000) == b"\2" * 1000
    assert errno_of(pair.pb.bind, pair.pb.socket("udp"), ("0.0.0.0", 2222)) == "EADDRINUSE"


def test_blocking_udp_recv_waits_for_a_datagram():
    pair, ua, ub = udp_pair()
    pair.wire.run(max_ticks=1)
    assert errno_of(pair.pb.recv, ub, 10, MSG_DONTWAIT) == "EAGAIN"
    pair.pa.sendto(ua, b"late", (B_IP, 2222))
    assert blocking(pair.wire, pair.pb.recvfrom, ub, 10) == (b"late", (A_IP, 1111))
