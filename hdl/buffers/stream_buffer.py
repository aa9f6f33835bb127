"""Per-connection stream buffers: one byte-lane RAM of rings, with out-of-order ranges.

The hardware twin of ``model.bytestream.StreamBuffer``, for many connections at once.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.buffers.prefix_sums import PrefixSums, word_lanes_sum
from hdl.checksum import ones_add
from hdl.layouts import FrameBeat, check_data_width
from hdl.memories import NO_RW_CHECK, registered_read_port

__all__ = [
    "OooRange", "ConnState", "WriteCommand", "WriteResponse", "ReadCommand", "ReadResponse",
    "InitCommand", "StateQuery", "ring_free", "StreamBuffer", "WRITE_DECISION_CLOCKS",
    "READ_DECISION_CLOCKS", "READ_FIRST_BEAT_CLOCKS", "RANGE_SUM_FIRST_BEAT_CLOCKS",
    "RANGE_SUM_CLOCKS", "TAIL_WRITE_FIRST_BEAT_CLOCKS", "QUERY_LATENCY",
    "POSITIONED_READ_DECISION_CLOCKS",
]

# Writes carry one segment's payload or what a host write puts in the ring: 16 bits of
# length, or as many as a ring's counts need (`_ring_count_bits`); reads take a host's
# request, which may be any size, and return what is there. A write's reserve and a read's
# skip are counts of ring bytes too (a cap's withheld bytes; a retransmission's offset into
# the send window).
WRITE_LENGTH_BITS = 16
READ_LENGTH_BITS = 32
SKIP_BITS = 16
# Clocks from a write command taken to its decision (the _WriteStep pipeline); its first beat
# may be taken in the clock after.
WRITE_DECISION_CLOCKS = 6
# Clocks from a read command taken to its decision (the _ReadStep pipeline), and to its first
# beat on an idle data port (the queue's check, the fetch address registered, then two RAM
# words read and registered).
READ_DECISION_CLOCKS = 4
READ_FIRST_BEAT_CLOCKS = READ_DECISION_CLOCKS + 7
# With range sums, on an idle port: a clock more before the read starts (its prefix sums
# written) and one for its last word's fetch; its sum on `read_sum` (the first word fetched,
# then the edge words' lanes summed, then B(end) and B(start), then their difference, then
# the sum queue).
RANGE_SUM_FIRST_BEAT_CLOCKS = READ_FIRST_BEAT_CLOCKS + 2
RANGE_SUM_CLOCKS = RANGE_SUM_FIRST_BEAT_CLOCKS + 3
# With positioned reads (`StreamBuffer(..., positioned_reads=True)`): clocks from a positioned
# read's command taken to its decision (the command registered, then decided: no state is
# read), READ_DECISION_CLOCKS - 1 fewer, and as many fewer to its first beat and its sum.
POSITIONED_READ_DECISION_CLOCKS = 1
# With tail writes (`StreamBuffer(..., tail_writes=True)`): clocks from a write command taken
# to its first beat taken, on an idle data port (the command and the reads' margins from it
# registered, the first word's lanes and the hazard check against waiting reads registered,
# the data path started).
TAIL_WRITE_FIRST_BEAT_CLOCKS = 3
# Clocks from `query_conn` to `query` (a block RAM's read and output registers).
QUERY_LATENCY = 2


def _ring_count_bits(count_bits, floor):
    """Bits of a field counting ring bytes: `floor`, or a ring's counts if wider."""
    return max(floor, count_bits)


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
    """``reserve``: ring bytes this write may not use (a socket's receive buffer smaller than
    the ring, SO_RCVBUF): the window it is clipped to is ``ring - reserve - (tail - head)``."""

    def __init__(self, conn_bits, count_bits=0):
        bits = _ring_count_bits(count_bits, WRITE_LENGTH_BITS)
        super().__init__({"conn": conn_bits, "offset": 32, "length": bits, "reserve": bits})


class WriteResponse(data.StructLayout):
    def __init__(self, count_bits):
        super().__init__({"advance": count_bits, "refused": 1})


class ReadCommand(data.StructLayout):
    """``positioned`` and ``position`` (only with `positioned`): a peek of ``length`` bytes from
    stream offset ``position``, which its sender knows to lie within ``[head, tail)``, the tail
    of the writes taken (``StreamBuffer(..., positioned_reads=True)``)."""

    def __init__(self, conn_bits, count_bits=0, positioned=False):
        super().__init__({"conn": conn_bits, "length": READ_LENGTH_BITS, "peek": 1,
                          "skip": _ring_count_bits(count_bits, SKIP_BITS), "discard": 1,
                          **({"positioned": 1, "position": 32} if positioned else {})})


class ReadResponse(data.StructLayout):
    def __init__(self, count_bits):
        super().__init__({"count": count_bits})


class InitCommand(data.StructLayout):
    def __init__(self, conn_bits):
        super().__init__({"conn": conn_bits, "offset": 32})


class StateQuery(data.StructLayout):
    def __init__(self, max_ooo_ranges):
        super().__init__({"head": 32, "tail": 32, **_ranges(max_ooo_ranges)})


def ring_free(query, ring_bytes):
    """``ring_bytes - (tail - head)`` of a :class:`StateQuery`: the ring's free bytes (the
    window to advertise). Worked out by whoever registered the query, not on the query port,
    whose words come straight from block RAM."""
    return ring_bytes - (query.tail - query.head)[:ring_bytes.bit_length()]


class _TailState(data.StructLayout):
    """The write side's part of a connection's state: ``tail`` and the held ranges."""

    def __init__(self, max_ooo_ranges):
        super().__init__({"tail": 32, **_ranges(max_ooo_ranges)})


class _WriteStep(enum.Enum, shape=3):
    """What the write side does or waits for (an enum register switched with ``m.Switch``,
    as in :mod:`hdl.tables.socket_table`: a misspelt step is an AttributeError at elaboration).

    The decision is a pipeline of one command: each step's inputs are registers, and no step
    holds more than one or two carry chains (the block RAM's clock-to-out alone is most of a
    clock on ECP5, so its word is registered before any arithmetic)."""
    WAIT_CMD = 0            # a command on `write_cmd`; the state RAMs are read
    FETCH = 1               # the words in the RAMs' read registers
    LOAD = 2                # ... in their output registers; registered here, forwarded
    RELATE = 3              # the write and the ranges as offsets from tail; the window
    CLIP = 4                # each bound compared once: stored or not, which ranges it meets
    GUARD = 5               # checked against the reads whose ring slots it would fill
    DECIDE = 6              # the new tail and ranges written back; the write answered


class _WriteJob(data.StructLayout):
    """A decided write whose beats are still to come: where they go and which are kept."""

    def __init__(self, conn_bits, lane_bits, word_bits, length_bits, lanes):
        super().__init__({
            "conn": conn_bits, "shift": max(lane_bits, 1), "word": max(word_bits, 1),
            "left": length_bits, "next_lo": signed(length_bits + 4),
            "next_hi": signed(length_bits + 4),
            "keep_lo": 32, "keep_hi": 32, "base": 32, "lanes": lanes,
            # facts about left, next_lo and next_hi, kept beside them so that the data path
            # decides from single bits (see `StreamBuffer`'s `last_after`, `top_after`)
            "last": 1, "lo_top": 1, "hi_top": 1, "lo_zero": 1,
        })


class _ReadJob(data.StructLayout):
    """A decided read whose words are still to be fetched: where its bytes are."""

    def __init__(self, conn_bits, count_bits):
        super().__init__({"conn": conn_bits, "start": 32, "count": count_bits, "end": 32})


class _ReadStep(enum.Enum, shape=3):
    """What the read side's command part does or waits for: like the write side's, a
    pipeline of one command whose steps start from registers."""
    WAIT_CMD = 0            # a command on `read_cmd`; the state RAMs are read
    FETCH = 1               # the words in the RAMs' read registers
    LOAD = 2                # the connection's head and tail registered, forwarded
    CLIP = 3                # the readable bytes, compared with the skip and the end
    DECIDE = 4              # head moved; the read answered and queued for its words (a
                            # positioned read comes here from WAIT_CMD)


class _ReadData(enum.Enum, shape=2):
    """What the read side's data path does: a decided read's words and beats."""
    IDLE = 0
    ACTIVE = 1              # the read's words fetched ahead into a queue, its beats sent
    LAST_WORD = 2           # with range sums: the read's last word fetched first, for its sum


# RAM words a read's data path holds or has fetched: the two a beat is cut from, and the two
# on their way (a RAM read, then a register that takes the RAM's word with no logic before
# it), so that it sends a beat every clock.
_READ_WORDS_AHEAD = 4


