"""Receive classifier: one FAST / SLOW / DROP verdict per Ethernet frame, as model/classify.py."""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from model.classify import MTU, SYN_OPTIONS_WALKED, Verdict, max_frame
from model.drops import CLASSIFIER_CAUSES, DropCause
from model.protocol import (ETH_HEADER, IPV4_HEADER, IPV4_VERSION, MSS_OPTION_LENGTH,
                            SACK_PERMITTED_LENGTH, TCP_HEADER, UDP_HEADER, VLAN_TAG, WSCALE_MAX,
                            WSCALE_OPTION_LENGTH, EtherType, IpProto, TcpFlag, TcpOption)
from hdl.checksum import Checksum
from hdl.layouts import FrameBeat, check_data_width
from hdl.wire import EthernetHeader, Ipv4Header, MssOption, TcpHeader, UdpHeader, from_wire

__all__ = ["Verdict", "DropCause", "ParsedFields", "VerdictRecord", "Classifier"]


class ParsedFields(data.StructLayout):
    """Fields of a FAST frame, as ``model.classify.ParsedFields`` (zero for SLOW and DROP)."""

    def __init__(self):
        super().__init__({
            "protocol": 8, "src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16,
            "seq": 32, "ack": 32, "flags": 8, "window": 16, "data_offset": 4,
            "payload_offset": 16, "payload_length": 16, "mss": 16,
            "wscale_offered": 1, "wscale": 4, "sack_permitted": 1,
        })


class _SynOptions(data.StructLayout):
    """A SYN's options as its walk has found them so far, named as in :class:`ParsedFields`
    (which takes them whole when the walk ends)."""

    def __init__(self):
        super().__init__({"mss": 16, "wscale_offered": 1, "wscale": 4, "sack_permitted": 1})


class VerdictRecord(data.StructLayout):
    """The classifier's output for one frame."""

    def __init__(self):
        super().__init__({"verdict": Verdict, "cause": DropCause, "fields": ParsedFields()})


class _Pending(data.StructLayout):
    """A frame's verdict while its checksums are computed.

    ``early`` is decided before the IP checksum matters (rules 1-10), ``middle`` between the
    IP and the L4 checksum (rules 12-19); rules 21 (with a SYN's option walk) and 22 after
    both.
    """

    def __init__(self):
        super().__init__({
            "valid": 1, "early_hit": 1, "early_verdict": Verdict, "early_cause": DropCause,
            "middle_hit": 1, "middle_verdict": Verdict, "middle_cause": DropCause,
            "check_l4": 1, "fields": ParsedFields(),
        })


