"""Socket hash table: socket key -> connection id, looked up once per clock.

The reference is ``model/socket_table.py``; both implement the same hash, bucket choice, way
choice and cuckoo walk, so their responses and memory contents agree bit for bit.
"""

import functools
import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from model import socket_table as ref
from hdl.memories import NO_RW_CHECK, RegisteredRead, registered_read_port

__all__ = ["Op", "Status", "KeyLayout", "EntryLayout", "SlotLayout", "CommandLayout",
           "ResponseLayout", "ResultLayout", "SocketTable", "LOOKUPS_IN_FLIGHT"]

# Lookups accepted and not yet answered, at most: the results' queue (the pipeline never holds,
# so a result the sink does not take waits there; a key is taken only while its result has a
# place). One more than the longest latency, so that a sink taking the results as they come
# sees a lookup a clock.
LOOKUPS_IN_FLIGHT = 9


# Rows per way memory up to which the memories are read as LUT RAM is (see
# `SocketTable._read_port`): ECP5's and iCE40's LUT RAM primitives hold 16 rows.
LUT_RAM_ROWS = 16


class Op(enum.Enum, shape=1):
    """Control command (same values as ``model.socket_table.Op``)."""
    INSERT = ref.Op.INSERT.value
    DELETE = ref.Op.DELETE.value


class Status(enum.Enum, shape=2):
    """Control response code (same values as ``model.socket_table.Status``)."""
    OK = ref.Status.OK.value
    EXISTS = ref.Status.EXISTS.value
    NOT_FOUND = ref.Status.NOT_FOUND.value
    FULL = ref.Status.FULL.value


class KeyLayout(data.StructLayout):
    """Socket key: 104 bits. ``protocol`` is the IPv4 protocol number (6 TCP, 17 UDP). For a
    bound UDP socket ``remote_ip`` and ``remote_port`` are zero (the receive path zeroes them
    before a UDP lookup)."""

    def __init__(self):
        super().__init__({"protocol": 8, "local_ip": 32, "local_port": 16,
                          "remote_ip": 32, "remote_port": 16})


class EntryLayout(data.StructLayout):
    """An entry as the control port moves it: ``valid``, the full key, and its connection id."""

    def __init__(self, id_width):
        super().__init__({"valid": 1, "key": KeyLayout(), "id": id_width})


class SlotLayout(data.StructLayout):
    """One slot of a way memory: ``valid``, the key's tag and its connection id (the key itself
    is in the key memory of the slot's sub-table, at ``row * 4 + way``)."""

    def __init__(self, id_width):
        super().__init__({"valid": 1, "tag": ref.TAG_BITS, "id": id_width})


class CommandLayout(data.StructLayout):
    """Control command: insert ``key`` with ``id``, or delete ``key`` (``id`` ignored)."""

    def __init__(self, id_width):
        super().__init__({"op": Op, "key": KeyLayout(), "id": id_width})


class ResponseLayout(data.StructLayout):
    """Control response: ``status``; ``id`` is the deleted id (delete OK), the present id
    (insert EXISTS), else 0."""

    def __init__(self, id_width):
        super().__init__({"status": Status, "id": id_width})


class ResultLayout(data.StructLayout):
    """Lookup result: ``hit`` and the connection ``id`` (0 on a miss)."""

    def __init__(self, id_width):
        super().__init__({"hit": 1, "id": id_width})


class _LogLayout(data.StructLayout):
    def __init__(self, row_bits):
        super().__init__({"table": 1, "row": row_bits, "way": 2})


class _State(enum.Enum, shape=4):
    """Control FSM states, each named for what the block waits for.

    An enum-typed state register switched with ``m.Switch``: the names live in one place and a
    misspelt state is an AttributeError at elaboration, not a silently dead ``m.FSM`` state.
    Every bucket read (a command's two, a walk step's, an undo step's) goes the same way, from
    WAIT_READ to WAIT_MATCHES, whose decision depends on the :class:`_Phase`.
    """
    WAIT_COMMAND = 0            # a command on `cmd`
    WAIT_READ = 1               # the rows registered: the buckets' read issued from them
    WAIT_BUCKETS = 2            # the buckets read
    WAIT_SLOTS = 3              # their slots registered
    WAIT_WAYS = 4               # their tag compares registered
    WAIT_KEY_ADDRESS = 5        # the ways whose keys are read registered: the keys' address
    WAIT_KEY_READ = 6           # the keys read
    WAIT_KEYS = 7               # the keys in the memories' output registers
    WAIT_KEY_MATCHES = 8        # their compares' bytes registered
    WAIT_MATCHES = 9            # the key compares registered: the decision
    WAIT_VICTIM_HASH = 10       # the victim's rows computed
    WAIT_UNDO_STEP = 11         # the last walk step left, from the log (its row registered)
    WAIT_RESPONSE_TAKEN = 12    # `rsp.ready`


class _Phase(enum.Enum, shape=2):
    """What the bucket read under way is for."""
    COMMAND = 0                 # a command's two buckets
    WALK = 1                    # the victim's other bucket
    UNDO = 2                    # the slot of an undo step