def _compact(entries, keep, slots):
    """`entries` whose `keep` bit is set, in their order, in the first of `slots` slots; the
    slots after them hold zeros (invalid ranges). Entry ``i`` can only land in slot ``i`` or
    before, so slot ``j`` chooses among entries ``j`` onwards: the one with ``j`` kept
    entries before it."""
    slots_out = []
    for j in range(slots):
        value = Const(0, len(entries[0]))
        for i in reversed(range(j, len(entries))):
            before = sum(keep[:i], Const(0, 1))
            value = Mux(keep[i] & (before == j), entries[i], value)
        slots_out.append(value)
    return slots_out


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
      pair of ranges, less one); ranges that overlap or touch are merged; the ranges are
      kept in the order they were last written (the one an out-of-order write stored into
      or merged first), which is the order of a receiver's SACK blocks (RFC 2018 4);
    - a write that would need more ranges is refused whole: nothing is stored, its bytes are
      consumed, ``write_resp.refused`` is set and ``refused_count`` counts it;
    - in-order bytes move ``tail`` and swallow every range they reach;
    - a read returns ``count = min(length, max(0, readable - skip))`` bytes from
      ``head + skip``, where ``readable = tail - head``; unless it peeks, ``head`` moves by
      ``min(skip, readable) + count``, so the skipped bytes are consumed too (a ``skip`` of
      ``readable`` or more moves ``head`` to ``tail`` and returns nothing). A send buffer
      retransmits with ``peek`` and ``skip``, and releases acknowledged bytes with
      ``discard`` and without ``peek``.

    Two units share the block: a **write side** (command, decision, beats into the RAM's
    write port) and a **read side** (command, decision, RAM words fetched ahead, beats from
    the RAM's read port), so a write's beats and a read's beats move in the same clocks (a simple
    dual-port data RAM). Each piece of state has one writer: ``tail`` and the ranges live
    in a state Memory written only by the write side, ``head`` in one written only by the
    read side; each side reads the other's through its own port (``init`` writes both).

    Sequential semantics are those of one command at a time: decisions are made one at a
    time, in the order the commands are accepted, and each sees every earlier decision's
    state, per connection: a write of another connection may be accepted and decided while a
    read waits at its decision (commands of different connections touch different state).
    A command is accepted when its side is free and no earlier command of its connection
    still waits for its decision (commands of other connections go on); ``init`` before
    ``write_cmd`` before ``read_cmd`` when several are offered, and an offered ``init`` or
    ``write_cmd`` holds back the commands after it in that order (``init`` waits until both
    sides are idle). What concurrency could break is kept out by two waits:

    - a decided read's words are not fetched while the write side still has to put bytes
      inside the read's range into the RAM (a read never returns bytes before they are
      written; it is decided and answered at once, its count the bytes decided so far);
    - a write of a connection waits at its decision while the read side streams, or holds
      decided, a read of it whose ring slots the write would fill (released bytes are not
      overwritten while they go out: a consuming read released its own, a discard decided
      while a peek streams may release the peek's). A peek of bytes still held never holds
      a write back.

    Timing: each side's decision is a short pipeline whose stages start from registers (the
    state RAMs' words are registered before any arithmetic), one command in it at a time. A
    write's decision comes ``WRITE_DECISION_CLOCKS`` (6) after its command is taken, and its
    first beat may be taken in the next clock, then one beat per clock; ``write_resp`` shows
    the cycle after the decision, while the
    beats still move. A write whose bytes end in one more RAM word than its beats spends one
    more cycle in the background. The write side decides its next command while the beats
    of the one before still come (one decided write waits; its beats follow the earlier
    ones), so a receive ring takes the next segment's decision while this one's payload is
    on its way. A read's decision comes ``READ_DECISION_CLOCKS`` (4) after its command;
    on an idle data port its first beat comes ``READ_FIRST_BEAT_CLOCKS`` (11) after the
    command (decision, the registered check that its bytes are in, the fetch address
    registered, two RAM words read and registered before any logic), then
    one beat per clock while ``read_data.ready`` is high, from
    any byte of the ring (``head + skip`` need not be word-aligned). A read with
    ``discard`` set, or whose ``count`` is 0, takes its command's and decision's clocks however
    far it moves ``head``, and is taken and decided while the beats of a read before it still
    go out (a send ring releases acknowledged bytes while it sends the next segment). The read
    side, too, decides its next reads while the beats of the one before still go out (up to
    ``read_queue`` decided reads wait, in order, each decided read passing through the
    queue; each one's words are fetched after the last beat of the one before, so 5 clocks
    without a beat come between two reads' beats): a send ring takes the
    next segments' reads, a receive ring the next host reads, while this one streams, and
    whoever issues them need not wait for the data port. The sides overlap: a write's beats and a
    read's beats move in the same clocks, and either side takes its next command while the
    other moves data.

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
    read_queue : int
        Decided reads that may wait for the beats of those before them (at least 1). Each
        is a register the write side checks (a write waits while it would fill a waiting
        read's slots), so it costs a comparator per entry.
    poison_collisions : bool
        For simulation only: a RAM read in the clock its word is written returns the word
        inverted, as a block RAM's is undefined then (``registered_read_port``'s
        ``poison_for``), so the tests see a design that would use one.
    range_sums : bool
        A send ring's transmit checksum (64 bits, in-order writes only): a
        :class:`~hdl.buffers.prefix_sums.PrefixSums` follows the RAM's writes, and every read
        that returns bytes also puts the ones' complement sum of those bytes (RFC 1071, the
        read's first byte the high byte) on ``read_sum``, from its two edge words and two
        prefix sums, whatever its length, while its beats go out: on an idle port
        ``RANGE_SUM_CLOCKS`` (16) after the command, its first beat
        ``RANGE_SUM_FIRST_BEAT_CLOCKS`` (13) after it. The read's last word is fetched first
        (a clock), and a read starts a clock after the check that its bytes are in, so that
        their prefix sums are written too.
    tail_writes : bool
        Every write is at ``tail`` and fits the window (its writer clipped it, as the engine
        does for its send ring; ``max_ooo_ranges`` 0): its beats are taken from the third
        clock after the command (``TAIL_WRITE_FIRST_BEAT_CLOCKS``) instead of after the
        decision (``WRITE_DECISION_CLOCKS``), unless the data port is busy or the write would
        fill the slots of a read still to stream. The decision follows as before and checks
        the writer: a write that was not at the tail or did not fit sets ``writer_error``.
    positioned_reads : bool
        ``read_cmd`` has ``positioned`` and ``position``: a positioned read is a peek of
        ``length`` bytes from ``position``, which its sender guarantees to lie within ``[head,
        tail)`` when the read is taken, ``tail`` counting the writes taken (the engine reads a
        segment at its sequence number, which its segmenter clipped to the bytes queued). It
        reads no state: it is decided a clock after it is taken
        (``POSITIONED_READ_DECISION_CLOCKS``, 3 clocks before a read at ``head + skip``),
        answered ``count = length`` and queued for its words at once. With ``tail_writes`` it
        is taken while a write of its connection is being decided (a write at the tail fills
        no slot of bytes within ``[head, tail)``), and its words wait for that write's bytes.
        A read outside ``[head, tail)`` returns whatever the ring's slots hold: the sender's
        bug, which the tests rule out against the model.

    Members
    -------
    write_cmd : In(stream.Signature(WriteCommand))
        ``conn``, ``offset`` (stream offset of the first byte), ``length`` (bytes that
        follow on ``write_data``), ``reserve`` (ring bytes withheld from the window; 0: none).
        The decision is made from the command alone. Accepted when the previous write's
        response is taken and no decided write still waits for its beats (one write is
        decided while the beats of the one before still come).
    write_data : In(stream.Signature(FrameBeat))
        ``ceil(length / (data_width // 8))`` beats, packed from lane 0; ``length`` rules,
        ``keep`` and ``last`` are not checked.
    write_resp : Out(stream.Signature(WriteResponse))
        One per write, the cycle after its decision (before or while its beats move):
        ``advance`` (how far ``tail`` moved) and ``refused``.
    read_cmd : In(stream.Signature(ReadCommand))
        ``conn``, ``length`` (bytes wanted), ``peek`` (leave ``head`` where it is),
        ``skip`` (start this many bytes past ``head``), ``discard`` (emit no data).
    read_resp : Out(stream.Signature(ReadResponse))
        One per read, before its data: ``count = min(length, max(0, tail - head - skip))``.
    read_data : Out(stream.Signature(FrameBeat))
        ``count`` bytes from ``head + skip`` as one frame, none when ``count`` is 0 or the
        read discards.
    init : In(stream.Signature(InitCommand))
        Install connection ``conn``: ``head = tail = offset``, no ranges held. Accepted
        only when both sides are idle and no decision is pending.
    query_conn : In(conn_bits)
        Connection whose state ``query`` shows ``QUERY_LATENCY`` (2) cycles later.
    query : Out(StateQuery)
        ``head``, ``tail`` (:func:`ring_free` gives the free bytes from them) and the held
        ranges, ``valid`` per slot: the valid ones first, the most
        recently written first (not sorted by position; no ``ranges`` field when
        ``max_ooo_ranges`` is 0). It shows the state as it is after the cycle ``query_conn``
        was given: every decision whose ``state_pending`` or ``query_pending`` ended before
        that cycle is in it, a decision made in it or later is not.
    state_pending : Out(1)
        A command that may change the state has been accepted and its decision is not yet in
        the state RAMs (it waits for its decision, is being decided, or its state is being
        written); data may still be moving after that. A peek changes no state and does not
        count.
    query_pending : Out(1)
        ``state_pending`` for connection ``query_conn`` only: a command on another
        connection does not hold its query back.
    query_read_pending : Out(1)
        The part of ``query_pending`` that is a read's (its head): what is left is a
        write's (its tail and ranges).
    busy : Out(1)
        A command is being decided, or a data phase is in progress on either side: a
        write's beats still to come or its last word still to be written, or a read's words
        and beats still to go out.
    write_busy : Out(1)
        The write side still takes beats of an accepted write on ``write_data`` (its
        response may already have been given).
    refused_count : Out(32)
        Writes refused for want of a range slot, all connections together.
    writer_error : Out(1)
        With ``tail_writes``: set, and kept, when a write was not at ``tail`` or did not fit
        the window (the writer broke the contract: its bytes, taken before the decision, may
        have overwritten held ones, and the checks against waiting reads assumed the tail).
    read_sum : Out(stream.Signature(16))
        With ``range_sums``: one sum per read with a ``count`` above 0, in read order.
    """

    #: With ``range_sums``: sums computed ahead of being taken from ``read_sum`` (a read
    #: starts only while fewer are owed).
    RANGE_SUM_QUEUE = 4

    def __init__(self, data_width, connections, ring_bytes, max_ooo_ranges=1, read_queue=1,
                 poison_collisions=False, range_sums=False, tail_writes=False,
                 positioned_reads=False):
        check_data_width(data_width)
        if range_sums and (data_width != 64 or max_ooo_ranges != 0):
            raise TypeError("Range sums need a 64-bit ring written only in order "
                            "(max_ooo_ranges 0): a send ring")
        if tail_writes and max_ooo_ranges != 0:
            raise TypeError("Writes at the tail keep no out-of-order range (max_ooo_ranges 0)")
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
        if not isinstance(read_queue, int) or read_queue < 1:
            raise TypeError(f"Read queue depth must be a positive integer, not {read_queue!r}")
        self._data_width = data_width
        self._connections = connections
        self._ring_bytes = ring_bytes
        self._max_ooo_ranges = max_ooo_ranges
        self._read_queue = read_queue
        self._poison_collisions = bool(poison_collisions)
        self._range_sums = bool(range_sums)
        self._tail_writes = bool(tail_writes)
        self._positioned_reads = bool(positioned_reads)
        conn_bits = max(exact_log2(connections), 1)     # no zero-width ports
        count_bits = ring_bytes.bit_length()
        beat = FrameBeat(data_width)
        super().__init__({
            "write_cmd": In(stream.Signature(WriteCommand(conn_bits, count_bits))),
            "write_data": In(stream.Signature(beat)),
            "write_resp": Out(stream.Signature(WriteResponse(count_bits))),
            "read_cmd": In(stream.Signature(ReadCommand(conn_bits, count_bits,
                                                        self._positioned_reads))),
            "read_resp": Out(stream.Signature(ReadResponse(count_bits))),
            "read_data": Out(stream.Signature(beat)),
            "init": In(stream.Signature(InitCommand(conn_bits))),
            "query_conn": In(conn_bits),
            "query": Out(StateQuery(max_ooo_ranges)),
            "state_pending": Out(1),
            "query_pending": Out(1),
            "query_read_pending": Out(1),
            "busy": Out(1),
            "write_busy": Out(1),
            "refused_count": Out(32),
            **({"writer_error": Out(1)} if tail_writes else {}),
            **({"read_sum": Out(stream.Signature(16))} if range_sums else {}),
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

    @property
    def read_queue(self):
        return self._read_queue

    @property
    def range_sums(self):
        return self._range_sums

    @property
    def tail_writes(self):
        return self._tail_writes

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
        conn_lsbs = exact_log2(self._connections)
        conn_bits = max(conn_lsbs, 1)
        count_bits = R.bit_length()

        # The data RAM: the write side owns the write port, the read side the read port. A
        # block RAM read in the clock its word is written returns no defined data, so the read
        # side fetches no word in a clock the RAM writes it (`fetch_collides`), and
        # the port needs no bypass (NO_RW_CHECK): the word goes from the RAM's read register
        # to its output register (`r_word_in`).
        m.submodules.data_mem = data_mem = Memory(
            shape=W, depth=self._connections * R // L, init=[], attrs=NO_RW_CHECK)
        ram_wp = data_mem.write_port(granularity=8)
        # The write side's words go into the RAM a clock after it takes them, from registers:
        # the RAM's blocks lie across the chip, and the realignment before them is logic.
        dwp = Signal(data.StructLayout({"addr": len(ram_wp.addr), "data": W, "en": L}))
        m.d.sync += [ram_wp.addr.eq(dwp.addr), ram_wp.data.eq(dwp.data), ram_wp.en.eq(dwp.en)]
        poison = self._poison_collisions
        drp = registered_read_port(m, data_mem, name="data_rd", output_register=False,
                                   poison_for=(ram_wp,) if poison else ())
        # The state, split by writer: tail and ranges (write side), head (read side). Each
        # reader has its own copy of what it reads (a block RAM has one read port), written
        # by the owner's one write port. The sides read theirs as a block RAM reads at its
        # best, through its read and output registers with no logic between
        # (`registered_read_port`: the words come two clocks after the command is taken; the
        # other side is deciding no command of its connection then, see the arbitration, and
        # a write made in that clock is forwarded, `forwarded`). The query ports read
        # copies of their own the same way (QUERY_LATENCY), with a write made in the clock
        # they read forwarded too.
        def state_copy(name, shape):
            mem = Memory(shape=shape, depth=self._connections, init=[], attrs=NO_RW_CHECK)
            m.submodules[name] = mem
            return mem
        tail_mem = state_copy("tail_mem", _TailState(N))
        tail_r_mem = state_copy("tail_r_mem", 32)
        tail_q_mem = state_copy("tail_q_mem", _TailState(N))
        head_mem = state_copy("head_mem", 32)
        head_w_mem = state_copy("head_w_mem", 32)
        head_q_mem = state_copy("head_q_mem", 32)
        tail_wp = tail_mem.write_port()
        head_wp = head_mem.write_port()
        # The writes are decided in a clock (`tail_set`, `head_set`) and made in the next,
        # from registers (`tail_wp`, `head_wp`): the RAMs' inputs come from flip-flops, not
        # from the decision's logic. A command taken in the clock a write is made reads the
        # word before it, so the write is forwarded to it (`forwarded`); it counts as pending
        # for the query.
        tail_set = Signal(data.StructLayout({"en": 1, "addr": len(tail_wp.addr),
                                             "data": _TailState(N)}))
        head_set = Signal(data.StructLayout({"en": 1, "addr": len(head_wp.addr), "data": 32}))
        m.d.sync += [tail_wp.en.eq(tail_set.en), tail_wp.addr.eq(tail_set.addr),
                     tail_wp.data.eq(tail_set.data),
                     head_wp.en.eq(head_set.en), head_wp.addr.eq(head_set.addr),
                     head_wp.data.eq(head_set.data)]

        def forwarded(conn, name, *, taken=None, stages=1):
            """Registers that take, with a read of `conn`'s state (when `taken`), the state
            writes of `conn` made in that clock, and hold them for `stages` clocks (a side's
            command: taken with it, held until the next; the query: every clock, as long as
            its read); `.state(word)` (tail and ranges), `.tail(word)` and `.head(word)` are
            the state words that read returns, with them."""
            index = [str(i) if stages > 1 else "" for i in range(stages)]
            tail_hit = [Signal(name=f"{name}_tail_forwarded{i}") for i in index]
            tail_word = [Signal(_TailState(N), name=f"{name}_tail_forward{i}") for i in index]
            head_hit = [Signal(name=f"{name}_head_forwarded{i}") for i in index]
            head_word = [Signal(32, name=f"{name}_head_forward{i}") for i in index]
            capture = [tail_hit[0].eq(tail_wp.en & (tail_wp.addr == conn[:conn_lsbs])),
                       tail_word[0].eq(tail_wp.data),
                       head_hit[0].eq(head_wp.en & (head_wp.addr == conn[:conn_lsbs])),
                       head_word[0].eq(head_wp.data)]
            if taken is None:
                m.d.sync += capture
            else:
                with m.If(taken):
                    m.d.sync += capture
            m.d.sync += [reg[i].eq(reg[i - 1]) for reg in (tail_hit, tail_word, head_hit, head_word)
                         for i in range(1, stages)]

            class Forwarded:
                @staticmethod
                def state(word):
                    return Mux(tail_hit[-1], tail_word[-1], word)

                @staticmethod
                def tail(word):
                    return Mux(tail_hit[-1], tail_word[-1].tail, word)

                @staticmethod
                def head(word):
                    return Mux(head_hit[-1], head_word[-1], word)
            return Forwarded
        writes = {tail_mem: tail_wp, head_mem: head_wp}
        for mem, owner, value in ((tail_r_mem, tail_wp, tail_wp.data.tail),
                                  (tail_q_mem, tail_wp, tail_wp.data),
                                  (head_w_mem, head_wp, head_wp.data),
                                  (head_q_mem, head_wp, head_wp.data)):
            copy = mem.write_port()
            m.d.comb += [copy.addr.eq(owner.addr), copy.data.eq(value), copy.en.eq(owner.en)]
            writes[mem] = copy

        def state_read(mem, name):
            return registered_read_port(m, mem, name=name,
                                        poison_for=(writes[mem],) if poison else ())
        w_tail_rp = state_read(tail_mem, "w_tail_rd")
        w_head_rp = state_read(head_w_mem, "w_head_rd")
        r_tail_rp = state_read(tail_r_mem, "r_tail_rd")
        r_head_rp = state_read(head_mem, "r_head_rd")
        q_tail_rp = state_read(tail_q_mem, "q_tail_rd")
        q_head_rp = state_read(head_q_mem, "q_head_rd")
        assert q_tail_rp.latency == q_head_rp.latency == QUERY_LATENCY

        def rel(pos, base):
            """``pos - base`` in sequence space, for positions known to lie in the ring."""
            return (pos - base)[:count_bits]

        # State query port: the RAMs' words, and a state write made in the clock they were read
        # (which the RAM returns undefined) forwarded, both two clocks on.
        q_forwarded = forwarded(self.query_conn, "q", stages=QUERY_LATENCY)
        q_tail = q_forwarded.state(q_tail_rp.data)
        m.d.comb += [
            q_tail_rp.addr.eq(self.query_conn),
            q_head_rp.addr.eq(self.query_conn),
            self.query.head.eq(q_forwarded.head(q_head_rp.data)),
            self.query.tail.eq(q_tail[:32]),
        ]
        if N:
            m.d.comb += self.query.ranges.eq(q_tail[32:])

        def realign(shift, lower, upper, starts):
            """The word of ``Cat(lower, upper)`` starting at byte ``starts[shift]``."""
            both = Cat(lower, upper)
            if L == 1:
                return both[8 * starts[0]:8 * starts[0] + W]
            return Array(both[8 * k:8 * k + W] for k in starts)[shift]

        # A write moves command byte ``j`` to lane ``(j + shift) % L``; a read takes lane
        # ``(j + shift) % L`` to byte ``j``.
        write_starts = [L - s for s in range(L)]
        read_starts = list(range(L))

        # ---- Arbitration: one command accepted per cycle, decisions in that order --------
        w_step = Signal(_WriteStep)
        r_step = Signal(_ReadStep)
        r_data = Signal(_ReadData)
        flush = Signal()                               # the write's last RAM word still to go
        w_active = Signal()                            # a write's beats are being taken
        q_valid = Signal()                             # a decided write waits for its beats
        w_decides = Signal()
        r_decides = Signal()
        # decided reads waiting for their words: entry i is occupied when bit i is set (a
        # thermometer, so that each test of the count is one bit)
        rq_occupied = Signal(self._read_queue)
        rq_valid = rq_occupied[0]
        rq_full = rq_occupied[-1]
        w_idle = w_step == _WriteStep.WAIT_CMD
        r_idle = r_step == _ReadStep.WAIT_CMD
        r_streaming = r_data != _ReadData.IDLE
        write_resp_free = ~self.write_resp.valid | self.write_resp.ready
        read_resp_free = ~self.read_resp.valid | self.read_resp.ready
        # A write being decided holds back the later reads of its connection, and a read
        # being decided the writes of its own: either could change what the other decides.
        # Commands of other connections go on. (A command is taken in the clock after the
        # other side's decision at the earliest, so its state words, read when it is taken,
        # hold that decision: nothing needs forwarding.)
        w_waits = w_step != _WriteStep.WAIT_CMD
        r_waits = ~r_idle
        w_conn = Signal(conn_bits)
        r_conn = Signal(conn_bits)
        w_holds_read = w_waits & (w_conn == self.read_cmd.payload.conn)
        if self._tail_writes and self._positioned_reads:
            # ... except a positioned read: it is decided from its command alone, and its
            # words wait for the write's bytes in its range (`awaits_write`)
            w_holds_read &= ~self.read_cmd.payload.positioned
        r_holds_write = r_waits & (r_conn == self.write_cmd.payload.conn)
        init_ok = w_idle & ~w_active & ~q_valid & ~flush & r_idle & ~r_streaming & ~rq_valid
        # the next write is decided while the beats of the one before still come (one waits)
        write_ok = ~self.init.valid & w_idle & write_resp_free & ~r_holds_write & ~q_valid
        # `read_queue` decided reads may wait for the beats of those before; a discard never
        # waits
        read_ok = (~self.init.valid & ~self.write_cmd.valid & r_idle & ~w_holds_read
                   & (~rq_full | self.read_cmd.payload.discard))
        m.d.comb += [self.init.ready.eq(init_ok), self.write_cmd.ready.eq(write_ok),
                     self.read_cmd.ready.eq(read_ok)]
        with m.If(self.write_resp.ready):
            m.d.sync += self.write_resp.valid.eq(0)
        with m.If(self.read_resp.ready):
            m.d.sync += self.read_resp.valid.eq(0)

        # ---- Write side ------------------------------------------------------------------
        w_offset = Signal(32)
        length_bits = len(self.write_cmd.payload.length)
        w_length = Signal(length_bits)
        w_has_bytes = Signal()                         # w_length != 0, from FETCH on
        w_room = Signal(signed(length_bits + 2))       # the ring less the command's reserve
        m.d.comb += [w_tail_rp.addr.eq(self.write_cmd.payload.conn),
                     w_head_rp.addr.eq(self.write_cmd.payload.conn)]
        w_forwarded = forwarded(self.write_cmd.payload.conn, "w",
                                taken=w_idle & self.write_cmd.valid & write_ok)

        w_offset_end = Signal(32)                      # offset + length, from the command

        # The decision, one stage a clock (see _WriteStep), each from registers.
        # LOAD: the state words.
        st = Signal(_TailState(N))
        w_used = Signal(count_bits)                    # tail - head: the ring bytes in use
        valid = [st.ranges[i].valid for i in range(N)]
        # RELATE: the write's first and end bytes and the ranges' edges as offsets from tail,
        # and the window: the ring bytes this write may fill.
        w_rel = Signal(signed(32))
        w_end = Signal(signed(34))
        w_free = Signal(count_bits)
        lo_rel = [Signal(count_bits, name=f"w_lo_rel{i}") for i in range(N)]
        hi_rel = [Signal(count_bits, name=f"w_hi_rel{i}") for i in range(N)]
        w_unreserved = Signal(signed(length_bits + 2))
        m.d.comb += w_unreserved.eq(w_room - w_used)
        with m.If(w_step == _WriteStep.RELATE):
            rel32 = (w_offset - st.tail)[:32].as_signed()
            m.d.sync += [w_rel.eq(rel32), w_end.eq(rel32 + w_length),
                         w_free.eq(Mux(w_unreserved < 0, 0, w_unreserved))]
            m.d.sync += [lo_rel[i].eq(rel(st.ranges[i].lo, st.tail)) for i in range(N)]
            m.d.sync += [hi_rel[i].eq(rel(st.ranges[i].hi, st.tail)) for i in range(N)]
        # CLIP: the stored bytes are [start, stop) = [max(rel, 0), min(end, free)), so every
        # test against them is a pair of comparisons of registers, made at once.
        w_start = Mux(w_rel < 0, 0, w_rel)
        w_stop_rel = Mux(w_end < w_free, w_end, w_free)
        w_nonempty = Signal()
        w_in_order = Signal()
        w_refuse = Signal()
        touch = [Signal(name=f"w_touch{i}") for i in range(N)]      # overlaps or touches it
        reached = [Signal(name=f"w_reached{i}") for i in range(N)]  # starts at or before stop
        # the comparisons that pick the merged range's edges and the new tail (see `edge`)
        lo_lt_start = [Signal(name=f"w_lo_lt_start{i}") for i in range(N)]
        hi_gt_stop = [Signal(name=f"w_hi_gt_stop{i}") for i in range(N)]
        lo_lt = [[Signal(name=f"w_lo_lt{i}_{j}") for j in range(N)] for i in range(N)]
        hi_gt = [[Signal(name=f"w_hi_gt{i}_{j}") for j in range(N)] for i in range(N)]
        w_stop = Signal(count_bits)                    # min(end, free) when stored (<= R)
        w_stored_lo = Signal(32)                       # [lo, hi) as stream positions
        w_stored_hi = Signal(32)
        w_cmd_lo = Signal(length_bits + 1)             # [lo, hi) as command bytes
        w_cmd_hi = Signal(length_bits + 1)
        w_first_lo = Signal(signed(length_bits + 4))   # GUARD: see `w_next_lo`, the first word's
        w_first_hi = Signal(signed(length_bits + 4))
        with m.If(w_step == _WriteStep.CLIP):
            stop_le = [(lo_rel[i] <= w_end) & (lo_rel[i] <= w_free) for i in range(N)]
            touches = [valid[i] & stop_le[i] & (hi_rel[i] >= w_rel) for i in range(N)]
            m.d.sync += [
                # max(rel, 0) < min(end, free)
                w_nonempty.eq((w_rel < w_end) & (w_rel < w_free) & (w_end > 0) & (w_free != 0)),
                w_in_order.eq(w_rel <= 0),
                *(touch[i].eq(touches[i]) for i in range(N)),
                *(reached[i].eq(valid[i] & stop_le[i]) for i in range(N)),
                # an out-of-order write needs a slot for itself beside the ranges it misses
                # (all N missed: an AND, not a count compared with N)
                w_refuse.eq((w_rel > 0) & Cat(valid[i] & ~touches[i] for i in range(N)).all()),
                *(lo_lt_start[i].eq(lo_rel[i] < w_rel) for i in range(N)),
                *(hi_gt_stop[i].eq((hi_rel[i] > w_end) | (hi_rel[i] > w_free)) for i in range(N)),
                *(lo_lt[i][j].eq(lo_rel[i] < lo_rel[j]) for i in range(N) for j in range(N) if i != j),
                *(hi_gt[i][j].eq(hi_rel[i] > hi_rel[j]) for i in range(N) for j in range(N) if i != j),
                w_stop.eq(w_stop_rel),
                # tail + rel is the offset, tail + end the offset's end
                w_stored_lo.eq(Mux(w_rel < 0, st.tail, w_offset)),
                w_stored_hi.eq(Mux(w_end < w_free, w_offset_end, st.tail + w_free)),
                w_cmd_lo.eq(Mux(w_rel < 0, -w_rel, 0)),
                w_cmd_hi.eq(Mux(w_end < w_free, w_length, w_free - w_rel)),
            ]
        # DECIDE: selects of registered values.
        w_store = w_nonempty & ~w_refuse

        def edge(candidates, beats, own):
            """The edge of the candidate range that `beats` every other candidate and `own`
            (the write's edge); `own` if none does. One-hot but for ties, whose edges are
            equal (offsets from tail of at most R)."""
            value = own
            for i, (chosen, edge_i) in enumerate(candidates):
                wins = chosen & beats[i][None]
                for j, (chosen_j, _) in enumerate(candidates):
                    if j != i:
                        wins &= ~(chosen_j & beats[j][i])
                value = Mux(wins, edge_i, value)
            return value

        # Out of order: the merged range spans every range that overlaps or touches the
        # write's bytes.
        lo_beats = [{None: lo_lt_start[i], **{j: lo_lt[i][j] for j in range(N) if j != i}}
                    for i in range(N)]
        hi_beats = [{None: hi_gt_stop[i], **{j: hi_gt[i][j] for j in range(N) if j != i}}
                    for i in range(N)]
        merged_lo = edge([(touch[i], st.ranges[i].lo) for i in range(N)], lo_beats, w_stored_lo)
        merged_hi = edge([(touch[i], st.ranges[i].hi) for i in range(N)], hi_beats, w_stored_hi)
        kept = [valid[i] & ~touch[i] for i in range(N)]
        # the merged range goes first (the most recently written), then the others as they
        # were (fewer than N are kept when the write is stored, so they fit behind it)
        merged = Cat(Const(1, 1), merged_lo, merged_hi)
        ooo_ranges = _compact([merged, *(st.ranges[i].as_value() for i in range(N))],
                              [Const(1, 1), *kept], N)
        # In order: tail moves to stop and past every range that stop reaches.
        new_tail = edge([(reached[i], st.ranges[i].hi) for i in range(N)], hi_beats, w_stored_hi)
        advance = edge([(reached[i], hi_rel[i]) for i in range(N)], hi_beats, w_stop)
        in_order_ranges = _compact([st.ranges[i].as_value() for i in range(N)],
                                   [valid[i] & ~reached[i] for i in range(N)], N)

        # The write side's data path.
        # (no zero-width signals, so the Verilog stays lint-clean at 8 bits and one connection)
        w_shift = Signal(max(lane_bits, 1))            # byte offset of the first byte in its word
        w_word = Signal(max(word_bits, 1))             # next RAM word within the ring
        w_left = Signal(length_bits)                   # bytes still to take
        w_prev = Signal(W)                             # residual word for realignment
        # the next word's lane 0 less the first and the end of the stored bytes, as command
        # byte indices: lane i of it is stored when next_lo + i >= 0 and next_hi + i < 0
        w_next_lo = Signal(signed(length_bits + 4))
        w_next_hi = Signal(signed(length_bits + 4))
        w_keep_lo = Signal(32)                         # stream positions the beats still store
        w_keep_hi = Signal(32)
        w_word_pos = Signal(32)                        # stream position of lane 0 of `w_word`
        w_unwritten = Signal(32)                       # first stored position not yet in the RAM
        d_conn = Signal(conn_bits)                     # the connection the beats go to
        # Single-bit facts about the registers above, each worked out a beat ahead from the
        # value before (the data path's choices are then a LUT or two from flip-flops):
        # `w_last_beat` w_left <= L; `w_lo_top`/`w_hi_top` the bits of w_next_lo/w_next_hi
        # above the lane bits are all ones (the value is in -L..-1); `w_lo_zero` w_next_lo is 0.
        w_last_beat = Signal()
        w_lo_top = Signal()
        w_hi_top = Signal()
        w_lo_zero = Signal()
        queued = Signal(_WriteJob(conn_bits, lane_bits, word_bits, length_bits, L))
        decided = Signal.like(queued)
        # With tail writes: the job of a write whose beats go in before its decision, its
        # first word's lanes (from FETCH), and whether it did (until its decision)
        early = Signal.like(queued)
        e_first_lo = Signal(signed(length_bits + 4))
        e_first_hi = Signal(signed(length_bits + 4))
        w_early = Signal()

        def last_after(left):
            """`left` - L <= L: a count of `left` bytes is at its last beat once a beat has
            taken L of them (`w_last_beat`, `r_last_beat`, a beat ahead)."""
            return left <= 2 * L

        def top_after(value):
            """The fact `w_lo_top` (or `w_hi_top`) of `value` + L."""
            upper = value[lane_bits:]
            return upper[1:].all() & ~upper[0]

        def at_least(value, top, bound):
            """Signed `value` >= `bound`, a constant in -(L - 1)..0, given `top` (its bits above
            the lane bits are all ones): no carry chain."""
            if bound == 0:
                return ~value[-1]
            return ~value[-1] | (top & (value[:lane_bits] >= bound % L))

        def lanes_kept(from_lo, lo_top, from_hi, hi_top):
            """The lanes of a word that hold stored bytes, from its lane 0 less the first and
            the end of the stored bytes: registered a word ahead (the RAM's byte enables)."""
            return Cat(at_least(from_lo, lo_top, -i) & ~at_least(from_hi, hi_top, -i)
                       for i in range(L))
        w_lanes = Signal(L)

        def write_job(job, first_lo, first_hi, keep_lo, keep_hi):
            """`job` for the command's write, given its first word's lane 0 less the first
            and the end of the bytes it stores (``w_next_lo``'s start) and their stream
            positions."""
            return [job.conn.eq(w_conn),
                    job.shift.eq(w_offset[:lane_bits]),
                    job.word.eq(w_offset[lane_bits:lane_bits + word_bits]),
                    job.left.eq(w_length),
                    job.next_lo.eq(first_lo + L),
                    job.next_hi.eq(first_hi + L),
                    job.keep_lo.eq(keep_lo),
                    job.keep_hi.eq(keep_hi),
                    job.base.eq(Cat(Const(0, lane_bits), w_offset[lane_bits:])),
                    job.lanes.eq(lanes_kept(first_lo, first_lo[lane_bits:].all(),
                                            first_hi, first_hi[lane_bits:].all())),
                    job.last.eq(w_length <= L),
                    job.lo_top.eq(top_after(first_lo)),
                    job.hi_top.eq(top_after(first_hi)),
                    job.lo_zero.eq(first_lo == -L)]

        def start(job):
            """The data path takes `job`'s beats from now on."""
            m.d.sync += [d_conn.eq(job.conn), w_shift.eq(job.shift), w_word.eq(job.word),
                         w_left.eq(job.left), w_next_lo.eq(job.next_lo), w_next_hi.eq(job.next_hi),
                         w_keep_lo.eq(job.keep_lo), w_keep_hi.eq(job.keep_hi),
                         w_lanes.eq(job.lanes), w_last_beat.eq(job.last), w_lo_top.eq(job.lo_top),
                         w_hi_top.eq(job.hi_top), w_lo_zero.eq(job.lo_zero),
                         w_word_pos.eq(job.base), w_unwritten.eq(job.keep_lo), w_active.eq(1)]

        m.d.comb += dwp.addr.eq(Cat(w_word[:word_bits], d_conn[:conn_lsbs]))
        with m.If(flush):
            m.d.comb += [dwp.data.eq(realign(w_shift, w_prev, Const(0, W), write_starts)),
                         dwp.en.eq(w_lanes)]
            m.d.sync += flush.eq(0)

        # ---- Read side -------------------------------------------------------------------
        r_skip = Signal.like(self.read_cmd.payload.skip)
        r_end = Signal(READ_LENGTH_BITS + 1)           # length + skip, from the command
        r_peek = Signal()
        r_discard = Signal()
        # a positioned read's first byte and the byte after its last (`positioned_reads`)
        r_positioned = Signal()
        r_position = Signal(32)
        r_position_end = Signal(32)
        m.d.comb += [r_tail_rp.addr.eq(self.read_cmd.payload.conn),
                     r_head_rp.addr.eq(self.read_cmd.payload.conn)]
        r_forwarded = forwarded(self.read_cmd.payload.conn, "r",
                                taken=r_idle & self.read_cmd.valid & read_ok)

        r_length = Signal(count_bits)                  # the command's, when below the ring's
        r_length_nonzero = Signal()
        r_end_nonzero = Signal()                       # FETCH
        r_head = Signal(32)                            # LOAD
        r_tail = Signal(32)
        # CLIP: every sum the decision may pick, each one carry chain after `readable`
        readable_nonzero = Signal()
        readable_less_skip = Signal(count_bits)
        head_plus_skip = Signal(32)
        head_plus_end = Signal(32)
        skip_within = Signal()
        end_within = Signal()
        with m.If(r_step == _ReadStep.FETCH):
            m.d.sync += r_end_nonzero.eq(r_end != 0)
        with m.If(r_step == _ReadStep.LOAD):
            m.d.sync += [r_head.eq(r_forwarded.head(r_head_rp.data)),
                         r_tail.eq(r_forwarded.tail(r_tail_rp.data))]
        with m.If(r_step == _ReadStep.CLIP):
            readable = rel(r_tail, r_head)
            m.d.sync += [readable_nonzero.eq(readable != 0),
                         readable_less_skip.eq(readable - r_skip),
                         head_plus_skip.eq(r_head + r_skip),
                         head_plus_end.eq(r_head + r_end),
                         skip_within.eq(r_skip < readable),
                         end_within.eq(r_end < readable)]

        # The decision: head moves by min(skip + length, readable), of which the first
        # min(skip, readable) bytes are skipped and the rest are read: selects of registers
        # (head + readable is tail; with the skip within, readable - skip is not 0).
        r_count = Signal(count_bits)
        r_count_nonzero = Signal()
        r_start = Signal(32)
        r_new_head = Signal(32)
        r_moves = Signal()                             # head moves: the advance is not 0
        # (a positioned read's are its command's: all of it, where it says; it peeks)
        m.d.comb += [
            r_count.eq(Mux(r_positioned, r_length,
                           Mux(skip_within, Mux(end_within, r_length, readable_less_skip), 0))),
            r_count_nonzero.eq(Mux(r_positioned, r_length_nonzero,
                                   skip_within & (~end_within | r_length_nonzero))),
            r_start.eq(Mux(r_positioned, r_position, Mux(skip_within, head_plus_skip, r_tail))),
            r_new_head.eq(Mux(r_positioned, r_position_end,
                              Mux(end_within, head_plus_end, r_tail))),
            r_moves.eq(Mux(end_within, r_end_nonzero, readable_nonzero)),
        ]

        # The read side's data path.
        r_shift = Signal(max(lane_bits, 1))
        r_word = Signal(max(word_bits, 1))
        r_left = Signal(count_bits)                    # bytes still to send
        r_from = Signal(32)                            # stream position of the read's first byte
        s_conn = Signal(conn_bits)                     # the connection whose beats go out
        r_last_beat = Signal()                         # r_left <= L, worked out a beat ahead
        r_decided = Signal(_ReadJob(conn_bits, count_bits))
        # the decided reads waiting, oldest first (registers: the write side checks each)
        r_queued = [Signal.like(r_decided, name=f"r_queued{i}") for i in range(self._read_queue)]
        rq_push = Signal()
        rq_pop = Signal()
        head_clear = Signal()                          # the first decided read may start

        # The words fetched: `r_fetched` a RAM read was issued a clock ago (its word is on
        # the port), `r_captured` the register `r_word_in` holds a word; `r_words` the
        # queue a beat is cut from (its first two words).
        r_fetched = Signal()
        r_captured = Signal()
        r_word_in = Signal(W, reset_less=True)       # the RAM's output register
        r_words = [Signal(W, name=f"r_words{i}") for i in range(_READ_WORDS_AHEAD)]
        r_words_n = Signal(range(_READ_WORDS_AHEAD + 1))

        # The port reads the word of registers `r_word` and `s_conn` every clock, its enable
        # tied high: no logic fans out to the RAM's many blocks; a word is taken only a clock
        # after a fetch was issued, and none is issued in a clock the RAM writes that word.
        # (A word the write side takes is in the RAM a clock later: a read is started a clock
        # after the registered check that its bytes were taken, and fetches a clock after.)
        fetch_addr = Cat(r_word[:word_bits], s_conn[:conn_lsbs])
        fetch_collides = ram_wp.en.any() & (ram_wp.addr == fetch_addr)
        m.d.comb += drp.addr.eq(fetch_addr)

        def start_read(job):
            """The data path fetches `job`'s words from the next clock on."""
            m.d.sync += [r_shift.eq(job.start[:lane_bits]),
                         r_word.eq(job.start[lane_bits:lane_bits + word_bits]),
                         r_left.eq(job.count), r_last_beat.eq(job.count <= L),
                         r_from.eq(job.start), s_conn.eq(job.conn),
                         r_data.eq(_ReadData.ACTIVE)]
            if self._range_sums:
                start_sum(job)

        # ---- Range sums (a send ring's transmit checksum) ---------------------------------
        # A started read fetches its last word first (LAST_WORD), then its words from the
        # first on; the two edge words pass through `r_word_in`, where one tree of adders
        # sums the lanes each needs; P of the last word is read with its fetch, P of the word
        # after the first with the first one's. With B(x) the stream's sum before position x:
        # sum = B(end) - B(start), B(end) = P[last word] + its lanes up to the last byte,
        # B(start) = P[first word + 1] - the first word's lanes from the first byte on (from
        # above: with the ring full, the lanes below the first byte hold the newest bytes);
        # a read within one word is that word's lanes. Fixed clocks after each fetch.
        fetch_last = Signal()          # the last word's fetch issued in this clock
        fetch_first = Signal()         # the first word's
        sums_clear = Signal()          # the first decided read's P are written too
        if self._range_sums:
            m.submodules.prefix_sums = prefix_sums = PrefixSums(
                self._connections, R, poison_collisions=poison)
            m.d.comb += [prefix_sums.write.valid.eq(dwp.en.any()),
                         prefix_sums.write.addr.eq(dwp.addr),
                         prefix_sums.write.data.eq(dwp.data),
                         prefix_sums.write.en.eq(dwp.en)]
            m.submodules.read_sums = read_sums = SyncFIFO(width=16, depth=self.RANGE_SUM_QUEUE)
            m.d.comb += [self.read_sum.valid.eq(read_sums.r_rdy),
                         self.read_sum.payload.eq(read_sums.r_data),
                         read_sums.r_en.eq(self.read_sum.ready)]
            # sums of started reads not yet taken from `read_sum` (the queue always has room)
            sums_owed = Signal(range(self.RANGE_SUM_QUEUE + 1))
            sum_starts = Signal()
            m.d.sync += sums_owed.eq(sums_owed + sum_starts
                                     - (self.read_sum.valid & self.read_sum.ready))
            first_word = Signal(max(word_bits, 1))      # fetched after the last one
            p_word = Signal(max(word_bits, 1))          # P's address (the word in the ring)
            first_pending = Signal()                    # the first word's fetch is to come
            mask_last = Signal(L)                       # the lanes summed of each edge word
            mask_first = Signal(L)
            single = Signal()                           # the read lies within one word
            odd = Signal()                              # its first byte is a low byte

            def above(lane, i):
                """Lane `i` is at or above `lane` (no compare that is always true)."""
                return C(1, 1) if i == L - 1 else lane <= i

            def below(lane, i):
                """Lane `i` is at or below `lane`."""
                return C(1, 1) if i == 0 else lane >= i

            # The first decided read's last byte (its offset in the ring) and whether it lies
            # within one word, registered from the queue's head: a read starts two clocks
            # after it became the head at the earliest (`clear_for`), so they are its own,
            # and no adder lies between the queue and `r_word`.
            head_last = Signal(lane_bits + word_bits)
            head_within = Signal()
            head = r_queued[0]
            m.d.sync += [head_last.eq(head.start[:lane_bits + word_bits] + head.count - 1),
                         head_within.eq((head.count + head.start[:lane_bits]) <= L)]

            def start_sum(job):
                assert job is head, "a read starts from the queue's head"
                last = head_last
                first_lane = job.start[:lane_bits]
                last_lane = last[:lane_bits]
                within = head_within
                m.d.comb += sum_starts.eq(1)
                m.d.sync += [
                    r_word.eq(last[lane_bits:]),
                    p_word.eq(last[lane_bits:]),
                    first_word.eq(job.start[lane_bits:lane_bits + word_bits]),
                    first_pending.eq(1),
                    mask_last.eq(Cat(below(last_lane, i) & (~within | above(first_lane, i))
                                     for i in range(L))),
                    mask_first.eq(Cat(above(first_lane, i) for i in range(L))),
                    single.eq(within),
                    odd.eq(job.start[0]),
                    r_data.eq(_ReadData.LAST_WORD),
                ]

            # P: of the last word with its fetch, of the word after the first with the
            # first's. The address is a register (P's 16 block RAMs lie apart): the last word
            # from the read's start, the word after the first from the last one's fetch on (a
            # fetch that waits for a write of its word reads the same P again).
            m.d.comb += prefix_sums.read_addr.eq(Cat(p_word[:word_bits], s_conn[:conn_lsbs]))
            with m.If(fetch_last):
                m.d.sync += p_word.eq(first_word + 1)
            # The edge word in `r_word_in` (the RAM's output register) two clocks after its
            # fetch, in `edge_word` a clock later (a register beside the adders: the block
            # RAMs lie apart); its lanes' sum `depth` after that; P two clocks after its read.
            edge_word = Signal(W, reset_less=True)
            m.d.sync += edge_word.eq(r_word_in)
            edge_mask = Signal(L)
            edge_lanes, depth = word_lanes_sum(m, edge_word, edge_mask, "edge",
                                               registered_pairs=False)
            depth += 1
            last_tags = [fetch_last]
            first_tags = [fetch_first]
            for k in range(2 + depth):
                last_tags.append(Signal(name=f"sum_last_tag{k}"))
                first_tags.append(Signal(name=f"sum_first_tag{k}"))
                m.d.sync += [last_tags[-1].eq(last_tags[-2]), first_tags[-1].eq(first_tags[-2])]
            # (chosen a clock ahead, so that the lane selects start at a register: the masks
            # hold from before the last word's fetch to 5 clocks after the first's)
            m.d.sync += edge_mask.eq(Mux(last_tags[2], mask_last, mask_first))
            p_last = Signal(16)
            p_after_first = Signal(16)
            lanes_last = Signal(16)
            with m.If(last_tags[2]):
                m.d.sync += p_last.eq(prefix_sums.read_data)
            with m.If(first_tags[2]):
                m.d.sync += p_after_first.eq(prefix_sums.read_data)
            with m.If(last_tags[-1]):
                m.d.sync += lanes_last.eq(edge_lanes)
            # then B(end), B(start) (the first word's lanes are the tree's in this clock:
            # the last word's came at least a clock before), then their difference
            b_end = Signal(16)
            b_start = Signal(16)
            summed = Signal()
            m.d.sync += [b_end.eq(ones_add(m, p_last, lanes_last, "b_end_add")),
                         b_start.eq(ones_add(m, p_after_first, ~edge_lanes, "b_start_add")),
                         summed.eq(first_tags[-1])]
            # (the next read may start, and set `single` and `odd`, from 5 clocks after the
            # first word's fetch: the sum takes them at that fetch)
            sum_single = Signal()
            sum_odd = Signal()
            with m.If(fetch_first):
                m.d.sync += [sum_single.eq(single), sum_odd.eq(odd)]
            difference = Mux(sum_single, lanes_last, ones_add(m, b_end, ~b_start, "range_sub"))
            m.d.comb += [read_sums.w_en.eq(summed),
                         read_sums.w_data.eq(Mux(sum_odd, Cat(difference[8:], difference[:8]),
                                                 difference))]

        # ---- The two waits ---------------------------------------------------------------
        # A decided read's words are not fetched while the write side still has to put bytes
        # of its range into the RAM: its bytes [start, start + count) meet [w_keep_lo,
        # w_keep_hi) of the write's connection while its beats or its last word are pending,
        # or those of the write decided ahead. (The read is decided, and answered, at once:
        # its count is the bytes decided, in the RAM or not.) Both ends of a pending write's
        # range lie within R of the read's first byte (a write decided before the read was
        # clipped to the window of a head at or before it; one decided after it starts at a
        # tail at or after the read's last byte and, by the other wait, ends within R of its
        # first), so signed offsets from it one bit wider than the ring's compare them. Only
        # the bytes not yet in the RAM count: those from the write's current word on (stream
        # position `w_unwritten` on; the words before it were written on earlier clocks), so a
        # read of bytes the write has already put in goes ahead while the write goes on.
        w_pending = w_active | flush

        def awaits_write(job):
            """Bytes of decided read `job` are still to be put into the RAM."""
            def before(a, b):
                # a < b, both within 2R of each other: the sign of one difference (one carry
                # chain each, all at once)
                return (a - b)[:count_bits + 2].as_signed() < 0

            def meets(lo, hi):
                # [lo, hi) and the read's [start, end) overlap
                return before(lo, hi) & before(lo, job.end) & before(job.start, hi)

            # (a write decided ahead has put none of its bytes in yet; `w_unwritten` stays
            # within [w_keep_lo, w_keep_hi], at w_keep_hi once all are in: then it meets
            # nothing)
            waits = ((w_pending & (d_conn == job.conn) & meets(w_unwritten, w_keep_hi))
                     | (q_valid & (queued.conn == job.conn) & meets(queued.keep_lo, queued.keep_hi)))
            if self._tail_writes and self._positioned_reads:
                # a positioned read may be decided while a write of its connection is not
                # (`w_holds_read`): until the write's beats start (`w_early`) or it is decided,
                # the bytes it takes, [offset, offset + length) at the tail, are still to come
                # (the sender's positioned reads lie within the writes it has had taken, so
                # both ends are within R of the read's first byte here too)
                waits |= (w_waits & ~w_early & (w_conn == job.conn)
                          & meets(w_offset, w_offset_end))
            return waits
        # A write waits while the read side streams, or has decided, a read of its connection
        # whose ring slots it would fill: the write stores up to tail + w_stop, and the slots
        # of the read's bytes from its first on come round again R later, so it fills them
        # when tail - first + w_stop > R, that is w_stop > R - (tail - first). (tail - first
        # and w_stop are both at most R. A peek of held bytes never fills: first >= head and
        # w_stop <= R - (tail - head); a consuming read, or a discard that has moved head
        # past a peek's first byte, may.)
        # Two registered stages: in CLIP, R - (tail - first) for each read of the write's
        # connection, one subtraction (first - tail, whose top bit R, a power of two, flips);
        # in GUARD, its compare with w_stop, and the OR. No read of the write's connection is
        # taken once the write is (one being decided holds the write back) but a positioned
        # one, whose bytes lie within [head, tail + length) with head no earlier than the
        # write's (so the write fills none of its slots), and a read's first byte stays put:
        # so the reads a stage saw include those there now that matter, and a
        # two-clocks-old "none" holds (a "some" only makes the decision wait longer).
        reads = [(r_streaming, s_conn, r_from),
                 *((rq_occupied[i], job.conn, job.start) for i, job in enumerate(r_queued))]

        def margins(name, write_conn, tail):
            """Registered: which reads are of `write_conn`, and R - (tail - first) of each."""
            mine = Signal(len(reads), name=f"w_{name}_mine")
            margin = [Signal(count_bits, name=f"w_{name}_margin{i}") for i in range(len(reads))]
            m.d.sync += [mine.eq(Cat(there & (conn == write_conn) for there, conn, _ in reads)),
                         *(each.eq(rel(first, tail) ^ R)
                           for each, (_, _, first) in zip(margin, reads))]
            return mine, margin

        h_mine, h_margin = margins("h", w_conn, w_offset if self._tail_writes else st.tail)
        w_hazard = Signal()
        m.d.sync += w_hazard.eq(w_store & (h_mine & Cat(w_stop > margin
                                                        for margin in h_margin)).any())
        # With tail writes the tail is the command's offset, so the check that lets a write's
        # beats in before its decision, `e_hazard`, has its margins worked out from the
        # command itself in the clock it is taken, and is registered a clock later, for LOAD
        # (no read of the write's connection is being decided when it is taken, so the reads
        # of that clock are all it must see).
        e_hazard = Signal()
        if self._tail_writes:
            e_mine, e_margin = margins("e", self.write_cmd.payload.conn,
                                       self.write_cmd.payload.offset)
            m.d.sync += e_hazard.eq((e_mine & Cat(w_length > margin
                                                  for margin in e_margin)).any())
        # (write_resp is free at a write's decision, as a write is taken only when it is free;
        # the decision checks it anyway, so that a proof by induction need not know that)
        m.d.comb += [w_decides.eq((w_step == _WriteStep.DECIDE) & write_resp_free & ~w_hazard),
                     r_decides.eq((r_step == _ReadStep.DECIDE) & read_resp_free
                                  & (r_discard | ~rq_full))]

        # ---- Init: both sides idle, it writes both state RAMs ----------------------------
        with m.If(self.init.valid & init_ok):
            m.d.comb += [tail_set.en.eq(1), tail_set.addr.eq(self.init.payload.conn),
                         tail_set.data.eq(0), tail_set.data.tail.eq(self.init.payload.offset),
                         head_set.en.eq(1), head_set.addr.eq(self.init.payload.conn),
                         head_set.data.eq(self.init.payload.offset)]

        # ---- The write side's steps ------------------------------------------------------
        with m.Switch(w_step):
            with m.Case(_WriteStep.WAIT_CMD):
                with m.If(self.write_cmd.valid & write_ok):
                    m.d.sync += [w_conn.eq(self.write_cmd.payload.conn),
                                 w_offset.eq(self.write_cmd.payload.offset),
                                 w_offset_end.eq(self.write_cmd.payload.offset
                                                 + self.write_cmd.payload.length),
                                 w_length.eq(self.write_cmd.payload.length),
                                 w_room.eq(R - self.write_cmd.payload.reserve)]
                    m.d.sync += w_step.eq(_WriteStep.FETCH)

            with m.Case(_WriteStep.FETCH):
                m.d.sync += [w_has_bytes.eq(w_length != 0), w_step.eq(_WriteStep.LOAD)]
                if self._tail_writes:
                    # the first word's lane 0 less the first and the end of the bytes, as
                    # GUARD works them out for a write at the tail that fits
                    m.d.sync += [e_first_lo.eq(-w_offset[:lane_bits]),
                                 e_first_hi.eq(-w_offset[:lane_bits] - w_length)]
            with m.Case(_WriteStep.LOAD):
                # (the state read ports' output registers hold the words read when the
                # command was taken)
                loaded = _TailState(N)(w_forwarded.state(w_tail_rp.data))
                m.d.sync += [st.eq(loaded),
                             w_used.eq(rel(loaded.tail, w_forwarded.head(w_head_rp.data)))]
                m.d.sync += w_step.eq(_WriteStep.RELATE)
                if self._tail_writes:
                    # A write at the tail that fits: its beats go in from the next clock, as
                    # the decision would have them (no read of its connection is taken until
                    # then; one waiting whose slots it would fill holds it, `e_hazard`).
                    with m.If(w_has_bytes & ~e_hazard & ~w_active & ~flush & ~q_valid):
                        m.d.comb += write_job(early, e_first_lo, e_first_hi, w_offset,
                                              w_offset_end)
                        start(early)
                        m.d.sync += w_early.eq(1)
            with m.Case(_WriteStep.RELATE):
                m.d.sync += w_step.eq(_WriteStep.CLIP)
            with m.Case(_WriteStep.CLIP):
                m.d.sync += w_step.eq(_WriteStep.GUARD)
            with m.Case(_WriteStep.GUARD):
                # the first word's lane 0 less the stored bytes' first and end (none stored:
                # both 0, so no lane is)
                m.d.sync += [w_first_lo.eq(-w_offset[:lane_bits] - Mux(w_store, w_cmd_lo, 0)),
                             w_first_hi.eq(-w_offset[:lane_bits] - Mux(w_store, w_cmd_hi, 0))]
                m.d.sync += w_step.eq(_WriteStep.DECIDE)

            with m.Case(_WriteStep.DECIDE):
                # decide, write the new state back in this cycle and answer
                m.d.comb += write_job(decided, w_first_lo, w_first_hi, w_stored_lo,
                                      Mux(w_store, w_stored_hi, w_stored_lo))
                with m.If(w_decides):
                    # its beats come next, or after those of the write before it (unless
                    # they were let in before the decision, `w_early`)
                    m.d.sync += w_early.eq(0)
                    if self._tail_writes:
                        with m.If(w_has_bytes & ~((w_rel == 0) & (w_end <= w_free))):
                            m.d.sync += self.writer_error.eq(1)
                    with m.If(w_has_bytes & ~w_early):
                        with m.If(~w_active & ~flush):
                            start(decided)
                        with m.Else():
                            m.d.sync += [queued.eq(decided), q_valid.eq(1)]
                    m.d.sync += [
                        self.write_resp.valid.eq(1),
                        self.write_resp.payload.advance.eq(Mux(w_store & w_in_order, advance, 0)),
                        self.write_resp.payload.refused.eq(w_nonempty & w_refuse),
                    ]
                    m.d.comb += [tail_set.addr.eq(w_conn), tail_set.data.eq(st)]
                    with m.If(w_store):
                        m.d.comb += tail_set.en.eq(1)
                        with m.If(w_in_order):
                            m.d.comb += tail_set.data.tail.eq(new_tail)
                            for i in range(N):
                                m.d.comb += tail_set.data.ranges[i].eq(in_order_ranges[i])
                        with m.Else():
                            for i in range(N):
                                m.d.comb += tail_set.data.ranges[i].eq(ooo_ranges[i])
                    with m.If(w_nonempty & w_refuse):
                        m.d.sync += self.refused_count.eq(self.refused_count + 1)
                    m.d.sync += w_step.eq(_WriteStep.WAIT_CMD)

        # ---- The write side's data path: one decided write's beats after another ---------
        with m.If(w_active):
            m.d.comb += self.write_data.ready.eq(1)
            with m.If(self.write_data.valid):
                m.d.comb += [
                    dwp.data.eq(realign(w_shift, w_prev, self.write_data.payload.data,
                                        write_starts)),
                    dwp.en.eq(w_lanes),
                ]
                m.d.sync += [w_prev.eq(self.write_data.payload.data), w_word.eq(w_word + 1),
                             w_next_lo.eq(w_next_lo + L), w_next_hi.eq(w_next_hi + L),
                             w_left.eq(w_left - L), w_last_beat.eq(last_after(w_left)),
                             w_lanes.eq(lanes_kept(w_next_lo, w_lo_top, w_next_hi, w_hi_top)),
                             w_lo_top.eq(top_after(w_next_lo)), w_hi_top.eq(top_after(w_next_hi)),
                             w_lo_zero.eq(w_next_lo == -L),
                             w_word_pos.eq(w_word_pos + L),
                             # the bytes before the next word are in
                             w_unwritten.eq(Mux(~w_next_hi[-1], w_keep_hi,
                                                Mux(~w_next_lo[-1] & ~w_lo_zero,
                                                    w_word_pos + L, w_keep_lo)))]
                with m.If(w_last_beat):
                    m.d.sync += [flush.eq(w_shift + w_left > L), w_left.eq(0), w_active.eq(0)]
        with m.Elif(~flush & q_valid):
            # (after the last word of the write before: the flush uses its registers)
            start(queued)
            m.d.sync += q_valid.eq(0)

        # ---- The read side's steps -------------------------------------------------------
        with m.Switch(r_step):
            with m.Case(_ReadStep.WAIT_CMD):
                with m.If(self.read_cmd.valid & read_ok):
                    m.d.sync += [r_conn.eq(self.read_cmd.payload.conn),
                                 r_skip.eq(self.read_cmd.payload.skip),
                                 r_end.eq(self.read_cmd.payload.length
                                          + self.read_cmd.payload.skip),
                                 r_length.eq(self.read_cmd.payload.length),
                                 r_length_nonzero.eq(self.read_cmd.payload.length != 0),
                                 r_peek.eq(self.read_cmd.payload.peek),
                                 r_discard.eq(self.read_cmd.payload.discard)]
                    m.d.sync += r_step.eq(_ReadStep.FETCH)
                    if self._positioned_reads:
                        cmd = self.read_cmd.payload
                        m.d.sync += [r_positioned.eq(cmd.positioned),
                                     r_position.eq(cmd.position),
                                     r_position_end.eq(cmd.position + cmd.length)]
                        with m.If(cmd.positioned):
                            # a peek, decided from the command alone
                            m.d.sync += [r_peek.eq(1), r_discard.eq(0),
                                         r_step.eq(_ReadStep.DECIDE)]

            with m.Case(_ReadStep.FETCH):
                m.d.sync += r_step.eq(_ReadStep.LOAD)
            with m.Case(_ReadStep.LOAD):
                # (the state read ports' output registers hold the words read when the
                # command was taken)
                m.d.sync += r_step.eq(_ReadStep.CLIP)
            with m.Case(_ReadStep.CLIP):
                m.d.sync += r_step.eq(_ReadStep.DECIDE)

            with m.Case(_ReadStep.DECIDE):
                with m.If(r_decides):
                    m.d.sync += [self.read_resp.valid.eq(1),
                                 self.read_resp.payload.count.eq(r_count)]
                    m.d.comb += [head_set.addr.eq(r_conn), head_set.data.eq(r_new_head),
                                 head_set.en.eq(~r_peek & r_moves)]
                    with m.If(~r_discard & r_count_nonzero):
                        # its words are fetched after the beats of the reads before, once
                        # the queue's check says its bytes are in (the queue has room: see
                        # read_ok, and r_decides, which says it again for a proof by
                        # induction)
                        m.d.comb += [r_decided.conn.eq(r_conn), r_decided.start.eq(r_start),
                                     r_decided.count.eq(r_count), r_decided.end.eq(r_new_head),
                                     rq_push.eq(1)]
                    m.d.sync += r_step.eq(_ReadStep.WAIT_CMD)

        # ---- The read side's data path: the decided read's words, then its beats ---------
        with m.Switch(r_data):
            with m.Case(_ReadData.ACTIVE):
                beat = r_words_n >= 2
                pop = Signal()
                m.d.comb += [
                    self.read_data.valid.eq(beat),
                    self.read_data.payload.data.eq(realign(r_shift, r_words[0], r_words[1],
                                                           read_starts)),
                    self.read_data.payload.keep.eq(Cat(r_left > i for i in range(L))),
                    self.read_data.payload.last.eq(r_last_beat),
                    pop.eq(beat & self.read_data.ready),
                ]
                # the next word is fetched while the queue has room for every word on its way
                # (none after the last beat: the words fetched beyond it are dropped)
                ahead = r_words_n + r_fetched + r_captured
                issue = ((ahead - pop < _READ_WORDS_AHEAD) & ~(pop & r_last_beat)
                         & ~fetch_collides)
                with m.If(issue):
                    m.d.sync += r_word.eq(r_word + 1)
                if self._range_sums:
                    m.d.comb += fetch_first.eq(issue & first_pending)
                    with m.If(issue):
                        m.d.sync += first_pending.eq(0)
                # (a captured word always has a slot; the count checks it anyway, so that it
                # cannot wrap round in a proof by induction)
                kept_n = r_words_n - pop
                m.d.sync += [r_fetched.eq(issue), r_captured.eq(r_fetched),
                             r_words_n.eq(kept_n + (r_captured & (kept_n < _READ_WORDS_AHEAD)))]
                with m.If(r_fetched):
                    m.d.sync += r_word_in.eq(drp.data)
                for k, word in enumerate(r_words):
                    with m.If(r_captured & (r_words_n - pop == k)):
                        m.d.sync += word.eq(r_word_in)
                    if k + 1 < len(r_words):
                        with m.Elif(pop):
                            m.d.sync += word.eq(r_words[k + 1])
                with m.If(pop):
                    m.d.sync += [r_left.eq(r_left - L), r_last_beat.eq(last_after(r_left))]
                    with m.If(r_last_beat):
                        m.d.sync += [r_left.eq(0), r_words_n.eq(0), r_fetched.eq(0),
                                     r_captured.eq(0), r_data.eq(_ReadData.IDLE)]
            if self._range_sums:
                with m.Case(_ReadData.LAST_WORD):
                    # (a word is fetched in no clock the RAM writes it)
                    with m.If(~fetch_collides):
                        m.d.comb += fetch_last.eq(1)
                        m.d.sync += [r_word.eq(first_word), r_data.eq(_ReadData.ACTIVE)]
            with m.Case(_ReadData.IDLE):
                with m.If(rq_valid & head_clear & sums_clear):
                    start_read(r_queued[0])
                    m.d.comb += rq_pop.eq(1)
        if self._range_sums:
            # the last word on the port a clock after its fetch, then in `r_word_in`
            with m.If(last_tags[1]):
                m.d.sync += r_word_in.eq(drp.data)

        # The first decided read's check, registered: its bytes were all in the RAM a clock
        # ago, and stay there (only writes decided before it write its bytes, and those only
        # move on). Not yet known for a read that has just become the first.
        m.d.sync += head_clear.eq(rq_valid & ~rq_pop & ~awaits_write(r_queued[0]))
        # With range sums, P of its words too: P is in its RAM PrefixSums.WRITE_LATENCY clocks
        # after the data write `dwp` that it follows. The check saw a write at `dwp` in clock
        # c first in c + 1 (`w_unwritten`), so `head_clear` rises in c + 2 at the earliest;
        # one clock of it more starts the read in c + 3 and reads P of its last word in c + 4.
        if self._range_sums:
            clear_for = Signal()
            m.d.sync += clear_for.eq(head_clear & ~rq_pop)
            assert PrefixSums.WRITE_LATENCY == 4
            m.d.comb += sums_clear.eq(clear_for & (sums_owed < self.RANGE_SUM_QUEUE))
        else:
            m.d.comb += sums_clear.eq(1)
        # The queue shifts on a pop and takes a newly decided read at its end on a push.
        # (a push lands on the first free entry once the pop has shifted the queue)
        occupied = [C(1, 1), *rq_occupied, C(0, 1)]     # with one before the first, one after
        for i, job in enumerate(r_queued):
            lands = Mux(rq_pop, occupied[i + 1] & ~occupied[i + 2], ~occupied[i + 1] & occupied[i])
            with m.If(rq_push & lands):
                m.d.sync += job.eq(r_decided)
            if i + 1 < len(r_queued):
                with m.Elif(rq_pop):
                    m.d.sync += job.eq(r_queued[i + 1])
        with m.If(rq_push & ~rq_pop):
            m.d.sync += rq_occupied.eq(Cat(C(1, 1), rq_occupied[:-1]))
        with m.Elif(rq_pop & ~rq_push):
            m.d.sync += rq_occupied.eq(rq_occupied[1:])

        m.d.comb += [
            # (a peek changes no state: one waiting at its decision does not hold the query back)
            self.state_pending.eq(~w_idle | (~r_idle & ~r_peek) | tail_wp.en | head_wp.en),
            self.query_read_pending.eq((~r_idle & ~r_peek & (r_conn == self.query_conn))
                                       | (head_wp.en
                                          & (head_wp.addr == self.query_conn[:conn_lsbs]))),
            self.query_pending.eq((~w_idle & (w_conn == self.query_conn))
                                  | (tail_wp.en & (tail_wp.addr == self.query_conn[:conn_lsbs]))
                                  | self.query_read_pending),
            self.busy.eq(~w_idle | w_pending | q_valid | ~r_idle | r_streaming | rq_valid
                         | (sums_owed != 0 if self._range_sums else 0)),
            self.write_busy.eq(w_active | q_valid),
        ]
        return m
