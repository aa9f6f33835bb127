"""Checksums and frames (issue test 7): RFC 1071, and byte-for-byte agreement with scapy."""

import random

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from model.checksum import internet_checksum, ones_complement_sum
from model.drops import DropCause
from model.protocol import TcpFlag
from model.packet import (Arp, PacketError, TcpSegment, UdpDatagram,
                          build_arp_frame, build_tcp_frame, build_udp_frame, mac_str, parse_frame)


def test_rfc1071_worked_example():
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_complement_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D
    assert ones_complement_sum(data + internet_checksum(data).to_bytes(2, "big")) == 0xFFFF


def _random_ip(rng):
    return ".".join(str(rng.randrange(1, 255)) for _ in range(4))


def _random_mac(rng):
    return bytes([rng.randrange(256) & 0xFE] + [rng.randrange(256) for _ in range(5)])


def test_1000_random_frames_match_scapy():
    rng = random.Random(1071)
    for i in range(1000):
        smac, dmac = _random_mac(rng), _random_mac(rng)
        sip, dip = _random_ip(rng), _random_ip(rng)
        sport, dport = rng.randrange(65536), rng.randrange(65536)
        payload = rng.randbytes(rng.choice([0, 1, 2, 3, rng.randrange(200), rng.randrange(1460)]))
        if i % 2:
            flags = rng.randrange(256)
            mss = rng.randrange(65536) if rng.random() < 0.3 else None
            seg = TcpSegment(sport, dport, rng.randrange(2**32), rng.randrange(2**32), TcpFlag(flags),
                             rng.randrange(65536), payload, mss)
            ours = build_tcp_frame(smac, dmac, sip, dip, seg)
            l4 = TCP(sport=sport, dport=dport, seq=seg.seq, ack=seg.ack, flags=flags, window=seg.window,
                     options=[("MSS", mss)] if mss is not None else [])
        else:
            dgram = UdpDatagram(sport, dport, payload)
            ours = build_udp_frame(smac, dmac, sip, dip, dgram)
            l4 = UDP(sport=sport, dport=dport)
        ref = Ether(src=mac_str(smac), dst=mac_str(dmac)) / IP(src=sip, dst=dip, id=0, flags="DF", ttl=64) / l4
        if payload:
            ref = ref / Raw(payload)
        ref_bytes = bytes(ref)                          # scapy computes both checksums
        assert ours[:len(ref_bytes)] == ref_bytes, f"frame {i} differs from scapy"
        assert ours[len(ref_bytes):] == bytes(len(ours) - len(ref_bytes))      # only padding
        parsed = Ether(ours)
        assert parsed[IP].chksum == Ether(ref_bytes)[IP].chksum
        # our parser verifies, and recovers the fields
        frame = parse_frame(ours)
        assert (frame.src_ip, frame.dst_ip) == (sip, dip)
        if i % 2:
            assert (frame.tcp.seq, frame.tcp.ack, int(frame.tcp.flags), frame.tcp.payload, frame.tcp.mss) == \
                (seg.seq, seg.ack, flags, payload, mss)
            assert frame.tcp.checksum == Ether(ref_bytes)[TCP].chksum
        else:
            assert frame.udp.payload == payload
            assert frame.udp.checksum == Ether(ref_bytes)[UDP].chksum
        # and rejects a flipped byte anywhere in the IP header or the TCP/UDP segment
        pos = rng.randrange(14, len(ref_bytes))
        bad = bytearray(ours)
        bad[pos] ^= rng.randrange(1, 256)
        if not i % 2 and pos in (14 + 20 + 6, 14 + 20 + 7) and bad[40:42] == b"\0\0":
            continue                                    # UDP checksum 0 means "none": not an error
        with pytest.raises(PacketError):
            parse_frame(bytes(bad))


def test_udp_zero_checksum_is_sent_as_ffff():
    # find a payload whose checksum computes to 0 and check RFC 768's rule
    for n in range(70000):
        dgram = UdpDatagram(1, 2, n.to_bytes(3, "big"))
        frame = build_udp_frame(b"\2" * 6, b"\4" * 6, "10.0.0.1", "10.0.0.2", dgram)
        if dgram.checksum == 0xFFFF:
            assert parse_frame(frame).udp.payload == n.to_bytes(3, "big")
            return
    raise AssertionError("no payload with a zero checksum found")


def test_parser_drop_causes():
    seg = TcpSegment(1, 2, 3, 4, TcpFlag.ACK, 100, b"x")
    good = build_tcp_frame(b"\2" * 6, b"\4" * 6, "10.0.0.1", "10.0.0.2", seg)
    cases = {
        DropCause.RUNT: good[:20],
        DropCause.UNKNOWN_ETHERTYPE: good[:12] + b"\x86\xdd" + good[14:],
        DropCause.BAD_VERSION: good[:14] + b"\x65" + good[15:],
    }
    frag = bytearray(good)
    frag[20] |= 0x20                                   # MF
    cs = internet_checksum(bytes(frag[14:24]) + b"\0\0" + bytes(frag[26:34]))
    frag[24:26] = cs.to_bytes(2, "big")
    cases[DropCause.IP_FRAGMENT] = bytes(frag)
    for cause, frame in cases.items():
        with pytest.raises(PacketError) as info:
            parse_frame(frame)
        assert info.value.cause == cause


def test_arp_round_trip():
    arp = Arp(1, b"\2" * 6, "10.0.0.1", bytes(6), "10.0.0.2")
    frame = parse_frame(build_arp_frame(b"\2" * 6, b"\xff" * 6, arp))
    assert frame.arp == arp
    assert len(build_arp_frame(b"\2" * 6, b"\xff" * 6, arp)) == 60
