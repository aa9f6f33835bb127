"""Socket options (model/host.py, policy "Socket options"): values as Linux reports them, and
the connection they shape (window cap, send cap, MSS, abortive close)."""

import pytest
from conftest import B_IP, PORT, blocking, errno_of, make_pair

from model.constants import (SO_ERROR, SO_KEEPALIVE, SO_LINGER, SO_RCVBUF, SO_REUSEADDR, SO_SNDBUF,
                             SOCK_MIN_BUFFER, SOL_SOCKET, SOL_TCP, TCP_MAXSEG, TCP_NODELAY)
from model.errors import WouldBlock
from model.packet import parse_frame
from model.policy import DEFAULT_POLICY as P
from model.protocol import TcpFlag

TCP_CORK = 3


def _connect(pair, client_options=(), listener_options=()):
    """Listen on b and connect from a, with options set on the listener and the client first."""
    pair.lb = pair.pb.socket("tcp")
    for option in listener_options:
        pair.pb.setsockopt(pair.lb, *option)
    pair.pb.bind(pair.lb, ("0.0.0.0", PORT))
    pair.pb.listen(pair.lb, 8)
    pair.ca = pair.pa.socket("tcp")
    for option in client_options:
        pair.pa.setsockopt(pair.ca, *option)
    blocking(pair.wire, pair.pa.connect, pair.ca, (B_IP, PORT))
    pair.sb, _ = blocking(pair.wire, pair.pb.accept, pair.lb)
    return pair


def _tcp(pair, side):
    return [parse_frame(e.frame).tcp for e in pair.wire.log if e.side == side]


def test_values_read_back_as_linux_reports_them():
    p = make_pair(connect=False).pa
    fd = p.socket("tcp")
    assert p.getsockopt(fd, SOL_SOCKET, SO_RCVBUF) == 2 * P.rcv_buffer      # the ring, doubled
    assert p.getsockopt(fd, SOL_SOCKET, SO_SNDBUF) == 2 * P.snd_buffer
    for value, cap in ((4096, 4096), (1, SOCK_MIN_BUFFER), (10**6, P.rcv_buffer), (-1, P.rcv_buffer)):
        p.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, value)
        assert p.getsockopt(fd, SOL_SOCKET, SO_RCVBUF) == 2 * cap, value
    p.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, 3000)
    assert p.getsockopt(fd, SOL_SOCKET, SO_SNDBUF) == 6000
    assert p.getsockopt(fd, SOL_TCP, TCP_MAXSEG) == 536                       # Linux's mss_cache
    assert errno_of(p.setsockopt, fd, SOL_TCP, TCP_MAXSEG, 87) == "EINVAL"
    assert errno_of(p.setsockopt, fd, SOL_TCP, TCP_MAXSEG, 32768) == "EINVAL"
    p.setsockopt(fd, SOL_TCP, TCP_MAXSEG, 2000)                               # kept; sent as min(2000, mss)
    assert p.getsockopt(fd, SOL_TCP, TCP_MAXSEG) == 2000
    assert p.getsockopt(fd, SOL_TCP, TCP_NODELAY) == 0
    p.setsockopt(fd, SOL_TCP, TCP_NODELAY, 5)
    assert p.getsockopt(fd, SOL_TCP, TCP_NODELAY) == 1
    assert p.getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE) == 0
    p.setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, 0)
    assert errno_of(p.setsockopt, fd, SOL_SOCKET, SO_KEEPALIVE, 1) == "EOPNOTSUPP"   # not implemented
    assert p.getsockopt(fd, SOL_SOCKET, SO_LINGER) == (0, 0)
    assert errno_of(p.setsockopt, fd, SOL_SOCKET, SO_LINGER, (1, 5)) == "EOPNOTSUPP"
    assert errno_of(p.setsockopt, fd, SOL_SOCKET, SO_LINGER, 1) == "EINVAL"
    p.setsockopt(fd, SOL_SOCKET, SO_LINGER, (1, 0))
    assert p.getsockopt(fd, SOL_SOCKET, SO_LINGER) == (1, 0)
    p.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)
    assert p.getsockopt(fd, SOL_SOCKET, SO_REUSEADDR) == 1
    assert p.getsockopt(fd, SOL_SOCKET, SO_ERROR) == 0
    assert errno_of(p.setsockopt, fd, SOL_SOCKET, SO_ERROR, 0) == "ENOPROTOOPT"
    assert errno_of(p.setsockopt, fd, SOL_TCP, TCP_CORK, 1) == "EOPNOTSUPP"
    assert errno_of(p.getsockopt, fd, SOL_TCP, TCP_CORK) == "EOPNOTSUPP"
    assert errno_of(p.getsockopt, 99, SOL_SOCKET, SO_ERROR) == "EBADF"
    udp = p.socket("udp")
    assert errno_of(p.setsockopt, udp, SOL_SOCKET, SO_RCVBUF, 4096) == "EOPNOTSUPP"
    assert errno_of(p.setsockopt, udp, SOL_TCP, TCP_NODELAY, 1) == "EOPNOTSUPP"
    assert p.getsockopt(udp, SOL_SOCKET, SO_RCVBUF) == 2 * P.udp_rcv_buffer


