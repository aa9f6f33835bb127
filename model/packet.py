"""Ethernet II / IPv4 / TCP / UDP / ARP frames as real bytes, built and parsed by hand.

Building fills every checksum (model/checksum.py); parsing verifies the IPv4 header checksum
and the TCP or UDP checksum (UDP checksum 0 means "none") and raises `PacketError` with a
`DropCause` (model/drops.py) for anything the model does not accept, the same cause the
receive classifier (model/classify.py) gives where both check. Parsing never raises anything
else. TCP options are read as Linux's ``tcp_parse_options`` does: an option with a length
below 2 or running past the header ends the parsing and the segment is kept.
"""

import ipaddress
import struct
from dataclasses import dataclass
from typing import NamedTuple

from .checksum import internet_checksum, ones_complement_sum, pseudo_header_sum
from .drops import DropCause
from .protocol import (ARP_BODY, ARP_HTYPE_ETHERNET, ETH_HEADER, ETH_MIN_FRAME, IPV4_DF,
                       IPV4_FRAGMENT_OFFSET, IPV4_HEADER, IPV4_MF, IPV4_VERSION, MAC_BYTES,
                       MSS_OPTION_LENGTH, SACK_BLOCK_BYTES, SACK_PERMITTED_LENGTH, TCP_HEADER,
                       UDP_HEADER, WSCALE_MAX, WSCALE_OPTION_LENGTH, EtherType, IpProto, TcpFlag,
                       TcpOption)

__all__ = [
    "flag_names", "PacketError", "TcpSegment", "UdpDatagram", "Arp", "Frame",
    "mac_bytes", "mac_str", "build_tcp_frame", "build_udp_frame", "build_arp_frame",
    "build_raw_tcp_frame", "parse_frame", "parse_syn_options", "SynOptions",
]


class SynOptions(NamedTuple):
    """What `parse_syn_options` reads."""
    mss: int | None
    wscale: int | None
    sack_permitted: bool
    complete: bool


def parse_syn_options(options: bytes, max_options: int | None = None) -> SynOptions:
    """The MSS, window scale and SACK-permitted options of a TCP header's `options`, read as
    Linux's ``tcp_parse_options``: an option with a length below 2 or running past the header
    ends the parsing (the segment is kept), an MSS of 0 is ignored, a later option of a kind
    replaces an earlier one, and a shift count above 14 counts as 14 (RFC 7323 2.3).

    ``mss`` is None without a (non-zero) MSS option, ``wscale`` None without a window scale
    option. With `max_options`, at most that many options (a NOP counts as one) are visited,
    as the receive classifier's option walker does (model/classify.py rule 21), and
    ``complete`` says whether the parsing ended within them; without it, ``complete`` is
    always True. Only a SYN's options mean anything (Linux reads these on a SYN only); the
    caller decides. (SACK blocks are walked past: the model keeps no scoreboard of what its
    peer has, which RFC 2018 allows a sender.)
    """
    mss, wscale, sack_ok, i, visited = None, None, False, 0, 0
    while i < len(options):
        if max_options is not None and visited == max_options:
            return SynOptions(mss, wscale, sack_ok, False)
        visited += 1
        kind = options[i]
        if kind == TcpOption.EOL:
            break
        if kind == TcpOption.NOP:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2 or i + options[i + 1] > len(options):
            break                   # Linux: stop parsing, keep the segment
        if kind == TcpOption.MSS and options[i + 1] == MSS_OPTION_LENGTH:
            mss = int.from_bytes(options[i + 2:i + 4], "big") or mss
        elif kind == TcpOption.WSCALE and options[i + 1] == WSCALE_OPTION_LENGTH:
            wscale = min(options[i + 2], WSCALE_MAX)
        elif kind == TcpOption.SACK_PERMITTED and options[i + 1] == SACK_PERMITTED_LENGTH:
            sack_ok = True
        i += options[i + 1]
    return SynOptions(mss, wscale, sack_ok, True)


def flag_names(flags: int) -> str:
    """``"SYN|ACK"``: the flags by name, in header bit order (stable across Python versions)."""
    return "|".join(f.name for f in TcpFlag if flags & f) or "none"


