"""Receive classifier: one FAST / SLOW / DROP verdict per Ethernet frame, as model/classify.py."""

from amaranth import *
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from model.classify import DropCause, Verdict
from .checksum import Checksum
from .layouts import FrameBeat, check_data_width

__all__ = ["Verdict", "DropCause", "ParsedFields", "VerdictRecord", "Classifier"]


def _bytes(n):
    return data.ArrayLayout(8, n)


class EthernetHeader(data.StructLayout):
    """Ethernet header followed by the two bytes after it (the 802.1Q TCI when tagged)."""

    def __init__(self):
        super().__init__({"dst": _bytes(6), "src": _bytes(6), "ethertype": _bytes(2),
                          "tci": _bytes(2), "inner_ethertype": _bytes(2)})


class IPv4Header(data.StructLayout):
    def __init__(self):
        super().__init__({
            "ihl": 4, "version": 4, "tos": 8, "total_length": _bytes(2), "id": _bytes(2),
            "fragment_high": 5, "mf": 1, "df": 1, "reserved": 1, "fragment_low": 8,
            "ttl": 8, "protocol": 8, "checksum": _bytes(2), "src": _bytes(4), "dst": _bytes(4),
        })


class TCPHeader(data.StructLayout):
    def __init__(self):
        super().__init__({
            "src_port": _bytes(2), "dst_port": _bytes(2), "seq": _bytes(4), "ack": _bytes(4),
            "reserved": 4, "data_offset": 4, "flags": 8, "window": _bytes(2),
            "checksum": _bytes(2), "urgent": _bytes(2),
        })


class UDPHeader(data.StructLayout):
    def __init__(self):
        super().__init__({"src_port": _bytes(2), "dst_port": _bytes(2), "length": _bytes(2),
                          "checksum": _bytes(2)})


class ParsedFields(data.StructLayout):
    """Fields of a FAST frame, as ``model.classify.ParsedFields`` (zero for SLOW and DROP)."""

    def __init__(self):
        super().__init__({
            "protocol": 8, "src_ip": 32, "dst_ip": 32, "src_port": 16, "dst_port": 16,
            "seq": 32, "ack": 32, "flags": 8, "window": 16, "data_offset": 4,
            "payload_offset": 16, "payload_length": 16,
        })


class VerdictRecord(data.StructLayout):
    """The classifier's output for one frame."""

    def __init__(self):
        super().__init__({"verdict": Verdict, "cause": DropCause, "fields": ParsedFields()})


class _Pending(data.StructLayout):
    """A frame's verdict while its checksums are computed.

    ``early`` is decided before the IP checksum matters (rules 1-10), ``middle`` between the
    IP and the L4 checksum (rules 12-19), ``late`` after both (21-22).
    """

    def __init__(self):
        super().__init__({
            "valid": 1, "early_hit": 1, "early_verdict": Verdict, "early_cause": DropCause,
            "middle_hit": 1, "middle_verdict": Verdict, "middle_cause": DropCause,
            "check_l4": 1, "late_verdict": Verdict, "fields": ParsedFields(),
        })


def _be(view):
    """A big-endian (network order) byte array as an integer value."""
    return Cat(*reversed([view[k] for k in range(len(view))]))


def _constant(value, width):
    """A `width`-bit constant for a multiplexer input: unlike arithmetic operands, multiplexer
    inputs keep their full width in the Verilog, so the result can be used at `width` bits."""
    return C(value, width)


