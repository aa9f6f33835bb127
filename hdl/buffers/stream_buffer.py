"""Per-connection stream buffers: one byte-lane RAM of rings, with out-of-order ranges.

The hardware twin of ``model.bytestream.StreamBuffer``, for many connections at once.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.layouts import FrameBeat, check_data_width

__all__ = [
    "OooRange", "ConnState", "WriteCommand", "WriteResponse", "ReadCommand", "ReadResponse",
    "InitCommand", "StateQuery", "StreamBuffer",
]

# Writes carry one segment's payload, so 16 bits of length; reads take a host's request,
# which may be any size, and return what is there. A read's skip is an offset into the
# readable bytes (a retransmission from within the send window), so 16 bits.
WRITE_LENGTH_BITS = 16
READ_LENGTH_BITS = 32
SKIP_BITS = 16


class OooRange(data.StructLayout):
    """One held out-of-order range ``[lo, hi)`` in 32-bit stream offsets."""

    def __init__(self):
        super().__init__({"valid": 1, "lo": 32, "hi": 32})


def _ranges(max_ooo_ranges):
    """The ``ranges`` field, absent when none are kept (no zero-width signals in the Verilog)."""
    return {"ranges": data.ArrayLayout(OooRange(), max_ooo_ranges)} if max_ooo_ranges else {}


class ConnState(data.StructLayout):
    """What the state RAM keeps per connection: 65 bits per range plus 64."""

    def __init__(self, max_ooo_ranges):
        super().__init__({"head": 32, "tail": 32, **_ranges(max_ooo_ranges)})


class WriteCommand(data.StructLayout):
    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, "offset": 32, "length": WRITE_LENGTH_BITS})


class WriteResponse(data.StructLayout):
    def __init__(self, count_bits):
        super().__init__({"advance": count_bits, "refused": 1})


class ReadCommand(data.StructLayout):
    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, "length": READ_LENGTH_BITS, "peek": 1,
                          "skip": SKIP_BITS, "discard": 1})


class ReadResponse(data.StructLayout):
    def __init__(self, count_bits):
        super().__init__({"count": count_bits})


class InitCommand(data.StructLayout):
    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, "offset": 32})


class StateQuery(data.StructLayout):
    def __init__(self, count_bits, max_ooo_ranges):
        super().__init__({"head": 32, "tail": 32, "free": count_bits, **_ranges(max_ooo_ranges)})


class _Step(enum.Enum, shape=3):
    """What the command side does or waits for (an enum register switched with ``m.Switch``,
    as in :mod:`hdl.tables.socket_table`: a misspelt step is an AttributeError at elaboration)."""
    WAIT_CMD = 0            # a command on `init`, `write_cmd` or `read_cmd`
    WRITE_STATE = 1         # the connection's state read: decide the write
    WRITE_DATA = 2          # the write's beats
    READ_STATE = 3          # the connection's state read: decide the read, answer it
    READ_FIRST_WORD = 4     # the first RAM word read
    READ_SECOND_WORD = 5    # the second RAM word read
    READ_DATA = 6           # the read's beats taken


class StreamBuffer(wiring.Component):
    """Receive (or send) buffers of ``connections`` byte streams in one RAM.

    Each connection owns a ring of ``ring_bytes`` bytes in a single
    :class:`~amaranth.lib.memory.Memory` of ``data_width``-bit words with byte-lane write
    enables (``connections * ring_bytes * 8`` bits). Positions are 32-bit stream offsets
    compared in sequence space (modulo 2**32), so TCP may use ``seq - irs - 1`` directly.
    The policy is exactly ``model.bytestream.StreamBuffer.write``/``read``:

    - a write is clipped to ``[tail, head + ring_bytes)``; bytes outside are consumed from
      ``write_data`` but not stored;
    - bytes beyond ``tail`` are held in up to ``max_ooo_ranges`` ranges per connection
      (so ``max_ooo_ranges`` holes are tracked: the one at ``tail`` and one between each
      pair of ranges, less one); ranges that overlap or touch are merged;
    - a write that would need more ranges is refused whole: nothing is stored, its bytes are
      consumed, ``write_resp.refused`` is set and ``refused_count`` counts it;
    - in-order bytes move ``tail`` and swallow every range they reach;
    - a read returns ``count = min(length, max(0, readable - skip))`` bytes from
      ``head + skip``, where ``readable = tail - head``; unless it peeks, ``head`` moves by
      ``min(skip, readable) + count``, so the skipped bytes are consumed too (a ``skip`` of
      ``readable`` or more moves ``head`` to ``tail`` and returns nothing). A send buffer
      retransmits with ``peek`` and ``skip``, and releases acknowledged bytes with
      ``discard`` and without ``peek``.

    Commands are served one at a time in arrival order, ``init`` before ``write_cmd``
    before ``read_cmd`` when several are offered in the same cycle. Per-connection
    state (head, tail, ranges) lives in a second Memory (``ConnState``, one word per
    connection), so many connections cost RAM rather than flip-flops.

    Timing: a write takes 2 cycles (command, decision) before its first beat is accepted,
    then one beat per clock; a write whose bytes end in one more RAM word than its beats
    spend one more cycle in the background, overlapped with the next command. A read takes
    4 cycles (command, decision, two RAM reads) before its first beat, then one beat per
    clock while ``read_data.ready`` is high, from any byte of the ring (``head + skip``
    need not be word-aligned). A read with ``discard`` set, or whose ``count`` is 0, takes
    2 cycles (command, decision) however far it moves ``head``.

    Parameters
    ----------
    data_width : int
        Bits per beat and per RAM word, 8 or 64.
    connections : int
        Number of connections, a power of two.
    ring_bytes : int
        Bytes of ring per connection, a power of two, at least ``data_width // 8``.
    max_ooo_ranges : int
        Out-of-order ranges held per connection (0 refuses every write beyond ``tail``).

    Members
    -------
    write_cmd : In(stream.Signature(WriteCommand))
        ``conn``, ``offset`` (stream offset of the first byte), ``length`` (bytes that
        follow on ``write_data``). The decision is made from the command alone.
    write_data : In(stream.Signature(FrameBeat))
        ``ceil(length / (data_width // 8))`` beats, packed from lane 0; ``length`` rules,
        ``keep`` and ``last`` are not checked.
    write_resp : Out(stream.Signature(WriteResponse))
        One per write, after its last beat: ``advance`` (how far ``tail`` moved) and
        ``refused``.
    read_cmd : In(stream.Signature(ReadCommand))
        ``conn``, ``length`` (bytes wanted), ``peek`` (leave ``head`` where it is),
        ``skip`` (start this many bytes past ``head``), ``discard`` (emit no data).
    read_resp : Out(stream.Signature(ReadResponse))
        One per read, before its data: ``count = min(length, max(0, tail - head - skip))``.
    read_data : Out(stream.Signature(FrameBeat))
        ``count`` bytes from ``head + skip`` as one frame, none when ``count`` is 0 or the
        read discards.
    init : In(stream.Signature(InitCommand))
        Install connection ``conn``: ``head = tail = offset``, no ranges held.
    query_conn : In(conn_bits)
        Connection whose state ``query`` shows on the next cycle.
    query : Out(StateQuery)
        ``head``, ``tail``, ``free = ring_bytes - (tail - head)`` (the window to
        advertise) and the held ranges, in slot order (not sorted), ``valid`` per slot
        (no ``ranges`` field when ``max_ooo_ranges`` is 0). It shows the state as of the
        previous cycle: a command's effect is there one cycle after ``state_pending`` is low.
    state_pending : Out(1)
        A command has been accepted and its new state is not yet in the state RAM (its
        decision or write-back cycle); data may still be moving after that.
    refused_count : Out(32)
        Writes refused for want of a range slot, all connections together.
    """

    def __init__(self, data_width, connections, ring_bytes, max_ooo_ranges=1):
        check_data_width(data_width)
        if not isinstance(connections, int) or connections < 1 or connections & (connections - 1):
            raise TypeError(f"Connection count must be a positive power of two, not {connections!r}")
        lanes = data_width // 8
        if (not isinstance(ring_bytes, int) or ring_bytes < lanes or ring_bytes > 2 ** 30
                or ring_bytes & (ring_bytes - 1)):
            raise TypeError(f"Ring size must be a power of two from {lanes} to 2**30 bytes, "
                            f"not {ring_bytes!r}")
        if not isinstance(max_ooo_ranges, int) or max_ooo_ranges < 0:
            raise TypeError(f"Out-of-order range count must be a non-negative integer, "
                            f"not {max_ooo_ranges!r}")
        self._data_width = data_width
        self._connections = connections
        self._ring_bytes = ring_bytes
        self._max_ooo_ranges = max_ooo_ranges
        conn_bits = max(exact_log2(connections), 1)     # no zero-width ports
        count_bits = ring_bytes.bit_length()
        beat = FrameBeat(data_width)
        super().__init__({
            "write_cmd": In(stream.Signature(WriteCommand(conn_bits))),
            "write_data": In(stream.Signature(beat)),
            "write_resp": Out(stream.Signature(WriteResponse(count_bits))),
            "read_cmd": In(stream.Signature(ReadCommand(conn_bits))),
            "read_resp": Out(stream.Signature(ReadResponse(count_bits))),
            "read_data": Out(stream.Signature(beat)),
            "init": In(stream.Signature(InitCommand(conn_bits))),
            "query_conn": In(conn_bits),
            "query": Out(StateQuery(count_bits, max_ooo_ranges)),
            "state_pending": Out(1),
            "refused_count": Out(32),
        })

    @property
    def data_width(self):
        return self._data_width

    @property
    def connections(self):
        return self._connections

    @property
    def ring_bytes(self):
        return self._ring_bytes

    @property
    def max_ooo_ranges(self):
        return self._max_ooo_ranges

    def memory_bits(self):
        """(data RAM bits, state RAM bits)."""
        return (self._connections * self._ring_bytes * 8,
                self._connections * ConnState(self._max_ooo_ranges).size)

    def elaborate(self, platform):
        m = Module()
        W, R, N = self._data_width, self._ring_bytes, self._max_ooo_ranges
        L = W // 8
        lane_bits = exact_log2(L)
        word_bits = exact_log2(R // L)
        conn_bits = max(exact_log2(self._connections), 1)
        count_bits = R.bit_length()

        m.submodules.data_mem = data_mem = Memory(
            shape=W, depth=self._connections * R // L, init=[])
        dwp = data_mem.write_port(granularity=8)
        drp = data_mem.read_port()
        m.submodules.state_mem = state_mem = Memory(
            shape=ConnState(N), depth=self._connections, init=[])
        swp = state_mem.write_port()
        srp = state_mem.read_port(transparent_for=(swp,))
        # Not transparent: Icarus Verilog does not re-evaluate the continuous assignment that
        # a free-running transparent port becomes (`assign data = mem[addr_q]`) when the word
        # is written. `state_pending` says when the query is up to date instead.
        qrp = state_mem.read_port()

        def rel(pos, base):
            """``pos - base`` in sequence space, for positions known to lie in the ring."""
            return (pos - base)[:count_bits]

        # State query port.
        m.d.comb += [
            qrp.addr.eq(self.query_conn),
            self.query.head.eq(qrp.data.head),
            self.query.tail.eq(qrp.data.tail),
            self.query.free.eq(R - rel(qrp.data.tail, qrp.data.head)),
        ]
        if N:
            m.d.comb += self.query.ranges.eq(qrp.data.ranges)

        # State write-back, one cycle after the decision that computed it.
        state_we = Signal()
        state_conn = Signal(conn_bits)
        state_next = Signal(ConnState(N))
        m.d.sync += state_we.eq(0)
        m.d.comb += [swp.en.eq(state_we), swp.addr.eq(state_conn), swp.data.eq(state_next)]

        # The command being served.
        conn = Signal(conn_bits)
        offset = Signal(32)
        w_length = Signal(WRITE_LENGTH_BITS)
        r_skip = Signal(SKIP_BITS)
        r_end = Signal(READ_LENGTH_BITS + 1)           # length + skip, from the command
        peek = Signal()
        discard = Signal()
        st = srp.data

        # Data path registers shared by reads and writes.
        # (no zero-width signals, so the Verilog stays lint-clean at 8 bits and one connection)
        shift = Signal(max(lane_bits, 1))              # byte offset of the first byte in its word
        word = Signal(max(word_bits, 1))               # next RAM word within the ring
        addr = Cat(word[:word_bits], conn[:exact_log2(self._connections)])
        left = Signal(range(max(2 ** WRITE_LENGTH_BITS, R + 1)))   # bytes still to move
        last_beat = left <= L
        prev = Signal(W)                               # residual word for realignment

        def realign(lower, upper, starts):
            """The word of ``Cat(lower, upper)`` starting at byte ``starts[shift]``."""
            both = Cat(lower, upper)
            if L == 1:
                return both[8 * starts[0]:8 * starts[0] + W]
            return Array(both[8 * k:8 * k + W] for k in starts)[shift]

        # A write moves command byte ``j`` to lane ``(j + shift) % L``; a read takes lane
        # ``(j + shift) % L`` to byte ``j``.
        write_starts = [L - s for s in range(L)]
        read_starts = list(range(L))

        # Write path: which bytes of the command are stored, relative to its offset.
        wr_lo = Signal(WRITE_LENGTH_BITS + 1)
        wr_hi = Signal(WRITE_LENGTH_BITS + 1)
        pos = Signal(signed(WRITE_LENGTH_BITS + 2))    # command byte index of lane 0 of `word`
        flush = Signal()                               # one more RAM word to write

        def lane_enables():
            return Cat((pos + i >= wr_lo) & (pos + i < wr_hi) for i in range(L))

        # Read ports enable by default: hold their data unless a state asks for a word.
        m.d.comb += [dwp.addr.eq(addr), drp.addr.eq(addr), drp.en.eq(0), srp.en.eq(0)]
        with m.If(flush):
            m.d.comb += [dwp.data.eq(realign(prev, Const(0, W), write_starts)),
                         dwp.en.eq(lane_enables())]
            m.d.sync += flush.eq(0)

        write_resp_free = ~self.write_resp.valid | self.write_resp.ready
        read_resp_free = ~self.read_resp.valid | self.read_resp.ready
        with m.If(self.write_resp.ready):
            m.d.sync += self.write_resp.valid.eq(0)
        with m.If(self.read_resp.ready):
            m.d.sync += self.read_resp.valid.eq(0)
        advance = Signal(count_bits)
        refused = Signal()

        # The write decision, from the command and the connection's state.
        w_rel = Signal(signed(32))
        w_end = Signal(signed(34))
        w_free = Signal(count_bits)
        w_start = Signal(signed(34))
        w_stop = Signal(signed(34))
        m.d.comb += [
            w_rel.eq(offset - st.tail),
            w_end.eq(w_rel + w_length),
            w_free.eq(R - rel(st.tail, st.head)),
            w_start.eq(Mux(w_rel < 0, 0, w_rel)),
            w_stop.eq(Mux(w_end < w_free, w_end, w_free)),
        ]
        w_nonempty = w_start < w_stop
        w_in_order = w_start == 0
        lo_rel = [rel(st.ranges[i].lo, st.tail) for i in range(N)]
        hi_rel = [rel(st.ranges[i].hi, st.tail) for i in range(N)]
        valid = [st.ranges[i].valid for i in range(N)]
        # Out of order: merge every range that overlaps or touches [w_start, w_stop).
        touch = [valid[i] & (lo_rel[i] <= w_stop) & (hi_rel[i] >= w_start) for i in range(N)]
        merged_lo, merged_hi = w_start, w_stop
        for i in range(N):
            merged_lo = Mux(touch[i] & (lo_rel[i] < merged_lo), lo_rel[i], merged_lo)
            merged_hi = Mux(touch[i] & (hi_rel[i] > merged_hi), hi_rel[i], merged_hi)
        kept = sum((valid[i] & ~touch[i] for i in range(N)), Const(0, 1))
        w_refuse = ~w_in_order & (kept >= N)
        ooo_ranges = []
        placed = Const(0, 1)
        for i in range(N):
            here = ~placed & (~valid[i] | touch[i])
            ooo_ranges.append(Mux(here, Cat(Const(1, 1), (st.tail + merged_lo)[:32], (st.tail + merged_hi)[:32]),
                                  Mux(touch[i], 0, st.ranges[i].as_value())))
            placed = placed | here
        # In order: tail moves to w_stop and past every range that w_stop reaches.
        reached = [valid[i] & (lo_rel[i] <= w_stop) for i in range(N)]
        new_tail = w_stop[:count_bits]
        for i in range(N):
            new_tail = Mux(reached[i] & (hi_rel[i] > new_tail), hi_rel[i], new_tail)
        in_order_ranges = [Mux(reached[i], 0, st.ranges[i].as_value()) for i in range(N)]

        # The read decision: head moves by min(skip + length, readable), of which the first
        # min(skip, readable) bytes are skipped and the rest are read.
        r_skipped = Signal(count_bits)
        r_advance = Signal(count_bits)
        r_count = Signal(count_bits)
        readable = rel(st.tail, st.head)
        m.d.comb += [
            r_skipped.eq(Mux(r_skip < readable, r_skip, readable)),
            r_advance.eq(Mux(r_end < readable, r_end, readable)),
            r_count.eq(r_advance - r_skipped),
        ]
        r_start = (st.head + r_skipped)[:32]

        step = Signal(_Step)
        with m.Switch(step):
            with m.Case(_Step.WAIT_CMD):
                m.d.comb += srp.en.eq(1)
                with m.If(self.init.valid):
                    m.d.comb += self.init.ready.eq(1)
                    m.d.sync += [state_we.eq(1), state_conn.eq(self.init.payload.conn),
                                 state_next.eq(0),
                                 state_next.head.eq(self.init.payload.offset),
                                 state_next.tail.eq(self.init.payload.offset)]
                with m.Elif(self.write_cmd.valid):
                    m.d.comb += [self.write_cmd.ready.eq(1),
                                 srp.addr.eq(self.write_cmd.payload.conn)]
                    m.d.sync += [conn.eq(self.write_cmd.payload.conn),
                                 offset.eq(self.write_cmd.payload.offset),
                                 w_length.eq(self.write_cmd.payload.length)]
                    m.d.sync += step.eq(_Step.WRITE_STATE)
                with m.Elif(self.read_cmd.valid):
                    m.d.comb += [self.read_cmd.ready.eq(1),
                                 srp.addr.eq(self.read_cmd.payload.conn)]
                    m.d.sync += [conn.eq(self.read_cmd.payload.conn),
                                 r_skip.eq(self.read_cmd.payload.skip),
                                 r_end.eq(self.read_cmd.payload.length
                                          + self.read_cmd.payload.skip),
                                 peek.eq(self.read_cmd.payload.peek),
                                 discard.eq(self.read_cmd.payload.discard)]
                    m.d.sync += step.eq(_Step.READ_STATE)

            with m.Case(_Step.WRITE_STATE):
                # The connection's state is on srp.data: decide and commit the new state.
                store = w_nonempty & ~w_refuse
                m.d.sync += [
                    shift.eq(offset[:lane_bits]),
                    word.eq(offset[lane_bits:lane_bits + word_bits]),
                    left.eq(w_length),
                    pos.eq(-offset[:lane_bits]),
                    wr_lo.eq(Mux(store, w_start - w_rel, 0)),
                    wr_hi.eq(Mux(store, w_stop - w_rel, 0)),
                    advance.eq(Mux(store & w_in_order, new_tail, 0)),
                    refused.eq(w_nonempty & w_refuse),
                    state_conn.eq(conn),
                    state_next.eq(st),
                ]
                with m.If(store):
                    m.d.sync += state_we.eq(1)
                    with m.If(w_in_order):
                        m.d.sync += state_next.tail.eq(st.tail + new_tail)
                        for i in range(N):
                            m.d.sync += state_next.ranges[i].eq(in_order_ranges[i])
                    with m.Else():
                        for i in range(N):
                            m.d.sync += state_next.ranges[i].eq(ooo_ranges[i])
                with m.If(w_nonempty & w_refuse):
                    m.d.sync += self.refused_count.eq(self.refused_count + 1)
                m.d.sync += step.eq(_Step.WRITE_DATA)

            with m.Case(_Step.WRITE_DATA):
                with m.If(left == 0):
                    with m.If(write_resp_free):
                        m.d.sync += [self.write_resp.valid.eq(1),
                                     self.write_resp.payload.advance.eq(advance),
                                     self.write_resp.payload.refused.eq(refused)]
                        m.d.sync += step.eq(_Step.WAIT_CMD)
                with m.Else():
                    m.d.comb += self.write_data.ready.eq(~last_beat | write_resp_free)
                    with m.If(self.write_data.valid & self.write_data.ready):
                        m.d.comb += [
                            dwp.data.eq(realign(prev, self.write_data.payload.data, write_starts)),
                            dwp.en.eq(lane_enables()),
                        ]
                        m.d.sync += [prev.eq(self.write_data.payload.data), word.eq(word + 1),
                                     pos.eq(pos + L), left.eq(left - L)]
                        with m.If(last_beat):
                            m.d.sync += [self.write_resp.valid.eq(1),
                                         self.write_resp.payload.advance.eq(advance),
                                         self.write_resp.payload.refused.eq(refused),
                                         flush.eq(shift + left > L), left.eq(0)]
                            m.d.sync += step.eq(_Step.WAIT_CMD)

            with m.Case(_Step.READ_STATE):
                with m.If(read_resp_free):
                    m.d.sync += [
                        self.read_resp.valid.eq(1),
                        self.read_resp.payload.count.eq(r_count),
                        shift.eq(r_start[:lane_bits]),
                        word.eq(r_start[lane_bits:lane_bits + word_bits]),
                        left.eq(r_count),
                    ]
                    with m.If(~peek & (r_advance != 0)):
                        m.d.sync += [state_we.eq(1), state_conn.eq(conn), state_next.eq(st),
                                     state_next.head.eq(st.head + r_advance)]
                    with m.If(~discard & (r_count != 0)):
                        m.d.sync += step.eq(_Step.READ_FIRST_WORD)
                    with m.Else():
                        m.d.sync += step.eq(_Step.WAIT_CMD)

            with m.Case(_Step.READ_FIRST_WORD):
                m.d.comb += drp.en.eq(1)
                m.d.sync += word.eq(word + 1)
                m.d.sync += step.eq(_Step.READ_SECOND_WORD)

            with m.Case(_Step.READ_SECOND_WORD):
                m.d.comb += drp.en.eq(1)
                m.d.sync += [word.eq(word + 1), prev.eq(drp.data)]
                m.d.sync += step.eq(_Step.READ_DATA)

            with m.Case(_Step.READ_DATA):
                m.d.comb += [
                    self.read_data.valid.eq(1),
                    self.read_data.payload.data.eq(realign(prev, drp.data, read_starts)),
                    self.read_data.payload.keep.eq(Cat(left > i for i in range(L))),
                    self.read_data.payload.last.eq(last_beat),
                ]
                with m.If(self.read_data.ready):
                    m.d.comb += drp.en.eq(1)
                    m.d.sync += [word.eq(word + 1), prev.eq(drp.data), left.eq(left - L)]
                    with m.If(last_beat):
                        m.d.sync += left.eq(0)
                        m.d.sync += step.eq(_Step.WAIT_CMD)

        m.d.comb += self.state_pending.eq((step == _Step.WRITE_STATE) | (step == _Step.READ_STATE)
                                          | state_we)
        return m
