"""Window scaling (RFC 7323, policy.window_scaling): the option's bytes against scapy, the
negotiation (both SYNs or neither), and a receive buffer above 64 KiB that keeps more than
64 KiB in flight over a long path."""

from dataclasses import replace

import pytest
from scapy.layers.inet import TCP

from conftest import make_pair

from model.packet import TcpSegment, parse_syn_options
from model.policy import DEFAULT_POLICY, LINUX_RTO, Policy
from model.protocol import TcpFlag

from test_loss import transfer_both_ways

MIB = 1 << 20
# a 1 MiB ring says its window with a shift of 5 (1 MiB >> 5 = 32,768 fits 16 bits)
SCALING = replace(DEFAULT_POLICY, **LINUX_RTO, window_scaling=True, wscale=5, rcv_buffer=MIB,
                  snd_buffer=MIB)
NOT_SCALING = replace(SCALING, window_scaling=False, wscale=0, rcv_buffer=65535)


def test_option_bytes_as_scapy_reads_them():
    """MSS, then NOP and the window scale, Linux's layout: scapy parses what the model builds,
    and the model parses it back."""
    seg = TcpSegment(1000, 2000, 7, 0, TcpFlag.SYN, 65535, mss=1460, wscale=7)
    raw = seg.to_bytes("192.0.2.1", "192.0.2.2")
    assert TCP(raw).options == [("MSS", 1460), ("NOP", None), ("WScale", 7)]
    assert TCP(raw).dataofs == 7
    back = TcpSegment.from_bytes(raw, "192.0.2.1", "192.0.2.2")
    assert (back.mss, back.wscale) == (1460, 7)


@pytest.mark.parametrize("options, expected", [
    (bytes([3, 3, 0]), (None, 0, False, True)),
    (bytes([3, 3, 14]), (None, 14, False, True)),
    (bytes([3, 3, 15]), (None, 14, False, True)),               # RFC 7323 2.3: above 14 counts as 14
    (bytes([3, 3, 255]), (None, 14, False, True)),
    (bytes([3, 4, 7, 0]), (None, None, False, True)),           # wrong length: not a window scale
    (bytes([3, 3]), (None, None, False, True)),                 # runs past the header: parsing stops
    (bytes([2, 4, 5, 180, 3, 3, 2, 3, 3, 9]), (1460, 9, False, True)),   # the later one counts
    (bytes([1] * 7 + [3, 3, 2]), (None, None, False, False)),   # beyond the walker's 7 options
])
def test_parse_window_scale(options, expected):
    assert parse_syn_options(options, 7) == expected


def test_policy_bounds():
    with pytest.raises(ValueError, match="Window scale"):
        replace(SCALING, wscale=15)
    with pytest.raises(ValueError, match="Window scale"):
        replace(NOT_SCALING, wscale=1)
    with pytest.raises(ValueError, match="Receive buffer"):
        replace(SCALING, rcv_buffer=(65535 << 5) + 1)
    with pytest.raises(ValueError, match="Receive buffer"):
        replace(NOT_SCALING, rcv_buffer=65536)
    assert Policy(window_scaling=True, wscale=14, rcv_buffer=65535 << 14).rcv_buffer == 65535 << 14


def _syns(pair):
    return [(side, seg) for _, side, seg in pair.segments() if seg.flags & TcpFlag.SYN]


def test_both_offer_both_scale():
    pair = make_pair(policy=SCALING, policy_b=replace(SCALING, wscale=6))
    (sa, syn), (sb, synack) = _syns(pair)
    assert (sa, syn.wscale, syn.window) == ("a", 5, 65535)      # a SYN's window is not scaled
    assert (sb, synack.wscale, synack.window) == ("b", 6, 65535)
    a, b = pair.tcb_a(), pair.tcb_b()
    assert (a.snd_wscale, a.rcv_wscale, b.snd_wscale, b.rcv_wscale) == (6, 5, 5, 6)
    # a has only the SYN-ACK's window (unscaled); b has a's ACK's, scaled by 5
    assert a.snd_wnd == 65535 and b.snd_wnd == MIB
    acks = [seg for _, side, seg in pair.segments("a") if not seg.flags & TcpFlag.SYN]
    assert acks[0].window == MIB >> 5
    pair.pb.send(pair.sb, b"x" * 100)
    pair.settle()
    data = [seg for _, side, seg in pair.segments("b") if seg.payload]
    assert data[0].window == MIB >> 6 and a.snd_wnd == MIB


@pytest.mark.parametrize("a_scales", [True, False])
def test_one_side_without_the_option_turns_it_off(a_scales):
    """Only the side that scales offers it; the other's SYN or SYN-ACK goes without, so
    neither scales and the 1 MiB buffer's window stays 65535."""
    pa, pb = (SCALING, NOT_SCALING) if a_scales else (NOT_SCALING, SCALING)
    pair = make_pair(policy=pa, policy_b=pb)
    (_, syn), (_, synack) = _syns(pair)
    assert syn.wscale == (5 if a_scales else None) and synack.wscale is None
    for tcb in (pair.tcb_a(), pair.tcb_b()):
        assert (tcb.wscale_ok, tcb.snd_wscale, tcb.rcv_wscale) == (False, 0, 0)
    scaling_side = pair.tcb_a() if a_scales else pair.tcb_b()
    assert scaling_side.rcv_wnd == 65535
    assert all(seg.window <= 65535 for _, _, seg in pair.segments())


def _most_in_flight(pair, side):
    """The most bytes `side` had sent and not yet seen acknowledged, from the wire's log."""
    other = "b" if side == "a" else "a"
    sent_end = acked = most = 0
    base = None
    for _, s, seg in pair.segments():
        if s == side and seg.payload:
            base = seg.seq if base is None else base
            sent_end = max(sent_end, (seg.seq - base + len(seg.payload)) % 2**32)
        elif s == other and base is not None and seg.flags & TcpFlag.ACK:
            acked = max(acked, (seg.ack - base) % 2**32)
        most = max(most, sent_end - acked)
    return most


def test_a_megabyte_ring_keeps_more_than_64_kib_in_flight():
    """4 MiB each way over a 300-tick round trip: with scaling the 1 MiB rings keep up to 1 MiB
    in flight and the transfer takes a few round trips; without it 64 KiB a round trip is
    the most, 16 times slower. Both deliver every byte in order."""
    ticks, in_flight = {}, {}
    for name, policy in (("scaled", SCALING), ("unscaled", replace(NOT_SCALING, snd_buffer=MIB))):
        pair = make_pair(policy=policy, latency=150)
        start = pair.wire.now
        done, data, got = transfer_both_ways(pair, 4 * MIB, max_ticks=10**6)
        assert done and bytes(got["b"]) == data["a"] and bytes(got["a"]) == data["b"]
        ticks[name], in_flight[name] = pair.wire.now - start, _most_in_flight(pair, "a")
        assert not [e for e in pair.tcb_a().events if e[1] in ("rto", "fast", "retx")]
    assert in_flight["unscaled"] <= 65535 < 8 * 65535 < in_flight["scaled"] <= MIB
    assert ticks["scaled"] * 8 < ticks["unscaled"], ticks
