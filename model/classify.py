"""Reference receive classifier: one verdict per Ethernet frame (the golden model of hdl/rx/classifier.py).

A frame is the bytes the MAC delivers (destination MAC first, no FCS). :func:`classify` gives it
exactly one :class:`Verdict`, a :class:`DropCause` when the verdict is DROP, and, when the
verdict is FAST, the parsed fields the fast path needs (all fields are zero otherwise).

The rules are checked in this order; the first that matches decides.

====  ======================================================================  ==================
 #    rule                                                                    verdict
====  ======================================================================  ==================
 1    frame shorter than the Ethernet header (14 bytes)                       DROP RUNT
 2    frame longer than MTU + 14 bytes (MTU + 18 with an 802.1Q tag)          DROP OVERSIZE
 3    destination MAC neither ours nor broadcast (multicast included)         DROP WRONG_MAC
 4    802.1Q tag (TPID 0x8100) but frame shorter than 18 bytes                DROP RUNT
 5    destination MAC is broadcast                                            SLOW
 6    ethertype is not IPv4 (ARP, IPv6, any 802.1Q tag, ...)                  SLOW
 7    frame shorter than its Ethernet header plus 20 bytes                    DROP RUNT
 8    IP version is not 4                                                     DROP BAD_VERSION
 9    IHL < 5                                                                 DROP BAD_IHL
10    IP total length < IHL * 4, or the IP packet runs past the frame's end   DROP BAD_IP_LENGTH
11    IP header checksum (over IHL * 4 bytes) wrong                           DROP BAD_IP_CHECKSUM
12    fragment (MF set or fragment offset != 0): reassembly is in software    SLOW
13    IP options (IHL > 5)                                                    SLOW
14    destination IP is not ours                                              SLOW
15    protocol neither TCP (6) nor UDP (17): ICMP, IGMP, ...                  SLOW
16    TCP: segment shorter than 20 bytes                                      DROP RUNT
17    TCP: data offset < 5, or data offset * 4 > segment length               DROP BAD_TCP_OFFSET
18    UDP: datagram shorter than 8 bytes                                      DROP RUNT
19    UDP: UDP length field != IP total length - 20                           DROP BAD_UDP_LENGTH
20    TCP checksum wrong; UDP checksum wrong unless the field is 0 (none)     DROP BAD_L4_CHECKSUM
21    TCP with SYN set, its options not parsed in 7 options (see below)       SLOW
22    otherwise: TCP or UDP to our MAC and IP                                 FAST
====  ======================================================================  ==================

Decisions worth stating:

- The MTU is ``Policy.mtu`` (1500 by default): a frame (without FCS) may be MTU + 14 bytes,
  MTU + 18 with an 802.1Q tag, since tagged frames are host software's to take or drop.
- Every 802.1Q-tagged frame goes to the slow path: the socket table has no VLAN in its key, so
  a tagged frame must never reach the untagged connection with the same 4-tuple. Host
  software decides (the model's host, which has no VLAN interface, drops it as
  ``UNKNOWN_ETHERTYPE``, as Linux drops a VID it has no VLAN device for; Linux would take a
  priority-tagged frame, VID 0, as untagged: this model does not).
- A SYN's options are walked for its MSS option (``mss``; 0: none), its window scale
  option (``wscale_offered``, ``wscale``) and its SACK-permitted option (``sack_permitted``;
  only of length 2), as Linux's ``tcp_parse_options`` reads them
  (``model.packet.parse_syn_options``), but at most
  :data:`SYN_OPTIONS_WALKED` options (a NOP counts as one): the hardware visits one option per
  clock between the frame's last beat and its verdict. Every real stack's SYN fits (Linux: MSS,
  SACK-permitted, timestamps, NOP, window scale); a SYN whose options go on longer goes to
  host software (rule 21), which parses them all and hands the segment to the engine. So a
  SYN for a live connection (a SYN-ACK in SYN-SENT, a retransmitted SYN, a SYN in a
  synchronized state) reaches the engine in order with the frames around it; a SYN for a
  listener has no connection yet, and the socket lookup sends it to host software.
- Options on other segments are not parsed. A bad option (length 0 or 1, or running past the
  header) does not drop the segment: Linux (``tcp_parse_options``) stops parsing and keeps it.
- Bytes after the IP packet (Ethernet padding of frames under 60 bytes, or any other trailing
  bytes) are ignored, as Linux does: the IP total length defines the L4 length, and the
  payload length excludes them.
- TTL is not checked: a packet addressed to us is delivered whatever its TTL (TTL matters
  only when forwarding, which this NIC does not do). The IP flags' reserved bit is ignored.
- TCP options (e.g. timestamps) are allowed on the fast path: the payload starts after them
  (``payload_offset`` uses the data offset).
- RST, FIN and segments without ACK are FAST: the fast path owns the connection state.
- An IP packet of exactly 20 bytes of TCP header is FAST with an empty payload (a pure ACK).
- UDP is FAST whatever its ports: the socket lookup that follows decides whether it is bound.

Counters (hdl/rx/classifier.py): one per verdict and one per drop cause, saturating at their
maximum rather than wrapping, so a large count never reads as a small one.
"""

