"""Protocol numbers of the wire, each written once: EtherTypes, IP protocols, TCP flags and
option kinds, and the fixed header lengths.

The model's codec (``packet.py``), its classifier (``classify.py``), the RTL (through
``hdl/wire.py``'s header layouts), the testbench and the packetdrill codec all import these;
a number that appears on the wire is not written anywhere else. Pure Python: no amaranth.
"""

import enum

__all__ = [
    "EtherType", "IpProto", "TcpFlag", "TcpOption", "ArpOp",
    "ETH_HEADER", "VLAN_TAG", "IPV4_HEADER", "TCP_HEADER", "UDP_HEADER", "ARP_BODY",
    "ETH_MIN_FRAME", "MAC_BYTES", "IPV4_VERSION", "IPV4_DF", "IPV4_MF", "IPV4_FRAGMENT_OFFSET",
    "MSS_OPTION_LENGTH", "WSCALE_OPTION_LENGTH", "WSCALE_MAX", "SACK_PERMITTED_LENGTH",
    "SACK_BLOCK_BYTES", "SACK_MAX_BLOCKS", "ARP_HTYPE_ETHERNET",
]


class EtherType(enum.IntEnum):
    """The Ethernet II type field (IEEE registry)."""
    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100        #: an 802.1Q tag (its TPID); the real EtherType follows the tag


class IpProto(enum.IntEnum):
    """The IPv4 protocol field (IANA "Assigned Internet Protocol Numbers")."""
    ICMP = 1
    TCP = 6
    UDP = 17


class TcpFlag(enum.IntFlag):
    """TCP control bits as in the header's flags byte (RFC 9293 section 3.1, RFC 3168):
    bit 0 is FIN. The one place their order is written: hdl/wire.py's ``TcpFlags`` layout
    and the packetdrill codec derive theirs from it."""
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


class TcpOption(enum.IntEnum):
    """TCP option kinds (IANA "TCP Option Kind Numbers")."""
    EOL = 0
    NOP = 1
    MSS = 2
    WSCALE = 3
    SACK_PERMITTED = 4
    SACK = 5
    TIMESTAMP = 8


class ArpOp(enum.IntEnum):
    REQUEST = 1
    REPLY = 2


#: Fixed header lengths in bytes.
ETH_HEADER = 14          #: destination MAC, source MAC, EtherType
VLAN_TAG = 4             #: an 802.1Q tag: TPID and TCI
IPV4_HEADER = 20         #: without options (IHL 5)
TCP_HEADER = 20          #: without options (data offset 5)
UDP_HEADER = 8
ARP_BODY = 28            #: an Ethernet/IPv4 ARP packet
ETH_MIN_FRAME = 60       #: without FCS; shorter frames are padded with zeros
MAC_BYTES = 6

IPV4_VERSION = 4
#: The IPv4 flags and fragment offset halfword.
IPV4_DF = 0x4000
IPV4_MF = 0x2000
IPV4_FRAGMENT_OFFSET = 0x1FFF

MSS_OPTION_LENGTH = 4    #: kind, length, 16-bit MSS
WSCALE_OPTION_LENGTH = 3 #: kind, length, shift count (RFC 7323 2.2)
WSCALE_MAX = 14          #: the largest shift count; a larger offer counts as 14 (RFC 7323 2.3)
SACK_PERMITTED_LENGTH = 2    #: kind, length (RFC 2018 2)
SACK_BLOCK_BYTES = 8     #: a SACK block: left and right edge, 32 bits each (RFC 2018 3)
SACK_MAX_BLOCKS = 4      #: SACK blocks that fit 40 option bytes without timestamps (RFC 2018 3)
ARP_HTYPE_ETHERNET = 1
