"""Internet checksum (RFC 1071), the reference for hdl/checksum.py and the model's packets."""

import ipaddress

__all__ = ["ones_complement_sum", "internet_checksum", "pseudo_header_sum"]


def ones_complement_sum(data: bytes, initial: int = 0) -> int:
    """16-bit one's-complement sum of `data` (big-endian words, odd byte padded with zero)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total = initial
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes, initial: int = 0) -> int:
    """The checksum field value: the complement of the one's-complement sum."""
    return ~ones_complement_sum(data, initial) & 0xFFFF


def pseudo_header_sum(src: str | int, dst: str | int, protocol: int, length: int) -> int:
    """One's-complement sum of the IPv4 pseudo-header for TCP/UDP (RFC 9293 section 3.1)."""
    src_bytes = int(ipaddress.IPv4Address(src)).to_bytes(4, "big")
    dst_bytes = int(ipaddress.IPv4Address(dst)).to_bytes(4, "big")
    return ones_complement_sum(src_bytes + dst_bytes + bytes([0, protocol]) + length.to_bytes(2, "big"))
