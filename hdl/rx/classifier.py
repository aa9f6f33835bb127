"""Receive classifier: one FAST / SLOW / DROP verdict per Ethernet frame, as model/classify.py."""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from model.classify import MTU, SYN_OPTIONS_WALKED, Verdict, max_frame
from model.drops import CLASSIFIER_CAUSES, DropCause
from model.protocol import (ETH_HEADER, IPV4_HEADER, IPV4_VERSION, MAC_BYTES, MSS_OPTION_LENGTH,
                            SACK_PERMITTED_LENGTH, TCP_HEADER, UDP_HEADER, VLAN_TAG, WSCALE_MAX,
                            WSCALE_OPTION_LENGTH, EtherType, IpProto, TcpOption)
from hdl.checksum import Checksum, ones_add
from hdl.layouts import FrameBeat, check_data_width
from hdl.wire import EthernetHeader, Ipv4Header, MssOption, TcpHeader, UdpHeader, from_wire

__all__ = ["Verdict", "DropCause", "ParsedFields", "FlowKey", "VerdictRecord", "Classifier"]


class ParsedFields(data.StructLayout):
    """Fields of a FAST frame, as ``model.classify.ParsedFields`` (zero for SLOW and DROP)."""

    def __init__(self):
        super().__init__({
            "protocol": 8, "src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16,
            "seq": 32, "ack": 32, "flags": 8, "window": 16, "data_offset": 4,
            "payload_offset": 16, "payload_length": 16, "mss": 16,
            "wscale_offered": 1, "wscale": 4, "sack_permitted": 1,
        })


