"""Errno behaviour of the socket calls, as Linux gives it."""

from conftest import A_IP, B_IP, PORT, blocking, errno_of, make_pair

from model.constants import (MSG_DONTWAIT, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, SHUT_RD,
                             SHUT_RDWR, SHUT_WR)
from model.errors import SocketError, WouldBlock
from model.host import Host


def test_errnos_of_unconnected_and_listening_sockets(pair):
    p = pair.pa
    fd = p.socket("tcp")
    assert errno_of(p.socket, "sctp") == "EINVAL"
    assert errno_of(p.recv, fd, 10) == "ENOTCONN"
    assert errno_of(p.send, fd, b"x") == "EPIPE"
    assert errno_of(p.shutdown, fd, SHUT_WR) == "ENOTCONN"
    assert errno_of(p.accept, fd) == "EINVAL"
    assert errno_of(p.getpeername, fd) == "ENOTCONN"
    assert errno_of(p.bind, fd, ("10.9.9.9", 80)) == "EADDRNOTAVAIL"
    assert errno_of(p.connect, fd, ("10.9.9.9", 80)) == "EHOSTUNREACH"
    p.bind(fd, (A_IP, 80))
    assert errno_of(p.bind, fd, (A_IP, 81)) == "EINVAL"
    assert errno_of(p.bind, p.socket("tcp"), ("0.0.0.0", 80)) == "EADDRINUSE"
    assert errno_of(p.shutdown, fd, 7) == "EINVAL"
    p.listen(fd, 1)
    assert errno_of(p.connect, fd, (B_IP, PORT)) == "EISCONN"
    assert errno_of(p.recv, fd, 1) == "ENOTCONN"
    p.fcntl_nonblock(fd, True)
    assert errno_of(p.accept, fd) == "EAGAIN"
    p.fcntl_nonblock(fd, False)
    try:
        p.accept(fd)
        raise AssertionError("accept did not block")
    except WouldBlock:
        pass
    assert errno_of(pair.pa.connect, pair.ca, (B_IP, PORT)) == "EISCONN"
    assert errno_of(p.close, 999) == "EBADF"
    assert errno_of(p.recv, pair.ca, -1) == "EINVAL"


def test_backlog_limits_pending_connections():
    pair = make_pair(connect=False)
    lfd = pair.pb.socket("tcp")
    pair.pb.bind(lfd, ("0.0.0.0", PORT))
    pair.pb.listen(lfd, 1)                              # Linux: backlog + 1 may wait
    fds = [pair.pa.socket("tcp") for _ in range(3)]
    for fd in fds:
        pair.pa.fcntl_nonblock(fd, True)
        assert errno_of(pair.pa.connect, fd, (B_IP, PORT)) == "EINPROGRESS"
    pair.settle(50)
    assert len(pair.pb.socket_of(lfd).accept_queue) == 2
    assert [pair.pa.poll([(fd, POLLOUT)]) != [] for fd in fds] == [True, True, False]


def test_poll_flags_through_a_connection_life(pair):
    pa, pb = pair.pa, pair.pb
    assert pb.poll([(pair.lb, POLLIN)]) == []
    assert pa.poll([(pair.ca, POLLIN | POLLOUT)]) == [(pair.ca, POLLOUT)]
    try:
        pa.poll([(pair.ca, POLLIN)], timeout=-1)
        raise AssertionError("poll did not block")
    except WouldBlock:
        pass
    pb.send(pair.sb, b"data")
    pair.settle(3)
    assert pa.poll([(pair.ca, POLLIN)]) == [(pair.ca, POLLIN)]
    pb.shutdown(pair.sb, SHUT_WR)
    pair.settle(3)
    pa.recv(pair.ca, 10)
    assert pa.poll([(pair.ca, POLLIN)]) == [(pair.ca, POLLIN)]       # EOF is readable
    pa.shutdown(pair.ca, SHUT_RDWR)
    pair.settle(3)
    assert pa.poll([(pair.ca, POLLIN | POLLOUT)]) == [(pair.ca, POLLIN | POLLOUT | POLLHUP)]
    fresh = pa.socket("tcp")
    assert pa.poll([(fresh, POLLOUT), (77, POLLIN)]) == [(fresh, POLLOUT | POLLHUP), (77, POLLNVAL)]


