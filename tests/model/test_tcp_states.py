"""The RFC 9293 state machine, sequence wrap, MSS, reassembly and RFC 5961 (issue, also-list)."""

import dataclasses

from conftest import A_IP, A_MAC, B_IP, B_MAC, PORT, blocking, errno_of, make_pair, read_exactly

from model.constants import SHUT_WR
from model.protocol import TcpFlag
from model.packet import TcpSegment, build_tcp_frame, parse_frame
from model.policy import DEFAULT_POLICY as P
from model.tcp import State, seq_add, seq_diff, seq_lt


def states(pair):
    return pair.tcb_a().state, pair.tcb_b().state


def test_seq_arithmetic_wraps():
    assert seq_add(0xFFFF_FFFF, 2) == 1
    assert seq_diff(1, 0xFFFF_FFFF) == 2 and seq_diff(0xFFFF_FFFF, 1) == -2
    assert seq_lt(0xFFFF_FFF0, 5) and not seq_lt(5, 0xFFFF_FFF0)


def test_handshake_both_ways():
    pair = make_pair()
    assert states(pair) == (State.ESTABLISHED, State.ESTABLISHED)
    syn, synack, ack = [seg for _, _, seg in pair.segments()[:3]]
    assert syn.flags == TcpFlag.SYN and synack.flags == TcpFlag.SYN | TcpFlag.ACK and ack.flags == TcpFlag.ACK
    assert syn.mss == P.mss and synack.mss == P.mss and ack.mss is None
    assert synack.ack == syn.seq + 1 and ack.ack == synack.seq + 1
    assert syn.seq == P.iss_base and synack.seq == 0x2000_0000
    # and the other way round: b connects to a listener on a
    lfd = pair.pa.socket("tcp")
    pair.pa.bind(lfd, ("0.0.0.0", 7000))
    pair.pa.listen(lfd)
    cfd = pair.pb.socket("tcp")
    blocking(pair.wire, pair.pb.connect, cfd, (A_IP, 7000))
    afd, addr = blocking(pair.wire, pair.pa.accept, lfd)
    assert addr == (B_IP, pair.pb.getsockname(cfd)[1])
    pair.pb.send(cfd, b"hi")
    assert read_exactly(pair.wire, pair.pa, afd, 2) == b"hi"
    assert pair.a.tcbs[((A_IP, 7000), addr)].iss == P.iss_base + P.iss_step     # the host's 2nd ISS


def test_simultaneous_open():
    pair = make_pair(connect=False)
    fa, fb = pair.pa.socket("tcp"), pair.pb.socket("tcp")
    pair.pa.bind(fa, ("0.0.0.0", 6000))
    pair.pb.bind(fb, ("0.0.0.0", 7000))
    pair.pa.fcntl_nonblock(fa, True)
    pair.pb.fcntl_nonblock(fb, True)
    assert errno_of(pair.pa.connect, fa, (B_IP, 7000)) == "EINPROGRESS"
    assert errno_of(pair.pb.connect, fb, (A_IP, 6000)) == "EINPROGRESS"
    pair.settle(20)
    assert pair.pa.connect(fa, (B_IP, 7000)) is None and pair.pb.connect(fb, (A_IP, 6000)) is None
    assert errno_of(pair.pa.connect, fa, (B_IP, 7000)) == "EISCONN"
    pair.pa.send(fa, b"x")
    pair.pb.send(fb, b"y")
    pair.settle(20)
    assert pair.pa.recv(fa, 5) == b"y" and pair.pb.recv(fb, 5) == b"x"


def test_active_close_fin_wait_time_wait_and_passive_close_wait_last_ack():
    pair = make_pair()
    ta, tb = pair.tcb_a(), pair.tcb_b()
    pair.wire.block = lambda side, frame: True
    pair.pa.shutdown(pair.ca, SHUT_WR)
    assert states(pair) == (State.FIN_WAIT_1, State.ESTABLISHED)
    pair.wire.block = None
    pair.settle(2)                                     # the FIN is retransmitted at RTO ...
    pair.settle(P.rto_initial)
    assert states(pair) == (State.FIN_WAIT_2, State.CLOSE_WAIT)
    pair.pb.send(pair.sb, b"half-closed data")
    pair.settle(5)
    assert pair.pa.recv(pair.ca, 100) == b"half-closed data"
    pair.pb.close(pair.sb)
    assert tb.state == State.LAST_ACK
    pair.settle(2)
    t_wait = pair.wire.now - 1                         # a got the FIN one tick ago
    assert ta.state == State.TIME_WAIT and tb.state == State.CLOSED
    pair.settle(t_wait + P.time_wait - 1 - pair.wire.now)
    assert ta.state == State.TIME_WAIT
    pair.settle(1)
    assert ta.state == State.CLOSED and not pair.a.tcbs and not pair.b.tcbs
    assert pair.wire.now == t_wait + P.time_wait