class FlowKey(data.StructLayout):
    """A frame's flow as its IPv4 and L4 header bytes say (no rule applied): what the socket
    table is asked while the frame still streams in. Meaningful only for a frame whose verdict
    is FAST (it then equals that verdict's fields); any bytes for other frames."""

    def __init__(self):
        super().__init__({"protocol": 8, "src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16})


class _SynOptions(data.StructLayout):
    """A SYN's options as its walk has found them so far, named as in :class:`ParsedFields`
    (which takes them whole when the walk ends)."""

    def __init__(self):
        super().__init__({"mss": 16, "wscale_offered": 1, "wscale": 4, "sack_permitted": 1})


class _OptionByte(data.StructLayout):
    """A TCP option byte decoded as it is captured, so that each step of a SYN's option walk
    is a LUT of these: as a length, its bits 0-2 and its bits 3-7 one-hot (``high`` is 0 past
    39, longer than any option can be); as a kind, whether it starts an option with a length
    (not EOL or NOP); and whether it is non-zero (an MSS field's byte)."""

    def __init__(self):
        super().__init__({"low": 8, "high": 5, "option": 1, "nonzero": 1})

    @staticmethod
    def equals(code, value):
        """`code`'s byte is `value` (0 to 39)."""
        return code.low[value % 8] & code.high[value // 8]


class VerdictRecord(data.StructLayout):
    """The classifier's output for one frame."""

    def __init__(self):
        super().__init__({"verdict": Verdict, "cause": DropCause, "fields": ParsedFields()})


class _Pending(data.StructLayout):
    """A frame's verdict while its checksums are computed.

    ``early`` is decided before the IP checksum matters (rules 1-10), ``middle`` between the
    IP and the L4 checksum (rules 12-19); rules 21 (with a SYN's option walk) and 22 after
    both. ``syn``: a SYN whose options are walked; ``long``: that, or a frame of at most
    ``Classifier.SHORT_FRAME_BEATS`` beats (its verdict waits as long as a SYN's).
    """

    def __init__(self):
        super().__init__({
            "valid": 1, "early_hit": 1, "early_verdict": Verdict, "early_cause": DropCause,
            "middle_hit": 1, "middle_verdict": Verdict, "middle_cause": DropCause,
            "check_l4": 1, "syn": 1, "long": 1, "fields": ParsedFields(),
        })


class _Settled(data.StructLayout):
    """A frame's verdict the clock before its checksums come, with all but those applied:
    ``verdict`` / ``cause`` if both are good (rules 1-10, 12-19, or FAST), whether rule 11
    (``check_ip``: no earlier rule applies) and rule 20 (``check_l4``: none of rules 1-19 does,
    and the segment has a checksum) may change it."""

    def __init__(self):
        super().__init__({
            "valid": 1, "verdict": Verdict, "cause": DropCause, "check_ip": 1, "check_l4": 1,
            "syn": 1, "long": 1, "fields": ParsedFields(),
        })


class _Decided(data.StructLayout):
    """A verdict before the SYN option walk's rule 21, and whether its frame is such a SYN."""

    def __init__(self):
        super().__init__({"valid": 1, "verdict": Verdict, "cause": DropCause, "syn": 1})


class Classifier(wiring.Component):
    """Classifies each received frame as FAST, SLOW or DROP (with a cause), one beat per clock.

    The classifier observes the frame stream (the frame bytes are buffered elsewhere) and
    gives every frame exactly one entry on ``verdict``, in frame order, following the rules
    of ``model/classify.py``. It takes back-to-back frames with no idle cycle between them,
    keeps ``i.ready`` high while the verdict consumer keeps up, and lowers it only when its
    verdict queue could otherwise overflow, so no verdict is ever lost. Any frame, of any
    length down to one byte, yields a verdict and leaves the classifier ready for the next.

    Checksums are verified with two :class:`~hdl.checksum.Checksum` units (IP header; TCP/UDP
    segment) fed the beats as they come. Their byte ranges are registered a clock after the
    header fields they come from are captured, which is before the first byte a range must
    tell apart: the IP header's end and the segment's start (14 + 4 IHL, counted as 34 below
    the smallest IHL, whose frames rule 9 drops) and the segment's end are needed from byte
    34 on. The pseudo-header sum is the segment unit's ``initial``, added up from the
    header in four registered stages after the last beat while the unit finishes its sum.
    The rules are decided in registered stages (aligned header fields and wide comparisons;
    each rule's condition; the rules in priority order) while the checksums are computed, so
    that no path holds more than one comparison or carry chain and a few LUT levels.

    The verdict is decided in the clock the checksums come and registered for the verdict
    queue then, except for a SYN whose options are walked: its verdict waits for the walk
    (:attr:`LONG_LATENCY`), and so that no verdict overtakes it, so does that of a frame of at
    most :attr:`SHORT_FRAME_BEATS` beats (a runt; any longer frame ends late enough).

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
    key : ``Out(stream.Signature(FlowKey()))``
        One entry per frame, in frame order, before its verdict: the flow fields of its header
        (:class:`FlowKey`), :attr:`KEY_LATENCY` cycles after the beat holding the destination
        port is accepted (after the last beat, for a frame that ends sooner). So the socket
        lookup of a frame overlaps the rest of the frame and its checksum verdict.
    verdict : ``Out(stream.Signature(VerdictRecord()))``
        One record per frame: ``verdict`` (:class:`Verdict`), ``cause`` (:class:`DropCause`,
        ``NONE`` unless DROP) and ``fields`` (:class:`ParsedFields`, zero unless FAST).
        On an empty queue a frame's record appears :attr:`LATENCY` cycles after its last beat,
        :attr:`LONG_LATENCY` for a TCP SYN with a whole TCP header (byte 23 is 6, byte 47 has
        the SYN bit, 54 bytes or more) and for a frame of at most :attr:`SHORT_FRAME_BEATS`
        beats.
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
    #: Clocks a SYN's verdict waits after the checksums for its option walk, which starts the
    #: clock after the last beat and takes SYN_OPTIONS_WALKED steps and a register.
    _LONG_STAGES = 1 + SYN_OPTIONS_WALKED + 1 - Checksum.LATENCY
    #: Frames of at most this many beats are given their verdict as late as a walked SYN, so
    #: that none overtakes the SYN's (a longer frame after a SYN has its verdict written after
    #: the SYN's; one after such a short frame, after the short frame's).
    SHORT_FRAME_BEATS = _LONG_STAGES
    #: Cycles from the cycle accepting a frame's last beat to the latest cycle its verdict is
    #: written into the queue (a SYN's): the checksum units' latency, the walk's end, and the
    #: record's register.
    _WRITE_DELAY = Checksum.LATENCY + _LONG_STAGES + 1
    #: Verdict queue depth: room for every frame in flight (``_WRITE_DELAY + 2``, `i.ready`
    #: being registered) and a few more, so `i.ready` stays high while the sink keeps up.
    QUEUE_DEPTH = 15
    #: Cycles from the cycle accepting a frame's last beat to its verdict on an empty queue:
    #: decided in the clock the checksums come, registered, and the queue adds 2.
    LATENCY = Checksum.LATENCY + 3
    #: The same for a walked SYN and a frame of at most :attr:`SHORT_FRAME_BEATS` beats.
    LONG_LATENCY = LATENCY + _LONG_STAGES
    #: Frame bytes up to the end of the L4 destination port: the flow key's last byte.
    KEY_BYTES = ETH_HEADER + IPV4_HEADER + 4
    #: Key queue depth: room for the keys not yet counted when `i.ready` is registered (3)
    #: and a few more; its reader (the dispatcher) takes a key as soon as it can keep the
    #: lookup's result until the frame's verdict.
    KEY_QUEUE_DEPTH = 8
    #: Cycles from the cycle accepting a frame's key beat to its key on an empty queue: the key
    #: is written from the captured header a clock later, and the queue adds 2.
    KEY_LATENCY = 1 + 2

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
            "key": Out(stream.Signature(FlowKey())),
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
        option_codes = [Signal(_OptionByte(), name=f"option_code{n}") for n in range(self.OPTION_BYTES)]
        header_beats = -(-captured_bytes // lanes)
        slot = Signal(header_beats, init=1)        # one-hot: which captured beat comes next
        beats = Signal(16 - lane_bits)             # beats of the frame so far; stops at 32 KiB
        frame_length = Signal(16)                  # length of the frame whose last beat passed

        keep_count = Signal(lane_bits + 1)
        for lane in range(lanes):
            with m.If(beat.keep[lane]):
                m.d.comb += keep_count.eq(lane + 1)

        lane_codes = [Signal(_OptionByte(), name=f"lane{lane}_code") for lane in range(lanes)]
        for lane, code in enumerate(lane_codes):
            lane_byte = beat.data[8 * lane:8 * lane + 8]
            m.d.comb += [
                code.low.eq(Cat(lane_byte[:3] == n for n in range(8))),
                code.high.eq(Cat(lane_byte[3:] == n for n in range(len(code.high)))),
                code.option.eq(lane_byte[1:].any()),            # not EOL (0) or NOP (1)
                code.nonzero.eq(lane_byte.any()),
            ]

        with m.If(accept):
            for index in range(header_beats):
                for lane in range(min(lanes, captured_bytes - index * lanes)):
                    byte = index * lanes + lane
                    with m.If(slot[index] & beat.keep[lane]):
                        m.d.sync += captured[8 * byte:8 * byte + 8].eq(beat.data[8 * lane:8 * lane + 8])
                        if byte >= self.HEADER_BYTES:
                            m.d.sync += option_codes[byte - self.HEADER_BYTES].eq(lane_codes[lane])
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
        l4_header = from_wire(TcpHeader(), l4_bytes)     # (a UDP header's ports are there too)
        total_length = ip.total_length

        # -- Flow key: one per frame, from the header as soon as its ports are captured -------
        # (or after the last beat of a frame too short to have them), so that the socket lookup
        # runs while the rest of the frame streams in and its checksums are verified. The key
        # is read from the captured bytes in the cycle after its beat: the next frame's first
        # beat overwrites them a cycle later at the soonest.
        key_beat = (self.KEY_BYTES - 1) // lanes
        assert key_beat < header_beats
        key_passed = Signal()                   # this frame's key beat has been accepted
        key_taken = Signal()                    # the cycle after a frame's key beat (or last)
        m.d.sync += key_taken.eq(accept & (slot[key_beat] | (beat.last & ~key_passed)))
        with m.If(accept):
            with m.If(beat.last):
                m.d.sync += key_passed.eq(0)
            with m.Elif(slot[key_beat]):
                m.d.sync += key_passed.eq(1)
        m.submodules.key_queue = key_queue = fifo.SyncFIFOBuffered(width=FlowKey().size,
                                                                   depth=self.KEY_QUEUE_DEPTH)
        key = Signal(FlowKey())
        m.d.comb += [key.protocol.eq(ip.protocol), key.src_ip.eq(ip.src), key.dst_ip.eq(ip.dst),
                     key.src_port.eq(l4_header.src_port), key.dst_port.eq(l4_header.dst_port),
                     key_queue.w_en.eq(key_taken), key_queue.w_data.eq(key)]
        wiring.connect(m, key_queue.r_stream, wiring.flipped(self.key))

        # -- Checksum units: the beats as they come, byte ranges registered -----------------
        # Each range is registered a clock after the header field it comes from is captured
        # (the IHL from byte 14, the total length from byte 17), a beat or more before the
        # first byte whose side of it matters: byte 34, where the smallest IP header ends and
        # its segment starts (a frame with a smaller IHL, whose bounds are taken as 34's, is
        # dropped by rule 9 before its checksums count). Until then the registers may hold the
        # previous frame's bounds: its segment's start is 34 or beyond, so no byte before
        # counts for the segment, whatever its end, and all count for the IP header.
        m.submodules.ip_checksum = ip_checksum = Checksum(self._data_width)
        m.submodules.l4_checksum = l4_checksum = Checksum(self._data_width)
        l4_start = Signal(16)
        l4_end = Signal(16)
        assert l3 == 4 * 3 + 2 and l4 == l3 + 4 * (IPV4_HEADER // 4)
        for field_last in (l3, l3 + 3):         # the IHL's byte; the total length's last
            assert field_last // lanes + 2 <= l4 // lanes, "a range comes too late"
        m.d.sync += [
            # l3 + IHL * 4, with l3 = 4 * 3 + 2
            l4_start.eq(Mux(ip.ihl < IPV4_HEADER // 4, l4, Cat(C(2, 2), ip.ihl + 3))),
            l4_end.eq(l3 + total_length),
        ]
        for unit in (ip_checksum, l4_checksum):
            m.d.comb += [
                unit.i.valid.eq(accept),
                unit.i.payload.eq(beat),
                unit.o.ready.eq(1),
            ]
        m.d.comb += [
            ip_checksum.start.eq(l3),
            ip_checksum.end.eq(l4_start),
            ip_checksum.initial.eq(0),
            l4_checksum.start.eq(l4_start),
            l4_checksum.end.eq(l4_end),
        ]

        # -- A SYN's MSS, window scale and SACK-permitted options: walked, one a clock -------
        # As model.packet.parse_syn_options with SYN_OPTIONS_WALKED options. In the cycle after
        # a frame's last beat (the whole header is there) the step of the walk from every option
        # position p is worked out at once: `jumps`, the position it goes to, one-hot (none
        # when the walk ends there: at an EOL, at a malformed option, where Linux stops and
        # keeps the segment, or at the options' end), and whether a valid MSS option (or window
        # scale option, whose shift count is the MSS field's first byte, or SACK-permitted
        # option of length 2, a flag that stays set) starts there. The options' end is a
        # multiple of 4, so "q is before it" is one LUT of the data offset, and an option of
        # length L jumps to p + L only if that is before the end: one comparison of L with the
        # constant q - p is its bounds check too. The walk takes step 0 in that cycle and
        # registers the others in `table`; then `pos` (one-hot, 0 once the walk has ended)
        # takes one step a clock, each of its bits an AND-OR of `pos` with one column of the
        # table (the loop from `pos` to `pos` has no binary select and no arithmetic), and
        # what the step finds is registered in `hit_parts` and merged into `found` a clock later.
        # SYN_OPTIONS_WALKED clocks after the walk starts, its result waits in `walk_found` /
        # `walk_complete` (the walk ended within its steps) for the cycle the frame's verdict is
        # decided (_WRITE_DELAY - 1 clocks after the last beat), until the next walk ends. Walks
        # start only after frames as long as a whole TCP header (every frame that can be a
        # FAST SYN has one), so the next walk starts as many clocks after this one as such a
        # frame has beats at the earliest: in the cycle this walk's result is taken at the
        # soonest, and the table, `walk_options` and `walk_shifts` are read for the last time
        # before it.
        assert SYN_OPTIONS_WALKED <= -(-self.HEADER_BYTES // lanes)
        assert self._LONG_STAGES >= 0
        # The frame is as long as the header when its last beat comes after the beat with the
        # header's last byte, or is that beat and holds that byte (as `frame_length` counts).
        header_beat, header_lane = divmod(self.HEADER_BYTES - 1, lanes)
        has_header_end = beat.keep[header_lane:].any() if lanes > 1 else C(1, 1)
        walk_start = Signal()                   # the cycle after such a frame's last beat
        m.d.sync += walk_start.eq(accept & beat.last &
                                  ((beats > header_beat) | ((beats == header_beat) & has_header_end)))
        walk_options = Signal(8 * (self.OPTION_BYTES + MSS_OPTION_LENGTH))      # zero past the end
        padded = Cat(options, C(0, 8 * MSS_OPTION_LENGTH))
        # The options' 4-byte words, as a thermometer (word k is there when the data offset is
        # above 5 + k), registered: the data offset comes before the last beat of a frame that
        # is walked.
        assert (l4 + 12) // lanes < header_beat
        doff = l4_header.data_offset
        option_words = Signal(self.OPTION_BYTES // 4)
        m.d.sync += option_words.eq(Cat(doff > TCP_HEADER // 4 + k for k in range(len(option_words))))

        def before_end(q):
            """Option byte `q` is within the options of the frame just ended."""
            return option_words[q // 4] if q < self.OPTION_BYTES else C(0, 1)

        past_end = data.View(_OptionByte(), Value.cast(_OptionByte().const({"low": 1, "high": 1})))
        codes = option_codes + [past_end] * MSS_OPTION_LENGTH         # zero bytes past the end
        step_layout = data.StructLayout({"jumps": self.OPTION_BYTES, "mss": 1, "ws": 1, "sack": 1})
        steps = [Signal(step_layout, name=f"walk_step_{p}") for p in range(self.OPTION_BYTES)]
        table = [Signal(step_layout, name=f"walk_table_{p}") for p in range(self.OPTION_BYTES)]
        for p, step in enumerate(steps):
            kind, length = codes[p], codes[p + 1]

            def jump(q):
                if q <= p:
                    return C(0, 1)
                if q == p + 1:
                    return before_end(q) & _OptionByte.equals(kind, TcpOption.NOP)
                return before_end(q) & kind.option & _OptionByte.equals(length, q - p)

            def option_is(option_kind, option_length):
                """An option of this kind and length starts at `p` and ends within the options."""
                return (_OptionByte.equals(kind, option_kind) & _OptionByte.equals(length, option_length)
                        & before_end(p + option_length - 1))

            m.d.comb += [
                step.jumps.eq(Cat(jump(q) for q in range(self.OPTION_BYTES))),
                step.mss.eq(option_is(TcpOption.MSS, MSS_OPTION_LENGTH)
                            & (codes[p + 2].nonzero | codes[p + 3].nonzero)),
                step.ws.eq(option_is(TcpOption.WSCALE, WSCALE_OPTION_LENGTH)),
                step.sack.eq(option_is(TcpOption.SACK_PERMITTED, SACK_PERMITTED_LENGTH)),
            ]
        with m.If(walk_start):
            m.d.sync += walk_options.eq(padded)
            m.d.sync += [entry.eq(step) for entry, step in zip(table, steps)]

        pos = Signal(self.OPTION_BYTES)         # one-hot; 0 once the walk has ended
        next_pos = Cat(_one_hot_select(pos, [entry.jumps[q] for entry in table])
                       for q in range(self.OPTION_BYTES))
        # What the step finds: the MSS field, and the window scale option's shift count (its
        # byte after the length; RFC 7323 2.3: one above 14 counts as 14), clamped at the start.
        # It is selected in groups of 8 positions, registered, and the groups ORed as it is
        # merged, so that neither clock has all 40 positions' AND-OR.
        hit_layout = data.StructLayout({"mss": 1, "ws": 1, "sack": 1, "value": 16, "wscale": 4})
        walk_shifts = Signal(data.ArrayLayout(4, self.OPTION_BYTES + MSS_OPTION_LENGTH))
        clamped_shifts = [Mux(shift > WSCALE_MAX, WSCALE_MAX, shift)
                          for shift in (padded[8 * n:8 * n + 8] for n in range(len(walk_shifts)))]
        with m.If(walk_start):
            m.d.sync += [stored.eq(shift) for stored, shift in zip(walk_shifts, clamped_shifts)]
        options_at = [from_wire(MssOption(), walk_options[8 * p:8 * (p + MSS_OPTION_LENGTH)])
                      for p in range(self.OPTION_BYTES)]
        group = 8
        hit_parts = [Signal(hit_layout, name=f"hit_part{n}") for n in range(-(-self.OPTION_BYTES // group))]
        with m.If(walk_start):
            m.d.sync += [
                pos.eq(steps[0].jumps),
                hit_parts[0].mss.eq(steps[0].mss), hit_parts[0].ws.eq(steps[0].ws),
                hit_parts[0].sack.eq(steps[0].sack),
                hit_parts[0].value.eq(from_wire(MssOption(), padded[:8 * MSS_OPTION_LENGTH]).mss),
                hit_parts[0].wscale.eq(clamped_shifts[2]),    # position 0's shift byte
                *[part.eq(0) for part in hit_parts[1:]],
            ]
        with m.Else():
            m.d.sync += pos.eq(next_pos)
            for n, part in enumerate(hit_parts):
                at = slice(n * group, (n + 1) * group)
                here = pos[at]
                m.d.sync += [
                    part.mss.eq(_one_hot_select(here, [entry.mss for entry in table[at]])),
                    part.ws.eq(_one_hot_select(here, [entry.ws for entry in table[at]])),
                    part.sack.eq(_one_hot_select(here, [entry.sack for entry in table[at]])),
                    part.value.eq(_one_hot_select(here, [option.mss for option in options_at[at]])),
                    part.wscale.eq(_one_hot_select(here, list(walk_shifts)[at.start + 2:at.stop + 2])),
                ]
        hit = Signal(hit_layout)
        m.d.comb += hit.eq(Cat(Cat(part.as_value()[bit] for part in hit_parts).any()
                               for bit in range(hit_layout.size)))

        found = Signal(_SynOptions())           # the options found before `hit`'s
        merged = Signal(_SynOptions())
        m.d.comb += [
            merged.mss.eq(Mux(hit.mss, hit.value, found.mss)),
            merged.wscale_offered.eq(found.wscale_offered | hit.ws),
            merged.wscale.eq(Mux(hit.ws, hit.wscale, found.wscale)),
            merged.sack_permitted.eq(found.sack_permitted | hit.sack),
        ]
        m.d.sync += found.eq(Mux(walk_start, 0, merged.as_value()))
        walk_stage = Signal(SYN_OPTIONS_WALKED)    # one bit a clock since the walk started
        m.d.sync += walk_stage.eq(Cat(walk_start, walk_stage[:-1]))
        walk_found = Signal.like(found)
        walk_complete = Signal()
        with m.If(walk_stage[-1]):
            m.d.sync += [walk_found.eq(merged), walk_complete.eq(~pos.any())]

        # -- Decision, in registered stages from the header of the frame that just ended ------
        ended = Signal()    # the cycle after a frame's last beat
        short = Signal()    # and that frame has at most SHORT_FRAME_BEATS beats
        m.d.sync += [ended.eq(accept & beat.last),
                     short.eq(accept & beat.last & (beats < self.SHORT_FRAME_BEATS))]

        # Stage A: the header bytes aligned past the VLAN tag, and the wide comparisons.
        a_valid = Signal()
        a_syn = Signal()                 # a TCP SYN whose options are walked
        a_long = Signal()
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
        is_tcp = Signal(name="a_tcp")    # registered: each selects many of stage B's fields
        is_udp = Signal(name="a_udp")
        dst_mac = eth.dst
        # The destination MAC matters only for frames longer than an Ethernet header (rule 1
        # drops the others first), whose last beat comes after it: it is compared with ours a
        # clock ahead, in parts, and the parts' results are ANDed in stage A.
        assert (MAC_BYTES - 1) // lanes < (l3 - 1) // lanes
        walked_syn = Signal()
        m.d.comb += walked_syn.eq(walk_start & (ip.protocol == IpProto.TCP) &
                                  l4_header.flags.syn)
        mac_parts = Signal(3)
        m.d.sync += mac_parts.eq(Cat(dst_mac[16 * n:16 * n + 16] == self.our_mac[16 * n:16 * n + 16]
                                     for n in range(len(mac_parts))))
        m.d.sync += [
            a_valid.eq(ended),
            a_syn.eq(walked_syn),
            a_long.eq(short | walked_syn),
            a_vlan.eq(vlan),
            a_broadcast.eq(dst_mac.all()),
            a_mac_ok.eq(mac_parts.all()),
            a_ipv4.eq(eth.ethertype == EtherType.IPV4),     # so a tagged frame is not IPv4 here
            a_dst_ok.eq(ip.dst == self.our_ip),
            a_frame_length.eq(frame_length),
            a_ip_available.eq(frame_length - l3),
            a_l4_length.eq(total_length - IPV4_HEADER),
            a_ip.eq(ip),
            a_l4.eq(l4_bytes),
            is_tcp.eq(ip.protocol == IpProto.TCP),
            is_udp.eq(ip.protocol == IpProto.UDP),
        ]
        ip_a = a_ip
        tcp = from_wire(TcpHeader(), a_l4)
        udp = from_wire(UdpHeader(), a_l4[:8 * UDP_HEADER])
        a_total_length = ip_a.total_length
        data_offset_bytes = Cat(C(0, 2), tcp.data_offset)

        # Stage B: each rule's condition, and the parsed fields.
        rules = {name: Signal(name=f"b_{name}") for name in (
            "runt", "oversize", "wrong_mac", "vlan_runt", "not_ip", "ip_runt", "bad_version",
            "bad_ihl", "bad_ip_length", "not_fast_ip", "tcp_runt", "bad_tcp_offset", "udp_runt",
            "bad_udp_length")}
        b_valid = Signal()
        b_syn = Signal()
        b_long = Signal()
        b_check_l4 = Signal()
        b_fields = Signal(ParsedFields())
        fl = a_frame_length
        m.d.sync += [
            b_valid.eq(a_valid),
            b_syn.eq(a_syn),
            b_long.eq(a_long),
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
            pending.syn.eq(b_syn),
            pending.long.eq(b_long),
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

        # The pseudo-header sum, the segment checksum unit's `initial`, which it reads
        # Checksum.LATENCY - 1 clocks after the last beat: a registered adder tree from the
        # header (there from the clock after the last beat): pairs, the three partial sums, and
        # the end-around carry folded. The protocol word and the segment length (the total
        # length less the 20-byte header, as only such frames are FAST) are one addition: a
        # FAST frame's total length is 40 or more, so neither wraps.
        pseudo_pairs = [Signal(17, name=f"pseudo_pair{k}") for k in range(3)]
        header_tcp = ip.protocol == IpProto.TCP
        m.d.sync += [
            pseudo_pairs[0].eq(ip.src[16:] + ip.src[:16]),
            pseudo_pairs[1].eq(ip.dst[16:] + ip.dst[:16]),
            pseudo_pairs[2].eq(total_length + Mux(header_tcp, IpProto.TCP - IPV4_HEADER,
                                                  IpProto.UDP - IPV4_HEADER)),
        ]
        pseudo_two = Signal(18)
        pseudo_last = Signal(17)
        m.d.sync += [pseudo_two.eq(pseudo_pairs[0] + pseudo_pairs[1]), pseudo_last.eq(pseudo_pairs[2])]
        pseudo_total = Signal(19)
        m.d.sync += pseudo_total.eq(pseudo_two + pseudo_last)
        pseudo = Signal(16)           # never 0: the protocol word is not
        m.d.sync += pseudo.eq(ones_add(m, pseudo_total[:16], pseudo_total[16:], "pseudo"))
        pseudo_stages = 4
        assert 1 + pseudo_stages == Checksum.LATENCY - 1
        m.d.comb += l4_checksum.initial.eq(pseudo)

        # -- The checksums, and the verdict --------------------------------------------------
        # The pending record (there 4 clocks after the last beat) waits for the checksum units'
        # results, which come Checksum.LATENCY clocks after the last beat; the clock before,
        # all but the checksums' two rules are settled, so that in that clock each of the
        # verdict's bits is a LUT or two of registers, and the verdict is registered for the
        # queue then, unless it is long.
        waiting = _delay(m, pending, Checksum.LATENCY - 5, "pending")
        settled = Signal(_Settled())
        m.d.sync += [
            settled.valid.eq(waiting.valid),
            settled.syn.eq(waiting.syn),
            settled.long.eq(waiting.long),
            settled.fields.eq(waiting.fields),
            settled.check_ip.eq(~waiting.early_hit),
            settled.check_l4.eq(~waiting.early_hit & ~waiting.middle_hit & waiting.check_l4),
            settled.verdict.eq(Verdict.FAST),
            settled.cause.eq(DropCause.NONE),
        ]
        with m.If(waiting.early_hit):
            m.d.sync += [settled.verdict.eq(waiting.early_verdict), settled.cause.eq(waiting.early_cause)]
        with m.Elif(waiting.middle_hit):
            m.d.sync += [settled.verdict.eq(waiting.middle_verdict), settled.cause.eq(waiting.middle_cause)]
        bad_ip = settled.check_ip & ~ip_checksum.o.payload.ok                          # 11
        bad_l4 = settled.check_l4 & ~l4_checksum.o.payload.ok                          # 20
        decided = Signal(_Decided())
        m.d.comb += [
            decided.valid.eq(settled.valid),
            decided.syn.eq(settled.syn),
            decided.verdict.eq(Mux(bad_ip | bad_l4, Verdict.DROP, settled.verdict)),
            decided.cause.eq(Mux(bad_ip, DropCause.BAD_IP_CHECKSUM,
                                 Mux(bad_l4, DropCause.BAD_L4_CHECKSUM, settled.cause))),
        ]

        # A long verdict waits _LONG_STAGES clocks in `long_line`; a walked SYN's fields wait in
        # `syn_fields` (walked SYNs are a TCP header's beats apart, more than the wait; the
        # short frames that wait with one are never FAST, so their fields are not needed). It
        # leaves in the clock its walk's result is there: rule 21, and the options found.
        long_line = [Signal(_Decided(), name=f"long_line{n}") for n in range(self._LONG_STAGES)]
        m.d.sync += [stage.eq(before) for stage, before in
                     zip(long_line, [Mux(settled.long, decided.as_value(), 0)] + long_line[:-1])]
        syn_fields = Signal(ParsedFields())
        with m.If(settled.valid & settled.syn):
            m.d.sync += syn_fields.eq(settled.fields)
        leaving = long_line[-1] if long_line else decided
        long_fields = Signal(ParsedFields())
        m.d.comb += long_fields.eq(syn_fields)
        with m.If(leaving.syn):
            m.d.comb += [long_fields[name].eq(walk_found[name]) for name, _ in _SynOptions()]
        long_walk_failed = leaving.syn & ~walk_complete                                # 21
        long_verdict = Mux(long_walk_failed & (leaving.verdict == Verdict.FAST), Verdict.SLOW,
                           leaving.verdict)
        # (otherwise rule 22: FAST)

        # -- Verdict queue and counters ------------------------------------------------------
        # The record is registered before the queue, and its fields are queued only if it is
        # FAST (zero otherwise): a register's compare to the queue's memory. (The verdict
        # written straight into the queue, or the fields zeroed by the checksums' results before
        # the register, each a late signal to every field bit, held the block to 173-178 MHz.)
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=VerdictRecord().size,
                                                           depth=self.QUEUE_DEPTH)
        record = Signal(VerdictRecord())
        record_valid = Signal()
        m.d.sync += [
            record_valid.eq(leaving.valid | (decided.valid & ~settled.long)),
            record.verdict.eq(Mux(leaving.valid, long_verdict, decided.verdict)),
            record.cause.eq(Mux(leaving.valid, leaving.cause, decided.cause)),
            record.fields.eq(Mux(leaving.valid, long_fields.as_value(), settled.fields.as_value())),
        ]
        queued = Signal(VerdictRecord())
        m.d.comb += [
            queued.verdict.eq(record.verdict),
            queued.cause.eq(record.cause),
            queued.fields.eq(Mux(record.verdict == Verdict.FAST, record.fields.as_value(), 0)),
            queue.w_en.eq(record_valid),
            queue.w_data.eq(queued),
        ]
        # `i.ready` is registered (it enables every capture flip-flop): high in a cycle when the
        # queue had room, a cycle before, for every frame its level did not count yet: those
        # whose last beat was accepted in the WRITE_DELAY cycles before that, in that cycle,
        # and in this one. The same for the key queue, whose keys are written a cycle after
        # their beat.
        in_flight = self._WRITE_DELAY + 2
        keys_in_flight = 1 + 2
        room = Signal(init=1)
        m.d.sync += room.eq((queue.level <= self.QUEUE_DEPTH - in_flight) &
                            (key_queue.level <= self.KEY_QUEUE_DEPTH - keys_in_flight))
        m.d.comb += self.i.ready.eq(room)
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


def _one_hot_select(select, values):
    """The one of `values` whose bit of one-hot `select` is set (0 if none), as an AND-OR:
    no binary select of many inputs, whose select bits would fan out to all of them."""
    values = [Value.cast(value) for value in values]
    width = max(len(value) for value in values)
    return Cat(Cat(select[index] & value[bit] for index, value in enumerate(values)
                   if bit < len(value)).any() for bit in range(width))
