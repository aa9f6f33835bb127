"""A TCP peer made of crafted segments, and frames every receive-path drop cause must catch.

:class:`CraftedPeer` plays the far end of one connection with segments built by hand, each
placed relative to what the dut itself last sent on that 4-tuple (its RCV.NXT is the ACK
number of its latest segment, its SND.MAX the end of the furthest one): the exact RST, one
inside the window and one beyond it, a SYN or SYN-ACK after the handshake, an old duplicate,
data beyond the window, a FIN in any state. The real peer (a model host) never sees the
4-tuple: the wire blocks its frames both ways (:meth:`CraftedPeer.block`), so nothing on the
far side answers or times out behind the scenario's back. Everything is computed from the
run's own wire log, so the same program runs on the model and on the RTL and the scoreboard
compares their answers segment by segment.

:func:`bad_frames` builds a frame for each cause of ``model.drops.DropCause`` that a
well-formed peer never produces (IHL below 5, an IP length past the frame, a wrong IP header
checksum, a TCP data offset below 5, a UDP length that disagrees with IP's, a fragment,
another protocol, another destination address, a segment from a host with no neighbour
entry).
"""

import struct

from model.checksum import internet_checksum
from model.drops import DropCause
from model.packet import (PacketError, TcpSegment, UdpDatagram, build_tcp_frame, build_udp_frame,
                          parse_frame)
from model.protocol import ETH_HEADER, IPV4_HEADER, IPV4_MF, IpProto, TcpFlag
from model.tcp import seq_add, seq_lt

__all__ = ["CraftedPeer", "KINDS", "bad_frames"]

#: The segment kinds :meth:`CraftedPeer.send` crafts (``hdl.engine.observe.SegmentKind``'s names).
KINDS = ("SYN", "SYN_ACK", "ACK", "DATA_IN_WINDOW", "DATA_OUT_OF_WINDOW", "FIN", "RST_EXACT",
         "RST_IN_WINDOW", "RST_OUTSIDE", "OLD_DUPLICATE")
# beyond any receive window the NIC advertises (its rings are 2 KiB; a window field is 16 bits)
_BEYOND = 70_000


class CraftedPeer:
    """The far end of one TCP connection, from `ip`/`mac` port `port` to the dut's `dut_port`,
    driven segment by segment on runner `r` (``model.scenario.Runner``). `iss` is its first
    sequence number; `window` what it advertises."""

    def __init__(self, r, mac, ip, port, dut_mac, dut_ip, dut_port, *, iss, window=4096):
        self.r, self.mac, self.ip, self.port = r, mac, ip, port
        self.dut_mac, self.dut_ip, self.dut_port = dut_mac, dut_ip, dut_port
        self.iss, self.window = iss, window
        self.acked = None           # what this peer has acknowledged of the dut's stream

    @staticmethod
    def block(r, ports):
        """Keep every frame of the peer ports `ports` (a set, which may grow) off the wire
        both ways, after any hook `r.wire.block` already has."""
        before = r.wire.block

        def hook(side, frame):
            if before is not None and before(side, frame):
                return True
            try:
                tcp = parse_frame(frame).tcp
            except PacketError:
                return False
            return tcp is not None and (tcp.dst_port if side == "a" else tcp.src_port) in ports
        r.wire.block = hook

    def dut_segments(self) -> list[TcpSegment]:
        """What the dut sent on this 4-tuple so far (blocked or not), in order."""
        out = []
        for event in self.r.wire.log:
            if event.side != "a":
                continue
            try:
                tcp = parse_frame(event.frame).tcp
            except PacketError:
                continue
            if tcp is not None and tcp.src_port == self.dut_port and tcp.dst_port == self.port:
                out.append(tcp)
        return out

    @property
    def rcv_nxt(self) -> int:
        """The dut's RCV.NXT, as its latest ACK says (our ISS + 1 before it sent any)."""
        for seg in reversed(self.dut_segments()):
            if seg.flags & TcpFlag.ACK:
                return seg.ack
        return seq_add(self.iss, 1)

    @property
    def dut_max(self) -> int | None:
        """The end of the furthest segment the dut sent (its SND.MAX); None before any."""
        end = None
        for seg in self.dut_segments():
            e = seq_add(seg.seq, seg.seg_len)
            if end is None or seq_lt(end, e):
                end = e
        return end

    @property
    def dut_iss(self) -> int:
        return next(s.seq for s in self.dut_segments() if s.flags & TcpFlag.SYN)

    def ack_all(self):
        """From now on acknowledge everything the dut has sent."""
        self.acked = self.dut_max

    def segment(self, kind, *, ack=True, payload=b"crafted", window=None) -> TcpSegment:
        """A segment of `kind` (one of :data:`KINDS`) for the dut's current state; `ack`
        False leaves the ACK flag off (what SYN-RECEIVED drops unread)."""
        if kind not in KINDS:
            raise ValueError(f"no segment kind {kind!r}: one of {', '.join(KINDS)}")
        nxt = self.rcv_nxt
        acked = self.acked
        if acked is None:                   # nothing acknowledged yet: the dut's ISS
            syns = [s.seq for s in self.dut_segments() if s.flags & TcpFlag.SYN]
            acked = syns[0] if syns else 0
        ack_flag = TcpFlag.ACK if ack else TcpFlag(0)
        seq, flags, data = nxt, ack_flag, b""
        if kind == "SYN":
            seq, flags = self.iss, TcpFlag.SYN
        elif kind == "SYN_ACK":
            seq, flags = self.iss, TcpFlag.SYN | TcpFlag.ACK
        elif kind == "DATA_IN_WINDOW":
            flags, data = ack_flag | TcpFlag.PSH, payload
        elif kind == "DATA_OUT_OF_WINDOW":
            seq, flags, data = seq_add(nxt, _BEYOND), ack_flag | TcpFlag.PSH, payload
        elif kind == "FIN":
            flags = ack_flag | TcpFlag.FIN
        elif kind == "RST_EXACT":
            flags = TcpFlag.RST
        elif kind == "RST_IN_WINDOW":
            seq, flags = seq_add(nxt, 1), TcpFlag.RST
        elif kind == "RST_OUTSIDE":
            seq, flags = seq_add(nxt, _BEYOND), TcpFlag.RST
        elif kind == "OLD_DUPLICATE":
            seq, data = seq_add(nxt, -len(payload) - 1), payload
        mss = 1460 if flags & TcpFlag.SYN else None
        return TcpSegment(self.port, self.dut_port, seq, acked if flags & TcpFlag.ACK else 0, flags,
                          self.window if window is None else window, data, mss)

    def frame(self, seg: TcpSegment) -> bytes:
        return build_tcp_frame(self.mac, self.dut_mac, self.ip, self.dut_ip, seg)

    def send(self, kind, **options):
        """Craft a segment of `kind` (see :meth:`segment`) and hand it to the dut."""
        self.r.inject(self.frame(self.segment(kind, **options)))

    def rst_for_syn(self):
        """The RST a closed port answers the dut's SYN with (RST|ACK, ACK = its ISS + 1)."""
        seg = TcpSegment(self.port, self.dut_port, 0, seq_add(self.dut_iss, 1),
                         TcpFlag.RST | TcpFlag.ACK, 0)
        self.r.inject(self.frame(seg))