def toeplitz_fields(key, toeplitz_key, row_bits):
    """(row0, row1, tag) of `key` (a KeyLayout view): bits ``[0:row_bits]`` and
    ``[16:16+row_bits]`` of its Toeplitz hash and its tag (``model.socket_table.SocketTable``'s
    ``rows_of`` and ``tag_of``), each bit an XOR tree over the RSS input bits of the key."""
    stream_bits = []   # RSS input order: bit 0 is the first byte's most significant bit
    for field, width in (("remote_ip", 32), ("local_ip", 32),
                         ("remote_port", 16), ("local_port", 16)):
        value = key[field]
        stream_bits += [value[width - 1 - n] for n in range(width)]
    key_int = int.from_bytes(toeplitz_key, "big")
    key_bits = len(toeplitz_key) * 8
    top = ref.HASH_BITS - 1

    def hash_bit(p):
        # bit p of the 48-bit hash is the XOR of input bits j with key bit j + 47 - p set
        terms = [bit for j, bit in enumerate(stream_bits)
                 if key_int >> (key_bits - 1 - (j + top - p)) & 1]
        return Cat(*terms).xor() if terms else Const(0)

    # (the 32-bit hash is the 48-bit hash's top 32 bits)
    return (Cat(*(hash_bit(ref.TAG_BITS + p) for p in range(row_bits))),
            Cat(*(hash_bit(ref.TAG_BITS + ref.ROW1_OFFSET + p) for p in range(row_bits))),
            Cat(*(hash_bit(p) for p in range(ref.TAG_BITS))))


def or_all(values):
    """Bitwise OR of `values` (at most one is non-zero where it is used: a key is in one slot)."""
    return functools.reduce(operator.or_, values)


def equal_bytes(a, b):
    """One bit per byte of `a` and `b` (equal widths, a multiple of 8): the bytes are equal.
    A wide compare's first half, registered before the AND of these bits: from a block RAM's
    output, a compare in one clock is routing more than logic."""
    a, b = Value.cast(a), Value.cast(b)
    assert len(a) == len(b) and len(a) % 8 == 0
    return Cat(*(a[i:i + 8] == b[i:i + 8] for i in range(0, len(a), 8)))


def one_hot_index(bits):
    """The index of the set bit of `bits` (at most one is set; 0 if none)."""
    return or_all(Mux(bit, index, 0) for index, bit in enumerate(bits))


