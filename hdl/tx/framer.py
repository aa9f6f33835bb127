"""Transmit framer: header fields plus a payload in, a complete Ethernet/IPv4/TCP|UDP frame out.

The output is byte for byte what ``model.packet.build_tcp_frame``/``build_udp_frame`` build:
IPv4 without options, DF set, identification 0, TTL 64; UDP; TCP with the options in Linux's
order and layout, the data offset covering them:

* none (data offset 5);
* on a SYN, the MSS option (6); with a framer's ``wscale``, then NOP and the window scale
  option (7); with its ``sack``, the MSS, then two NOPs and SACK-permitted (7), and with both,
  MSS, NOP NOP SACK-permitted, NOP window scale (8);
* with a framer's ``sack``, on any other segment, two NOPs and the SACK option with 1 to 4
  blocks (8, 10, 12, 14);

IP and TCP/UDP checksums filled in; padded with zeros to 60 bytes.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from model.protocol import (ETH_HEADER, ETH_MIN_FRAME, IPV4_HEADER, IPV4_VERSION,
                            MSS_OPTION_LENGTH, SACK_BLOCK_BYTES, SACK_MAX_BLOCKS,
                            SACK_PERMITTED_LENGTH, WSCALE_MAX, WSCALE_OPTION_LENGTH, EtherType,
                            TcpOption)
from hdl.checksum import Checksum, ones_add
from hdl.layouts import FrameBeat, check_data_width
from hdl.wire import (EthernetHeader, Ipv4Header, L4Protocol, MssOption, SackBlock, SackOption,
                      SackPermittedOption, TcpFlags, TcpHeader, UdpHeader, WscaleOption,
                      swap_bytes, to_wire)

__all__ = ["SackBlock", "TxHeader", "TxFramer"]

TTL = 64
MIN_BUFFER_BYTES = 1472        # the largest UDP payload in a 1500-byte IP packet


class TxHeader(data.StructLayout):
    """What varies between transmitted frames, one entry per frame.

    Numbers are plain integers: a MAC address is ``int.from_bytes(mac, "big")`` (its first
    byte on the wire is the most significant), an IPv4 address ``int(IPv4Address(a))``.
    ``seq``, ``ack``, ``flags``, ``window``, ``mss`` and the option fields are ignored for UDP;
    ``mss_option`` adds the 4-byte MSS option (the NIC sets it on SYN only), and after it
    ``sack_permitted_option`` the SACK-permitted option (on a framer built with ``sack``) and
    ``wscale_option`` the window scale option (on a framer built with a ``wscale``, with its
    shift count). ``length`` is the number of payload bytes that follow on the payload stream.

    With `sack_blocks` (a framer built with ``sack`` takes ``SACK_MAX_BLOCKS``), ``sack`` holds
    that many blocks (:class:`SackBlock`, sequence numbers) and ``sack_count`` says how many of
    them, from the first, the frame carries in a SACK option (0: none); it is ignored with
    ``mss_option`` (the NIC sends no SACK blocks on a SYN). Without, the layout has neither
    field, so a NIC that sends no SACK options carries no blocks.
    """

    def __init__(self, sack_blocks=0):
        if (isinstance(sack_blocks, bool) or not isinstance(sack_blocks, int)
                or not 0 <= sack_blocks <= SACK_MAX_BLOCKS):
            raise TypeError(f"SACK blocks must be an integer 0..{SACK_MAX_BLOCKS}, "
                            f"not {sack_blocks!r}")
        sack = {"sack_count": range(sack_blocks + 1),
                "sack": data.ArrayLayout(SackBlock(), sack_blocks)} if sack_blocks else {}
        super().__init__({
            "dst_mac": 48, "src_mac": 48, "src_ip": 32, "dst_ip": 32,
            "protocol": L4Protocol, "src_port": 16, "dst_port": 16,
            "seq": 32, "ack": 32, "flags": TcpFlags(), "window": 16,
            "mss": 16, "mss_option": 1, "wscale_option": 1, "sack_permitted_option": 1,
            "length": 16, **sack,
        })


#: Fixed fields of the options, the fields that are the same in every frame of a kind.
NOPS = {"nop1": TcpOption.NOP.value, "nop2": TcpOption.NOP.value}
MSS_FIXED = {"kind": TcpOption.MSS.value, "length": MSS_OPTION_LENGTH}
WSCALE_FIXED = {"nop": TcpOption.NOP.value, "kind": TcpOption.WSCALE.value,
                "length": WSCALE_OPTION_LENGTH}         # and the shift: the framer's
SACK_PERMITTED_FIXED = {**NOPS, "kind": TcpOption.SACK_PERMITTED.value,
                        "length": SACK_PERMITTED_LENGTH}
SACK_FIXED = {**NOPS, "kind": TcpOption.SACK.value}     # and the length: 2 + 8 per block
#: The IPv4 header's fields that are the same in every frame (DF set, identification 0).
IP_FIXED = {"version": IPV4_VERSION, "ihl": IPV4_HEADER // 4, "df": 1, "ttl": TTL}


def _tcp(*options):
    """The L4 headers of a TCP kind: the TCP header, its data offset covering `options` (each
    ``(layout, fixed fields)``), then those."""
    words, rest = divmod(TcpHeader.BYTES + sum(layout.size // 8 for layout, _ in options), 4)
    assert not rest, options
    return [(TcpHeader(), {"data_offset": words}), *options]


#: The L4 headers of each kind of frame, with their fixed fields.
L4_HEADERS = {
    "udp": [(UdpHeader(), {})],
    "tcp": _tcp(),
    "tcp_mss": _tcp((MssOption(), MSS_FIXED)),
}


def l4_headers(wscale=None, sack=False):
    """The L4 headers of each kind of frame (`L4_HEADERS`), and the kinds a framer built with
    a `wscale` or `sack` adds: the window scale option of that shift count after the MSS
    option (the one thing of it that could vary, the shift, is the NIC's policy: fixed at
    build time); the SACK-permitted option after the MSS option (before the window scale, if
    both); and the SACK option with each number of blocks, whose option length differs."""
    kinds = dict(L4_HEADERS)
    mss = (MssOption(), MSS_FIXED)
    wscale_option = (WscaleOption(), {**WSCALE_FIXED, "shift": wscale})
    sack_permitted = (SackPermittedOption(), SACK_PERMITTED_FIXED)
    if wscale is not None:
        kinds["tcp_mss_wscale"] = _tcp(mss, wscale_option)
    if sack:
        kinds["tcp_mss_sack_permitted"] = _tcp(mss, sack_permitted)
        if wscale is not None:
            kinds["tcp_mss_sack_permitted_wscale"] = _tcp(mss, sack_permitted, wscale_option)
        for blocks in range(1, SACK_MAX_BLOCKS + 1):
            kinds[f"tcp_sack{blocks}"] = _tcp(
                (SackOption(), {**SACK_FIXED, "length": 2 + SACK_BLOCK_BYTES * blocks}),
                *[(SackBlock(), {})] * blocks)
    return kinds


def header_bytes(wscale=None, sack=False):
    """Header bytes before the payload, per kind of frame: 42, 54, 58 (and 62 with the
    window scale option; with SACK, 62 and 66 for SYNs, 66, 74, 82 and 90 for 1..4 blocks)."""
    return {kind: ETH_HEADER + IPV4_HEADER + sum(layout.size // 8 for layout, _ in headers)
            for kind, headers in l4_headers(wscale, sack).items()}


def _word_sum(layout, fields):
    """The sum of the 16-bit words of a header (`layout`) holding `fields` and zeros."""
    value = layout.const(fields).as_value().value
    return sum((value >> 16 * k) & 0xFFFF for k in range(layout.size // 16))


def _ones_sum_tree(m, words, name, pair_masks=()):
    """One's-complement sum of 16-bit `words`, one registered adder level per cycle.

    `pair_masks` maps the index of a pair of words (words ``2k`` and ``2k + 1``) to a signal
    that counts the pair when high, as 0 when low: the select goes into the LUT after the
    first adder, which picks its end-around carry, and not in front of the adder.
    Returns the sum and the number of cycles it takes to follow a change of `words`.
    """
    pair_masks = dict(pair_masks)
    level, depth = list(words), 0
    while len(level) > 1:
        depth += 1
        nodes = []
        for k in range(0, len(level), 2):
            node = Signal(16, name=f"{name}{depth}_{k // 2}")
            pair = level[k:k + 2]
            total = (ones_add(m, *pair, f"{name}{depth}_{k // 2}_add")
                     if len(pair) == 2 else pair[0])
            if depth == 1 and k // 2 in pair_masks:
                total = Mux(pair_masks[k // 2], total, 0)
            m.d.sync += node.eq(total)
            nodes.append(node)
        level = nodes
    return level[0], depth


class _Fifo(Elaboratable):
    """:class:`~amaranth.lib.fifo.SyncFIFOBuffered` of ``depth + 1`` entries cycle for cycle
    (``depth`` in memory, one in its read data register), but written only with ``w_rdy``
    (``w_en`` is the write itself), with every flag a flip-flop, and its memory marked
    ``no_rw_check``. A read never meets a write to its entry, and without the mark Yosys puts
    a collision bypass (an address compare, a register and a LUT) after the memory's output,
    where a block RAM's clock-to-output of 4.3 ns on an ECP5 leaves time for nothing but the
    wire to a flip-flop. (Yosys honours the mark when it merges a register into an
    asynchronous read port, so the read port is one, and the read data register a reset-less
    one.)"""

    def __init__(self, width, depth):
        self.depth = depth
        self.w_data = Signal(width)
        self.w_en = Signal()
        self.w_rdy = Signal()
        self.r_data = Signal(width, reset_less=True)
        self.r_en = Signal()
        self.r_rdy = Signal()
        self._storage = Memory(shape=width, depth=depth, init=[], attrs={"no_rw_check": 1})

    def elaborate(self, platform):
        m = Module()
        m.submodules.storage = storage = self._storage
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        depth = self.depth
        level = Signal(range(depth + 1))      # entries in memory
        full = Signal()                       # `level` is `depth`
        stored = Signal()                     # `level` is not 0
        produce = Signal(range(depth))
        consume = Signal(range(depth))
        do_read = Signal()                    # memory to the read data register
        m.d.comb += [
            self.w_rdy.eq(~full),
            do_read.eq(stored & (~self.r_rdy | self.r_en)),
            w_port.addr.eq(produce),
            w_port.data.eq(self.w_data),
            w_port.en.eq(self.w_en),
            r_port.addr.eq(consume),
        ]
        with m.If(do_read):
            m.d.sync += self.r_data.eq(r_port.data)
        if depth & (depth - 1):
            step = lambda pointer: Mux(pointer == depth - 1, 0, pointer + 1)
        else:
            step = lambda pointer: pointer + 1
        with m.If(self.w_en):
            m.d.sync += produce.eq(step(produce))
        with m.If(do_read):
            m.d.sync += consume.eq(step(consume))
        # The flags from the level before the change, which the write and read only select.
        grows = self.w_en & ~do_read
        shrinks = do_read & ~self.w_en
        last_but_one = Signal()
        only_one = Signal()
        m.d.comb += [last_but_one.eq(level == depth - 1), only_one.eq(level == 1)]
        m.d.sync += [
            level.eq(level + Cat(grows | shrinks, shrinks.replicate(len(level) - 1))),
            full.eq(Mux(grows, last_but_one, full & ~shrinks)),
            stored.eq(Mux(shrinks, ~only_one, stored | grows)),
        ]
        with m.If(do_read):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        return m


class _Intake(enum.Enum, shape=2):
    """What the intake side waits for (an enum register switched with ``m.Switch``, as in
    :mod:`hdl.tables.socket_table`: a misspelt state is an AttributeError at elaboration)."""
    WAIT_HEADER = 0     # a header entry
    WAIT_SUM = 1        # the payload's sum (its payload fully in the FIFO)
    WAIT_SEND = 2       # the sums to settle, then the output side to take the frame


class _Output(enum.Enum, shape=2):
    """What the output side waits for."""
    WAIT_FRAME = 0      # a frame ready on the intake side
    SEND_HEADER = 1     # the header-only beats to go out
    SEND_PAYLOAD = 2    # the last beat to go out


class TxFramer(wiring.Component):
    """Frame builder with IP and TCP/UDP checksums, pipelined across frames: store-and-forward,
    or cut-through for the TCP frames whose payload sum is given (``given_sums``).

    Each frame is one :attr:`header` entry and ``length`` bytes on :attr:`payload`. The
    payload is written into a block-RAM FIFO of ``buffer_bytes`` while the
    :class:`~hdl.checksum.Checksum` unit sums it, independently of the headers: each
    payload's sum goes into a queue of :attr:`SUM_QUEUE_DEPTH` entries, so payloads stream in
    ahead of their headers (as far as the FIFO and the queue allow) and the checksum unit's
    pipeline latency is hidden behind the frame before. Meanwhile the header words and the
    pseudo-header are summed in a short registered adder tree. Once the payload sum is in,
    the frame is ready to send, and the output side emits the header (from a shift register)
    and then the payload, realigned behind the header's last bytes by a residual register
    (the header ends in lane 6 or 2 of a 64-bit beat), then zero padding to 60 bytes. The
    option words that are the same in every frame of a kind are constants summed at build
    time; the SACK blocks' edges are summed as header words, those beyond ``sack_count`` as 0.

    The two sides overlap: while frame N is sent, the header of frame N+1 is taken (from the
    cycle after frame N starts) and its payload buffered and summed, so frames of every size
    go out back to back at one beat per clock when the inputs keep up. A frame is ready
    ``Checksum.LATENCY`` + 2 (the sum queue) + :attr:`SUM_SETTLE` + 1 cycles after its last
    payload beat leaves the input register when its header is already waiting, and at least
    :attr:`header_settle` + 1 after its header is taken (:attr:`given_settle` + 1 for a TCP
    frame of a framer with given sums at 64 bits, whose IP and TCP checksums are put in as it
    goes out); its first beat is on :attr:`o` in the next cycle if the output side is idle (13
    cycles from the last payload beat's handshake on :attr:`payload` to the first frame
    beat's ``valid``). Every input is registered before any
    logic (block RAM read ports may drive them), and so is the output.

    For the clock, the flags the output side's load enables need are registered a cycle ahead
    (one LUT follows ``o.ready``); the FIFO's block RAM output goes into a register that takes
    nothing else (its clock-to-output and that wire are the block's slowest path on an ECP5),
    then into two beats of read buffer, read ahead whatever ``o.ready`` does; and the header
    fields a frame's kind leaves out are zeroed as the header is taken, not before an adder.

    Parameters
    ----------
    data_width : int
        Width of the payload and frame streams in bits, 8 or 64.
    buffer_bytes : int
        Capacity of the payload FIFO, a multiple of 8 and at least 1472 (one maximum UDP
        payload); the default holds 2.8 maximum TCP payloads and maps to two ECP5 DP16KD at
        either width. Every frame's ``length`` must be at most ``buffer_bytes``.
    wscale : int or None
        The shift count of the window scale option a header's ``wscale_option`` adds
        (0..14); None: the framer has no such option and ignores ``wscale_option``.
    sack : bool
        Whether the framer sends the SACK options (RFC 2018): SACK-permitted on the headers
        that ask for it with the MSS option, and the SACK blocks a header's ``sack_count``
        says; False: it ignores ``sack_permitted_option`` and its headers have no blocks.

    Members
    -------
    header : ``In(stream.Signature(TxHeader()))``
        One entry per frame, in frame order; ``TxHeader(SACK_MAX_BLOCKS)`` with ``sack``.
    payload : ``In(stream.Signature(FrameBeat(data_width)))``
        Exactly ``length`` bytes per frame, as a frame stream (``last`` on its final beat);
        nothing for a frame with ``length`` 0.
    given_sums : bool
        Whether a TCP frame's payload sum comes on :attr:`given_sum` (a send ring's
        ``read_sum``), so that the frame goes out as soon as its header sums are final and its
        payload sum is taken, its payload following through the FIFO as it comes (cut-through:
        the frame stalls between beats if a payload beat is late); a UDP frame's payload is
        stored and summed as without. At 64 bits the frame starts in the clock after its sum
        is taken: the TCP checksum, in the frame's 7th beat, is worked out from copies taken
        with the frame and put in as that beat is loaded (`TCP_CHECKSUM_OFFSET`).
    o : ``Out(stream.Signature(FrameBeat(data_width)))``
        The frames, at least 60 bytes each, without FCS.
    given_sum : ``In(stream.Signature(16))``
        With ``given_sums``: the ones' complement sum of each TCP frame's payload (RFC 1071),
        one per TCP header with a ``length`` above 0, in frame order.
    """

    #: Cycles after a header is taken until the sums that follow it are final, in a framer
    #: built without ``sack`` (:attr:`header_settle` is a framer's own).
    HEADER_SETTLE = 6
    #: Cycles after the payload sum is in until the L4 checksum that follows it is final.
    SUM_SETTLE = 2
    #: Registered stages from a header to its frame's lengths and last beat's lanes, which
    #: the output side loads as it takes the frame.
    LENGTH_STAGES = 1
    #: Payload sums computed ahead of their headers.
    SUM_QUEUE_DEPTH = 4
    #: The byte offset of a TCP frame's checksum, its high byte first: at 64 bits in beat 6,
    #: lanes 2 and 3, which a given-sum frame has put in as it goes out.
    TCP_CHECKSUM_OFFSET = (ETH_HEADER + IPV4_HEADER
                           + (TcpHeader().size - TcpHeader()["checksum"].offset
                              - TcpHeader()["checksum"].width) // 8)
    #: The byte offset of the IP header's checksum: at 64 bits in beat 3, lanes 0 and 1, which
    #: a given-sum frame has put in as it goes out.
    IP_CHECKSUM_OFFSET = (ETH_HEADER + (Ipv4Header().size - Ipv4Header()["checksum"].offset
                                        - Ipv4Header()["checksum"].width) // 8)

    def __init__(self, data_width, *, buffer_bytes=4096, wscale=None, sack=False,
                 given_sums=False):
        self._data_width = check_data_width(data_width)
        if (not isinstance(buffer_bytes, int) or buffer_bytes < MIN_BUFFER_BYTES
                or buffer_bytes % 8):
            raise TypeError(f"Buffer size must be a multiple of 8 bytes and at least "
                            f"{MIN_BUFFER_BYTES}, not {buffer_bytes!r}")
        self._buffer_bytes = buffer_bytes
        if wscale is not None and (not isinstance(wscale, int) or not 0 <= wscale <= WSCALE_MAX):
            raise TypeError(f"Window scale must be None or 0..{WSCALE_MAX}, not {wscale!r}")
        self._wscale = wscale
        if not isinstance(sack, bool):
            raise TypeError(f"SACK must be True or False, not {sack!r}")
        self._sack = sack
        if not isinstance(given_sums, bool):
            raise TypeError(f"Given sums must be True or False, not {given_sums!r}")
        self._given_sums = given_sums
        super().__init__({
            "header": In(stream.Signature(TxHeader(SACK_MAX_BLOCKS if sack else 0))),
            "payload": In(stream.Signature(FrameBeat(data_width))),
            **({"given_sum": In(stream.Signature(16))} if given_sums else {}),
            "o": Out(stream.Signature(FrameBeat(data_width))),
        })

    @property
    def data_width(self):
        return self._data_width

    @property
    def buffer_bytes(self):
        return self._buffer_bytes

    @property
    def header_settle(self):
        """Cycles after a header is taken until the sums that follow it are final:
        :attr:`HEADER_SETTLE`, and one more with ``sack``, whose 16 words of SACK block edges
        make the L4 header adder tree one level deeper (``elaborate`` checks it)."""
        return self.HEADER_SETTLE + self._sack

    @property
    def given_settle(self):
        """Cycles after a header is taken until a TCP frame of a framer with given sums at 64
        bits may be taken, its sum there: :attr:`LENGTH_STAGES`, with the IP checksum (3
        adder levels) put in as its 4th beat loads and the TCP checksum (4 adder levels, 5
        with ``sack``, and 2 clocks to the copies' total) as its 7th (``elaborate`` checks
        both)."""
        return self.LENGTH_STAGES + self._sack

    def elaborate(self, platform):
        m = Module()
        width = self._data_width
        lanes = width // 8
        lane_bits = exact_log2(lanes)
        kinds = l4_headers(self._wscale, self._sack)
        header_sizes = header_bytes(self._wscale, self._sack)
        image_bytes = max(header_sizes.values())
        with_wscale = self._wscale is not None

        m.submodules.checksum = checksum = Checksum(width)
        m.submodules.sums = sums = _Fifo(16, self.SUM_QUEUE_DEPTH - 1)
        m.submodules.fifo = fifo = _Fifo(width, self._buffer_bytes // lanes)

        # -- intake: header register, payload into the FIFO and the checksum unit ------------

        # Payload input register.
        in_valid = Signal()
        # (Data registers have no reset: each is loaded before it is used, and on ECP5 a reset
        # with a load enable takes a LUT in front of every flip-flop.)
        in_beat = Signal(FrameBeat(width), reset_less=True)
        in_take = Signal()
        x_take = Signal()         # the output side takes a payload beat
        m.d.comb += self.payload.ready.eq(~in_valid | in_take)
        # (the beat loads without `payload.valid`: one LUT fewer before its 73 enables)
        with m.If(self.payload.ready):
            m.d.sync += [in_valid.eq(self.payload.valid), in_beat.eq(self.payload.payload)]

        hdr = Signal(self.header.payload.shape(), reset_less=True)
        udp = Signal()            # the frame in `hdr` is UDP
        given = Signal()          # its payload's sum comes on `given_sum` (TCP, given sums)
        m.d.comb += given.eq(~udp if self._given_sums else 0)
        # a given-sum frame starts before its TCP checksum is final (64 bits: the checksum is
        # in its 7th beat, 6 clocks after its first at the earliest)
        late_checksum = self._given_sums and width == 64
        checksum_beat, checksum_lane = divmod(self.TCP_CHECKSUM_OFFSET, lanes)
        assert not late_checksum or (checksum_beat, checksum_lane) == (6, 2)
        ip_checksum_beat, ip_checksum_lane = divmod(self.IP_CHECKSUM_OFFSET, lanes)
        assert not late_checksum or (ip_checksum_beat, ip_checksum_lane) == (3, 0)
        udp_length = Signal(16, reset_less=True)    # `hdr.length` for UDP, else 0
        sack_carried = Signal(SACK_MAX_BLOCKS, reset_less=True)  # the frame has `hdr.sack[k]`
        payload_sum = Signal(16)  # the frame's payload sum, once taken (another's before)
        taken = Signal()          # the output side takes the frame described by `hdr`

        # Constants of the frame's kind, registered with the header so that every adder below
        # has operands of equal width.
        kind = Signal(range(len(kinds)), reset_less=True)     # the kind's index in `kinds`
        # protocol, L4 header length (twice for UDP), fixed words
        kind_l4_sum = Signal(16, reset_less=True)
        # fixed IP header words and the IP + L4 header length
        kind_ip_sum = Signal(16, reset_less=True)
        l4_header_bytes = Signal(16, reset_less=True)
        ip_header_bytes = Signal(16, reset_less=True)
        # the offset of the header's last byte less a beat (its low bits: that byte's lane)
        before_header_last = Signal(16, reset_less=True)
        pad_below = Signal(range(ETH_MIN_FRAME), reset_less=True)  # shorter payloads are padded
        # beats of header bytes only, minus 2, and the header bytes after those
        header_rest = Signal(range(image_bytes // lanes), reset_less=True)
        tail_lanes = Signal(range(max(lanes, 2)), name="tail_lanes", reset_less=True)

        def kind_constants(name):
            protocol = L4Protocol.UDP if name == "udp" else L4Protocol.TCP
            total = header_sizes[name]
            l4_bytes = total - ETH_HEADER - IPV4_HEADER
            ip_words = _word_sum(Ipv4Header(), {**IP_FIXED, "protocol": protocol.value,
                                                "total_length": total - ETH_HEADER})
            # the pseudo-header's protocol and L4 header length, the L4 headers' fixed words
            # (the UDP length field holds the UDP header length too)
            l4_words = protocol.value + l4_bytes + sum(_word_sum(layout, fields)
                                                       for layout, fields in kinds[name])
            if protocol == L4Protocol.UDP:
                l4_words += l4_bytes
            assert ip_words < 1 << 16 and l4_words < 1 << 16, (name, ip_words, l4_words)
            return [
                kind.eq(list(kinds).index(name)),
                kind_l4_sum.eq(l4_words),
                kind_ip_sum.eq(ip_words),
                l4_header_bytes.eq(l4_bytes),
                ip_header_bytes.eq(total - ETH_HEADER),
                before_header_last.eq(total - 1 - lanes),
                pad_below.eq(max(0, ETH_MIN_FRAME - total)),
                header_rest.eq(total // lanes - 2),
                tail_lanes.eq(total % lanes),
            ]

        state = Signal(_Intake)
        given_taken = Signal()                  # a given sum is taken
        sum_comes = Signal()                    # the payload's sum is taken, `sum_value`
        sum_value = Signal(16)
        drops = Signal(range(self.SUM_QUEUE_DEPTH + 2))   # queue entries of given-sum frames
        dropping = Signal()
        m.d.comb += dropping.eq(drops != 0)
        waiting_header = Signal(init=1)     # `state` is WAIT_HEADER (one flag for `header.ready`)
        hdr_wait = Signal(range(self.header_settle + 1))  # until the header sums follow `hdr`
        # `hdr` may be replaced: the L4 header sum follows it (`hdr_wait` is at most
        # `free_wait`, header_settle - l4_depth), so the copies of a TCP frame taken before its
        # sums were final have them (registered from the next `hdr_wait`)
        free_wait = 2
        hdr_free = Signal(init=1)
        sum_wait = Signal(range(4))   # ... until the L4 checksum follows `payload_sum`
        # `hdr` and what is derived from it describe a frame and the output side waits for one:
        # registered, from the next values of the states and counts, so that `taken` is one LUT
        offer = Signal()

        def goto(target):
            return [state.eq(target), waiting_header.eq(target == _Intake.WAIT_HEADER)]
        # Payload beats between the input register and the output side: the FIFO's depth and
        # the two read registers after it, as many as a SyncFIFOBuffered and one register held
        # (its `w_rdy` was `payload_room`, cycle for cycle). The read buffer below holds more,
        # so the FIFO itself never fills.
        payload_held = Signal(range(fifo.depth + 3))
        payload_room = Signal(init=1)
        m.d.sync += payload_held.eq(payload_held + in_take - x_take)
        with m.If(in_take & ~x_take):
            m.d.sync += payload_room.eq(payload_held != fifo.depth + 1)
        with m.If(x_take & ~in_take):
            m.d.sync += payload_room.eq(1)
        # Payload beats go into the FIFO and the checksum unit whenever both can take them,
        # and each payload's sum into the sum queue, whatever the header side is doing.
        m.d.comb += [
            checksum.start.eq(0),
            checksum.end.eq(0xFFFF),
            checksum.initial.eq(0),
            checksum.i.payload.eq(in_beat),
            fifo.w_data.eq(in_beat.data &
                           Cat(*(in_beat.keep[lane].replicate(8) for lane in range(lanes)))),
            in_take.eq(in_valid & payload_room & checksum.i.ready),
            fifo.w_en.eq(in_take),
            checksum.i.valid.eq(in_take),
            sums.w_en.eq(checksum.o.valid & sums.w_rdy),
            sums.w_data.eq(checksum.o.payload.sum),
            checksum.o.ready.eq(sums.w_rdy),
        ]
        with m.If(hdr_wait.any()):
            m.d.sync += hdr_wait.eq(hdr_wait - 1)
        m.d.sync += hdr_free.eq(hdr_wait <= free_wait + 1)
        with m.If(sum_wait.any()):
            m.d.sync += sum_wait.eq(sum_wait - 1)
        with m.Switch(state):
            with m.Case(_Intake.WAIT_HEADER, _Intake.WAIT_SEND):
                with m.If(taken):
                    m.d.sync += goto(_Intake.WAIT_HEADER)
                # A new header is taken from the cycle after the previous frame is (or, after
                # a TCP frame taken early, once its sums are final): its registers' enables
                # follow two flip-flops, not the output side's `taken` and `o.ready`.
                m.d.comb += self.header.ready.eq(waiting_header & hdr_free
                                                 if late_checksum else waiting_header)
                # The header's registers load whenever a header may be taken, valid or not
                # (nothing reads them until one is; the frame before's checksum copies stop
                # as they load): one LUT fewer before their enables.
                with m.If(self.header.ready):
                    fields = self.header.payload
                    is_udp = fields.protocol == L4Protocol.UDP
                    # the fields the frame's kind leaves out are loaded as 0 (its image has
                    # none of them), so that the header sums add them without a select; the
                    # SACK blocks, 256 bits, are selected by a flag each after the first adder
                    is_tcp = ~is_udp
                    with_mss_option = is_tcp & fields.mss_option
                    carried = is_tcp & ~fields.mss_option    # it carries its SACK blocks
                    m.d.sync += [
                        hdr.eq(fields),
                        hdr.seq.eq(Mux(is_tcp, fields.seq, 0)),
                        hdr.ack.eq(Mux(is_tcp, fields.ack, 0)),
                        hdr.flags.eq(Mux(is_tcp, fields.flags.as_value(), 0)),
                        hdr.window.eq(Mux(is_tcp, fields.window, 0)),
                        hdr.mss.eq(Mux(with_mss_option, fields.mss, 0)),
                        *[sack_carried[index].eq(carried & (fields.sack_count > index))
                          for index in range(SACK_MAX_BLOCKS if self._sack else 0)],
                        udp_length.eq(Mux(is_udp, fields.length, 0)),
                        udp.eq(is_udp),
                    ]
                    # The frame's kind: the first whose condition holds, else plain TCP.
                    with_mss = fields.mss_option
                    choices = [("udp", is_udp)]
                    if with_wscale and self._sack:
                        choices.append(("tcp_mss_sack_permitted_wscale",
                                        with_mss & fields.sack_permitted_option
                                        & fields.wscale_option))
                    if with_wscale:
                        choices.append(("tcp_mss_wscale", with_mss & fields.wscale_option))
                    if self._sack:
                        choices.append(("tcp_mss_sack_permitted",
                                        with_mss & fields.sack_permitted_option))
                    choices.append(("tcp_mss", with_mss))
                    if self._sack:
                        choices += [(f"tcp_sack{blocks}", fields.sack_count == blocks)
                                    for blocks in range(1, SACK_MAX_BLOCKS + 1)]
                    for index, (name, condition) in enumerate(choices):
                        with (m.Elif if index else m.If)(condition):
                            m.d.sync += kind_constants(name)
                    with m.Else():
                        m.d.sync += kind_constants("tcp")
                with m.If(self.header.valid & self.header.ready):
                    m.d.sync += [hdr_wait.eq(self.header_settle),
                                 sum_wait.eq(0), hdr_free.eq(0)]
                    with m.If(self.header.payload.length.any()):
                        m.d.sync += goto(_Intake.WAIT_SUM)
                    with m.Else():
                        m.d.sync += goto(_Intake.WAIT_SEND)
            with m.Case(_Intake.WAIT_SUM):
                # the given sum, or the queue's next entry once those of given-sum frames
                # before it are dropped
                if self._given_sums:
                    with m.If(given):
                        m.d.comb += [self.given_sum.ready.eq(1),
                                     given_taken.eq(self.given_sum.valid),
                                     sum_comes.eq(self.given_sum.valid),
                                     sum_value.eq(self.given_sum.payload)]
                with (m.Elif if self._given_sums else m.If)(~dropping):
                    m.d.comb += [sums.r_en.eq(1), sum_comes.eq(sums.r_rdy),
                                 sum_value.eq(sums.r_data)]
                with m.If(sum_comes):
                    m.d.sync += [
                        payload_sum.eq(sum_value),
                        sum_wait.eq(self.SUM_SETTLE),
                        *goto(_Intake.WAIT_SEND),
                    ]
        # A frame whose sum was given still has its payload summed into the queue (whose
        # order is the payloads'): that entry is dropped when it comes, before any after it
        # is taken.
        with m.If(dropping & sums.r_rdy):
            m.d.comb += sums.r_en.eq(1)
        m.d.sync += drops.eq(drops + given_taken - (dropping & sums.r_rdy))

        # -- header arithmetic: registered stages that follow `hdr` and `payload_sum` ---------
        # The lengths, one stage: the frame's beats after its first two and its last beat's
        # lanes come from the offset of its last byte (the header's last plus the payload's
        # length, or the 60-byte minimum's), each one adder from the kind's constants. (Every
        # frame has more than two beats, so none ends with the first beat after the first.)
        assert ETH_MIN_FRAME > 2 * lanes
        padded_last = ETH_MIN_FRAME - 1
        pad = Signal()
        m.d.comb += pad.eq(~hdr.length[len(pad_below):].any()
                           & (hdr.length[:len(pad_below)] < pad_below))
        l4_length = Signal(16)
        ip_length = Signal(16)
        payload_beats = Signal(17 - lane_bits)
        has_payload = Signal()
        beats_after_next = Signal(17 - lane_bits)
        last_keep = Signal(lanes)
        m.d.sync += [
            l4_length.eq(l4_header_bytes + hdr.length),
            ip_length.eq(ip_header_bytes + hdr.length),
            has_payload.eq(hdr.length.any()),
            beats_after_next.eq(Mux(pad, (padded_last >> lane_bits) - 1,
                                    (before_header_last + hdr.length)[lane_bits:])),
        ]
        if lanes == 1:
            m.d.sync += [payload_beats.eq(hdr.length), last_keep.eq(1)]
        else:
            m.d.sync += payload_beats.eq(hdr.length[lane_bits:] + hdr.length[:lane_bits].any())
            # (each lane's bit a function of the header's last lane and the length's low
            # bits, written as one, not as an adder and a decoder)
            with m.If(pad):
                m.d.sync += last_keep.eq((2 << padded_last % lanes) - 1)
            with m.Else():
                with m.Switch(Cat(hdr.length[:lane_bits], before_header_last[:lane_bits])):
                    for low in range(lanes):
                        for header_lane in range(lanes):
                            with m.Case(low | header_lane << lane_bits):
                                m.d.sync += last_keep.eq((2 << (header_lane + low) % lanes) - 1)

        # The pseudo-header and L4 header words, straight from `hdr` (the length words add up
        # to the pseudo-header's and UDP's length fields with the constant part; the fields
        # the frame's kind leaves out are 0).
        l4_words = [
            hdr.src_ip[16:], hdr.src_ip[:16], hdr.dst_ip[16:], hdr.dst_ip[:16],
            hdr.src_port, hdr.dst_port, hdr.seq[16:], hdr.seq[:16], hdr.ack[16:], hdr.ack[:16],
            hdr.flags.as_value(), hdr.window, hdr.mss, hdr.length, udp_length, kind_l4_sum,
        ]
        pair_masks = {}     # the SACK blocks the frame does not carry count as 0
        if self._sack:
            for index in range(SACK_MAX_BLOCKS):
                for edge in (hdr.sack[index].left, hdr.sack[index].right):
                    pair_masks[len(l4_words) // 2] = sack_carried[index]
                    l4_words += [edge[16:], edge[:16]]
        l4_header_sum, l4_depth = _ones_sum_tree(m, l4_words, "l4_sum", pair_masks)
        ip_words = [hdr.src_ip[16:], hdr.src_ip[:16], hdr.dst_ip[16:], hdr.dst_ip[:16],
                    hdr.length, kind_ip_sum]
        ip_sum, ip_depth = _ones_sum_tree(m, ip_words, "ip_sum")
        ip_checksum = Signal(16)
        m.d.comb += ip_checksum.eq(~ip_sum)
        # The payload sum as the frame counts it: 0 without payload, when `payload_sum` is
        # another frame's (it is not cleared as a header is taken: that would put the output
        # side's `taken`, and `o.ready` with it, in front of its 16 flip-flops).
        counted_sum = Signal(16)
        m.d.comb += counted_sum.eq(Mux(has_payload, payload_sum, 0))
        # Add the payload sum; the field value (UDP sends a computed 0 as 0xFFFF).
        l4_total = Signal(16)
        l4_checksum = Signal(16)
        m.d.sync += [
            l4_total.eq(ones_add(m, l4_header_sum, counted_sum, "l4_total_add")),
            l4_checksum.eq(Mux(udp & l4_total.all(), 0xFFFF, ~l4_total)),
        ]
        assert self.header_settle == max(l4_depth + 2, ip_depth, 3)
        assert self.SUM_SETTLE == 2

        # -- the frame's header bytes -------------------------------------------------------
        eth = Signal(EthernetHeader())
        ip = Signal(Ipv4Header())
        # The fields of the L4 headers that vary between frames; each kind's image adds its
        # fixed fields (the options other than MSS have none that vary; the SACK blocks are
        # `hdr`'s).
        tcp_header = Signal(TcpHeader())
        mss_option = Signal(MssOption())
        udp_header = Signal(UdpHeader())
        varying = {TcpHeader: tcp_header, MssOption: mss_option, UdpHeader: udp_header}
        fixed = lambda header, fields: [getattr(header, name).eq(value)
                                        for name, value in fields.items()]
        m.d.comb += [
            eth.dst.eq(hdr.dst_mac),
            eth.src.eq(hdr.src_mac),
            eth.ethertype.eq(EtherType.IPV4),
            *fixed(ip, IP_FIXED),
            ip.total_length.eq(ip_length),
            ip.protocol.eq(Mux(udp, L4Protocol.UDP, L4Protocol.TCP)),
            ip.checksum.eq(ip_checksum),
            ip.src.eq(hdr.src_ip),
            ip.dst.eq(hdr.dst_ip),
            tcp_header.src_port.eq(hdr.src_port),
            tcp_header.dst_port.eq(hdr.dst_port),
            tcp_header.seq.eq(hdr.seq),
            tcp_header.ack.eq(hdr.ack),
            tcp_header.flags.eq(hdr.flags),
            tcp_header.window.eq(hdr.window),
            tcp_header.checksum.eq(l4_checksum),
            mss_option.mss.eq(hdr.mss),
            udp_header.src_port.eq(hdr.src_port),
            udp_header.dst_port.eq(hdr.dst_port),
            udp_header.length.eq(l4_length),
            udp_header.checksum.eq(l4_checksum),
        ]

        def l4_image(layouts):
            """A kind's L4 headers in stream order: fixed fields, or'ed with the varying ones
            (no field is both)."""
            blocks = iter(range(SACK_MAX_BLOCKS))
            for layout, fields in layouts:
                if isinstance(layout, SackBlock):
                    yield to_wire(hdr.sack[next(blocks)])
                elif type(layout) in varying:
                    yield to_wire(layout.const(fields).as_value()
                                  | varying[type(layout)].as_value())
                else:
                    yield to_wire(layout.const(fields))

        image = Signal(8 * image_bytes)
        with m.Switch(kind):
            for index, layouts in enumerate(kinds.values()):
                with m.Case(index):
                    m.d.comb += image.eq(Cat(to_wire(eth), to_wire(ip), *l4_image(layouts)))

        # -- output: header beats from a shift register, then the realigned payload ----------
        # Only `advance` follows `o.ready`: every register of this side loads under it (or
        # under it and registered flags), and what it loads is selected by registered state.

        # Payload read buffer: a register that only takes the block RAM's output (its
        # clock-to-output leaves time for one wire, to one flip-flop), then two beats in turn.
        # The FIFO is read while there is room, so its read enable and block RAM follow
        # registers only, never `o.ready`.
        x_capture = Signal(width, reset_less=True)
        x_captured = Signal()
        x_entries = [Signal(width, name=f"x_entry{n}", reset_less=True) for n in range(2)]
        x_count = Signal(range(3))
        x_fill_at = Signal()        # the entry the captured beat goes into
        x_head_at = Signal()        # the entry the next beat taken comes from
        x_data = Signal(width)      # the beat taken next
        x_move = Signal()           # the captured beat goes into an entry
        m.d.comb += [
            x_move.eq(x_captured & (x_count != 2)),
            fifo.r_en.eq(~x_captured | (x_count != 2)),
            x_data.eq(Mux(x_head_at, x_entries[1], x_entries[0])),
        ]
        with m.If(fifo.r_en):
            m.d.sync += x_captured.eq(fifo.r_rdy)
            with m.If(fifo.r_rdy):
                m.d.sync += x_capture.eq(fifo.r_data)
        with m.If(x_move):
            m.d.sync += x_fill_at.eq(~x_fill_at)
            with m.Switch(x_fill_at):
                for n, entry in enumerate(x_entries):
                    with m.Case(n):
                        m.d.sync += entry.eq(x_capture)
        with m.If(x_take):
            m.d.sync += x_head_at.eq(~x_head_at)
        x_count_next = Signal.like(x_count)
        m.d.comb += x_count_next.eq(x_count + x_move - x_take)
        m.d.sync += x_count.eq(x_count_next)

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        output = Signal(_Output)
        shifter = Signal(8 * image_bytes, reset_less=True)
        header_left = Signal.like(header_rest)    # header-only beats after the next one
        header_end = Signal()                     # ... none: the next one is the last
        beats_left = Signal.like(beats_after_next)    # beats after the next one
        frame_end = Signal()                      # ... none: the next beat ends the frame
        payload_left = Signal.like(payload_beats)
        need = Signal()                           # payload beats are left
        need_next = Signal()
        residual_lanes = Signal.like(tail_lanes)
        final_keep = Signal(lanes)
        all_lanes = (1 << lanes) - 1
        # The next payload beat can go (it is the padding, or in the read buffer): registered,
        # from the next `need` and read buffer count, so that `go` is one LUT.
        payload_step = Signal()
        m.d.sync += [
            need.eq(need_next),
            payload_step.eq(~need_next | (x_count_next != 0)),
        ]
        go = Signal()       # the output side sends a beat when `advance`
        step = Signal()
        with m.Switch(output):
            with m.Case(_Output.WAIT_FRAME):
                m.d.comb += go.eq(offer)
            with m.Case(_Output.SEND_HEADER):
                m.d.comb += go.eq(1)
            with m.Case(_Output.SEND_PAYLOAD):
                m.d.comb += go.eq(payload_step)
        m.d.comb += [
            step.eq(advance & go),
            taken.eq(advance & offer),
            need_next.eq(need),
        ]

        # The frame is offered from the cycle after its sums are final, when the output side
        # is idle or about to send a frame's last beat.
        ends = frame_end & ((output == _Output.SEND_HEADER)
                            | ((output == _Output.SEND_PAYLOAD) & payload_step))
        # (With the TCP checksum put in later, a given-sum frame goes from the clock after
        # its sum is taken; `late_checksum`.)
        sums_in = (state == _Intake.WAIT_SEND) & (sum_wait <= 1)
        if late_checksum:
            sums_in |= given & (((state == _Intake.WAIT_SEND)
                                 | ((state == _Intake.WAIT_SUM) & sum_comes)))
        headers_in = hdr_wait <= 1
        if late_checksum:
            # ... and before its header sums are final, given_settle clocks after its header
            # (its lengths are final then): its IP and TCP checksums are put in as its 4th and
            # 7th beats load, below
            headers_in = Mux(given, hdr_wait <= self.header_settle - self.given_settle + 1,
                             headers_in)
        m.d.sync += offer.eq(~taken & sums_in & headers_in
                             & ((output == _Output.WAIT_FRAME) | (advance & ends)))

        # A given-sum frame's checksums, put into the beats that carry them as the shifter
        # loads those beats (its 4th, 2 clocks after the frame is taken at the earliest, and
        # its 7th, 5 clocks after), from its sums and copies of them taken from the clock the
        # frame is taken until `hdr` is loaded again (it loads whenever a header may be
        # taken, one offered or not: the next frame's or garbage from then on; that waits for
        # this frame's sums to be final, `hdr_free`).
        # The IP checksum: the IP header sum while the copies follow it, the copy after. The
        # TCP checksum: the copies' total, ready 2 clocks after the sums are final. Its
        # payload sum is final when it is taken (taken the clock before); its header sums
        # l4_depth and ip_depth clocks after `hdr` (taken given_settle clocks after it).
        header_beat = Signal(range(image_bytes // lanes + 2))   # the beat the output sends next
        patch = Signal()                          # this frame's checksums go in late
        copying = Signal()                        # the copies follow `hdr`'s sums
        f_ip_sum = Signal(16)
        f_header_sum = Signal(16)
        f_payload_sum = Signal(16)
        f_total = Signal(16)
        if late_checksum:
            assert self.LENGTH_STAGES <= self.given_settle
            assert ip_depth <= self.given_settle + ip_checksum_beat - 1
            assert l4_depth + 2 <= self.given_settle + checksum_beat - 1
            assert self.header_settle - l4_depth == free_wait
            with m.If(taken):
                m.d.sync += [patch.eq(given), copying.eq(1)]
            # (until `hdr` is loaded again, a header taken or not)
            with m.If(self.header.ready):
                m.d.sync += copying.eq(0)
            with m.If(taken | copying):
                m.d.sync += [f_ip_sum.eq(ip_sum), f_header_sum.eq(l4_header_sum),
                             f_payload_sum.eq(counted_sum)]
            m.d.sync += f_total.eq(ones_add(m, f_header_sum, f_payload_sum, "f_total_add"))
        checksum_lanes = slice(8 * checksum_lane, 8 * checksum_lane + 16)
        ip_checksum_lanes = slice(8 * ip_checksum_lane, 8 * ip_checksum_lane + 16)
        next_beat = Signal(width)                 # the beat after the next, as it loads
        m.d.comb += next_beat.eq(shifter[width:2 * width])
        if late_checksum:
            with m.If(patch & (header_beat == ip_checksum_beat - 1)):
                m.d.comb += next_beat[ip_checksum_lanes].eq(
                    swap_bytes(~Mux(copying, ip_sum, f_ip_sum)))
            with m.If(patch & (header_beat == checksum_beat - 1)):
                m.d.comb += next_beat[checksum_lanes].eq(swap_bytes(~f_total))

        # The shifter's contents matter only while the header is sent and, in its low beat,
        # the payload residual: the rest loads with `advance` alone.
        with m.If(advance):
            with m.If(output == _Output.WAIT_FRAME):
                m.d.sync += shifter.eq(image[width:])
            with m.Else():
                m.d.sync += shifter[width:].eq(shifter[2 * width:])
                with m.If(output == _Output.SEND_HEADER):
                    m.d.sync += shifter[:width].eq(next_beat)

        with m.If(advance):
            m.d.sync += self.o.valid.eq(go)
        with m.Switch(output):
            with m.Case(_Output.WAIT_FRAME):
                with m.If(step):
                    m.d.comb += need_next.eq(has_payload)
                    m.d.sync += [
                        header_beat.eq(1),
                        self.o.payload.data.eq(image[:width]),
                        self.o.payload.keep.eq(all_lanes),
                        self.o.payload.last.eq(0),
                        header_left.eq(header_rest),
                        header_end.eq(header_rest == 0),
                        beats_left.eq(beats_after_next),
                        frame_end.eq(0),
                        payload_left.eq(payload_beats),
                        final_keep.eq(last_keep),
                        residual_lanes.eq(tail_lanes),
                        output.eq(_Output.SEND_HEADER),
                    ]
            with m.Case(_Output.SEND_HEADER):
                # a frame of header bytes only, 60 or more of them, ends here (at 8 bits the
                # 62-byte header with the window scale option and no payload)
                with m.If(step):
                    m.d.sync += [
                        header_beat.eq(header_beat + 1),
                        self.o.payload.data.eq(shifter[:width]),
                        self.o.payload.keep.eq(Mux(frame_end, final_keep, all_lanes)),
                        self.o.payload.last.eq(frame_end),
                        header_left.eq(header_left - 1),
                        header_end.eq(header_left == 1),
                        beats_left.eq(beats_left - 1),
                        frame_end.eq(beats_left == 1),
                    ]
                    with m.If(frame_end):
                        m.d.sync += output.eq(_Output.WAIT_FRAME)
                    with m.Elif(header_end):
                        m.d.sync += output.eq(_Output.SEND_PAYLOAD)
            with m.Case(_Output.SEND_PAYLOAD):
                m.d.comb += x_take.eq(step & need)
                source = Signal(width)      # the payload beat, or zeros once it is all sent
                m.d.comb += source.eq(Mux(need, x_data, 0))
                joined = Signal(width)
                residual = Signal(width)    # what stays for the next beat, in its low lanes
                if lanes == 1:
                    m.d.comb += joined.eq(source)
                else:
                    with m.Switch(residual_lanes):
                        for shift in sorted({n % lanes for n in header_sizes.values()}):
                            with m.Case(shift):
                                m.d.comb += [
                                    joined.eq(Cat(shifter[:8 * shift], source[:width - 8 * shift])),
                                    residual.eq(source[width - 8 * shift:]),
                                ]
                with m.If(step):
                    m.d.comb += need_next.eq(need & (payload_left != 1))
                    m.d.sync += [
                        self.o.payload.data.eq(joined),
                        self.o.payload.keep.eq(Mux(frame_end, final_keep, all_lanes)),
                        self.o.payload.last.eq(frame_end),
                        shifter[:width].eq(residual),
                        beats_left.eq(beats_left - 1),
                        frame_end.eq(beats_left == 1),
                        payload_left.eq(payload_left - need),
                    ]
                    with m.If(frame_end):
                        m.d.sync += output.eq(_Output.WAIT_FRAME)
        return m
