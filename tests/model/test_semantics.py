"""The UNIX semantics the NIC must keep (issue tests 1 to 4)."""

from conftest import blocking, errno_of, read_exactly

from model.constants import MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL, SHUT_WR
from model.errors import WouldBlock
from model.protocol import TcpFlag


def test_seed_program_fork(pair):
    """101 bytes arrive in one segment; p1 reads 1; a child forked only then reads the rest."""
    payload = b"a" + bytes(range(100))
    assert pair.pa.send(pair.ca, payload) == 101
    pair.settle()
    data_segs = [seg for _, side, seg in pair.segments("a") if seg.payload]
    assert [len(seg.payload) for seg in data_segs] == [101]
    assert pair.pb.recv(pair.sb, 1) == b"a"
    p2 = pair.pb.fork()                                 # created only after the 1-byte read
    assert p2.recv(pair.sb, 100) == payload[1:]
    tcb = pair.tcb_b()
    assert (tcb.rcv.head, tcb.rcv.readable) == (101, 0)
    assert errno_of(p2.recv, pair.sb, 100, MSG_DONTWAIT) == "EAGAIN"
    assert errno_of(pair.pb.recv, pair.sb, 100, MSG_DONTWAIT) == "EAGAIN"


def test_seed_program_fd_passing(pair):
    payload = b"a" + b"z" * 100
    pair.pa.send(pair.ca, payload)
    pair.settle()
    assert pair.pb.recv(pair.sb, 1) == b"a"
    p2 = pair.b.spawn()                                 # a stranger until it is given the fd
    assert errno_of(p2.recv, pair.sb, 100) == "EBADF"
    fd2 = pair.pb.send_fd(pair.sb, p2)
    assert p2.recv(fd2, 100) == payload[1:]
    assert pair.tcb_b().rcv.head == 101


def test_n_to_m_writers_and_readers(pair):
    writers = [pair.pa, pair.pa.fork(), pair.pa.fork()]
    expected = bytearray()
    sizes = [3000, 17, 1460, 5000, 1, 999, 2048, 7000, 333]
    for i, size in enumerate(sizes):
        chunk = bytes([0x41 + i]) * size
        writer = writers[i % 3]
        assert blocking(pair.wire, writer.send, pair.ca, chunk) == size
        expected += chunk
    # readers alternate on the other side: the parent and a forked child
    readers = [pair.pb, pair.pb.fork()]
    got = bytearray()
    step = [1, 700, 13, 4096]
    i = 0
    while len(got) < len(expected):
        want = min(step[i % 4], len(expected) - len(got))
        got += read_exactly(pair.wire, readers[i % 2], pair.sb, want)
        i += 1
    assert bytes(got) == bytes(expected)
    # each write is contiguous: the stream is exactly the writes in call order
    runs = [(got[0], 1)]
    for byte in got[1:]:
        if byte == runs[-1][0]:
            runs[-1] = (byte, runs[-1][1] + 1)
        else:
            runs.append((byte, 1))
    assert [n for _, n in runs] == sizes


def test_access_without_fd_changes_nothing(pair):
    pair.pa.send(pair.ca, b"x" * 50)
    pair.settle()
    stranger = pair.b.spawn()
    tcb = pair.tcb_b()
    before = (tcb.state, tcb.rcv.head, tcb.rcv.tail, tcb.snd_nxt, bytes(tcb.send_queue), len(pair.wire.log))
    for call, args in [(stranger.recv, (pair.sb, 10)), (stranger.send, (pair.sb, b"evil")),
                       (stranger.close, (pair.sb,)), (stranger.shutdown, (pair.sb, SHUT_WR)),
                       (stranger.recv, (pair.sb, 10, MSG_PEEK)), (stranger.dup, (pair.sb,)),
                       (stranger.fcntl_nonblock, (pair.sb, True)), (stranger.accept, (pair.lb,)),
                       (stranger.send_fd, (pair.sb, pair.pb)), (stranger.getpeername, (pair.sb,))]:
        assert errno_of(call, *args) == "EBADF"
    pair.settle()
    after = (tcb.state, tcb.rcv.head, tcb.rcv.tail, tcb.snd_nxt, bytes(tcb.send_queue), len(pair.wire.log))
    assert after == before
    assert not pair.pb.socket_of(pair.sb).nonblock
    assert stranger.poll([(pair.sb, 1)]) == [(pair.sb, 0x20)]      # POLLNVAL, like Linux
    assert pair.pb.recv(pair.sb, 100) == b"x" * 50