class Classifier(wiring.Component):
    """Classifies each received frame as FAST, SLOW or DROP (with a cause), one beat per clock.

    The classifier observes the frame stream (the frame bytes are buffered elsewhere) and
    gives every frame exactly one entry on ``verdict``, in frame order, following the rules
    of ``model/classify.py``. It takes back-to-back frames with no idle cycle between them,
    keeps ``i.ready`` high while the verdict consumer keeps up, and lowers it only when its
    verdict queue could otherwise overflow, so no verdict is ever lost. Any frame, of any
    length down to one byte, yields a verdict and leaves the classifier ready for the next.

    Checksums are verified with two :class:`~hdl.checksum.Checksum` units (IP header; TCP/UDP
    segment), fed two beats after the header bytes are captured, so that their byte ranges,
    computed from the header and registered, are known when the bytes arrive. The pseudo-header
    sum is added to the segment's sum after the unit's result. The rules are decided in
    registered stages (aligned header fields and wide comparisons; each rule's condition; the
    rules in priority order) while the checksums are computed, so that no path holds more
    than one comparison or carry chain and a few LUT levels (156.25 MHz on an ECP5 at speed 8).

    Parameters
    ----------
    data_width : int
        Width of the frame stream in bits, 8 or 64.
    counter_width : int
        Width of each statistics counter. Counters saturate at their maximum.
    mtu : int
        The port's IP MTU (``Policy.mtu``): frames longer than ``mtu + 14`` bytes
        (``mtu + 18`` with an 802.1Q tag) are dropped as OVERSIZE.

    Members
    -------
    i : ``In(stream.Signature(FrameBeat(data_width)))``
        Received frames (destination MAC first, no FCS). Every beat but the last is full.
    our_mac : ``In(48)``
        Our MAC address, first byte on the wire in bits 47..40 (e.g. ``0x020000000001``).
        Settable at any time; a change applies to frames whose verdict follows it.
    our_ip : ``In(32)``
        Our IPv4 address, first byte in bits 31..24, like ``our_mac``.
    verdict : ``Out(stream.Signature(VerdictRecord()))``
        One record per frame: ``verdict`` (:class:`Verdict`), ``cause`` (:class:`DropCause`,
        ``NONE`` unless DROP) and ``fields`` (:class:`ParsedFields`, zero unless FAST).
        The first record appears :attr:`LATENCY` cycles after the frame's last beat when the
        queue is empty.
    verdict_counts : ``Out(data.ArrayLayout(counter_width, len(Verdict)))``
        Frames given each verdict, indexed by :class:`Verdict`; they add up to frames seen.
    drop_counts : ``Out(data.ArrayLayout(counter_width, len(CLASSIFIER_CAUSES) + 1))``
        Frames dropped for each of the classifier's causes (``model.drops.CLASSIFIER_CAUSES``),
        indexed by :class:`DropCause` (entry ``NONE`` is 0); they add up to
        ``verdict_counts[Verdict.DROP]``.
    """

    #: Frame bytes parsed for the rules: Ethernet, IPv4 and TCP headers without options (a
    #: frame with an 802.1Q tag goes to the slow path, so nothing after the tag is parsed).
    HEADER_BYTES = ETH_HEADER + IPV4_HEADER + TCP_HEADER
    #: TCP option bytes captured after the header, for a SYN's option walk (rule 21).
    OPTION_BYTES = 60 - TCP_HEADER
    #: Cycles from the cycle accepting a frame's last beat to the cycle its verdict is written
    #: into the queue: beats delayed 2 for the checksum units, their latency, then the checksum
    #: verdicts and the record are registered.
    _WRITE_DELAY = 2 + Checksum.LATENCY + 2
    #: Verdict queue depth: room for every frame in flight and a few more.
    QUEUE_DEPTH = 14
    #: Cycles from the cycle accepting a frame's last beat to its verdict on an empty queue
    #: (the queue adds 2).
    LATENCY = _WRITE_DELAY + 2

    def __init__(self, data_width, counter_width=32, mtu=MTU):
        self._data_width = check_data_width(data_width)
        if not isinstance(counter_width, int) or isinstance(counter_width, bool) or counter_width < 1:
            raise TypeError(f"Counter width must be a positive integer, not {counter_width!r}")
        if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 9000:
            raise TypeError(f"MTU must be an integer from 68 to 9000, not {mtu!r}")
        self._counter_width = counter_width
        self._mtu = mtu
        super().__init__({
            "i": In(stream.Signature(FrameBeat(data_width))),
            "our_mac": In(48),
            "our_ip": In(32),
            "verdict": Out(stream.Signature(VerdictRecord())),
            "verdict_counts": Out(data.ArrayLayout(counter_width, len(Verdict))),
            "drop_counts": Out(data.ArrayLayout(counter_width, len(CLASSIFIER_CAUSES) + 1)),
        })

    @property
    def data_width(self):
        return self._data_width

    def elaborate(self, platform):
        m = Module()
        lanes = self._data_width // 8
        lane_bits = (lanes - 1).bit_length()
        beat = self.i.payload
        accept = self.i.valid & self.i.ready

        # -- Capture: header bytes and frame length -------------------------------------------
        captured_bytes = self.HEADER_BYTES + self.OPTION_BYTES
        captured = Signal(8 * captured_bytes)
        header = captured[:8 * self.HEADER_BYTES]
        options = captured[8 * self.HEADER_BYTES:]
        header_beats = -(-captured_bytes // lanes)
        slot = Signal(header_beats, init=1)        # one-hot: which captured beat comes next
        beats = Signal(16 - lane_bits)             # beats of the frame so far; stops at 32 KiB
        frame_length = Signal(16)                  # length of the frame whose last beat passed

        keep_count = Signal(lane_bits + 1)
        for lane in range(lanes):
            with m.If(beat.keep[lane]):
                m.d.comb += keep_count.eq(lane + 1)

        with m.If(accept):
            for index in range(header_beats):
                for lane in range(min(lanes, captured_bytes - index * lanes)):
                    byte = index * lanes + lane
                    with m.If(slot[index] & beat.keep[lane]):
                        m.d.sync += captured[8 * byte:8 * byte + 8].eq(beat.data[8 * lane:8 * lane + 8])
            with m.If(beat.last):
                m.d.sync += [slot.eq(1), beats.eq(0)]
                if lanes == 1:
                    m.d.sync += frame_length.eq(beats + 1)
                else:
                    with m.If(beat.keep[-1]):
                        m.d.sync += frame_length.eq(Cat(C(0, lane_bits), beats + 1))
                    with m.Else():
                        m.d.sync += frame_length.eq(Cat(keep_count[:lane_bits], beats))
            with m.Else():
                m.d.sync += slot.eq(Cat(C(0, 1), slot[:-1]))
                with m.If(~beats[-1]):
                    m.d.sync += beats.eq(beats + 1)

        # -- Header views: valid for the bytes the frame has; the whole header is there in the
        # cycle after its last beat, and only then (the next frame may start overwriting it).
        l3 = ETH_HEADER
        l4 = l3 + IPV4_HEADER
        eth = from_wire(EthernetHeader(), header[:8 * l3])
        vlan = Signal()
        m.d.comb += vlan.eq(eth.ethertype == EtherType.VLAN)
        ip = from_wire(Ipv4Header(), header[8 * l3:8 * l4])
        l4_bytes = header[8 * l4:8 * self.HEADER_BYTES]
        total_length = ip.total_length

        # -- Checksum units: byte ranges registered, beats delayed two cycles -----------------
        # A range computed from the header bytes up to beat n is registered and meets beat n,
        # delayed by two cycles (the Checksum needs it from the beat holding its start on).
        m.submodules.ip_checksum = ip_checksum = Checksum(self._data_width)
        m.submodules.l4_checksum = l4_checksum = Checksum(self._data_width)
        delayed = [(Signal(name=f"delayed{n}_valid"), Signal(FrameBeat(self._data_width),
                                                              name=f"delayed{n}")) for n in range(2)]
        m.d.sync += [
            delayed[0][0].eq(accept), delayed[0][1].eq(beat),
            delayed[1][0].eq(delayed[0][0]), delayed[1][1].eq(delayed[0][1]),
        ]
        l3_start = Signal(16)
        l4_start = Signal(16)
        l4_end = Signal(16)
        assert l3 == 4 * 3 + 2
        m.d.sync += [
            l3_start.eq(l3),
            # l3_start + IHL * 4, with l3_start = 4 * 3 + 2
            l4_start.eq(Cat(C(2, 2), ip.ihl + 3)),
            l4_end.eq(l3 + total_length),
        ]
        for unit in (ip_checksum, l4_checksum):
            m.d.comb += [
                unit.i.valid.eq(delayed[1][0]),
                unit.i.payload.eq(delayed[1][1]),
                unit.initial.eq(0),
                unit.o.ready.eq(1),
            ]
        m.d.comb += [
            ip_checksum.start.eq(l3_start),
            ip_checksum.end.eq(l4_start),
            l4_checksum.start.eq(l4_start),
            l4_checksum.end.eq(l4_end),
        ]

        # -- A SYN's MSS, window scale and SACK-permitted options: walked, one a clock -------
        # As model.packet.parse_syn_options with SYN_OPTIONS_WALKED options. In the cycle after
        # a frame's last beat (the whole header is there) one step of the walk is worked out
        # for every option position at once and registered in `step_table`: where the walk
        # goes from there (DONE: past the options, at an EOL, or at a malformed option, where
        # Linux stops and keeps the segment) and whether a valid MSS option (or window scale
        # option, whose shift count is the MSS field's first byte, or SACK-permitted option of
        # length 2, a flag that stays set) starts there. The bounds check is the same for every
        # option, so one of any length is taken only when it ends within the header. The walk
        # then takes exactly SYN_OPTIONS_WALKED clocks, each one select of `pos`'s entry (a 41:1
        # multiplexer of 9 bits: the loop from `pos` to `pos` has no arithmetic), and its
        # result waits in `walk_found` / `walk_complete` for the cycle the frame's record is
        # made (_WRITE_DELAY - 1 clocks after the last beat), until the next walk ends. Walks
        # start only after frames as long as a whole TCP header (every frame that can be a
        # FAST SYN has one), so the next walk starts HEADER_BYTES / 8 + 1 clocks after this one
        # at the earliest, in the cycle of this walk's last step.
        assert 1 + SYN_OPTIONS_WALKED <= -(-self.HEADER_BYTES // 8) + 1
        assert 2 + SYN_OPTIONS_WALKED <= self._WRITE_DELAY - 1
        walk_start = Signal()
        m.d.comb += walk_start.eq(delayed[0][0] & delayed[0][1].last & (frame_length >= self.HEADER_BYTES))
        DONE = self.OPTION_BYTES                # a position at or past every option list's end
        walk_options = Signal(8 * (self.OPTION_BYTES + MSS_OPTION_LENGTH))      # zero past the end
        padded = Cat(options, C(0, 8 * MSS_OPTION_LENGTH))
        doff = from_wire(TcpHeader(), l4_bytes).data_offset
        end = Signal(range(self.OPTION_BYTES + 1))          # option bytes of the frame just ended
        m.d.comb += end.eq(Mux(doff > TCP_HEADER // 4, (doff - TCP_HEADER // 4) * 4, 0))
        step_layout = data.StructLayout({"next": range(DONE + 1), "mss": 1, "ws": 1, "sack": 1})
        step_table = Array(Signal(step_layout, init={"next": DONE}, name=f"walk_step_{p}")
                           for p in range(DONE + 1))        # entry DONE: stay, no option
        with m.If(walk_start):
            m.d.sync += walk_options.eq(padded)
            for p in range(DONE):
                option = from_wire(MssOption(), padded[8 * p:8 * (p + MSS_OPTION_LENGTH)])
                kind, length = option.kind, option.length
                step = step_table[p]
                m.d.sync += step.eq(step_layout.const({"next": DONE}))
                with m.If((p < end) & (kind != TcpOption.EOL)):
                    with m.If(kind == TcpOption.NOP):
                        m.d.sync += step.next.eq(p + 1)
                    with m.Elif((p + 1 < end) & (length >= 2) & (p + length <= end)):
                        m.d.sync += [step.next.eq(p + length),
                                     step.mss.eq((kind == TcpOption.MSS)
                                                 & (length == MSS_OPTION_LENGTH) & option.mss.any()),
                                     step.ws.eq((kind == TcpOption.WSCALE)
                                                & (length == WSCALE_OPTION_LENGTH)),
                                     step.sack.eq((kind == TcpOption.SACK_PERMITTED)
                                                  & (length == SACK_PERMITTED_LENGTH))]
        pos = Signal(range(DONE + 1))
        end_walked = Signal(range(self.OPTION_BYTES + 1))
        walking = Signal()
        walked = Signal(range(SYN_OPTIONS_WALKED))
        found = Signal(_SynOptions())           # the options found so far
        walk_found = Signal.like(found)
        walk_complete = Signal()
        here = step_table[pos]
        value = from_wire(MssOption(), walk_options.bit_select(pos * 8, 8 * MSS_OPTION_LENGTH)).mss
        shift = value[8:]                       # a window scale option's byte after its length
        next_found = Signal.like(found)
        m.d.comb += next_found.eq(found)
        with m.If(here.mss):
            m.d.comb += next_found.mss.eq(value)
        with m.If(here.ws):                     # RFC 7323 2.3: a shift above 14 counts as 14
            m.d.comb += [next_found.wscale_offered.eq(1),
                         next_found.wscale.eq(Mux(shift > WSCALE_MAX, WSCALE_MAX, shift))]
        with m.If(here.sack):
            m.d.comb += next_found.sack_permitted.eq(1)
        with m.If(walking & (walked == SYN_OPTIONS_WALKED - 1)):
            m.d.sync += [walk_found.eq(next_found), walk_complete.eq(here.next >= end_walked)]
        with m.If(walk_start):
            m.d.sync += [pos.eq(0), found.eq(0), end_walked.eq(end), walking.eq(1), walked.eq(0)]
        with m.Elif(walking):
            m.d.sync += [pos.eq(here.next), found.eq(next_found),
                         walked.eq(walked + 1), walking.eq(walked != SYN_OPTIONS_WALKED - 1)]

        # -- Decision, in registered stages from the header of the frame that just ended ------
        # Stage A: the header bytes aligned past the VLAN tag, and the wide comparisons.
        a_valid = Signal()
        a_vlan = Signal()
        a_broadcast = Signal()
        a_mac_ok = Signal()
        a_ipv4 = Signal()
        a_dst_ok = Signal()
        a_frame_length = Signal(16)
        a_ip_available = Signal(16)      # bytes of the frame from the IP header on
        a_l4_length = Signal(16)
        a_ip = Signal(Ipv4Header())
        a_l4 = Signal(len(l4_bytes))
        dst_mac = eth.dst
        m.d.sync += [
            a_valid.eq(delayed[0][0] & delayed[0][1].last),
            a_vlan.eq(vlan),
            a_broadcast.eq(dst_mac.all()),
            a_mac_ok.eq(dst_mac == self.our_mac),
            a_ipv4.eq(eth.ethertype == EtherType.IPV4),     # so a tagged frame is not IPv4 here
            a_dst_ok.eq(ip.dst == self.our_ip),
            a_frame_length.eq(frame_length),
            a_ip_available.eq(frame_length - l3),
            a_l4_length.eq(total_length - IPV4_HEADER),
            a_ip.eq(ip),
            a_l4.eq(l4_bytes),
        ]
        ip_a = a_ip
        tcp = from_wire(TcpHeader(), a_l4)
        udp = from_wire(UdpHeader(), a_l4[:8 * UDP_HEADER])
        is_tcp = (ip_a.protocol == IpProto.TCP)
        is_udp = (ip_a.protocol == IpProto.UDP)
        a_total_length = ip_a.total_length
        data_offset_bytes = Cat(C(0, 2), tcp.data_offset)

        # Stage B: each rule's condition, and the parsed fields.
        rules = {name: Signal(name=f"b_{name}") for name in (
            "runt", "oversize", "wrong_mac", "vlan_runt", "not_ip", "ip_runt", "bad_version",
            "bad_ihl", "bad_ip_length", "not_fast_ip", "tcp_runt", "bad_tcp_offset", "udp_runt",
            "bad_udp_length")}
        b_valid = Signal()
        b_check_l4 = Signal()
        b_fields = Signal(ParsedFields())
        fl = a_frame_length
        m.d.sync += [
            b_valid.eq(a_valid),
            rules["runt"].eq(fl < l3),                                                  # 1
            rules["oversize"].eq(Mux(a_vlan, fl > max_frame(self._mtu, True),
                                     fl > max_frame(self._mtu))),                       # 2
            rules["wrong_mac"].eq(~a_broadcast & ~a_mac_ok),                             # 3
            rules["vlan_runt"].eq(a_vlan & (fl < l3 + VLAN_TAG)),                       # 4
            rules["not_ip"].eq(a_broadcast | ~a_ipv4),                                  # 5, 6
            rules["ip_runt"].eq(fl < l4),                                               # 7
            rules["bad_version"].eq(ip_a.version != IPV4_VERSION),                      # 8
            rules["bad_ihl"].eq(ip_a.ihl < IPV4_HEADER // 4),                           # 9
            rules["bad_ip_length"].eq((a_total_length < Cat(C(0, 2), ip_a.ihl)) |
                                      (a_total_length > a_ip_available)),               # 10
            rules["not_fast_ip"].eq(ip_a.mf | ip_a.fragment_offset.any() |              # 12
                                    (ip_a.ihl != IPV4_HEADER // 4) |                    # 13
                                    ~a_dst_ok | ~(is_tcp | is_udp)),                    # 14, 15
            rules["tcp_runt"].eq(is_tcp & (a_l4_length < TCP_HEADER)),                  # 16
            rules["bad_tcp_offset"].eq(is_tcp & ((tcp.data_offset < TCP_HEADER // 4) |
                                                 (a_l4_length < data_offset_bytes))),   # 17
            rules["udp_runt"].eq(is_udp & (a_l4_length < UDP_HEADER)),                  # 18
            rules["bad_udp_length"].eq(is_udp & (udp.length != a_l4_length)),           # 19
            b_check_l4.eq(is_tcp | udp.checksum.any()),                                 # 20
            b_fields.protocol.eq(ip_a.protocol),
            b_fields.src_ip.eq(ip_a.src),
            b_fields.dst_ip.eq(ip_a.dst),
            b_fields.src_port.eq(tcp.src_port),
            b_fields.dst_port.eq(tcp.dst_port),
            b_fields.payload_offset.eq(l4 + Mux(is_tcp, data_offset_bytes, UDP_HEADER)),
            b_fields.payload_length.eq(a_l4_length - Mux(is_tcp, data_offset_bytes, UDP_HEADER)),
            b_fields.seq.eq(Mux(is_tcp, tcp.seq, 0)),
            b_fields.ack.eq(Mux(is_tcp, tcp.ack, 0)),
            b_fields.flags.eq(Mux(is_tcp, tcp.flags, 0)),
            b_fields.window.eq(Mux(is_tcp, tcp.window, 0)),
            b_fields.data_offset.eq(Mux(is_tcp, tcp.data_offset, 0)),
        ]

        # Stage C: the rules in priority order, split where the checksums come in.
        pending = Signal(_Pending())
        m.d.sync += [
            pending.valid.eq(b_valid),
            pending.early_hit.eq(1),
            pending.early_cause.eq(DropCause.NONE),
            pending.middle_hit.eq(1),
            pending.middle_cause.eq(DropCause.NONE),
            pending.check_l4.eq(b_check_l4),
            pending.fields.eq(b_fields),
        ]
        early = [("runt", Verdict.DROP, DropCause.RUNT),
                 ("oversize", Verdict.DROP, DropCause.OVERSIZE),
                 ("wrong_mac", Verdict.DROP, DropCause.WRONG_MAC),
                 ("vlan_runt", Verdict.DROP, DropCause.RUNT),
                 ("not_ip", Verdict.SLOW, DropCause.NONE),
                 ("ip_runt", Verdict.DROP, DropCause.RUNT),
                 ("bad_version", Verdict.DROP, DropCause.BAD_VERSION),
                 ("bad_ihl", Verdict.DROP, DropCause.BAD_IHL),
                 ("bad_ip_length", Verdict.DROP, DropCause.BAD_IP_LENGTH)]
        # (rule 11, the IP checksum, is applied when its result arrives)
        middle = [("not_fast_ip", Verdict.SLOW, DropCause.NONE),
                  ("tcp_runt", Verdict.DROP, DropCause.RUNT),
                  ("bad_tcp_offset", Verdict.DROP, DropCause.BAD_TCP_OFFSET),
                  ("udp_runt", Verdict.DROP, DropCause.RUNT),
                  ("bad_udp_length", Verdict.DROP, DropCause.BAD_UDP_LENGTH)]
        for group, hit, verdict_field, cause_field in (
                (early, pending.early_hit, pending.early_verdict, pending.early_cause),
                (middle, pending.middle_hit, pending.middle_verdict, pending.middle_cause)):
            with m.If(rules[group[0][0]]):
                m.d.sync += [verdict_field.eq(group[0][1]), cause_field.eq(group[0][2])]
            for name, verdict, cause in group[1:]:
                with m.Elif(rules[name]):
                    m.d.sync += [verdict_field.eq(verdict), cause_field.eq(cause)]
            with m.Else():
                m.d.sync += hit.eq(0)

        # The pseudo-header sum, a registered adder tree from stage A: pairs, then the three
        # partial sums, then the end-around carry folded twice.
        pseudo_pairs = [Signal(17, name=f"pseudo_pair{k}") for k in range(3)]
        m.d.sync += [
            pseudo_pairs[0].eq(ip_a.src[16:] + ip_a.src[:16]),
            pseudo_pairs[1].eq(ip_a.dst[16:] + ip_a.dst[:16]),
            pseudo_pairs[2].eq(Mux(is_tcp, IpProto.TCP, IpProto.UDP) + a_l4_length),
        ]
        pseudo_two = Signal(18)
        pseudo_last = Signal(17)
        m.d.sync += [pseudo_two.eq(pseudo_pairs[0] + pseudo_pairs[1]), pseudo_last.eq(pseudo_pairs[2])]
        pseudo_total = Signal(19)
        m.d.sync += pseudo_total.eq(pseudo_two + pseudo_last)
        pseudo_partial = Signal(17)
        m.d.sync += pseudo_partial.eq(pseudo_total[:16] + pseudo_total[16:])
        pseudo = Signal(16)           # never 0: the protocol word is not
        m.d.sync += pseudo.eq(pseudo_partial[:16] + pseudo_partial[16])
        pseudo_stages = 5

        # -- Wait for the checksums ----------------------------------------------------------
        # Stage A is registered in the cycle the checksum units take the frame's last beat;
        # their results come Checksum.LATENCY cycles later.
        waiting = _delay(m, pending, Checksum.LATENCY - 2, "pending")
        pseudo_waiting = _delay(m, pseudo, Checksum.LATENCY - pseudo_stages, "pseudo")

        # Checked: both checksum verdicts registered with the pending record. The L4 sum plus
        # the pseudo-header sum is 0xFFFF when the L4 sum is the pseudo-header sum's one's
        # complement negation, ~pseudo (or 0 or 0xFFFF when that is 0, as both stand for zero).
        checked = Signal(_Pending())
        ip_ok = Signal()
        l4_ok = Signal()
        l4_sum = l4_checksum.o.payload.sum
        m.d.sync += [
            checked.eq(waiting),
            ip_ok.eq(ip_checksum.o.payload.ok),
            l4_ok.eq((l4_sum == ~pseudo_waiting) | (l4_sum.all() & pseudo_waiting.all())),
        ]

        checked_syn = (checked.fields.flags & TcpFlag.SYN).any()
        record = Signal(VerdictRecord())
        record_valid = Signal()
        m.d.sync += [record_valid.eq(checked.valid), record.eq(0)]
        with m.If(checked.early_hit):
            m.d.sync += [record.verdict.eq(checked.early_verdict), record.cause.eq(checked.early_cause)]
        with m.Elif(~ip_ok):                                                           # 11
            m.d.sync += [record.verdict.eq(Verdict.DROP), record.cause.eq(DropCause.BAD_IP_CHECKSUM)]
        with m.Elif(checked.middle_hit):
            m.d.sync += [record.verdict.eq(checked.middle_verdict), record.cause.eq(checked.middle_cause)]
        with m.Elif(checked.check_l4 & ~l4_ok):                                        # 20
            m.d.sync += [record.verdict.eq(Verdict.DROP), record.cause.eq(DropCause.BAD_L4_CHECKSUM)]
        with m.Elif(checked_syn & ~walk_complete):                                     # 21
            m.d.sync += record.verdict.eq(Verdict.SLOW)
        with m.Else():                                                                 # 22
            m.d.sync += [record.verdict.eq(Verdict.FAST), record.fields.eq(checked.fields)]
            with m.If(checked_syn):
                m.d.sync += [record.fields[name].eq(walk_found[name]) for name, _ in _SynOptions()]

        # -- Verdict queue and counters ------------------------------------------------------
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=len(record.as_value()),
                                                           depth=self.QUEUE_DEPTH)
        # Frames not yet counted in `queue.level`: those whose last beat was accepted in the
        # last WRITE_DELAY cycles, and one more accepted in this cycle.
        in_flight = self._WRITE_DELAY + 1
        m.d.comb += [
            queue.w_en.eq(record_valid),
            queue.w_data.eq(record),
            self.i.ready.eq(queue.level < self.QUEUE_DEPTH - in_flight + 1),
        ]
        wiring.connect(m, queue.r_stream, wiring.flipped(self.verdict))

        with m.If(record_valid):
            for verdict in Verdict:
                counter = self.verdict_counts[verdict.value]
                with m.If((record.verdict == verdict.value) & ~counter.all()):
                    m.d.sync += counter.eq(counter + 1)
            for cause in CLASSIFIER_CAUSES:
                counter = self.drop_counts[cause.value]
                with m.If((record.cause == cause.value) & ~counter.all()):
                    m.d.sync += counter.eq(counter + 1)
        return m


def _delay(m, value, cycles, name):
    """`value` delayed by `cycles` registers (at least 0)."""
    assert cycles >= 0, (name, cycles)
    for index in range(cycles):
        stage = Signal.like(value, name=f"{name}{index}")
        m.d.sync += stage.eq(value)
        value = stage
    return value