import enum
import ipaddress
from dataclasses import dataclass, field, fields

from .checksum import ones_complement_sum, pseudo_header_sum
from .drops import DropCause
from .packet import parse_syn_options
from .protocol import (ETH_HEADER, IPV4_FRAGMENT_OFFSET, IPV4_HEADER, IPV4_MF, IPV4_VERSION,
                       MAC_BYTES, TCP_HEADER, UDP_HEADER, VLAN_TAG, EtherType, IpProto, TcpFlag)

__all__ = ["Verdict", "ParsedFields", "Classification", "classify",
           "MTU", "max_frame", "BROADCAST", "SYN_OPTIONS_WALKED"]

MTU = 1500               # Policy.mtu's default
BROADCAST = 0xFFFF_FFFF_FFFF
#: Options of a SYN walked for its MSS, window scale and SACK-permitted options (rule 21): one
#: a clock in the hardware, in the clocks between a frame's last beat and its verdict.
SYN_OPTIONS_WALKED = 7


class Verdict(enum.IntEnum):
    """Where a received frame goes."""
    FAST = 0   #: TCP/UDP to our IP: the fast path takes it, with the parsed fields
    SLOW = 1   #: the whole frame goes to the host's exception queue
    DROP = 2   #: discarded and counted under its DropCause


@dataclass(frozen=True)
class ParsedFields:
    """Header fields of a FAST frame (all zero for SLOW and DROP; TCP fields zero for UDP).

    Addresses, ports and numbers are integers in their natural (network-order) value.
    ``payload_offset`` is the frame offset of the first payload byte and ``payload_length``
    the payload's length, Ethernet padding excluded. ``mss`` is a SYN's MSS option (0: none,
    or not a SYN); ``wscale_offered`` whether a SYN carries the window scale option and
    ``wscale`` its shift count, at most 14 (0 without one, or not a SYN); ``sack_permitted``
    whether a SYN carries the SACK-permitted option (RFC 2018; 0 without one, or not a SYN).
    """
    protocol: int = 0
    src_ip: int = 0
    dst_ip: int = 0
    src_port: int = 0
    dst_port: int = 0
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    data_offset: int = 0
    payload_offset: int = 0
    payload_length: int = 0
    mss: int = 0
    wscale_offered: int = 0
    wscale: int = 0
    sack_permitted: int = 0

    def as_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    cause: DropCause = DropCause.NONE
    fields: ParsedFields = field(default_factory=ParsedFields)


def _drop(cause):
    return Classification(Verdict.DROP, cause)


_SLOW = Classification(Verdict.SLOW)


def _be(data, offset, size):
    return int.from_bytes(data[offset:offset + size], "big")


def _as_int(address, size):
    if isinstance(address, int):
        return address
    if isinstance(address, bytes):
        return int.from_bytes(address, "big")
    if size == MAC_BYTES:
        return int(address.replace(":", "").replace("-", ""), 16)
    return int(ipaddress.IPv4Address(address))


def max_frame(mtu: int = MTU, tagged: bool = False) -> int:
    """The longest frame (without FCS) accepted for an IP MTU of `mtu` bytes."""
    return mtu + ETH_HEADER + (VLAN_TAG if tagged else 0)


