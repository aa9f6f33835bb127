"""SACK (RFC 2018, policy.sack): the options' bytes against scapy, the negotiation, which
blocks an ACK carries and in what order, the payload a data segment gives up to them (RFC
6691), and a lossy transfer with them on."""

from dataclasses import replace

import pytest
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from conftest import make_pair

from model.packet import TcpSegment, parse_syn_options
from model.policy import DEFAULT_POLICY, LINUX_SACK, LINUX_WSCALE
from model.protocol import TcpFlag
from model.tcp import State, Tcb

from test_loss import transfer_both_ways

SACKING = replace(DEFAULT_POLICY, **LINUX_SACK, max_ooo_ranges=5)
LOCAL, REMOTE = ("192.0.2.1", 80), ("192.0.2.2", 4000)
IRS = 5000


def test_option_bytes_as_scapy_reads_them():
    """Linux's layout without timestamps: MSS; NOP, NOP, SACK-permitted; NOP, wscale; and on
    an ACK NOP, NOP and the blocks."""
    syn = TcpSegment(1, 2, 7, 0, TcpFlag.SYN, 65535, mss=1460, wscale=7, sack_permitted=True)
    raw = syn.to_bytes("192.0.2.1", "192.0.2.2")
    assert TCP(raw).options == [("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b""),
                                ("NOP", None), ("WScale", 7)]
    assert parse_syn_options(raw[20:]) == (1460, 7, True, True)
    back = TcpSegment.from_bytes(raw, "192.0.2.1", "192.0.2.2")
    assert (back.mss, back.wscale, back.sack_permitted) == (1460, 7, True)
    ack = TcpSegment(1, 2, 7, 9, TcpFlag.ACK, 100, sack=((2**32 - 10, 20), (30, 40)))
    assert TCP(ack.to_bytes("192.0.2.1", "192.0.2.2")).options == [
        ("NOP", None), ("NOP", None), ("SAck", (2**32 - 10, 20, 30, 40))]


def _established(policy=SACKING, peer_offers=True):
    """A passive Tcb after the peer's SYN (SACK-permitted if `peer_offers`) and its ACK."""
    tcb = Tcb(LOCAL, REMOTE, 1000, policy, passive=True)
    tcb.open_passive(TcpSegment(REMOTE[1], LOCAL[1], IRS, 0, TcpFlag.SYN, 65535, mss=1460,
                                sack_permitted=peer_offers))
    [synack] = tcb.dispatch(0)
    tcb.process(TcpSegment(REMOTE[1], LOCAL[1], IRS + 1, 1001, TcpFlag.ACK, 65535), 0)
    assert tcb.state == State.ESTABLISHED
    return tcb, synack


def _data(tcb, start, end):
    """Peer bytes [start, end) (offsets from IRS + 1); the ACK that answers them."""
    tcb.process(TcpSegment(REMOTE[1], LOCAL[1], IRS + 1 + start, 1001, TcpFlag.ACK, 65535,
                           bytes(end - start)), 0)
    [ack] = tcb.dispatch(0)
    return ack


def _rel(blocks):
    return [(lo - IRS - 1, hi - IRS - 1) for lo, hi in blocks]


@pytest.mark.parametrize("ours, theirs", [(True, True), (True, False), (False, True)])
def test_negotiated_only_when_both_offer(ours, theirs):
    tcb, synack = _established(SACKING if ours else DEFAULT_POLICY, theirs)
    assert synack.sack_permitted == (ours and theirs) and tcb.sack_ok == (ours and theirs)
    assert _data(tcb, 100, 200).sack == (((IRS + 101, IRS + 201),) if ours and theirs else ())
    active = Tcb(LOCAL, REMOTE, 1000, SACKING if ours else DEFAULT_POLICY)
    active.open_active()
    [syn] = active.dispatch(0)
    assert syn.sack_permitted == ours


def test_blocks_most_recent_first_at_most_four():
    """RFC 2018 4: the first block holds the segment just received; merged ranges move to
    the front; five held ranges, four blocks; filled holes leave the list."""
    tcb, _ = _established()
    assert _rel(_data(tcb, 100, 200).sack) == [(100, 200)]
    assert _rel(_data(tcb, 300, 400).sack) == [(300, 400), (100, 200)]
    assert _rel(_data(tcb, 500, 600).sack) == [(500, 600), (300, 400), (100, 200)]
    assert _rel(_data(tcb, 200, 250).sack) == [(100, 250), (500, 600), (300, 400)]
    assert _rel(_data(tcb, 700, 800).sack) == [(700, 800), (100, 250), (500, 600), (300, 400)]
    assert _rel(_data(tcb, 900, 950).sack) == [(900, 950), (700, 800), (100, 250), (500, 600)]
    assert len(tcb.rcv.ranges) == 5                                 # the fifth is held, unsaid
    assert _rel(_data(tcb, 350, 360).sack) == [(300, 400), (900, 950), (700, 800), (100, 250)]
    ack = _data(tcb, 0, 100)
    assert ack.ack == IRS + 251 and _rel(ack.sack) == [(300, 400), (900, 950), (700, 800), (500, 600)]
    ack = _data(tcb, 250, 1000)
    assert ack.ack == IRS + 1001 and ack.sack == ()


def test_a_data_segment_gives_the_blocks_room():
    """RFC 6691: with two blocks (20 option bytes) a segment carries MSS - 20 bytes."""
    tcb, _ = _established()
    _data(tcb, 100, 200)
    _data(tcb, 300, 400)
    tcb.send(bytes(3000))
    segments = tcb.dispatch(0)
    assert [len(s.payload) for s in segments] == [1440, 1440, 120]
    assert all(len(s.sack) == 2 for s in segments)


def test_a_lossy_transfer_with_sack_on_both_sides():
    """1 MiB each way through 10% loss, duplication and reordering: byte-exact, and ACKs
    with blocks were sent (the sender side ignores them: go-back-N and fast retransmit)."""
    policy = replace(DEFAULT_POLICY, **LINUX_SACK, **LINUX_WSCALE, max_ooo_ranges=4)
    pair = make_pair(policy=policy, seed=1, drop=0.1, duplicate=0.1, reorder=0.1)
    done, data, got = transfer_both_ways(pair, 1 << 20, max_ticks=10**6)
    assert done and bytes(got["b"]) == data["a"] and bytes(got["a"]) == data["b"]
    assert pair.tcb_a().sack_ok and pair.tcb_b().sack_ok
    sacks = [opt for event in pair.wire.log if TCP in Ether(event.frame)
             for opt in Ether(event.frame)[TCP].options if opt[0] == "SAck"]
    assert len(sacks) > 100
