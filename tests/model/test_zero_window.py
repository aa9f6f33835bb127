"""Zero window and persist probes (issue test 6)."""

from conftest import make_pair

from model.errors import SocketError
from model.packet import parse_frame
from model.policy import DEFAULT_POLICY as P


def fill(pair, data: bytes, sent: int) -> int:
    while sent < len(data):
        try:
            sent += pair.pa.send(pair.ca, data[sent:sent + 65536])
        except SocketError as err:
            assert err.errno == "EAGAIN"
            break
    return sent


def test_zero_window_persist_and_resume():
    pair = make_pair()
    pair.pa.fcntl_nonblock(pair.ca, True)
    data = bytes(i * 7 % 251 for i in range(300_000))
    sent = fill(pair, data, 0)
    pair.settle(100)                                   # b reads nothing: its window closes
    tcb = pair.tcb_a()
    assert tcb.snd_wnd == 0 and tcb.snd_una == tcb.snd_max and tcb.unsent > 0
    assert pair.tcb_b().rcv_wnd == 0 and pair.tcb_b().rcv.readable == P.rcv_buffer
    zero_ack = next(e for e in pair.wire.log if e.side == "b" and parse_frame(e.frame).tcp.window == 0)
    t_zero = zero_ack.time + pair.wire.latency         # when a learnt the window is 0
    pair.settle(20_000)
    probes = [(e.time, parse_frame(e.frame).tcp) for e in pair.wire.log
              if e.side == "a" and e.time > zero_ack.time]
    assert all(seg.seq == (tcb.snd_una - 1) % 2**32 and not seg.payload for _, seg in probes)
    expected, t = [], t_zero
    for k in range(len(probes)):
        t += P.persist_after(k)
        expected.append(t)
    assert [time for time, _ in probes] == expected
    assert [b - a for a, b in zip(expected, expected[1:])][:6] == [400, 800, 1600, 3200, 6400, 6400]
    answers = [parse_frame(e.frame).tcp for e in pair.wire.log if e.side == "b" and e.time > zero_ack.time]
    assert len(answers) == len(probes) and all(seg.window == 0 for seg in answers)
    # the reader reads again: a window update goes out and the transfer resumes to the end
    got = bytearray()
    pair.pb.fcntl_nonblock(pair.sb, True)

    def pump():
        nonlocal sent
        sent = fill(pair, data, sent)
        while True:
            try:
                got.extend(pair.pb.recv(pair.sb, 10_000))
            except SocketError:
                break
        return len(got) == len(data)

    assert pair.wire.run(pump, max_ticks=10_000)
    assert bytes(got) == data
    assert tcb.persist_deadline is None and tcb.persist_probes == 0


def test_lost_window_update_is_recovered_by_a_probe():
    pair = make_pair()
    pair.pa.fcntl_nonblock(pair.ca, True)
    data = bytes(range(256)) * 400
    sent = fill(pair, data, 0)
    pair.settle(100)
    assert pair.tcb_a().snd_wnd == 0
    pair.wire.block = lambda side, frame: side == "b"  # the window update will be lost
    got = pair.pb.recv(pair.sb, 30_000)
    pair.settle(1)
    pair.wire.block = None
    t = pair.wire.now
    pair.settle(P.persist_initial * 2)
    assert pair.tcb_a().snd_wnd > 0                    # learnt from the answer to a probe
    assert pair.tcb_a().snd_una != pair.tcb_a().snd_max or pair.tcb_a().unsent == 0
    while len(got) < len(data):
        sent = fill(pair, data, sent)
        pair.settle(5)
        try:
            got += pair.pb.recv(pair.sb, 100_000, 0x40)
        except SocketError:
            pass
    assert got == data and pair.wire.now - t < 2000


def test_window_closing_with_data_in_flight_switches_to_persist():
    from conftest import A_IP, A_MAC, B_IP, B_MAC
    from model.packet import TcpSegment, build_tcp_frame
    from model.protocol import TcpFlag
    pair = make_pair()
    ta, tb = pair.tcb_a(), pair.tcb_b()
    pair.wire.block = lambda side, frame: side == "a"          # the data in flight is lost
    pair.pa.send(pair.ca, b"d" * 1000)
    pair.wire.collect()
    pair.wire.block = None
    # b (as far as a can tell) closes its window without acknowledging anything
    closing = TcpSegment(5000, pair.pa.getsockname(pair.ca)[1], tb.snd_nxt, ta.snd_una, TcpFlag.ACK, 0)
    pair.a.receive_frame(build_tcp_frame(B_MAC, A_MAC, B_IP, A_IP, closing))
    assert ta.snd_wnd == 0 and ta.snd_una != ta.snd_max
    got = bytearray()

    def reader():
        try:
            got.extend(pair.pb.recv(pair.sb, 2000, 0x40))
        except SocketError:
            pass
        return len(got) == 1000

    assert pair.wire.run(reader, max_ticks=2000)
    kinds = [kind for _, kind, _ in ta.events]
    assert kinds[:2] == ["zwnd", "probe"] and "rto" not in kinds
    assert bytes(got) == b"d" * 1000


def test_a_peer_that_never_reads_is_not_timed_out():
    pair = make_pair()
    pair.pa.fcntl_nonblock(pair.ca, True)
    fill(pair, bytes(200_000), 0)
    pair.settle(200_000)                                       # 200 s of zero window
    tcb = pair.tcb_a()
    assert tcb.state.value == "ESTABLISHED" and tcb.error is None
    probes = [t for t, kind, _ in tcb.events if kind == "probe"]
    assert len(probes) > 30 and probes[-1] - probes[-2] == P.persist_max