def _with_ip_header(frame: bytes, **fields) -> bytes:
    """`frame` with IPv4 header fields replaced (ver_ihl, total, frag, protocol) and the header
    checksum computed again."""
    ip = bytearray(frame[ETH_HEADER:ETH_HEADER + IPV4_HEADER])
    offsets = {"ver_ihl": (0, "!B"), "total": (2, "!H"), "frag": (6, "!H"), "protocol": (9, "!B")}
    for name, value in fields.items():
        offset, fmt = offsets[name]
        struct.pack_into(fmt, ip, offset, value)
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, internet_checksum(bytes(ip)))
    return frame[:ETH_HEADER] + bytes(ip) + frame[ETH_HEADER + IPV4_HEADER:]


def bad_frames(src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port, stranger_ip) -> dict:
    """{DropCause: frame}: one frame per cause below, each dropped and counted exactly once
    under it (by the receive classifier or by host software): a UDP datagram from
    `src_ip`:`src_port` to `dst_ip`:`dst_port` made wrong one field at a time, and a TCP ACK
    from `stranger_ip` (no neighbour entry: the RST that answers it cannot be sent)."""
    good = build_udp_frame(src_mac, dst_mac, src_ip, dst_ip, UdpDatagram(src_port, dst_port, b"bad" * 10))
    total = len(good) - ETH_HEADER
    udp_length = bytearray(good)
    struct.pack_into("!H", udp_length, ETH_HEADER + IPV4_HEADER + 4, 8 + 31)   # 30 bytes follow
    stray = TcpSegment(src_port, dst_port, 1000, 2000, TcpFlag.ACK, 1000)
    ip_checksum = bytearray(good)
    ip_checksum[ETH_HEADER + 10] ^= 0x01
    tcp_offset = bytearray(build_tcp_frame(src_mac, dst_mac, src_ip, dst_ip, stray))
    tcp_offset[ETH_HEADER + IPV4_HEADER + 12] = 4 << 4                          # 16 bytes < 20
    return {
        DropCause.BAD_IP_CHECKSUM: bytes(ip_checksum),
        DropCause.BAD_TCP_OFFSET: bytes(tcp_offset),
        DropCause.BAD_IHL: _with_ip_header(good, ver_ihl=0x44),
        DropCause.BAD_IP_LENGTH: _with_ip_header(good, total=total + 40),
        DropCause.BAD_UDP_LENGTH: bytes(udp_length),
        DropCause.IP_FRAGMENT: _with_ip_header(good, frag=IPV4_MF),
        DropCause.UNKNOWN_PROTOCOL: _with_ip_header(good, protocol=IpProto.ICMP),
        DropCause.NOT_FOR_US: build_udp_frame(src_mac, dst_mac, src_ip, stranger_ip,
                                              UdpDatagram(src_port, dst_port, b"not mine")),
        DropCause.NO_NEIGHBOR: build_tcp_frame(src_mac, dst_mac, stranger_ip, dst_ip, stray),
    }
