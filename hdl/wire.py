"""Header layouts of the wire: Ethernet, 802.1Q tag, ARP, IPv4, TCP (and the options the NIC
sends: MSS, window scale, SACK-permitted, SACK), UDP.

One convention for every block that parses or builds a header (the receive classifier, the
transmit framer): **fields are integers in host order**, the value as the RFC writes it
(``ip.total_length == 40``, ``eth.ethertype == EtherType.IPV4``, ``tcp.flags.syn``), so a
block compares and assigns them with no byte juggling. Each layout lists its fields in wire
order (as the RFC's diagram draws them, most significant bits of a byte first) and is laid
out over the header's bytes *byte-reversed*: its first wire byte in the most significant
bits. A frame stream carries the first byte in the lowest bits, so a header's bytes as they
come off (or go onto) the stream and its layout's value differ by one byte swap, which is
only wiring: :func:`from_wire` views stream-order bytes through a layout, :func:`to_wire`
gives a header's stream-order bytes. (Byte arrays with big-endian helpers at every use, or
integers holding wire-order bytes, would each put a swap at every field instead.)

The numbers themselves (EtherTypes, protocol numbers, flag bits, option kinds, header
lengths) are ``model.protocol``'s; :class:`TcpFlags` takes its bit order from
``model.protocol.TcpFlag``.
"""

from amaranth import Cat, Value
from amaranth.lib import data, enum

from model.protocol import (ARP_BODY, ETH_HEADER, IPV4_HEADER, MSS_OPTION_LENGTH,
                            SACK_BLOCK_BYTES, SACK_PERMITTED_LENGTH, TCP_HEADER, UDP_HEADER,
                            VLAN_TAG, WSCALE_OPTION_LENGTH, IpProto, TcpFlag)

__all__ = [
    "TcpFlags", "L4Protocol", "EthernetHeader", "VlanTag", "ArpPacket", "Ipv4Header",
    "TcpHeader", "MssOption", "WscaleOption", "SackPermittedOption", "SackOption", "SackBlock",
    "UdpHeader", "swap_bytes", "from_wire", "to_wire",
]


def _flag_names():
    names = [flag.name.lower() for flag in sorted(TcpFlag, key=lambda flag: flag.value)]
    assert [flag.value for flag in sorted(TcpFlag, key=lambda f: f.value)] == \
        [1 << bit for bit in range(len(names))], "TcpFlag must be bits 0, 1, 2, ..."
    return names


class TcpFlags(data.StructLayout):
    """TCP control bits, one named bit each (``fin``, ``syn``, ... ``cwr``), in
    ``model.protocol.TcpFlag``'s order: bit 0 is ``fin``. Its value is the header's flags byte.

    :meth:`const` also takes a ``TcpFlag`` (or the flags byte), so a port's ``flags`` can be
    set straight from a model segment's ``flags``; :meth:`fields` gives its dict of fields.
    """

    def __init__(self):
        super().__init__({name: 1 for name in _flag_names()})

    @staticmethod
    def fields(flags):
        """``{"fin": 0, "syn": 1, ...}``: a ``TcpFlag`` (or the flags byte) as the fields."""
        names = _flag_names()
        if not isinstance(flags, int) or not 0 <= flags < 1 << len(names):
            raise ValueError(f"TCP flags must be an integer of {len(names)} bits, not {flags!r}")
        return {name: (flags >> bit) & 1 for bit, name in enumerate(names)}

    def const(self, init):
        return super().const(self.fields(init) if isinstance(init, int) else init)


class L4Protocol(enum.Enum, shape=8):
    """The transport protocols the NIC handles, by ``model.protocol.IpProto`` number."""
    TCP = IpProto.TCP.value
    UDP = IpProto.UDP.value


class _Header(data.StructLayout):
    """A header given as ``(name, shape)`` in wire order; laid out first field highest."""

    BYTES = None

    def __init__(self, fields):
        super().__init__(dict(reversed(fields)))
        assert self.size == 8 * self.BYTES, (type(self).__name__, self.size)


class EthernetHeader(_Header):
    BYTES = ETH_HEADER

    def __init__(self):
        super().__init__([("dst", 48), ("src", 48), ("ethertype", 16)])