class PacketError(Exception):
    def __init__(self, cause: DropCause):
        self.cause = cause
        super().__init__(cause.name)


def mac_bytes(mac: bytes | str) -> bytes:
    if isinstance(mac, bytes):
        if len(mac) != MAC_BYTES:
            raise ValueError(f"MAC must be 6 bytes, not {mac!r}")
        return mac
    parts = mac.replace("-", ":").split(":")
    if len(parts) != MAC_BYTES:
        raise ValueError(f"MAC must look like 02:00:00:00:00:01, not {mac!r}")
    return bytes(int(p, 16) for p in parts)


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _ip_bytes(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def _ip_str(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


@dataclass
class TcpSegment:
    """A TCP segment; `checksum` is filled by build and parse, ignored on build input."""
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: TcpFlag
    window: int
    payload: bytes = b""
    mss: int | None = None    # the MSS option
    wscale: int | None = None # the window scale option's shift count (RFC 7323)
    sack_permitted: bool = False                  # the SACK-permitted option (RFC 2018)
    sack: tuple[tuple[int, int], ...] = ()        # SACK blocks: (left, right) sequence numbers
    urgent: int = 0
    checksum: int = 0

    @property
    def seg_len(self) -> int:
        """SEG.LEN: payload plus one for SYN and one for FIN."""
        return len(self.payload) + bool(self.flags & TcpFlag.SYN) + bool(self.flags & TcpFlag.FIN)

    def to_bytes(self, src_ip: str, dst_ip: str) -> bytes:
        # Linux's order and padding (tcp_options_write, no timestamps): MSS; NOP, NOP and
        # SACK-permitted; NOP and the window scale; NOP, NOP and the SACK blocks
        options = (struct.pack("!BBH", TcpOption.MSS, MSS_OPTION_LENGTH, self.mss)
                   if self.mss is not None else b"")
        if self.sack_permitted:
            options += struct.pack("!BBBB", TcpOption.NOP, TcpOption.NOP, TcpOption.SACK_PERMITTED,
                                   SACK_PERMITTED_LENGTH)
        if self.wscale is not None:
            options += struct.pack("!BBBB", TcpOption.NOP, TcpOption.WSCALE, WSCALE_OPTION_LENGTH,
                                   self.wscale)
        if self.sack:
            options += struct.pack("!BBBB", TcpOption.NOP, TcpOption.NOP, TcpOption.SACK,
                                   2 + SACK_BLOCK_BYTES * len(self.sack))
            options += b"".join(struct.pack("!II", lo & 0xFFFFFFFF, hi & 0xFFFFFFFF)
                                for lo, hi in self.sack)
        offset = (TCP_HEADER + len(options)) // 4
        header = struct.pack("!HHIIBBHHH", self.src_port, self.dst_port, self.seq & 0xFFFFFFFF,
                             self.ack & 0xFFFFFFFF, offset << 4, int(self.flags), self.window, 0,
                             self.urgent) + options
        body = header + self.payload
        self.checksum = internet_checksum(body, pseudo_header_sum(src_ip, dst_ip, IpProto.TCP, len(body)))
        return body[:16] + self.checksum.to_bytes(2, "big") + body[18:]

    @classmethod
    def from_bytes(cls, raw: bytes, src_ip: str, dst_ip: str) -> "TcpSegment":
        if len(raw) < TCP_HEADER:
            raise PacketError(DropCause.RUNT)
        src_port, dst_port, seq, ack, off, flags, window, checksum, urgent = struct.unpack("!HHIIBBHHH", raw[:TCP_HEADER])
        offset = (off >> 4) * 4
        if offset < TCP_HEADER or offset > len(raw):
            raise PacketError(DropCause.BAD_TCP_OFFSET)
        if ones_complement_sum(raw, pseudo_header_sum(src_ip, dst_ip, IpProto.TCP, len(raw))) != 0xFFFF:
            raise PacketError(DropCause.BAD_L4_CHECKSUM)
        syn = parse_syn_options(raw[TCP_HEADER:offset])
        return cls(src_port, dst_port, seq, ack, TcpFlag(flags), window, bytes(raw[offset:]),
                   syn.mss, syn.wscale, syn.sack_permitted, urgent=urgent, checksum=checksum)


@dataclass
class UdpDatagram:
    src_port: int
    dst_port: int
    payload: bytes = b""
    checksum: int = 0

    def to_bytes(self, src_ip: str, dst_ip: str) -> bytes:
        length = UDP_HEADER + len(self.payload)
        body = struct.pack("!HHHH", self.src_port, self.dst_port, length, 0) + self.payload
        checksum = internet_checksum(body, pseudo_header_sum(src_ip, dst_ip, IpProto.UDP, length))
        self.checksum = checksum or 0xFFFF        # RFC 768: a computed 0 is sent as all ones
        return body[:6] + self.checksum.to_bytes(2, "big") + body[8:]

    @classmethod
    def from_bytes(cls, raw: bytes, src_ip: str, dst_ip: str) -> "UdpDatagram":
        if len(raw) < UDP_HEADER:
            raise PacketError(DropCause.RUNT)
        src_port, dst_port, length, checksum = struct.unpack("!HHHH", raw[:UDP_HEADER])
        if length != len(raw):
            raise PacketError(DropCause.BAD_UDP_LENGTH)
        if checksum and ones_complement_sum(raw, pseudo_header_sum(src_ip, dst_ip, IpProto.UDP, length)) != 0xFFFF:
            raise PacketError(DropCause.BAD_L4_CHECKSUM)
        return cls(src_port, dst_port, bytes(raw[UDP_HEADER:]), checksum)


@dataclass
class Arp:
    op: int                 # ArpOp: 1 request, 2 reply
    sender_mac: bytes
    sender_ip: str
    target_mac: bytes
    target_ip: str


@dataclass
class Frame:
    """A parsed frame: Ethernet addresses plus exactly one of `tcp`, `udp`, `arp`."""
    dst_mac: bytes
    src_mac: bytes
    ethertype: int
    src_ip: str = ""
    dst_ip: str = ""
    ip_checksum: int = 0
    tcp: TcpSegment | None = None
    udp: UdpDatagram | None = None
    arp: Arp | None = None


def _ethernet(dst_mac: bytes, src_mac: bytes, ethertype: int, body: bytes) -> bytes:
    frame = mac_bytes(dst_mac) + mac_bytes(src_mac) + ethertype.to_bytes(2, "big") + body
    return frame + bytes(max(0, ETH_MIN_FRAME - len(frame)))


def _ipv4(src_ip: str, dst_ip: str, protocol: int, payload: bytes, ttl: int) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", IPV4_VERSION << 4 | IPV4_HEADER // 4, 0,
                         IPV4_HEADER + len(payload), 0, IPV4_DF, ttl,
                         protocol, 0, _ip_bytes(src_ip), _ip_bytes(dst_ip))
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + payload


def build_tcp_frame(src_mac, dst_mac, src_ip: str, dst_ip: str, seg: TcpSegment, ttl: int = 64) -> bytes:
    """Ethernet/IPv4/TCP bytes for `seg`; sets ``seg.checksum``."""
    return _ethernet(dst_mac, src_mac, EtherType.IPV4, _ipv4(src_ip, dst_ip, IpProto.TCP, seg.to_bytes(src_ip, dst_ip), ttl))


def build_udp_frame(src_mac, dst_mac, src_ip: str, dst_ip: str, dgram: UdpDatagram, ttl: int = 64) -> bytes:
    """Ethernet/IPv4/UDP bytes for `dgram`; sets ``dgram.checksum``."""
    return _ethernet(dst_mac, src_mac, EtherType.IPV4, _ipv4(src_ip, dst_ip, IpProto.UDP, dgram.to_bytes(src_ip, dst_ip), ttl))


def build_raw_tcp_frame(src_mac, dst_mac, src_ip: str, dst_ip: str, seg: TcpSegment, *,
                        options: bytes = b"", vlan: int | None = None, ttl: int = 64) -> bytes:
    """A TCP frame the model never sends, for tests: `options` are the raw option bytes
    (zero-padded to a multiple of 4; ``seg.mss`` is ignored) and `vlan`, if not None, the VID
    of an 802.1Q tag. Checksums are right; sets ``seg.checksum``."""
    options = bytes(options) + bytes(-len(options) % 4)
    header = struct.pack("!HHIIBBHHH", seg.src_port, seg.dst_port, seg.seq & 0xFFFFFFFF,
                         seg.ack & 0xFFFFFFFF, (TCP_HEADER + len(options)) // 4 << 4, int(seg.flags),
                         seg.window, 0, seg.urgent) + options
    body = header + seg.payload
    seg.checksum = internet_checksum(body, pseudo_header_sum(src_ip, dst_ip, IpProto.TCP, len(body)))
    packet = _ipv4(src_ip, dst_ip, IpProto.TCP, body[:16] + seg.checksum.to_bytes(2, "big") + body[18:], ttl)
    if vlan is None:
        return _ethernet(dst_mac, src_mac, EtherType.IPV4, packet)
    tag = (vlan & 0xFFF).to_bytes(2, "big") + EtherType.IPV4.to_bytes(2, "big")
    return _ethernet(dst_mac, src_mac, EtherType.VLAN, tag + packet)


def build_arp_frame(src_mac, dst_mac, arp: Arp) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", ARP_HTYPE_ETHERNET, EtherType.IPV4, MAC_BYTES, 4, arp.op,
                       mac_bytes(arp.sender_mac), _ip_bytes(arp.sender_ip), mac_bytes(arp.target_mac),
                       _ip_bytes(arp.target_ip))
    return _ethernet(dst_mac, src_mac, EtherType.ARP, body)