def classify(frame: bytes, our_mac, our_ip, mtu: int = MTU) -> Classification:
    """Classify one frame received for `our_mac` / `our_ip` (ints, bytes or text) on a port
    whose IP MTU is `mtu` (``Policy.mtu``)."""
    our_mac = _as_int(our_mac, MAC_BYTES)
    our_ip = _as_int(our_ip, 4)
    length = len(frame)

    if length < ETH_HEADER:                                               # 1
        return _drop(DropCause.RUNT)
    vlan = _be(frame, 12, 2) == EtherType.VLAN
    if length > max_frame(mtu, vlan):                                     # 2
        return _drop(DropCause.OVERSIZE)
    dst_mac = _be(frame, 0, MAC_BYTES)
    if dst_mac not in (our_mac, BROADCAST):                               # 3
        return _drop(DropCause.WRONG_MAC)
    if vlan and length < ETH_HEADER + VLAN_TAG:                           # 4
        return _drop(DropCause.RUNT)
    if dst_mac == BROADCAST:                                              # 5
        return _SLOW
    if _be(frame, 12, 2) != EtherType.IPV4:                               # 6
        return _SLOW
    l3 = ETH_HEADER

    if length < l3 + IPV4_HEADER:                                         # 7
        return _drop(DropCause.RUNT)
    version, ihl = frame[l3] >> 4, frame[l3] & 0xF
    if version != IPV4_VERSION:                                           # 8
        return _drop(DropCause.BAD_VERSION)
    if ihl < 5:                                                           # 9
        return _drop(DropCause.BAD_IHL)
    total_length = _be(frame, l3 + 2, 2)
    if total_length < ihl * 4 or l3 + total_length > length:              # 10
        return _drop(DropCause.BAD_IP_LENGTH)
    if ones_complement_sum(frame[l3:l3 + ihl * 4]) != 0xFFFF:             # 11
        return _drop(DropCause.BAD_IP_CHECKSUM)
    flags_fragment = _be(frame, l3 + 6, 2)
    if flags_fragment & (IPV4_MF | IPV4_FRAGMENT_OFFSET):                 # 12
        return _SLOW
    if ihl > 5:                                                           # 13
        return _SLOW
    protocol = frame[l3 + 9]
    src_ip, dst_ip = _be(frame, l3 + 12, 4), _be(frame, l3 + 16, 4)
    if dst_ip != our_ip:                                                  # 14
        return _SLOW
    if protocol not in (IpProto.TCP, IpProto.UDP):                        # 15
        return _SLOW

    l4 = l3 + IPV4_HEADER
    l4_length = total_length - IPV4_HEADER
    segment = frame[l4:l4 + l4_length]
    if protocol == IpProto.TCP:
        if l4_length < TCP_HEADER:                                        # 16
            return _drop(DropCause.RUNT)
        data_offset = segment[12] >> 4
        if data_offset * 4 < TCP_HEADER or data_offset * 4 > l4_length:   # 17
            return _drop(DropCause.BAD_TCP_OFFSET)
        checked = True
    else:
        if l4_length < UDP_HEADER:                                        # 18
            return _drop(DropCause.RUNT)
        if _be(segment, 4, 2) != l4_length:                               # 19
            return _drop(DropCause.BAD_UDP_LENGTH)
        checked = _be(segment, 6, 2) != 0
    pseudo = pseudo_header_sum(src_ip, dst_ip, protocol, l4_length)
    if checked and ones_complement_sum(segment, pseudo) != 0xFFFF:        # 20
        return _drop(DropCause.BAD_L4_CHECKSUM)

    ports = dict(protocol=protocol, src_ip=src_ip, dst_ip=dst_ip,
                 src_port=_be(segment, 0, 2), dst_port=_be(segment, 2, 2))
    if protocol == IpProto.TCP:
        flags = segment[13]
        mss, wscale, sack_permitted, complete = parse_syn_options(segment[TCP_HEADER:data_offset * 4],
                                                                  SYN_OPTIONS_WALKED)
        if flags & TcpFlag.SYN and not complete:                          # 21
            return _SLOW
        syn_options = dict(mss=mss or 0, wscale_offered=int(wscale is not None), wscale=wscale or 0,
                           sack_permitted=int(sack_permitted)) if flags & TcpFlag.SYN else {}
        parsed = ParsedFields(**ports, seq=_be(segment, 4, 4), ack=_be(segment, 8, 4),
                              flags=flags, window=_be(segment, 14, 2), data_offset=data_offset,
                              payload_offset=l4 + data_offset * 4,
                              payload_length=l4_length - data_offset * 4, **syn_options)
    else:
        parsed = ParsedFields(**ports, payload_offset=l4 + UDP_HEADER,
                              payload_length=l4_length - UDP_HEADER)
    return Classification(Verdict.FAST, DropCause.NONE, parsed)           # 22
