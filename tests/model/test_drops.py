"""Receive-path drops (issue 14, items 3, 8, 9): one verdict per frame, one cause per drop.

The model's host sees a frame as the NIC does: the classifier (model/classify.py) first,
then the parser (model/packet.py); the two agree with each other and with Linux.
"""

import random

import pytest

from conftest import A_IP, A_MAC, B_IP, B_MAC, make_pair

from model.classify import Verdict, classify
from model.constants import MSG_DONTWAIT
from model.drops import CLASSIFIER_CAUSES, DropCause
from model.protocol import TcpFlag
from model.packet import PacketError, TcpSegment, build_raw_tcp_frame, parse_frame
from model.policy import DEFAULT_POLICY, Policy


def next_segment(pair, payload):
    """A segment a -> b carrying the connection's next bytes (those b expects next)."""
    tcb = pair.tcb_b()
    return TcpSegment(tcb.remote[1], tcb.local[1], tcb.rcv_nxt, tcb.snd_nxt,
                      TcpFlag.ACK | TcpFlag.PSH, 8192, payload)


def frame_to_b(pair, payload, **craft):
    return build_raw_tcp_frame(A_MAC, B_MAC, A_IP, B_IP, next_segment(pair, payload), **craft)


def readable(pair):
    try:
        return pair.pb.recv(pair.sb, 65536, MSG_DONTWAIT)
    except Exception:
        return b""


def test_vlan_frame_never_reaches_the_connection():
    """Item 3: a frame from VLAN 5 with a live connection's next bytes goes to host software
    (the classifier has no VLAN in its key), which has no VLAN 5 and drops it."""
    pair = make_pair()
    frame = frame_to_b(pair, b"tagged", vlan=5)
    assert classify(frame, B_MAC, B_IP).verdict == Verdict.SLOW
    pair.b.receive_frame(frame)
    pair.settle(5)
    assert readable(pair) == b""
    assert dict(pair.b.drops) == {DropCause.UNKNOWN_ETHERTYPE: 1}
    # the same bytes untagged are the connection's
    pair.b.receive_frame(frame_to_b(pair, b"tagged"))
    pair.settle(5)
    assert readable(pair) == b"tagged"


def test_frame_longer_than_the_mtu_is_dropped():
    """Item 8: the host takes frames of Policy.mtu + 14 bytes, and drops a longer one."""
    pair = make_pair()
    limit = DEFAULT_POLICY.mtu + 14
    too_long = frame_to_b(pair, bytes(limit + 1 - 54))
    assert len(too_long) == limit + 1
    pair.b.receive_frame(too_long)
    pair.settle(5)
    assert readable(pair) == b"" and dict(pair.b.drops) == {DropCause.OVERSIZE: 1}
    just_fits = frame_to_b(pair, b"x" * (limit - 54))
    assert len(just_fits) == limit
    pair.b.receive_frame(just_fits)
    pair.settle(5)
    assert readable(pair) == b"x" * (limit - 54)
    assert dict(pair.b.drops) == {DropCause.OVERSIZE: 1}


def test_mtu_is_a_policy():
    small = Policy(mtu=1000, mss=960)
    pair = make_pair(policy=small)
    pair.b.receive_frame(frame_to_b(pair, bytes(1000 - 40 + 1)))
    assert dict(pair.b.drops) == {DropCause.OVERSIZE: 1}
    assert classify(bytes(1014), B_MAC, B_IP, mtu=1000).cause != DropCause.OVERSIZE
    assert classify(bytes(1015), B_MAC, B_IP, mtu=1000).cause == DropCause.OVERSIZE
    with pytest.raises(ValueError, match=r"^MTU must be MSS \+ 40 \(1500\)\.\.9000, not 1499$"):
        Policy(mtu=1499)


def test_bad_tcp_options_keep_the_segment():
    """Item 9: an option of length 0 or 1, or one running past the header, ends option
    parsing and the segment is kept and acknowledged (Linux's tcp_parse_options)."""
    pair = make_pair()
    for n, options in enumerate((b"\x08\x00", b"\x01\x08\x01", b"\x08\x0a\x00\x00",
                                 b"\x01\x01\x13")):
        payload = f"segment {n}".encode()
        frame = frame_to_b(pair, payload, options=options)
        parsed = parse_frame(frame)
        assert parsed.tcp.payload == payload
        assert classify(frame, B_MAC, B_IP).verdict == Verdict.FAST
        pair.wire.log.clear()
        pair.b.receive_frame(frame)
        pair.settle(5)
        assert readable(pair) == payload
        acks = [seg for _, side, seg in pair.segments("b")]
        assert acks and acks[-1].ack == pair.tcb_b().rcv_nxt
    assert not pair.b.drops


def test_parsers_agree():
    """A frame the classifier sends to the fast path always parses, to the same fields; a frame
    both reject is rejected for the same cause."""
    rng = random.Random(14)
    seg = TcpSegment(1000, 80, 5, 6, TcpFlag.ACK, 100, b"abc")
    for _ in range(3000):
        options = bytes(rng.choice([0, 1, 2, 8, 19, 254]) if rng.random() < 0.7 else rng.randrange(256)
                        for _ in range(rng.randrange(0, 12)))
        frame = bytearray(build_raw_tcp_frame(A_MAC, B_MAC, A_IP, B_IP, seg, options=options))
        if rng.random() < 0.5:
            frame[rng.randrange(14, len(frame))] = rng.randrange(256)
        frame = bytes(frame)
        got = classify(frame, B_MAC, B_IP)
        try:
            parsed = parse_frame(frame)
        except PacketError as err:
            assert got.verdict != Verdict.FAST, (frame.hex(), err.cause)
            if got.verdict == Verdict.DROP:
                assert err.cause == got.cause or err.cause not in CLASSIFIER_CAUSES, frame.hex()
            continue
        if got.verdict == Verdict.FAST:
            assert parsed.tcp.payload == frame[got.fields.payload_offset:][:got.fields.payload_length]
            assert (parsed.tcp.seq, parsed.tcp.ack) == (got.fields.seq, got.fields.ack)


def test_one_drop_cause_list():
    assert [int(c) for c in DropCause] == list(range(len(DropCause)))
    assert CLASSIFIER_CAUSES[0] == DropCause.RUNT and CLASSIFIER_CAUSES[-1] == DropCause.BAD_L4_CHECKSUM