class VlanTag(_Header):
    """An 802.1Q tag, where an EtherType would be: TPID (``EtherType.VLAN``), then the TCI."""
    BYTES = VLAN_TAG

    def __init__(self):
        super().__init__([("tpid", 16), ("pcp", 3), ("dei", 1), ("vid", 12)])


class ArpPacket(_Header):
    """An Ethernet/IPv4 ARP packet (RFC 826)."""
    BYTES = ARP_BODY

    def __init__(self):
        super().__init__([("htype", 16), ("ptype", 16), ("hlen", 8), ("plen", 8), ("oper", 16),
                          ("sha", 48), ("spa", 32), ("tha", 48), ("tpa", 32)])


class Ipv4Header(_Header):
    """An IPv4 header without options (RFC 791)."""
    BYTES = IPV4_HEADER

    def __init__(self):
        super().__init__([
            ("version", 4), ("ihl", 4), ("tos", 8), ("total_length", 16), ("identification", 16),
            ("reserved", 1), ("df", 1), ("mf", 1), ("fragment_offset", 13),
            ("ttl", 8), ("protocol", 8), ("checksum", 16), ("src", 32), ("dst", 32),
        ])


class TcpHeader(_Header):
    """A TCP header without options (RFC 9293 section 3.1)."""
    BYTES = TCP_HEADER

    def __init__(self):
        super().__init__([
            ("src_port", 16), ("dst_port", 16), ("seq", 32), ("ack", 32),
            ("data_offset", 4), ("reserved", 4), ("flags", TcpFlags()),
            ("window", 16), ("checksum", 16), ("urgent", 16),
        ])


class MssOption(_Header):
    """The TCP MSS option: kind ``TcpOption.MSS``, length 4, the MSS."""
    BYTES = MSS_OPTION_LENGTH

    def __init__(self):
        super().__init__([("kind", 8), ("length", 8), ("mss", 16)])


class WscaleOption(_Header):
    """A NOP, then the TCP window scale option (RFC 7323 2.2): kind ``TcpOption.WSCALE``,
    length 3, the shift count; Linux's four bytes after the MSS option."""
    BYTES = 1 + WSCALE_OPTION_LENGTH

    def __init__(self):
        super().__init__([("nop", 8), ("kind", 8), ("length", 8), ("shift", 8)])


class SackPermittedOption(_Header):
    """Two NOPs, then the TCP SACK-permitted option (RFC 2018 2): kind
    ``TcpOption.SACK_PERMITTED``, length 2; Linux's four bytes after the MSS option."""
    BYTES = 2 + SACK_PERMITTED_LENGTH

    def __init__(self):
        super().__init__([("nop1", 8), ("nop2", 8), ("kind", 8), ("length", 8)])


class SackOption(_Header):
    """Two NOPs, then the start of the TCP SACK option (RFC 2018 3): kind ``TcpOption.SACK``
    and its length, 2 + 8 per block; Linux's four bytes before the blocks (:class:`SackBlock`)."""
    BYTES = 4

    def __init__(self):
        super().__init__([("nop1", 8), ("nop2", 8), ("kind", 8), ("length", 8)])


class SackBlock(_Header):
    """One block of the SACK option: the left and right edge of a block of received data,
    sequence numbers (RFC 2018 3)."""
    BYTES = SACK_BLOCK_BYTES

    def __init__(self):
        super().__init__([("left", 32), ("right", 32)])


class UdpHeader(_Header):
    BYTES = UDP_HEADER

    def __init__(self):
        super().__init__([("src_port", 16), ("dst_port", 16), ("length", 16), ("checksum", 16)])


def swap_bytes(value):
    """`value` (a whole number of bytes wide) with its bytes in the opposite order."""
    value = Value.cast(value)
    assert len(value) % 8 == 0, f"{len(value)} bits is not a whole number of bytes"
    return Cat(*(value[8 * k:8 * k + 8] for k in reversed(range(len(value) // 8))))


def from_wire(layout, value):
    """A view of `layout` over a header's bytes in stream order (first byte in bits 0-7)."""
    value = Value.cast(value)
    assert len(value) == layout.size, (layout, len(value))
    return data.View(layout, swap_bytes(value))


def to_wire(header):
    """A header (a view of one of these layouts) as its bytes in stream order."""
    return swap_bytes(Value.cast(header))