def test_closed_fd_is_ebadf_but_dup_keeps_socket(pair):
    fd2 = pair.pb.dup(pair.sb)
    pair.pb.close(pair.sb)
    assert errno_of(pair.pb.recv, pair.sb, 1) == "EBADF"
    pair.pa.send(pair.ca, b"still here")
    pair.settle()
    assert pair.pb.recv(fd2, 100) == b"still here"        # the socket lives while fd2 does


def test_eof_after_fin(pair):
    pair.pa.send(pair.ca, b"last words")
    pair.pa.shutdown(pair.ca, SHUT_WR)
    pair.settle()
    assert pair.pb.recv(pair.sb, 4) == b"last"
    assert pair.pb.recv(pair.sb, 100) == b" words"
    assert pair.pb.recv(pair.sb, 100) == b""
    assert pair.pb.recv(pair.sb, 100) == b""


def test_econnreset_after_rst_then_eof_then_epipe(pair):
    pair.pb.send(pair.sb, b"unread by a")
    pair.pa.send(pair.ca, b"early")
    pair.settle()
    pair.pb.close(pair.sb)                 # b has unread data: RST
    pair.settle()
    assert [seg.flags & TcpFlag.RST for _, _, seg in pair.segments("b")][-1]
    # a still gets the data that arrived before the RST, then the error once, then EOF
    assert pair.pa.recv(pair.ca, 100) == b"unread by a"
    assert errno_of(pair.pa.recv, pair.ca, 100) == "ECONNRESET"
    assert pair.pa.recv(pair.ca, 100) == b""
    assert errno_of(pair.pa.send, pair.ca, b"x") == "EPIPE"


def test_rst_error_is_reported_once_to_send(pair):
    pair.pa.send(pair.ca, b"q")
    pair.settle()
    pair.pb.close(pair.sb)
    pair.settle()
    assert errno_of(pair.pa.send, pair.ca, b"x") == "ECONNRESET"
    assert errno_of(pair.pa.send, pair.ca, b"x") == "EPIPE"
    assert pair.pa.recv(pair.ca, 10) == b""


def test_close_with_unread_data_sends_rst(pair):
    pair.pa.send(pair.ca, b"you will not read this")
    pair.settle()
    tcb = pair.tcb_b()
    n = len(pair.wire.log)
    pair.pb.close(pair.sb)
    pair.wire.collect()
    new = pair.segments("b")[-(len(pair.wire.log) - n):]
    assert [seg.flags for _, _, seg in new] == [TcpFlag.RST | TcpFlag.ACK]
    assert new[0][2].seq == tcb.snd_nxt
    pair.settle()
    assert errno_of(pair.pa.recv, pair.ca, 10) == "ECONNRESET"


def test_close_without_unread_data_sends_fin(pair):
    pair.pb.close(pair.sb)
    pair.settle()
    flags = [seg.flags for _, side, seg in pair.segments("b")]
    assert flags[-1] == TcpFlag.FIN | TcpFlag.ACK
    assert pair.pa.recv(pair.ca, 10) == b""


def test_shutdown_wr_sends_fin_and_still_reads(pair):
    pair.pa.shutdown(pair.ca, SHUT_WR)
    pair.settle()
    assert pair.segments("a")[-1][2].flags & TcpFlag.FIN
    assert pair.pb.recv(pair.sb, 10) == b""
    assert errno_of(pair.pa.send, pair.ca, b"no") == "EPIPE"
    pair.pb.send(pair.sb, b"reply after your FIN")
    pair.settle()
    assert pair.pa.recv(pair.ca, 100) == b"reply after your FIN"
    pair.pb.close(pair.sb)
    pair.settle()
    assert pair.pa.recv(pair.ca, 100) == b""


def test_msg_peek_waitall_dontwait(pair):
    pair.pa.send(pair.ca, b"0123456789")
    pair.settle()
    assert pair.pb.recv(pair.sb, 4, MSG_PEEK) == b"0123"
    assert pair.pb.recv(pair.sb, 4, MSG_PEEK) == b"0123"
    try:
        pair.pb.recv(pair.sb, 20, MSG_WAITALL)
        raise AssertionError("MSG_WAITALL returned early")
    except WouldBlock:
        pass
    pair.pa.send(pair.ca, b"abcdefghij")
    pair.settle()
    assert pair.pb.recv(pair.sb, 20, MSG_WAITALL) == b"0123456789abcdefghij"
    assert errno_of(pair.pb.recv, pair.sb, 1, MSG_DONTWAIT) == "EAGAIN"
    try:
        pair.pb.recv(pair.sb, 1)
        raise AssertionError("blocking recv did not block")
    except WouldBlock:
        pass