def test_time_wait_answers_a_retransmitted_fin():
    pair = make_pair()
    pair.pa.close(pair.ca)
    pair.settle(3)
    # b's FIN's ACK is lost, so b retransmits its FIN and a, in TIME-WAIT, must ACK again
    pair.wire.block = lambda side, frame: side == "a"
    pair.pb.close(pair.sb)
    pair.settle(3)
    ta = next(iter(pair.a.tcbs.values()))
    assert ta.state == State.TIME_WAIT
    pair.wire.block = None
    pair.settle(P.rto_initial + 5)
    assert not pair.b.tcbs and ta.state == State.TIME_WAIT


def test_simultaneous_close_goes_through_closing():
    pair = make_pair()
    ta, tb = pair.tcb_a(), pair.tcb_b()
    pair.pa.shutdown(pair.ca, SHUT_WR)
    pair.pb.shutdown(pair.sb, SHUT_WR)                 # both FINs cross on the wire
    pair.wire.collect()
    pair.wire.advance_to(pair.wire.now + 1)
    pair.wire.deliver_due()                            # each side gets the other's FIN first
    assert states(pair) == (State.CLOSING, State.CLOSING)
    pair.settle(3)
    assert states(pair) == (State.TIME_WAIT, State.TIME_WAIT)
    pair.settle(P.time_wait + 5)
    assert states(pair) == (State.CLOSED, State.CLOSED)
    assert pair.pa.recv(pair.ca, 1) == b"" and pair.pb.recv(pair.sb, 1) == b""


def test_transfer_across_sequence_wrap():
    pair = make_pair(iss_a=2**32 - 3000, iss_b=2**32 - 1)
    data = bytes(i % 253 for i in range(100_000))
    for side_send, side_recv, fd_s, fd_r in ((pair.pa, pair.pb, pair.ca, pair.sb),
                                            (pair.pb, pair.pa, pair.sb, pair.ca)):
        side_send.fcntl_nonblock(fd_s, True)
        sent, got = 0, bytearray()

        def pump():
            nonlocal sent
            try:
                sent += side_send.send(fd_s, data[sent:sent + 50_000]) if sent < len(data) else 0
            except Exception:
                pass
            try:
                got.extend(side_recv.recv(fd_r, 100_000, 0x40))
            except Exception:
                pass
            return len(got) == len(data)

        assert pair.wire.run(pump, max_ticks=10_000)
        assert bytes(got) == data
    assert pair.tcb_a().snd_una < 2**32 - 3000 and pair.tcb_b().snd_una < 200_000   # both wrapped


def test_mss_option_is_honoured():
    small = dataclasses.replace(P, mss=536)
    pair = make_pair(policy=P, policy_b=small)
    pair.pa.send(pair.ca, b"m" * 5000)
    pair.settle(10)
    sizes = [len(seg.payload) for _, side, seg in pair.segments("a") if seg.payload]
    assert max(sizes) == 536 and sum(sizes) == 5000
    assert pair.tcb_a().eff_mss == 536 and pair.tcb_b().eff_mss == 536


def inject(pair, seg: TcpSegment):
    """A frame from a's addresses straight into b; returns what b sent in reply."""
    pair.wire.settle()
    pair.b.receive_frame(build_tcp_frame(A_MAC, B_MAC, A_IP, B_IP, seg))
    return [parse_frame(f).tcp for f in pair.b.transmit()]


def test_default_mss_when_option_absent():
    pair = make_pair(connect=False)
    lfd = pair.pb.socket("tcp")
    pair.pb.bind(lfd, ("0.0.0.0", PORT))
    pair.pb.listen(lfd)
    replies = inject(pair, TcpSegment(4000, PORT, 1000, 0, TcpFlag.SYN, 65535))
    assert replies[0].flags == TcpFlag.SYN | TcpFlag.ACK and replies[0].ack == 1001
    tcb = next(iter(pair.b.tcbs.values()))
    assert tcb.eff_mss == P.default_mss