def test_poll_reports_error_after_reset(pair):
    pair.pa.send(pair.ca, b"q")
    pair.settle(3)
    pair.pb.close(pair.sb)
    pair.settle(3)
    ready = pair.pa.poll([(pair.ca, POLLIN)])
    assert ready == [(pair.ca, POLLIN | POLLERR | POLLHUP)]
    assert pair.pa.getsockopt_error(pair.ca) == "ECONNRESET"
    assert pair.pa.getsockopt_error(pair.ca) is None
    assert pair.pa.recv(pair.ca, 10) == b""


def test_shut_rd_gives_eof_after_buffered_data(pair):
    pair.pa.send(pair.ca, b"buffered")
    pair.settle(3)
    pair.pb.shutdown(pair.sb, SHUT_RD)
    assert pair.pb.recv(pair.sb, 100) == b"buffered"
    assert pair.pb.recv(pair.sb, 100) == b""
    pair.pb.send(pair.sb, b"writes still work")
    pair.settle(3)
    assert pair.pa.recv(pair.ca, 100) == b"writes still work"


def test_blocking_send_is_whole_or_waits(pair):
    big = b"z" * 60_000
    assert pair.pa.send(pair.ca, big) == 60_000
    try:
        pair.pa.send(pair.ca, big)                      # does not fit yet: waits, queues nothing
        raise AssertionError("send did not block")
    except WouldBlock:
        pass
    assert len(pair.tcb_a().send_queue) <= 60_000
    assert blocking(pair.wire, pair.pa.send, pair.ca, big) == 60_000
    queued = len(pair.tcb_a().send_queue)
    assert pair.pa.send(pair.ca, big, MSG_DONTWAIT) == 65536 - queued    # nonblocking: what fits
    assert errno_of(pair.pa.send, pair.ca, b"y", MSG_DONTWAIT) == "EAGAIN"


def test_ephemeral_ports_and_exit_closes_everything():
    pair = make_pair(connect=False)
    host = pair.a
    lfd = pair.pb.socket("tcp")
    pair.pb.bind(lfd, ("0.0.0.0", PORT))
    pair.pb.listen(lfd)
    p = host.spawn()
    fds = [p.socket("tcp") for _ in range(3)]
    for fd in fds:
        blocking(pair.wire, p.connect, fd, (B_IP, PORT))
    assert [p.getsockname(fd)[1] for fd in fds] == [49152, 49153, 49154]
    p.exit()
    pair.settle(5)
    assert all(t.state.value in ("FIN-WAIT-2", "TIME-WAIT") for t in host.tcbs.values())
    assert isinstance(Host("02:00:00:00:00:09", "192.0.2.9").spawn().pid, int)


def test_nonblocking_connect_then_poll_then_connect_returns_zero():
    pair = make_pair(connect=False)
    lfd = pair.pb.socket("tcp")
    pair.pb.bind(lfd, ("0.0.0.0", PORT))
    pair.pb.listen(lfd)
    fd = pair.pa.socket("tcp")
    pair.pa.fcntl_nonblock(fd, True)
    assert errno_of(pair.pa.connect, fd, (B_IP, PORT)) == "EINPROGRESS"
    assert pair.pa.poll([(fd, POLLOUT)]) == []
    assert errno_of(pair.pa.send, fd, b"early") == "EAGAIN"
    pair.settle(5)
    assert pair.pa.poll([(fd, POLLOUT)]) == [(fd, POLLOUT)]
    assert pair.pa.getsockopt_error(fd) is None
    assert pair.pa.connect(fd, (B_IP, PORT)) is None
    assert errno_of(pair.pa.connect, fd, (B_IP, PORT)) == "EISCONN"
    assert pair.pa.getpeername(fd) == (B_IP, PORT)
    try:
        raise SocketError("EAGAIN")
    except SocketError as err:
        assert err.errno == "EAGAIN" and str(err) == "EAGAIN"