def parse_frame(raw: bytes) -> Frame:
    """Parse and verify one Ethernet frame (without FCS); raise `PacketError` if unacceptable."""
    raw = bytes(raw)
    if len(raw) < ETH_HEADER:
        raise PacketError(DropCause.RUNT)
    frame = Frame(raw[0:6], raw[6:12], int.from_bytes(raw[12:14], "big"))
    body = raw[ETH_HEADER:]
    if frame.ethertype == EtherType.ARP:
        if len(body) < ARP_BODY:
            raise PacketError(DropCause.RUNT)
        _, ptype, hlen, plen, op, smac, sip, tmac, tip = struct.unpack("!HHBBH6s4s6s4s", body[:ARP_BODY])
        if ptype != EtherType.IPV4 or hlen != MAC_BYTES or plen != 4:
            raise PacketError(DropCause.UNKNOWN_PROTOCOL)
        frame.arp = Arp(op, smac, _ip_str(sip), tmac, _ip_str(tip))
        return frame
    if frame.ethertype != EtherType.IPV4:
        raise PacketError(DropCause.UNKNOWN_ETHERTYPE)
    if len(body) < IPV4_HEADER:
        raise PacketError(DropCause.RUNT)
    ver_ihl, _, total, _, frag, _, protocol, checksum, src, dst = struct.unpack("!BBHHHBBH4s4s", body[:IPV4_HEADER])
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != IPV4_VERSION:
        raise PacketError(DropCause.BAD_VERSION)
    if ihl < IPV4_HEADER:
        raise PacketError(DropCause.BAD_IHL)
    if total < ihl or total > len(body):
        raise PacketError(DropCause.BAD_IP_LENGTH)
    if ones_complement_sum(body[:ihl]) != 0xFFFF:
        raise PacketError(DropCause.BAD_IP_CHECKSUM)
    if frag & (IPV4_MF | IPV4_FRAGMENT_OFFSET):
        raise PacketError(DropCause.IP_FRAGMENT)
    frame.src_ip, frame.dst_ip, frame.ip_checksum = _ip_str(src), _ip_str(dst), checksum
    payload = body[ihl:total]        # drops Ethernet padding
    if protocol == IpProto.TCP:
        frame.tcp = TcpSegment.from_bytes(payload, frame.src_ip, frame.dst_ip)
    elif protocol == IpProto.UDP:
        frame.udp = UdpDatagram.from_bytes(payload, frame.src_ip, frame.dst_ip)
    else:
        raise PacketError(DropCause.UNKNOWN_PROTOCOL)
    return frame