def test_out_of_order_reassembly_and_range_limit():
    pair = make_pair()
    tb = pair.tcb_b()
    base = tb.rcv_nxt
    peer_seq = pair.tcb_a().snd_nxt
    seg = lambda off, data: TcpSegment(pair.pa.getsockname(pair.ca)[1], PORT, seq_add(base, off),
                                       pair.tcb_b().snd_nxt, TcpFlag.ACK, 65535, data)
    assert base == peer_seq
    replies = inject(pair, seg(100, b"B" * 100))       # a hole at [0, 100)
    assert tb.rcv.ranges == [(100, 200)] and replies[0].ack == base    # duplicate ACK at once
    replies = inject(pair, seg(300, b"D" * 100))       # a second range: refused (max 1)
    assert tb.rcv.ranges == [(100, 200)] and tb.rcv.refused == 1 and replies[0].ack == base
    replies = inject(pair, seg(0, b"A" * 100))         # fills the hole: both join
    assert replies[0].ack == seq_add(base, 200) and tb.rcv.ranges == []
    assert pair.pb.recv(pair.sb, 1000) == b"A" * 100 + b"B" * 100


def test_rfc5961_rst_handling():
    pair = make_pair()
    tb = pair.tcb_b()
    port = pair.pa.getsockname(pair.ca)[1]
    rst = lambda seq: TcpSegment(port, PORT, seq, 0, TcpFlag.RST, 0)
    assert inject(pair, rst(seq_add(tb.rcv_nxt, 60_000_000))) == []       # outside: ignored
    assert tb.state == State.ESTABLISHED
    replies = inject(pair, rst(seq_add(tb.rcv_nxt, 10)))                  # inside: challenge ACK
    assert len(replies) == 1 and replies[0].flags == TcpFlag.ACK
    assert (replies[0].seq, replies[0].ack) == (tb.snd_nxt, tb.rcv_nxt) and tb.state == State.ESTABLISHED
    syn = TcpSegment(port, PORT, 12345, 0, TcpFlag.SYN, 65535)
    replies = inject(pair, syn)                                           # SYN: challenge ACK
    assert len(replies) == 1 and replies[0].flags == TcpFlag.ACK and tb.state == State.ESTABLISHED
    assert inject(pair, rst(tb.rcv_nxt)) == []                            # exact: reset
    assert tb.state == State.CLOSED
    assert errno_of(pair.pb.recv, pair.sb, 10) == "ECONNRESET"


def test_connect_to_closed_port_is_refused_and_stray_segments_get_rst():
    pair = make_pair(connect=False)
    fd = pair.pa.socket("tcp")
    r = None
    try:
        blocking(pair.wire, pair.pa.connect, fd, (B_IP, 9))
    except Exception as err:
        r = err
    assert getattr(r, "errno", None) == "ECONNREFUSED"
    rst = pair.segments("b")[-1][2]
    assert rst.flags == TcpFlag.RST | TcpFlag.ACK
    replies = inject(pair, TcpSegment(4000, 9, 5, 777, TcpFlag.ACK, 100, b"x"))
    assert [(r.flags, r.seq) for r in replies] == [(TcpFlag.RST, 777)]


def test_listener_close_resets_unaccepted_connections():
    pair = make_pair()
    c2 = pair.pa.socket("tcp")
    blocking(pair.wire, pair.pa.connect, c2, (B_IP, PORT))
    pair.pb.close(pair.lb)
    pair.settle(5)
    assert errno_of(pair.pa.recv, c2, 1) == "ECONNRESET"
    pair.pa.send(pair.ca, b"first connection unaffected")
    pair.settle(5)
    assert pair.pb.recv(pair.sb, 100) == b"first connection unaffected"