class Classifier(wiring.Component):
    """Classifies each received frame as FAST, SLOW or DROP (with a cause), one beat per clock.

    The classifier observes the frame stream (the frame bytes are buffered elsewhere) and
    gives every frame exactly one entry on ``verdict``, in frame order, following the rules
    of ``model/classify.py``. It takes back-to-back frames with no idle cycle between them,
    keeps ``i.ready`` high while the verdict consumer keeps up, and lowers it only when its
    verdict queue could otherwise overflow, so no verdict is ever lost. Any frame, of any
    length down to one byte, yields a verdict and leaves the classifier ready for the next.

    Checksums are verified with two :class:`~hdl.checksum.Checksum` units (IP header; TCP/UDP
    segment with its pseudo-header), fed one beat after the header bytes are captured, so
    that their byte ranges are known when the bytes arrive.

    Parameters
    ----------
    data_width : int
        Width of the frame stream in bits, 8 or 64.
    counter_width : int
        Width of each statistics counter. Counters saturate at their maximum.

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
    drop_counts : ``Out(data.ArrayLayout(counter_width, len(DropCause)))``
        Frames dropped for each cause, indexed by :class:`DropCause` (entry ``NONE`` is 0);
        they add up to ``verdict_counts[Verdict.DROP]``.
    """

    #: Frame bytes captured for parsing: Ethernet, 802.1Q tag, IPv4 and TCP headers without options.
    HEADER_BYTES = 14 + 4 + 20 + 20
    #: Verdict queue depth.
    QUEUE_DEPTH = 8
    #: Cycles from the cycle accepting a frame's last beat to its verdict on an empty queue.
    LATENCY = 1 + Checksum.LATENCY + 2

    def __init__(self, data_width, counter_width=32):
        self._data_width = check_data_width(data_width)
        if not isinstance(counter_width, int) or isinstance(counter_width, bool) or counter_width < 1:
            raise TypeError(f"Counter width must be a positive integer, not {counter_width!r}")
        self._counter_width = counter_width
        super().__init__({
            "i": In(stream.Signature(FrameBeat(data_width))),
            "our_mac": In(48),
            "our_ip": In(32),
            "verdict": Out(stream.Signature(VerdictRecord())),
            "verdict_counts": Out(data.ArrayLayout(counter_width, len(Verdict))),
            "drop_counts": Out(data.ArrayLayout(counter_width, len(DropCause))),
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
        header = Signal(8 * self.HEADER_BYTES)
        header_beats = -(-self.HEADER_BYTES // lanes)
        slot = Signal(header_beats, init=1)        # one-hot: which header beat comes next
        beats = Signal(16 - lane_bits)             # beats of the frame so far; stops at 32 KiB
        frame_length = Signal(16)                  # length of the frame whose last beat passed

        keep_count = Signal(lane_bits + 1)
        for lane in range(lanes):
            with m.If(beat.keep[lane]):
                m.d.comb += keep_count.eq(lane + 1)

        with m.If(accept):
            for index in range(header_beats):
                for lane in range(min(lanes, self.HEADER_BYTES - index * lanes)):
                    byte = index * lanes + lane
                    with m.If(slot[index] & beat.keep[lane]):
                        m.d.sync += header[8 * byte:8 * byte + 8].eq(beat.data[8 * lane:8 * lane + 8])
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

        # The same beats, one cycle later, for the checksum units.
        delayed = Signal(FrameBeat(self._data_width))
        delayed_valid = Signal()
        m.d.sync += delayed_valid.eq(accept)
        with m.If(accept):
            m.d.sync += delayed.eq(beat)

        # -- Header views (valid for the bytes the frame has) ----------------------------------
        eth = data.View(EthernetHeader(), header[:8 * 18])
        ethertype = _be(eth.ethertype)
        vlan = (ethertype == 0x8100)
        ip = data.View(IPv4Header(), Mux(vlan, header[8 * 18:8 * 38], header[8 * 14:8 * 34]))
        l4_bytes = Mux(vlan, header[8 * 38:8 * 58], header[8 * 34:8 * 54])
        tcp = data.View(TCPHeader(), l4_bytes)
        udp = data.View(UDPHeader(), l4_bytes[:64])

        dst_mac = _be(eth.dst)
        broadcast = dst_mac.all()
        l3_ethertype = Mux(vlan, _be(eth.inner_ethertype), ethertype)
        total_length = _be(ip.total_length)
        ihl_bytes = Cat(C(0, 2), ip.ihl)
        # Bytes of the frame from the IP header on (the frame holds the IP header here).
        ip_available = Mux(vlan, (frame_length - 18)[:len(frame_length)], (frame_length - 14)[:len(frame_length)])
        l4_length = (total_length - 20)[:len(total_length)]
        is_tcp = (ip.protocol == 6)
        is_udp = (ip.protocol == 17)
        data_offset_bytes = Cat(C(0, 2), tcp.data_offset)
        l4_header = Signal(16)
        m.d.comb += l4_header.eq(Mux(is_tcp, data_offset_bytes, _constant(8, 16)))

        # -- Checksum units ------------------------------------------------------------------
        m.submodules.ip_checksum = ip_checksum = Checksum(self._data_width)
        m.submodules.l4_checksum = l4_checksum = Checksum(self._data_width)
        l3_start = Signal(16)
        l4_start = Signal(16)
        m.d.comb += [
            l3_start.eq(Mux(vlan, _constant(18, 16), _constant(14, 16))),
            # l3_start + IHL * 4, with l3_start = 4 * (3 or 4) + 2
            l4_start.eq(Cat(C(2, 2), ip.ihl + Mux(vlan, _constant(4, 4), _constant(3, 4)))),
        ]
        pseudo = _ones_complement_total(m, [
            _be(ip.src)[16:], _be(ip.src)[:16], _be(ip.dst)[16:], _be(ip.dst)[:16],
            Mux(is_tcp, _constant(6, 16), _constant(17, 16)), l4_length])
        for unit in (ip_checksum, l4_checksum):
            m.d.comb += [
                unit.i.valid.eq(delayed_valid),
                unit.i.payload.eq(delayed),
                unit.o.ready.eq(1),
            ]
        m.d.comb += [
            ip_checksum.start.eq(l3_start),
            ip_checksum.end.eq(l4_start),
            ip_checksum.initial.eq(0),
            l4_checksum.start.eq(l4_start),
            l4_checksum.end.eq((l3_start + total_length)[:16]),
            l4_checksum.initial.eq(pseudo),
        ]

        # -- Decision before the checksums (the frame's last beat is in `header` now) ---------
        pending = Signal(_Pending())
        m.d.comb += [
            pending.valid.eq(delayed_valid & delayed.last),
            pending.early_hit.eq(1),
        ]

        with m.If((frame_length < 14)):                                          # 1
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.RUNT)]
        with m.Elif(Mux(vlan, ~(frame_length < 1523), ~(frame_length < 1519))):  # 2
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.OVERSIZE)]
        with m.Elif(~broadcast & (dst_mac != self.our_mac)):                            # 3
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.WRONG_MAC)]
        with m.Elif(vlan & (frame_length < 18)):                                   # 4
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.RUNT)]
        with m.Elif(broadcast | ~(l3_ethertype == 0x0800)):                        # 5, 6
            m.d.comb += pending.early_verdict.eq(Verdict.SLOW)
        with m.Elif(Mux(vlan, (frame_length < 38), (frame_length < 34))):     # 7
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.RUNT)]
        with m.Elif(~(ip.version == 4)):                                           # 8
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.BAD_VERSION)]
        with m.Elif((ip.ihl < 5)):                                                 # 9
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.BAD_IHL)]
        with m.Elif((~total_length[6:].any() & (total_length[:6] < ihl_bytes)) |
                    (total_length > ip_available)):                                     # 10
            m.d.comb += [pending.early_verdict.eq(Verdict.DROP), pending.early_cause.eq(DropCause.BAD_IP_LENGTH)]
        with m.Else():
            m.d.comb += pending.early_hit.eq(0)

        # (rule 11, the IP checksum, is applied when its result arrives)
        m.d.comb += pending.middle_hit.eq(1)
        with m.If(ip.mf | ip.fragment_high.any() | ip.fragment_low.any() |             # 12
                  ~(ip.ihl == 5) |                                                 # 13
                  (_be(ip.dst) != self.our_ip) |                                        # 14
                  ~(is_tcp | is_udp)):                                                  # 15
            m.d.comb += pending.middle_verdict.eq(Verdict.SLOW)
        with m.Elif(is_tcp & (l4_length < 20)):                                    # 16
            m.d.comb += [pending.middle_verdict.eq(Verdict.DROP), pending.middle_cause.eq(DropCause.RUNT)]
        with m.Elif(is_tcp & ((tcp.data_offset < 5) |
                              (~l4_length[6:].any() & (l4_length[:6] < data_offset_bytes)))):  # 17
            m.d.comb += [pending.middle_verdict.eq(Verdict.DROP), pending.middle_cause.eq(DropCause.BAD_TCP_OFFSET)]
        with m.Elif(is_udp & (l4_length < 8)):                                     # 18
            m.d.comb += [pending.middle_verdict.eq(Verdict.DROP), pending.middle_cause.eq(DropCause.RUNT)]
        with m.Elif(is_udp & (_be(udp.length) != l4_length)):                           # 19
            m.d.comb += [pending.middle_verdict.eq(Verdict.DROP), pending.middle_cause.eq(DropCause.BAD_UDP_LENGTH)]
        with m.Else():
            m.d.comb += pending.middle_hit.eq(0)

        m.d.comb += [
            pending.check_l4.eq(is_tcp | _be(udp.checksum).any()),                      # 20
            pending.late_verdict.eq(Mux(is_tcp & tcp.flags[1], Verdict.SLOW, Verdict.FAST)),  # 21, 22
            pending.fields.protocol.eq(ip.protocol),
            pending.fields.src_ip.eq(_be(ip.src)),
            pending.fields.dst_ip.eq(_be(ip.dst)),
            pending.fields.src_port.eq(_be(tcp.src_port)),
            pending.fields.dst_port.eq(_be(tcp.dst_port)),
            pending.fields.payload_offset.eq(
                Mux(vlan, _constant(38, 16), _constant(34, 16)) + l4_header),
            pending.fields.payload_length.eq(l4_length - l4_header),
        ]
        with m.If(is_tcp):
            m.d.comb += [
                pending.fields.seq.eq(_be(tcp.seq)),
                pending.fields.ack.eq(_be(tcp.ack)),
                pending.fields.flags.eq(tcp.flags),
                pending.fields.window.eq(_be(tcp.window)),
                pending.fields.data_offset.eq(tcp.data_offset),
            ]

        # -- Wait for the checksums ----------------------------------------------------------
        stages = [pending]
        for index in range(Checksum.LATENCY):
            stage = Signal(_Pending(), name=f"pending{index}")
            m.d.sync += stage.eq(stages[-1])
            stages.append(stage)
        waiting = stages[-1]

        record = Signal(VerdictRecord())
        with m.If(waiting.early_hit):
            m.d.comb += [record.verdict.eq(waiting.early_verdict), record.cause.eq(waiting.early_cause)]
        with m.Elif(~ip_checksum.o.payload.ok):                                        # 11
            m.d.comb += [record.verdict.eq(Verdict.DROP), record.cause.eq(DropCause.BAD_IP_CHECKSUM)]
        with m.Elif(waiting.middle_hit):
            m.d.comb += [record.verdict.eq(waiting.middle_verdict), record.cause.eq(waiting.middle_cause)]
        with m.Elif(waiting.check_l4 & ~l4_checksum.o.payload.ok):                     # 20
            m.d.comb += [record.verdict.eq(Verdict.DROP), record.cause.eq(DropCause.BAD_L4_CHECKSUM)]
        with m.Else():
            m.d.comb += record.verdict.eq(waiting.late_verdict)
            with m.If(waiting.late_verdict == Verdict.FAST):
                m.d.comb += record.fields.eq(waiting.fields)

        # -- Verdict queue and counters ------------------------------------------------------
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=len(record.as_value()),
                                                           depth=self.QUEUE_DEPTH)
        # Frames not yet counted in `queue.level`: those whose last beat was accepted in the
        # last 1 + Checksum.LATENCY cycles, and one more accepted in this cycle.
        in_flight = 2 + Checksum.LATENCY
        m.d.comb += [
            queue.w_en.eq(waiting.valid),
            queue.w_data.eq(record),
            self.i.ready.eq((queue.level < self.QUEUE_DEPTH - in_flight + 1)),
            self.verdict.valid.eq(queue.r_rdy),
            self.verdict.payload.eq(queue.r_data),
            queue.r_en.eq(self.verdict.ready),
        ]

        with m.If(waiting.valid):
            for verdict in Verdict:
                counter = self.verdict_counts[verdict.value]
                with m.If((record.verdict == verdict.value) & ~counter.all()):
                    m.d.sync += counter.eq(counter + 1)
            for cause in DropCause:
                if cause is DropCause.NONE:
                    continue
                counter = self.drop_counts[cause.value]
                with m.If((record.cause == cause.value) & ~counter.all()):
                    m.d.sync += counter.eq(counter + 1)
        return m


def _ones_complement_total(m, words):
    """One's-complement sum of 16-bit `words` (combinational), folded to 16 bits."""
    total = words[0]
    for index, word in enumerate(words[1:]):
        partial = Signal(17, name=f"pseudo_partial{index}")
        folded = Signal(17, name=f"pseudo_fold{index}")
        m.d.comb += [partial.eq(total + word), folded.eq(partial[:16] + partial[16])]
        total = folded[:16]
    return total
