"""IPv4 TCP/UDP packets as bytes, with every TCP option packetdrill scripts use.

`build_tcp` / `build_udp` make the packets the runner injects (checksums filled);
`parse_ipv4` reads what the stack under test sent into a `Wire` record. The model's own
codec (model/packet.py) only knows the MSS option, so the runner has this one.
"""

import ipaddress
import struct
from dataclasses import dataclass, field

from model.checksum import internet_checksum, pseudo_header_sum
from model.protocol import (IPV4_DF, IPV4_HEADER, IPV4_VERSION, MSS_OPTION_LENGTH, TCP_HEADER,
                            UDP_HEADER, IpProto, TcpFlag, TcpOption)

from .grammar import Option

__all__ = ["Wire", "build_tcp", "build_udp", "build_icmp_error", "parse_ipv4", "encode_options",
           "FLAG_BITS"]

TCP_FASTOPEN, TCP_EXPERIMENT, FASTOPEN_MAGIC = 34, 254, 0xF989

#: packetdrill's flag letters ("." is ACK, "W" is CWR)
FLAG_BITS = {"F": TcpFlag.FIN, "S": TcpFlag.SYN, "R": TcpFlag.RST, "P": TcpFlag.PSH,
             ".": TcpFlag.ACK, "U": TcpFlag.URG, "E": TcpFlag.ECE, "W": TcpFlag.CWR}
_FLAG_ORDER = "SFRPUEW."       # how packetdrill prints flags: "S.", "F.", "P.", "R."


@dataclass
class Wire:
    """One packet as seen on the wire (absolute numbers)."""
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    flags: str = ""
    seq: int = 0
    ack: int = 0
    win: int = 0
    urg: int = 0
    options: list[Option] = field(default_factory=list)
    payload: bytes = b""
    raw: bytes = b""
    tos: int = 0
    ttl: int = 0
    gso_size: int = 0       # a TSO super-segment's segment size (0: one segment on the wire)

    @property
    def length(self) -> int:
        return len(self.payload)


def flags_text(bits: int) -> str:
    return "".join(f for f in _FLAG_ORDER if bits & FLAG_BITS[f])


def encode_options(options: list[Option]) -> bytes:
    out = b""
    for opt in options:
        if opt.kind == "nop":
            out += bytes([TcpOption.NOP])
        elif opt.kind == "eol":
            out += bytes([TcpOption.EOL])
        elif opt.kind == "mss":
            out += struct.pack("!BBH", TcpOption.MSS, MSS_OPTION_LENGTH, opt.values[0])
        elif opt.kind == "wscale":
            out += struct.pack("!BBB", TcpOption.WSCALE, 3, opt.values[0])
        elif opt.kind == "sackOK":
            out += struct.pack("!BB", TcpOption.SACK_PERMITTED, 2)
        elif opt.kind == "sack":
            out += struct.pack("!BB", TcpOption.SACK, 2 + 8 * len(opt.values))
            out += b"".join(struct.pack("!II", a & 0xFFFFFFFF, b & 0xFFFFFFFF) for a, b in opt.values)
        elif opt.kind == "raw":
            out += bytes.fromhex(opt.values[0])
        elif opt.kind == "FO":
            cookie = bytes.fromhex(opt.values[0])
            out += struct.pack("!BB", TCP_FASTOPEN, 2 + len(cookie)) + cookie
        elif opt.kind == "FOEXP":
            cookie = bytes.fromhex(opt.values[0])
            out += struct.pack("!BBH", TCP_EXPERIMENT, 4 + len(cookie), FASTOPEN_MAGIC) + cookie
        elif opt.kind == "TS":
            out += struct.pack("!BBII", TcpOption.TIMESTAMP, 10, opt.values[0] & 0xFFFFFFFF, opt.values[1] & 0xFFFFFFFF)
        else:
            raise ValueError(f"cannot encode option {opt}")
    if len(out) > 40:
        raise ValueError("TCP options exceed 40 bytes")
    return out + b"\x00" * (-len(out) % 4)