def test_rcvbuf_caps_the_window_of_accepted_connections():
    pair = _connect(make_pair(connect=False), listener_options=[(SOL_SOCKET, SO_RCVBUF, 3000)])
    syn_ack = _tcp(pair, "b")[0]
    assert syn_ack.flags & TcpFlag.SYN and syn_ack.window == 3000
    assert pair.pb.getsockopt(pair.sb, SOL_SOCKET, SO_RCVBUF) == 6000        # inherited
    pair.pa.fcntl_nonblock(pair.ca, True)
    assert pair.pa.send(pair.ca, bytes(10_000)) == 10_000
    pair.settle(100)                                                          # b reads nothing
    tcb = pair.tcb_b()
    assert tcb.rcv.readable == 3000 and tcb.rcv_wnd == 0
    assert max(seg.window for seg in _tcp(pair, "b")) == 3000
    assert pair.tcb_a().snd_wnd == 0
    # reading opens the window again, never beyond the cap
    assert len(pair.pb.recv(pair.sb, 3000)) == 3000
    pair.settle(100)
    assert max(seg.window for seg in _tcp(pair, "b")) == 3000


def test_sndbuf_caps_what_send_takes():
    pair = _connect(make_pair(connect=False), client_options=[(SOL_SOCKET, SO_SNDBUF, 2000)])
    pa, fd = pair.pa, pair.ca
    pa.fcntl_nonblock(fd, True)
    assert pa.send(fd, bytes(5000)) == 2000
    assert errno_of(pa.send, fd, b"x") == "EAGAIN"
    pa.fcntl_nonblock(fd, False)
    assert pair.tcb_a().send_space == 0
    with pytest.raises(WouldBlock):
        pa.send(fd, bytes(1500))                    # fits the cap: waits to go whole
    pair.settle(100)
    assert pa.send(fd, bytes(5000)) == 2000         # larger than the cap: the short count


def test_maxseg_caps_the_offered_and_the_sent_mss():
    pair = _connect(make_pair(connect=False), client_options=[(SOL_TCP, TCP_MAXSEG, 500)])
    syn = _tcp(pair, "a")[0]
    assert syn.flags == TcpFlag.SYN and syn.mss == 500
    assert _tcp(pair, "b")[0].mss == P.mss
    assert pair.pa.getsockopt(pair.ca, SOL_TCP, TCP_MAXSEG) == 500
    assert pair.pb.getsockopt(pair.sb, SOL_TCP, TCP_MAXSEG) == 500          # b honours a's offer
    pair.pa.send(pair.ca, bytes(1200))
    pair.pb.send(pair.sb, bytes(1200))
    pair.settle(100)
    for side in "ab":
        assert [len(s.payload) for s in _tcp(pair, side) if s.payload] == [500, 500, 200]


def test_shaping_options_are_fixed_once_connected(pair):
    for level, name in ((SOL_SOCKET, SO_RCVBUF), (SOL_SOCKET, SO_SNDBUF), (SOL_TCP, TCP_MAXSEG)):
        assert errno_of(pair.pa.setsockopt, pair.ca, level, name, 1000) == "EISCONN"
        assert errno_of(pair.pb.setsockopt, pair.sb, level, name, 1000) == "EISCONN"
    pair.pb.setsockopt(pair.lb, SOL_SOCKET, SO_RCVBUF, 1000)                  # a listener takes them
    assert pair.pa.getsockopt(pair.ca, SOL_SOCKET, SO_RCVBUF) == 2 * P.rcv_buffer
    assert pair.pa.getsockopt(pair.ca, SOL_TCP, TCP_MAXSEG) == P.mss
    pair.pa.setsockopt(pair.ca, SOL_TCP, TCP_NODELAY, 1)                      # not shaping: fine


def test_linger_zero_close_aborts_with_rst(pair):
    pair.pa.setsockopt(pair.ca, SOL_SOCKET, SO_LINGER, (1, 0))
    pair.pa.send(pair.ca, b"hello")
    pair.settle(100)
    pair.pa.close(pair.ca)
    pair.settle(100)
    last = _tcp(pair, "a")[-1]
    assert last.flags == TcpFlag.RST | TcpFlag.ACK and last.seq == pair.tcb_b().rcv_nxt
    assert not any(seg.flags & TcpFlag.FIN for seg in _tcp(pair, "a"))
    assert pair.pb.recv(pair.sb, 10) == b"hello"
    assert errno_of(pair.pb.recv, pair.sb, 10) == "ECONNRESET"


def test_linger_off_closes_with_fin(pair):
    pair.pa.setsockopt(pair.ca, SOL_SOCKET, SO_LINGER, (1, 0))
    pair.pa.setsockopt(pair.ca, SOL_SOCKET, SO_LINGER, (0, 7))
    assert pair.pa.getsockopt(pair.ca, SOL_SOCKET, SO_LINGER) == (0, 0)
    pair.pa.close(pair.ca)
    pair.settle(100)
    assert any(seg.flags & TcpFlag.FIN for seg in _tcp(pair, "a"))
    assert not any(seg.flags & TcpFlag.RST for seg in _tcp(pair, "a"))