def test_time_wait_acks_segments_and_restarts_2msl():
    """TIME-WAIT as Linux's tcp_timewait_state_process (issue 14, item 5): data or a FIN is
    ACKed and restarts 2 MSL; a bare ACK at RCV.NXT restarts it without an answer; an inexact
    RST is ignored, an exact one ends TIME-WAIT."""
    pair = make_pair()
    tb, port = pair.tcb_b(), pair.pa.getsockname(pair.ca)[1]
    pair.pb.shutdown(pair.sb, SHUT_WR)                 # b closes first: b ends in TIME-WAIT
    pair.settle(3)
    pair.pa.close(pair.ca)
    pair.settle(3)
    assert tb.state == State.TIME_WAIT
    seg = lambda seq, flags, data=b"": TcpSegment(port, PORT, seq, tb.snd_nxt, flags, 65535, data)
    ack = (TcpFlag.ACK, tb.snd_nxt, tb.rcv_nxt)
    for s in (seg(tb.rcv_nxt, TcpFlag.ACK | TcpFlag.PSH, b"late"),      # in-window data
              seg(seq_add(tb.rcv_nxt, -1), TcpFlag.ACK | TcpFlag.FIN),   # retransmitted FIN
              seg(tb.rcv_nxt, TcpFlag.ACK | TcpFlag.FIN)):               # a FIN at RCV.NXT
        pair.wire.advance_to(pair.wire.now + 100)
        assert [(r.flags, r.seq, r.ack) for r in inject(pair, s)] == [ack]
        assert tb.close_deadline == pair.wire.now + P.time_wait
    pair.wire.advance_to(pair.wire.now + 100)
    assert inject(pair, seg(tb.rcv_nxt, TcpFlag.ACK)) == []
    assert tb.close_deadline == pair.wire.now + P.time_wait
    rst = lambda seq: TcpSegment(port, PORT, seq, 0, TcpFlag.RST, 0)
    assert inject(pair, rst(seq_add(tb.rcv_nxt, 10))) == [] and tb.state == State.TIME_WAIT
    assert inject(pair, rst(tb.rcv_nxt)) == [] and tb.state == State.CLOSED


def _listener(pair):
    lfd = pair.pb.socket("tcp")
    pair.pb.bind(lfd, ("0.0.0.0", PORT))
    pair.pb.listen(lfd)
    return lfd


def test_syn_received_answers_with_a_pure_ack_except_to_a_retransmitted_syn():
    """Issue 14, item 6: in SYN-RECEIVED a challenge ACK (RFC 5961 3.2) and the ACK of an
    unacceptable segment are <SEQ=SND.NXT><ACK=RCV.NXT>, as Linux sends; a retransmitted
    SYN gets the SYN-ACK again."""
    pair = make_pair(connect=False)
    _listener(pair)
    syn = TcpSegment(4000, PORT, 1000, 0, TcpFlag.SYN, 65535)
    [synack] = inject(pair, syn)
    assert synack.flags == TcpFlag.SYN | TcpFlag.ACK
    [again] = inject(pair, syn)
    assert (again.flags, again.seq, again.ack) == (synack.flags, synack.seq, 1001)
    ack = (TcpFlag.ACK, seq_add(synack.seq, 1), 1001)
    replies = inject(pair, TcpSegment(4000, PORT, 1010, 0, TcpFlag.RST, 0))    # RST in window
    assert [(r.flags, r.seq, r.ack) for r in replies] == [ack]
    replies = inject(pair, TcpSegment(4000, PORT, 1001 + 70000, seq_add(synack.seq, 1),
                                      TcpFlag.ACK, 65535))                        # outside
    assert [(r.flags, r.seq, r.ack) for r in replies] == [ack]
    assert inject(pair, TcpSegment(4000, PORT, 1001, seq_add(synack.seq, 1), TcpFlag.ACK, 65535)) == []
    assert next(iter(pair.b.tcbs.values())).state == State.ESTABLISHED


def test_listener_close_drops_handshakes_silently_and_syn_fin_is_dropped():
    """Issue 14, item 7, as Linux: closing a listener sends nothing for a handshake in
    progress (the peer's later ACK gets a RST); a SYN with FIN to a listener is dropped."""
    pair = make_pair(connect=False)
    lfd = _listener(pair)
    assert inject(pair, TcpSegment(4000, PORT, 1000, 0, TcpFlag.SYN | TcpFlag.FIN, 65535)) == []
    assert not pair.b.tcbs
    [synack] = inject(pair, TcpSegment(4000, PORT, 1000, 0, TcpFlag.SYN, 65535))
    pair.pb.close(lfd)
    assert pair.b.transmit() == [] and not pair.b.tcbs
    replies = inject(pair, TcpSegment(4000, PORT, 1001, seq_add(synack.seq, 1), TcpFlag.ACK, 65535))
    assert [(r.flags, r.seq) for r in replies] == [(TcpFlag.RST, seq_add(synack.seq, 1))]