def _decode_options(raw: bytes) -> list[Option]:
    options, i = [], 0
    while i < len(raw):
        kind = raw[i]
        if kind == TcpOption.EOL:
            if any(raw[i:]):
                options.append(Option("eol"))
            break
        if kind == TcpOption.NOP:
            options.append(Option("nop"))
            i += 1
            continue
        size = raw[i + 1] if i + 1 < len(raw) else 0
        if size < 2 or i + size > len(raw):
            options.append(Option(f"bad-kind-{kind}"))
            break
        body = raw[i + 2:i + size]
        if kind == TcpOption.MSS and size == MSS_OPTION_LENGTH:
            options.append(Option("mss", (int.from_bytes(body, "big"),)))
        elif kind == TcpOption.WSCALE and size == 3:
            options.append(Option("wscale", (body[0],)))
        elif kind == TcpOption.SACK_PERMITTED and size == 2:
            options.append(Option("sackOK"))
        elif kind == TcpOption.SACK:
            blocks = tuple(struct.unpack("!II", body[j:j + 8]) for j in range(0, len(body) - 7, 8))
            options.append(Option("sack", blocks))
        elif kind == TcpOption.TIMESTAMP and size == 10:
            options.append(Option("TS", struct.unpack("!II", body)))
        elif kind == TCP_FASTOPEN:
            options.append(Option("FO", (body.hex(),)))
        elif kind == TCP_EXPERIMENT and size >= 4 and body[:2] == FASTOPEN_MAGIC.to_bytes(2, "big"):
            options.append(Option("FOEXP", (body[2:].hex(),)))
        else:
            options.append(Option(f"kind-{kind}", (body.hex(),)))
        i += size
    return options


def _ipv4(src: str, dst: str, proto: int, body: bytes, tos: int = 0, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", IPV4_VERSION << 4 | IPV4_HEADER // 4, tos,
                         IPV4_HEADER + len(body), 0, IPV4_DF, ttl, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + body


def build_tcp(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int, win: int,
              options: list[Option], payload: bytes, urg: int = 0, tos: int = 0, ttl: int = 64) -> bytes:
    opts = encode_options(options)
    bits = sum(FLAG_BITS[f] for f in set(flags))
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         ((TCP_HEADER + len(opts)) // 4) << 4, bits, win, 0, urg) + opts
    body = header + payload
    checksum = internet_checksum(body, pseudo_header_sum(src, dst, IpProto.TCP, len(body)))
    return _ipv4(src, dst, IpProto.TCP, body[:16] + checksum.to_bytes(2, "big") + body[18:], tos, ttl)


def build_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    length = UDP_HEADER + len(payload)
    body = struct.pack("!HHHH", sport, dport, length, 0) + payload
    checksum = internet_checksum(body, pseudo_header_sum(src, dst, IpProto.UDP, length)) or 0xFFFF
    return _ipv4(src, dst, IpProto.UDP, body[:6] + checksum.to_bytes(2, "big") + body[8:])


def build_icmp_error(src: str, dst: str, icmp_type: int, code: int, quoted: bytes, mtu: int = 0) -> bytes:
    """An ICMP error from `src` quoting `quoted` (the offending packet's IP header + 8 bytes)."""
    rest = mtu.to_bytes(4, "big") if icmp_type == 3 and code == 4 else bytes(4)
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + quoted
    checksum = internet_checksum(body)
    return _ipv4(src, dst, 1, body[:2] + checksum.to_bytes(2, "big") + body[4:])


def parse_ipv4(raw: bytes) -> Wire | None:
    """A TCP or UDP packet in IPv4, or None for anything else (ICMP, IPv6, runts)."""
    if len(raw) < IPV4_HEADER or raw[0] >> 4 != IPV4_VERSION:
        return None
    ihl = (raw[0] & 0x0F) * 4
    total = int.from_bytes(raw[2:4], "big")
    proto = raw[9]
    src, dst = str(ipaddress.IPv4Address(raw[12:16])), str(ipaddress.IPv4Address(raw[16:20]))
    body = raw[ihl:total]
    if proto == IpProto.TCP and len(body) >= TCP_HEADER:
        sport, dport, seq, ack, off, bits, win, _, urg = struct.unpack("!HHIIBBHHH", body[:TCP_HEADER])
        offset = (off >> 4) * 4
        return Wire("tcp", src, dst, sport, dport, flags_text(bits), seq, ack, win, urg,
                    _decode_options(body[TCP_HEADER:offset]), bytes(body[offset:]), bytes(raw[:total]),
                    raw[1], raw[8])
    if proto == IpProto.UDP and len(body) >= UDP_HEADER:
        sport, dport = struct.unpack("!HH", body[:4])
        return Wire("udp", src, dst, sport, dport, payload=bytes(body[UDP_HEADER:]), raw=bytes(raw[:total]),
                    tos=raw[1], ttl=raw[8])
    return None