class SocketTable(wiring.Component):
    """Socket hash table: bucketized cuckoo hashing, 2 sub-tables x 4 ways, Toeplitz hash.

    Structure, and why: slots live in ``2 x 4`` way memories (sub-table ``t``, way ``w``) of
    ``entries // 8`` rows, each slot ``valid + 16-bit tag + id``, and the keys in two key
    memories (one per sub-table) of ``entries // 2`` rows, the key of slot (t, row, w) at
    ``row * 4 + w`` of memory ``t``. A key has one candidate bucket (row) in each sub-table:
    ``row0 = h[0:r]`` and ``row1 = h[16:16+r]`` of its Toeplitz hash ``h`` (``r =
    log2(entries // 8)``), and its tag is 16 more bits of the same hash. No bucket holds two keys
    of one tag (the control port sees to it), so a lookup reads the 8 way memories at its two
    rows, finds at most one slot of its tag per bucket, reads those two slots' keys and compares
    them with its own: one lookup per clock at a fixed latency, through one read port per
    memory, the 104-bit compares two instead of eight, and the ways 24-27 bits wide instead of
    115 (LUT RAM in the reference NIC's 128-entry table); the keys are block RAM. Every memory
    has a lookup read port and one read/write port for the control FSM whose read and write
    share an address: a true dual-port RAM; neither read port is transparent for the write, so
    no bypass logic is needed. Bucketized cuckoo hashing with 2 choices and 4 ways fills to ~96 %
    of 1024 entries before the first FULL (model, random keys: median 0.966, minimum 0.935 over
    100 fills; 4096 entries alike); a 64-entry table has only 8 buckets per sub-table and
    varies more (median 0.98, 1st percentile 0.906, minimum 0.81 over 2000 fills: a true
    overflow, more keys sharing a closed set of buckets than those hold). Placing in the less
    loaded of the 2 buckets without moving entries overflows first at a median of 0.69 (1024
    entries) and 0.83 (64).

    The hash is the RSS Toeplitz hash of the received segment (source = remote address, then
    local address, remote port, local port) with the Microsoft default key unless another is
    given, so it equals the RSS hash a NIC computes anyway; in hardware it is an XOR tree of
    the key bits, and only the ``2 r`` bits used and the tag's 16 are built (the tag: the hash
    taken on to 48 bits, ``model.socket_table.TAG_BITS``). The protocol is not hashed (it is
    compared): keys that differ only in it share their buckets and tag, so at most two of them
    are in the table at once (one per bucket). The key is a parameter so the OS may use a
    secret one against collision attacks (the hash is linear: whoever knows the key can make
    keys of one hash; with the tags, three of them make an insert answer FULL, where nine
    did before).

    Insert: the key goes to the less occupied of its two buckets that has a free way and no
    key of its tag (ties: sub-table 0), lowest free way. If neither takes it, an entry is
    evicted (the one of the incoming entry's tag if the bucket holds one, else one chosen by a
    16-bit LFSR) and moved to its other bucket (a cuckoo walk), at most ``max_kicks``
    evictions. Each step is logged; if the walk fails every step is undone in reverse order and
    the answer is FULL: no entry is ever overwritten or lost. An insert of a present key
    answers EXISTS, a delete of an absent one NOT_FOUND. Every bucket read takes nine clocks
    before a decision, which uses only registers: its rows registered (the RAM's address comes
    from registers only), the read, its slots registered, their tag compares registered, the
    key memories' address registered (the slot of the tag in each bucket, else the LFSR's way:
    the key of the entry a step may evict), their read and output registers, and the key
    compares registered in two halves (bytes, then the key). The response is taken 10 clocks
    after the command was accepted without a walk, ``10 + 10 k`` with ``k`` evictions, and
    ``10 + 20 max_kicks`` (2570 for the default 128) for FULL after a failed walk: the worst
    case. The next command is accepted one clock later.

    Lookups run concurrently with commands and are never stalled by them. Each lookup sees a
    consistent state of the table: the entry in flight during a walk is held in a victim
    register that lookups also compare against, as they do the entry a decision writes (it
    reaches the way memories a clock after the decision, from registers only; a lookup that
    reads its slot on that clock edge drops the read, which a block RAM leaves undefined, so
    the memories need no bypass logic), and the key being inserted reads as absent until its
    insert's last write is in the memories. A decision's key reaches the key memories
    :attr:`key_read_delay` (2 or 3) clocks after its slot reaches the ways, as many as a lookup
    takes from its read of the ways to its read of the keys, and the lookup pipeline never
    holds: so the keys a lookup reads are those of the slots it read. A lookup overlapping a
    command therefore sees the table either before or after that command, never in between.
    The lookup pipeline: the key, its rows and tag are registered; the buckets are read, and
    the victim, the entry being written and the hidden key compared, on one edge (so the slots
    and the walk state seen together are those of one clock), the slots registered with the
    read (LUT RAM) or a clock later (a block RAM's output register); their tag compares are
    registered, with the key memories' address; the two keys are read and registered twice (the
    block RAMs' read and output registers); their compares with the key are registered byte by
    byte; the result goes into a queue of :data:`LOOKUPS_IN_FLIGHT` (9) results: a key is
    taken while fewer are in flight, so while the result sink is not ready lookups stop being
    taken and nothing is lost or duplicated.

    The memories start empty (initial contents); reset does not clear them.

    Parameters
    ----------
    entries : int
        Capacity in entries, a power of two from 16 to 524288.
    id_width : int
        Width of a connection id; ``log2(entries)`` by default.
    max_kicks : int
        Bound on evictions in one insert (1 to 1024).
    toeplitz_key : bytes
        Toeplitz secret key, at least 18 bytes; Microsoft's RSS default key by default.
    poison_collisions : bool
        For simulation: a block RAM read of the row written in the same clock returns the old
        slot with its id inverted (a key read by the control port: inverted), as a block RAM's
        read is undefined then
        (``registered_read_port``'s ``poison_for``), so the tests see a design that would use
        one: the lookup of the slot's key would hit with another id (or miss).

    Members
    -------
    lookup : ``In(stream.Signature(KeyLayout()))``
        Keys to look up, one per clock.
    result : ``Out(stream.Signature(ResultLayout(id_width)))``
        One result per key, in order, :attr:`lookup_latency` clocks after it was accepted
        when the sink takes the results as they come. ``lookup.ready`` is high while fewer
        than :data:`LOOKUPS_IN_FLIGHT` keys are accepted and unanswered (it does not depend on
        ``result.ready`` in the same clock).
    cmd : ``In(stream.Signature(CommandLayout(id_width)))``
        Control commands (privileged): insert or delete.
    rsp : ``Out(stream.Signature(ResponseLayout(id_width)))``
        One response per command, in order.
    count : ``Out(range(entries + 1))``
        Number of entries in the table.
    """

    def __init__(self, entries, *, id_width=None, max_kicks=ref.MAX_KICKS,
                 toeplitz_key=ref.RSS_DEFAULT_KEY, poison_collisions=False):
        self._poison_collisions = bool(poison_collisions)
        self._entries = ref.check_entries(entries)
        self._id_width = ref.check_id_width(
            entries.bit_length() - 1 if id_width is None else id_width)
        self._max_kicks = ref.check_max_kicks(max_kicks)
        self._toeplitz_key = ref.check_toeplitz_key(toeplitz_key)
        self._rows = entries // (ref.TABLES * ref.WAYS)
        self._row_bits = self._rows.bit_length() - 1
        super().__init__({
            "lookup": In(stream.Signature(KeyLayout())),
            "result": Out(stream.Signature(ResultLayout(self._id_width))),
            "cmd": In(stream.Signature(CommandLayout(self._id_width))),
            "rsp": Out(stream.Signature(ResponseLayout(self._id_width))),
            "count": Out(range(entries + 1)),
        })
        # way_data[t][w][row]: the slots of sub-table t, way w; key_data[t][row * 4 + w]: their
        # keys (for tests to inspect).
        self.way_data = [[MemoryData(shape=SlotLayout(self._id_width), depth=self._rows, init=[])
                          for _ in range(ref.WAYS)] for _ in range(ref.TABLES)]
        self.key_data = [MemoryData(shape=KeyLayout(), depth=self._rows * ref.WAYS, init=[])
                         for _ in range(ref.TABLES)]

    @property
    def entries(self):
        return self._entries

    @property
    def id_width(self):
        return self._id_width

    @property
    def max_kicks(self):
        return self._max_kicks

    @property
    def way_read_latency(self):
        """Clocks from a lookup's row to its slots: 1 for ways in LUT RAM (read into a
        register), 2 in block RAM (its read and output registers)."""
        return 1 if self._rows <= LUT_RAM_ROWS else 2

    @property
    def lookup_latency(self):
        """Clocks from the cycle a key is accepted on ``lookup`` to the cycle its result is
        valid on ``result`` (when ``result.ready`` is held high): 7 with the ways in LUT RAM,
        8 in block RAM."""
        return self.way_read_latency + 6

    @property
    def key_read_delay(self):
        """Clocks from a lookup's read of the ways to its read of the key memories: a decision's
        key reaches them this much later than its slot reaches the ways, so that each lookup
        reads the two in one state of the table."""
        return self.way_read_latency + 1

    @property
    def memory_bits(self):
        """Bits of entry memory (the ways and the keys), excluding the walk log."""
        return self._entries * (SlotLayout(self._id_width).size + KeyLayout().size)

    def _read_port(self, m, mem, name, write, output_register=False):
        """A read port whose data come a clock after its address, as a block RAM's (two with
        `output_register`, in block RAM: the lookups' port, whose slots go into the tag
        compares).

        A read of the row `write` writes in the same clock is not used (see the lookup
        pipeline): the port needs no bypass logic (:data:`~hdl.memories.NO_RW_CHECK`), and
        nothing stands between the RAM and the register after it. (The control port's slot
        register keeps its reset, so it stays a flip-flop, as before: without it,
        :mod:`flow.bram_outreg` would fold it into the RAM as its output register.)

        Rows up to ``LUT_RAM_ROWS`` (the 128-entry table of the reference NIC has 16) fit LUT
        RAM, whose read is asynchronous: there the port reads asynchronously into a register
        of its own. Yosys maps that to the RAM and flip-flops as written. Given synchronous
        ports on such memories instead, it put them in LUT RAM with much more logic around
        them: the 128-entry table took 9,007 LUT4, 3,063 PFUMX and 2,118 L6MUX21 (11,871
        slice LUTs, no placement in 600 s) against 6,364, 1,722 and 1,113 (9,224, placed at
        78.5 MHz) this way; forced into block RAM, 6,632 LUT4 and 65 DP16KD."""
        if self._rows > LUT_RAM_ROWS:
            # (the poison inverts the id only: a slot read as it is written then matches its
            # old key, with another connection's id, if the design used it)
            id_field = SlotLayout(self._id_width)["id"]
            return registered_read_port(m, mem, name=name, output_register=output_register,
                                        poison_for=(write,) if self._poison_collisions else (),
                                        poison_mask=Const(-1, id_field.width) << id_field.offset)
        port = mem.read_port(domain="comb")
        registered = RegisteredRead(addr=port.addr, en=Const(1),
                                    data=Signal.like(port.data, name=f"{name}_data"), latency=1)
        with m.If(registered.en):
            m.d.sync += registered.data.eq(port.data)
        return registered

    def elaborate(self, platform):
        m = Module()
        T, W, rb = range(ref.TABLES), range(ref.WAYS), self._row_bits
        slot_count = len(T) * len(W)
        entry_layout = EntryLayout(self._id_width)
        slot_layout = SlotLayout(self._id_width)

        def same_key(a, b):
            return a.as_value() == b.as_value()

        # ---- Memories: per (table, way) a way memory, per table a key memory; each with a
        # lookup read port and a control read/write port (one address: a true dual-port RAM).
        # Neither uses a read of a row written on the same clock edge, so a block RAM needs no
        # bypass logic: the lookup takes the entry being written from the write's registers
        # instead (below); the control FSM never uses a read made on the edge of one of its
        # writes (each decision reads its rows afresh, and its keys once their writes are in).
        lk_rd, ctl_rd = ([[None] * ref.WAYS for _ in T] for _ in range(2))
        ctl_addr = [Signal(rb, name=f"ctl_addr{t}") for t in T]
        # A decision's write goes through registers (the entry and its tag, one enable per
        # slot) and reaches the ways a clock later, so that what drives their write ports
        # (fanned out to every LUT RAM cell, twice: a copy per read port) comes from flip-flops
        # only. Its rows are still in `ctl_addr` then: no decision moves them.
        wr_entry = Signal(entry_layout)             # the decision's (comb)
        wr_tag = Signal(ref.TAG_BITS)
        wr_slots = Signal(slot_count)
        wr_entry_r = Signal(entry_layout)
        wr_tag_r = Signal(ref.TAG_BITS)
        wr_slots_r = Signal(slot_count)
        m.d.sync += [wr_entry_r.eq(wr_entry), wr_tag_r.eq(wr_tag), wr_slots_r.eq(wr_slots)]
        wr_slot = Signal(slot_layout)
        m.d.comb += [wr_slot.valid.eq(wr_entry_r.valid), wr_slot.tag.eq(wr_tag_r),
                     wr_slot.id.eq(wr_entry_r.id)]
        for t in T:
            for w in W:
                mem = m.submodules[f"t{t}_way{w}"] = Memory(data=self.way_data[t][w],
                                                            attrs=NO_RW_CHECK)
                wr = mem.write_port()
                lk_rd[t][w] = self._read_port(m, mem, f"lk_rd{t}{w}", wr, output_register=True)
                ctl_rd[t][w] = self._read_port(m, mem, f"ctl_rd{t}{w}", wr)
                m.d.comb += [wr.addr.eq(ctl_addr[t]), ctl_rd[t][w].addr.eq(ctl_addr[t]),
                             wr.data.eq(wr_slot), wr.en.eq(wr_slots_r[t * len(W) + w])]

        # The key of a valid entry written goes to its key memory `key_read_delay` clocks after
        # its slot reaches the ways, through `key_line` (a delete writes no key).
        key_line_layout = data.StructLayout({"valid": 1, "table": 1, "addr": rb + 2,
                                             "key": KeyLayout()})
        key_line = [Signal(key_line_layout, name=f"key_line{i}")
                    for i in range(self.key_read_delay)]
        written_table = wr_slots_r[len(W):].any()
        m.d.sync += [
            key_line[0].valid.eq(wr_entry_r.valid & wr_slots_r.any()),
            key_line[0].table.eq(written_table),
            key_line[0].addr.eq(Cat(Mux(written_table, one_hot_index(wr_slots_r[len(W):]),
                                        one_hot_index(wr_slots_r[:len(W)])),
                                    Mux(written_table, ctl_addr[1], ctl_addr[0]))),
            key_line[0].key.eq(wr_entry_r.key),
            *[key_line[i].eq(key_line[i - 1]) for i in range(1, self.key_read_delay)],
        ]
        key_write = key_line[-1]
        # The control FSM reads the keys once no key write is on its way: a decision's key is
        # in its memory key_read_delay + 2 clocks after the decision, and the next key read is
        # 6 clocks after it at the soonest (WAIT_VICTIM_HASH, WAIT_READ, WAIT_BUCKETS,
        # WAIT_SLOTS, WAIT_WAYS, then WAIT_KEY_ADDRESS), so the port is the control's again by
        # then.
        assert self.key_read_delay + 2 <= 6
        key_read_way = [Signal(2, name=f"key_read_way{t}") for t in T]
        lk_key, ctl_key = [None] * len(T), [None] * len(T)
        for t in T:
            mem = m.submodules[f"t{t}_keys"] = Memory(data=self.key_data[t], attrs=NO_RW_CHECK)
            wr = mem.write_port()
            # (A lookup reads a key on the edge it is written only for a slot it read on the
            # edge the slot was written, and drops: there the poison is the way's. The key read
            # then gives the old key, which would match, so a lookup that did not drop the slot
            # would hit with the way's poisoned id. The control port's reads never meet a write.)
            lk_key[t] = registered_read_port(m, mem, name=f"lk_key{t}")
            ctl_key[t] = registered_read_port(m, mem, name=f"ctl_key{t}",
                                              poison_for=(wr,) if self._poison_collisions else ())
            writing = key_write.valid & (key_write.table == t)
            addr = Mux(writing, key_write.addr, Cat(key_read_way[t], ctl_addr[t]))
            m.d.comb += [wr.addr.eq(addr), ctl_key[t].addr.eq(addr),
                         wr.data.eq(key_write.key), wr.en.eq(writing)]

        # Walk state shared with the lookup path.
        victim = Signal(entry_layout)
        victim_tag = Signal(ref.TAG_BITS)
        pending = Signal()          # an insert walk is under way (victim valid, key hidden)
        cmd_reg = Signal(CommandLayout(self._id_width))
        cmd_tag = Signal(ref.TAG_BITS)      # its key's tag
        # `pending` a clock ago: the command's key stays hidden until the write that ends its
        # walk is in the memories (the key stays in `cmd_reg` until the response is taken)
        pending_before = Signal()
        m.d.sync += pending_before.eq(pending)

        # ---- Lookup pipeline: 0 registers the key, its rows and tag; 1 reads the buckets (a
        # LUT RAM's data registered with it; a block RAM's in its output register a clock
        # later); then their tag compares and the key memories' address are registered; the
        # keys are read (the key memories' read and output registers); the keys' compares,
        # byte by byte, are registered; then the result goes into the results' queue. It never
        # holds: a key is taken only while its result has a place.
        way_latency = lk_rd[0][0].latency
        # The results' queue: registers, the oldest in entry 0 (the `result` port), each taken
        # result shifting those behind it down, a new one going into the lowest free entry
        # after the shift. (A queue of valid bits alone: an entry on the port is never written
        # over while it waits, whatever the state, which is what lets the handshake proof
        # close by induction.)
        result_layout = ResultLayout(self._id_width)
        queued = [Signal(result_layout, name=f"queued{i}") for i in range(LOOKUPS_IN_FLIGHT)]
        queued_valid = Signal(LOOKUPS_IN_FLIGHT)
        answer = Signal(result_layout)      # the last stage's result (comb)
        answer_valid = Signal()             # ... when it has one
        unanswered = Signal(range(LOOKUPS_IN_FLIGHT + 1))
        take = Signal()
        taken_result = Signal()
        m.d.comb += [
            self.lookup.ready.eq(unanswered != LOOKUPS_IN_FLIGHT),
            take.eq(self.lookup.valid & self.lookup.ready),
            self.result.valid.eq(queued_valid[0]),
            self.result.payload.eq(queued[0]),
            taken_result.eq(queued_valid[0] & self.result.ready),
        ]
        m.d.sync += unanswered.eq(unanswered + take - taken_result)
        shifted_valid = Mux(taken_result, queued_valid[1:], queued_valid)
        for i in range(LOOKUPS_IN_FLIGHT):
            below_full = shifted_valid[i - 1] if i else 1
            with m.If(answer_valid & below_full & ~shifted_valid[i]):
                m.d.sync += queued[i].eq(answer)
            with m.Elif(taken_result):
                m.d.sync += queued[i].eq(queued[i + 1] if i + 1 < LOOKUPS_IN_FLIGHT else 0)
        first_free = Cat(~shifted_valid[i] & (shifted_valid[i - 1] if i else 1)
                         for i in range(LOOKUPS_IN_FLIGHT))
        m.d.sync += queued_valid.eq(shifted_valid | Mux(answer_valid, first_free, 0))

        # Stage 0: the key, its rows and tag registered (the RAM's address comes from
        # registers only). Every stage's valid bit and key follow in `s_valid` and `s_key`.
        in_row0, in_row1, in_tag = toeplitz_fields(self.lookup.payload, self._toeplitz_key, rb)
        stages = self.lookup_latency - 1            # s0 to the last, the queue after it
        s_valid = [Signal(name=f"s{i}_valid") for i in range(stages)]
        s_key = [Signal(KeyLayout(), name=f"s{i}_key") for i in range(stages)]
        m.d.sync += [s_valid[0].eq(take), s_key[0].eq(self.lookup.payload)]
        m.d.sync += [s_valid[i].eq(s_valid[i - 1]) for i in range(1, stages)]
        m.d.sync += [s_key[i].eq(s_key[i - 1]) for i in range(1, stages)]
        s0_rows = [Signal(rb, name=f"s0_row{t}") for t in T]
        s0_tag = Signal(ref.TAG_BITS)
        m.d.sync += [s0_rows[0].eq(in_row0), s0_rows[1].eq(in_row1), s0_tag.eq(in_tag)]
        for t in T:
            for w in W:
                m.d.comb += lk_rd[t][w].addr.eq(s0_rows[t])

        # Stage 1: the rows are read on the edge that moves the key out of stage 0, and the
        # victim, the entry being written, the walk flag and the hidden key are sampled on
        # that same edge: the slots and the walk state seen together are those of one clock,
        # so a lookup sees the table before or after any step of a walk, never an entry in
        # no place (an entry may be seen twice, in its old slot and where it goes: the same
        # id). Besides the slots, a lookup compares the victim of a walk under way and the
        # entry a decision writes, on its way into the memories (`wr_entry` is 0 in a clock
        # without a write, and a delete writes an invalid entry). A slot read on the edge that
        # writes it is dropped (`written`): a block RAM's read is undefined then, and the
        # entry compared aside is what the slot holds after the edge. (What it held before is
        # the victim, for a walk step or an undo step, or nothing a lookup may find: a free
        # slot, or a deleted key. So a lookup still sees the table before or after the edge.)
        aside = [(pending, victim), (wr_entry_r.valid, wr_entry_r)]
        beside_layout = data.StructLayout({
            "rows": data.ArrayLayout(rb, len(T)), "tag": ref.TAG_BITS,
            "aside_match": len(aside), "aside_ids": data.ArrayLayout(self._id_width, len(aside)),
            "hidden": 1,
            "written": slot_count,          # per slot read: written on the same edge
        })
        beside = [Signal(beside_layout, name=f"s{i + 1}_beside") for i in range(way_latency)]
        m.d.sync += [
            *[beside[0].rows[t].eq(s0_rows[t]) for t in T], beside[0].tag.eq(s0_tag),
            beside[0].aside_match.eq(Cat(held & same_key(entry.key, s_key[0])
                                         for held, entry in aside)),
            *[beside[0].aside_ids[i].eq(entry.id) for i, (_, entry) in enumerate(aside)],
            beside[0].hidden.eq((pending | pending_before) & same_key(cmd_reg.key, s_key[0])),
            beside[0].written.eq(Cat(wr_slots_r[t * len(W) + w] & (ctl_addr[t] == s0_rows[t])
                                     for t in T for w in W)),
            *[beside[i].eq(beside[i - 1]) for i in range(1, way_latency)],
        ]
        # ... until the slots are read (`way_latency` clocks): then per bucket, whether a slot
        # holds the key's tag (one at most), and which: the key memory's address; its id.
        slots_read = beside[-1]
        # Then per bucket, whether a slot holds the key's tag (one at most), and which: the key
        # memory's address; its id. With them, the rest, carried on beside the keys' reads (the
        # key memories' two registers).
        tagged_layout = data.StructLayout({
            "tagged": len(T), "ids": data.ArrayLayout(self._id_width, len(T)),
            "aside_match": len(aside), "aside_ids": data.ArrayLayout(self._id_width, len(aside)),
            "hidden": 1,
        })
        assert lk_key[0].latency == 2
        found = [Signal(tagged_layout, name=f"{name}_found") for name in ("tag", "read", "keys")]
        for t in T:
            tagged = Cat(*(lk_rd[t][w].data.valid & ~slots_read.written[t * len(W) + w]
                           & (lk_rd[t][w].data.tag == slots_read.tag) for w in W))
            way = Signal(2, name=f"tag_way{t}")
            row = Signal(rb, name=f"tag_row{t}")
            m.d.sync += [found[0].tagged[t].eq(tagged.any()), way.eq(one_hot_index(tagged)),
                         found[0].ids[t].eq(or_all(Mux(tagged[w], lk_rd[t][w].data.id, 0)
                                                   for w in W)),
                         row.eq(slots_read.rows[t])]
            m.d.comb += lk_key[t].addr.eq(Cat(way, row))
        m.d.sync += [found[0].aside_match.eq(slots_read.aside_match),
                     found[0].aside_ids.eq(slots_read.aside_ids),
                     found[0].hidden.eq(slots_read.hidden),
                     found[1].eq(found[0]), found[2].eq(found[1])]
        # Then the keys' compares, byte by byte, registered; then the result into the queue (a
        # match bit per bucket and per entry aside: those set are copies of one entry).
        keys_read = found[2]
        key_stage = way_latency + 3
        assert key_stage == stages - 2
        compared = Signal(tagged_layout)
        equal = [Signal(KeyLayout().size // 8, name=f"key_equal_bytes{t}") for t in T]
        m.d.sync += [compared.eq(keys_read),
                     *[equal[t].eq(equal_bytes(lk_key[t].data, s_key[key_stage])) for t in T]]
        match = Cat(*(compared.tagged[t] & equal[t].all() for t in T), compared.aside_match)
        ids = [compared.ids[t] for t in T] + [compared.aside_ids[i] for i in range(len(aside))]
        m.d.comb += [answer_valid.eq(s_valid[-1]), answer.hit.eq(match.any() & ~compared.hidden),
                     answer.id.eq(Mux(compared.hidden, 0, or_all(
                         Mux(match[i], id_, 0) for i, id_ in enumerate(ids))))]

        # ---- Control port. A bucket read takes nine clocks: its rows registered (the RAM's
        # address comes from registers only), the read, its slots registered (`slots`), their
        # tag compares and free ways registered, the key memories' address (`key_read_way`),
        # the keys' read and output registers, and the key compares registered (bytes, then the
        # key); a decision then uses only registers. Nothing writes the rows read while a
        # decision waits for them.
        row_reg = [Signal(rb, name=f"row{t}") for t in T]
        for t in T:
            m.d.comb += ctl_addr[t].eq(row_reg[t])      # registered: no logic before the RAM
        cmd_row0, cmd_row1, cmd_key_tag = toeplitz_fields(self.cmd.payload.key,
                                                          self._toeplitz_key, rb)
        victim_row0, victim_row1, _ = toeplitz_fields(victim.key, self._toeplitz_key, rb)

        slots = [[Signal(slot_layout, name=f"slot{t}_{w}") for w in W] for t in T]
        m.d.sync += [slots[t][w].eq(ctl_rd[t][w].data) for t in T for w in W]
        phase = Signal(_Phase)
        lfsr = Signal(16, init=ref.LFSR_SEED)
        lfsr_next = Cat(lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10], lfsr[:15])
        kicks = Signal(range(self._max_kicks + 1))
        alt_table = Signal()        # the sub-table of the victim's other bucket
        undo_table = Signal()
        undo_way = Signal(2)
        # Per sub-table and way (bit 4 t + w): the slot holds the tag of the entry placed (the
        # command's, or the victim's); the slot is free; the bucket's lowest free way (one-hot
        # per sub-table); where an insert without a walk goes (one-hot: the less occupied
        # bucket with a free way and no key of its tag, ties sub-table 0; none if neither).
        # Per sub-table: its slot of that tag holds the command's key.
        seen_tag = Signal(slot_count)
        seen_free = Signal(slot_count)
        seen_first_free = Signal(slot_count)
        seen_place = Signal(slot_count)
        seen_match = Signal(len(T))
        keys = [Signal(KeyLayout(), name=f"key{t}") for t in T]   # the keys read
        key_equal = [Signal(KeyLayout().size // 8, name=f"key_equal{t}") for t in T]
        # the tag compared with the slots': the command's, or the victim's in a walk step
        entry_tag = Signal(ref.TAG_BITS)
        tagged = [Cat(*(slots[t][w].valid & (slots[t][w].tag == entry_tag) for w in W)) for t in T]
        free = [Cat(*(~slots[t][w].valid for w in W)) for t in T]
        first_free = [Cat(*(free[t][w] & ~free[t][:w].any() if w else free[t][0] for w in W))
                      for t in T]
        # the way a decision may evict in each bucket: that of the tag, else the LFSR's
        seen_tagged = [seen_tag[t * len(W):(t + 1) * len(W)] for t in T]
        evict_way = [Mux(seen_tagged[t].any(), one_hot_index(seen_tagged[t]), lfsr_next[:2])
                     for t in T]
        takes = [seen_free[t * len(W):(t + 1) * len(W)].any()
                 & ~seen_tag[t * len(W):(t + 1) * len(W)].any() for t in T]
        free_count = [sum(seen_free[t * len(W) + w] for w in W) for t in T]
        place_t1 = takes[1] & (~takes[0] | (free_count[1] > free_count[0]))
        found_id = Signal(self._id_width)
        m.d.comb += found_id.eq(or_all(
            Mux(seen_match[t], Array(slots[t][w].id for w in W)[key_read_way[t]], 0) for t in T))

        # The walk's steps, logged at `kicks` (0 at a command); an undo step reads the last one
        # left, `log_last` (a register: the read is asynchronous, LUT RAM's).
        log = m.submodules.walk_log = Memory(shape=_LogLayout(rb), depth=self._max_kicks, init=[])
        log_wr = log.write_port()
        log_rd = log.read_port(domain="comb")
        log_last = Signal(range(self._max_kicks))
        m.d.comb += [log_wr.addr.eq(kicks), log_rd.addr.eq(log_last)]

        rsp_status = Signal(Status)
        rsp_id = Signal(self._id_width)
        m.d.comb += [self.rsp.payload.status.eq(rsp_status), self.rsp.payload.id.eq(rsp_id)]

        def write_slots(onehot, entry, tag):
            """Write `entry` (its tag `tag`) at the row in ctl_addr into the slots set in
            `onehot` (bit 4 t + w)."""
            m.d.comb += [wr_entry.eq(entry), wr_tag.eq(tag), wr_slots.eq(onehot)]

        def slot_bit(table, way):
            """One-hot of (table, way), both signals."""
            return Cat(*(Cat(way, table) == i for i in range(slot_count)))

        # The registered slot the victim swaps with: one 8-way mux whose select is a register,
        # `pick`, set with the key memories' address (the LFSR, `alt_table` and the undo step
        # it is made of change only in decisions), so that the victim's input is that mux and
        # a 2:1 mux of the keys read.
        pick = Signal(3)            # 4 table + way
        picked = Signal(slot_layout)
        with m.Switch(pick):
            for t in T:
                for w in W:
                    with m.Case(t * len(W) + w):
                        m.d.comb += picked.eq(slots[t][w])

        def evict_into(table, way, entry, tag):
            """A walk step's write: `entry` into slot (table, way), whose entry (`picked`,
            its key read) becomes the victim."""
            write_slots(slot_bit(table, way), entry, tag)
            m.d.sync += [victim.valid.eq(1), victim.key.eq(Mux(table, keys[1], keys[0])),
                         victim.id.eq(picked.id), victim_tag.eq(picked.tag)]

        def log_step(table, way):
            m.d.comb += [log_wr.en.eq(1), log_wr.data.table.eq(table), log_wr.data.way.eq(way),
                         log_wr.data.row.eq(Cat(row_reg[0], row_reg[1]).word_select(table, rb))]
            m.d.sync += [log_last.eq(kicks), kicks.eq(kicks + 1)]

        state = Signal(_State)

        def goto(next_state):
            m.d.sync += state.eq(next_state)

        def respond(status, id_=0):
            m.d.sync += [rsp_status.eq(status), rsp_id.eq(id_)]
            goto(_State.WAIT_RESPONSE_TAKEN)

        cmd_entry = Signal(entry_layout)
        m.d.comb += [cmd_entry.valid.eq(1), cmd_entry.key.eq(cmd_reg.key),
                     cmd_entry.id.eq(cmd_reg.id)]
        m.d.comb += pending.eq((phase != _Phase.COMMAND) & (state != _State.WAIT_RESPONSE_TAKEN))

        with m.Switch(state):
            with m.Case(_State.WAIT_COMMAND):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [cmd_reg.eq(self.cmd.payload), cmd_tag.eq(cmd_key_tag),
                                 entry_tag.eq(cmd_key_tag),
                                 row_reg[0].eq(cmd_row0), row_reg[1].eq(cmd_row1),
                                 phase.eq(_Phase.COMMAND), kicks.eq(0)]
                    goto(_State.WAIT_READ)

            with m.Case(_State.WAIT_READ):
                goto(_State.WAIT_BUCKETS)

            with m.Case(_State.WAIT_BUCKETS):
                goto(_State.WAIT_SLOTS)

            with m.Case(_State.WAIT_SLOTS):
                m.d.sync += [seen_tag.eq(Cat(*tagged)), seen_free.eq(Cat(*free)),
                             seen_first_free.eq(Cat(*first_free))]
                goto(_State.WAIT_WAYS)

            with m.Case(_State.WAIT_WAYS):
                with m.Switch(phase):
                    with m.Case(_Phase.COMMAND):
                        m.d.sync += [key_read_way[t].eq(evict_way[t]) for t in T]
                        m.d.sync += pick.eq(Cat(Mux(lfsr_next[2], evict_way[1], evict_way[0]),
                                                lfsr_next[2]))
                    with m.Case(_Phase.WALK):
                        m.d.sync += [key_read_way[t].eq(evict_way[t]) for t in T]
                        m.d.sync += pick.eq(Cat(Mux(alt_table, evict_way[1], evict_way[0]),
                                                alt_table))
                    with m.Case(_Phase.UNDO):
                        m.d.sync += [key_read_way[t].eq(undo_way) for t in T]
                        m.d.sync += pick.eq(Cat(undo_way, undo_table))
                goto(_State.WAIT_KEY_ADDRESS)

            with m.Case(_State.WAIT_KEY_ADDRESS):
                m.d.sync += seen_place.eq(Cat(Mux(place_t1 | ~takes[0], 0,
                                                  seen_first_free[:len(W)]),
                                              Mux(place_t1, seen_first_free[len(W):], 0)))
                goto(_State.WAIT_KEY_READ)

            with m.Case(_State.WAIT_KEY_READ):
                goto(_State.WAIT_KEYS)

            with m.Case(_State.WAIT_KEYS):
                m.d.sync += [keys[t].eq(ctl_key[t].data) for t in T]
                m.d.sync += [key_equal[t].eq(equal_bytes(ctl_key[t].data, cmd_reg.key)) for t in T]
                goto(_State.WAIT_KEY_MATCHES)

            with m.Case(_State.WAIT_KEY_MATCHES):
                m.d.sync += seen_match.eq(Cat(
                    seen_tag[t * len(W):(t + 1) * len(W)].any() & key_equal[t].all() for t in T))
                goto(_State.WAIT_MATCHES)

            with m.Case(_State.WAIT_MATCHES):
                with m.Switch(phase):
                    with m.Case(_Phase.COMMAND):
                        match_slots = Cat(*(Mux(seen_match[t], slot_bit(t, key_read_way[t]), 0)
                                            for t in T))
                        with m.If(seen_match.any()):
                            with m.If(cmd_reg.op == Op.DELETE):
                                write_slots(match_slots[:slot_count] | match_slots[slot_count:],
                                            0, 0)
                                m.d.sync += self.count.eq(self.count - 1)
                                respond(Status.OK, found_id)
                            with m.Else():
                                respond(Status.EXISTS, found_id)
                        with m.Elif(cmd_reg.op == Op.DELETE):
                            respond(Status.NOT_FOUND)
                        with m.Elif(seen_place.any()):
                            write_slots(seen_place, cmd_entry, cmd_tag)
                            m.d.sync += self.count.eq(self.count + 1)
                            respond(Status.OK)
                        with m.Else():
                            # Neither bucket takes it: first eviction, table LFSR bit 2, the
                            # way of the command's tag there, else LFSR bits 0-1.
                            table = lfsr_next[2]
                            way = Mux(table, key_read_way[1], key_read_way[0])
                            evict_into(table, way, cmd_entry, cmd_tag)
                            log_step(table, way)
                            m.d.sync += [lfsr.eq(lfsr_next), alt_table.eq(~table),
                                         phase.eq(_Phase.WALK)]
                            goto(_State.WAIT_VICTIM_HASH)
                    with m.Case(_Phase.WALK):
                        alt_mask = Mux(alt_table, 0xF0, 0x0F)     # the slots of sub-table alt_table
                        with m.If(Mux(alt_table, takes[1], takes[0])):
                            write_slots(seen_first_free & alt_mask, victim, victim_tag)
                            m.d.sync += self.count.eq(self.count + 1)
                            respond(Status.OK)
                        with m.Elif(kicks == self._max_kicks):
                            m.d.sync += phase.eq(_Phase.UNDO)
                            goto(_State.WAIT_UNDO_STEP)
                        with m.Else():
                            way = Mux(alt_table, key_read_way[1], key_read_way[0])
                            evict_into(alt_table, way, victim, victim_tag)
                            log_step(alt_table, way)
                            m.d.sync += [lfsr.eq(lfsr_next), alt_table.eq(~alt_table)]
                            goto(_State.WAIT_VICTIM_HASH)
                    with m.Case(_Phase.UNDO):
                        evict_into(undo_table, undo_way, victim, victim_tag)
                        m.d.sync += [kicks.eq(kicks - 1), log_last.eq(log_last - 1)]
                        with m.If(kicks == 1):
                            respond(Status.FULL)
                        with m.Else():
                            goto(_State.WAIT_UNDO_STEP)

            with m.Case(_State.WAIT_VICTIM_HASH):
                m.d.sync += [row_reg[0].eq(victim_row0), row_reg[1].eq(victim_row1),
                             entry_tag.eq(victim_tag)]
                goto(_State.WAIT_READ)

            with m.Case(_State.WAIT_UNDO_STEP):
                m.d.sync += [row_reg[t].eq(log_rd.data.row) for t in T]
                m.d.sync += [undo_table.eq(log_rd.data.table), undo_way.eq(log_rd.data.way)]
                goto(_State.WAIT_READ)

            with m.Case(_State.WAIT_RESPONSE_TAKEN):
                m.d.comb += self.rsp.valid.eq(1)
                with m.If(self.rsp.ready):
                    m.d.sync += phase.eq(_Phase.COMMAND)
                    goto(_State.WAIT_COMMAND)
        return m
