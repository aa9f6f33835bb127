"""Socket hash table: socket key -> connection id, looked up once per clock.

The reference is ``model/socket_table.py``; both implement the same hash, bucket choice, way
choice and cuckoo walk, so their responses and memory contents agree bit for bit.
"""

import functools
import operator

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

from model import socket_table as ref
from hdl.memories import NO_RW_CHECK, RegisteredRead, registered_read_port

__all__ = ["Op", "Status", "KeyLayout", "EntryLayout", "CommandLayout", "ResponseLayout",
           "ResultLayout", "SocketTable", "LOOKUP_LATENCY"]

# Clocks from the cycle a key is accepted on `lookup` to the cycle its result is valid on
# `result` (when `result.ready` is held high).
LOOKUP_LATENCY = 5


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
    """One slot of a way memory: ``valid``, the full key, and its connection id."""

    def __init__(self, id_width):
        super().__init__({"valid": 1, "key": KeyLayout(), "id": id_width})


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
    """
    WAIT_COMMAND = 0            # a command on `cmd`
    WAIT_READ = 1               # its rows registered: both buckets' read issued from them
    WAIT_BUCKETS = 2            # both buckets read
    WAIT_SLOTS = 3              # their slots registered
    WAIT_MATCHES = 4            # their key compares and free ways registered
    WAIT_VICTIM_HASH = 5        # the victim's rows computed
    WAIT_ALTERNATE_READ = 6     # the victim's other bucket's read issued
    WAIT_ALTERNATE_BUCKET = 7   # that bucket read
    WAIT_ALTERNATE_SLOTS = 8    # its slots registered
    WAIT_ALTERNATE_FREE = 9     # its free ways registered
    WAIT_LOG = 10               # the last walk step read from the log
    WAIT_UNDO_STEP = 11         # a walk step from the log (its row registered)
    WAIT_UNDO_READ = 12         # that slot's read issued
    WAIT_UNDO_BUCKET = 13       # that slot's bucket read
    WAIT_UNDO_SLOT = 14         # that slot registered, to swap the victim back
    WAIT_RESPONSE_TAKEN = 15    # `rsp.ready`


def toeplitz_rows(key, toeplitz_key, row_bits):
    """(row0, row1) of `key` (a KeyLayout view): Toeplitz hash bits ``[0:row_bits]`` and
    ``[16:16+row_bits]`` as XOR trees over the RSS input bits of the key."""
    stream_bits = []   # RSS input order: bit 0 is the first byte's most significant bit
    for field, width in (("remote_ip", 32), ("local_ip", 32),
                         ("remote_port", 16), ("local_port", 16)):
        value = key[field]
        stream_bits += [value[width - 1 - n] for n in range(width)]
    key_int = int.from_bytes(toeplitz_key, "big")
    key_bits = len(toeplitz_key) * 8

    def hash_bit(p):
        # bit p of the 32-bit result is the XOR of input bits j with key bit j + 31 - p set
        terms = [bit for j, bit in enumerate(stream_bits)
                 if key_int >> (key_bits - 1 - (j + 31 - p)) & 1]
        return Cat(*terms).xor() if terms else Const(0)

    return (Cat(*(hash_bit(p) for p in range(row_bits))),
            Cat(*(hash_bit(ref.ROW1_OFFSET + p) for p in range(row_bits))))


def or_all(values):
    """Bitwise OR of `values` (at most one is non-zero where it is used: a key is in one slot)."""
    return functools.reduce(operator.or_, values)


class SocketTable(wiring.Component):
    """Socket hash table: bucketized cuckoo hashing, 2 sub-tables x 4 ways, Toeplitz hash.

    Structure, and why: entries live in ``2 x 4`` memories (sub-table ``t``, way ``w``) of
    ``entries // 8`` rows, each entry ``valid + 104-bit key + id``. A key has one candidate
    bucket (row) in each sub-table: ``row0 = h[0:r]`` and ``row1 = h[16:16+r]`` of its
    Toeplitz hash ``h`` (``r = log2(entries // 8)``). So a lookup reads each of the 8 memories
    exactly once, at one row, through its own synchronous read port: one lookup per clock at a
    fixed latency, and every memory is a plain block RAM (a lookup read port, and one
    read/write port for the control FSM whose read and write share an address: a true
    dual-port RAM; neither read port is transparent for the write, so no bypass logic is
    needed). Bucketized cuckoo hashing with 2 choices and 4 ways fills to ~96 % of
    1024 entries before the first FULL (model, random keys: median 0.966, minimum 0.945 over
    100 fills; 4096 entries alike); a 64-entry table has only 8 buckets per sub-table and
    varies more (median 0.98, 1st percentile 0.906, minimum 0.81 over 2000 fills: a true
    overflow, more keys sharing a closed set of buckets than those hold). Placing in the less
    loaded of the 2 buckets without moving entries overflows first at a median of 0.69 (1024
    entries) and 0.83 (64).

    The hash is the RSS Toeplitz hash of the received segment (source = remote address, then
    local address, remote port, local port) with the Microsoft default key unless another is
    given, so it equals the RSS hash a NIC computes anyway; in hardware it is an XOR tree of
    the key bits, and only the ``2 r`` bits used are built. The protocol is not hashed (it is
    compared). The key is a parameter so the OS may use a secret one against collision attacks.

    Insert: the key goes to the less occupied of its two buckets (ties: sub-table 0), lowest
    free way. If both are full, an entry chosen by a 16-bit LFSR is evicted and moved to its
    other bucket (a cuckoo walk), at most ``max_kicks`` evictions. Each step is logged; if the
    walk fails every step is undone in reverse order and the answer is FULL: no entry is ever
    overwritten or lost. An insert of a present key answers EXISTS, a delete of an absent one
    NOT_FOUND. Every bucket read takes four clocks (its rows registered, the read, its slots
    registered, their compares and free ways registered) before a decision, which uses only
    registers. The response is taken 5 clocks after the command was accepted without a walk,
    ``5 + 5 k`` with ``k`` evictions, and ``6 + 9 max_kicks`` (1158 for the default 128) for
    FULL after a failed walk: the worst case. The next command is accepted one clock later.

    Lookups run concurrently with commands and are never stalled by them. Each lookup sees a
    consistent state of the table: the entry in flight during a walk is held in a victim
    register that lookups also compare against, as they do the entry a decision writes (it
    reaches the memories a clock after the decision, from registers only; a lookup that reads
    its slot on that clock edge drops the read, which a block RAM leaves undefined, so the
    memories need no bypass logic), and the key being
    inserted reads as absent until its insert's last write is in the memories. A lookup
    overlapping a command therefore sees the table either before or after that command, never
    in between. The lookup pipeline has five stages: the key and its rows are registered; the
    buckets are read, and the victim, the entry being written and the hidden key compared, on
    one edge (so the slots and the walk state seen together are those of one clock); the slots
    read are registered; their key compares are registered (one match bit per slot, the victim
    and the entry being written, and the ids); the result register selects the id. While
    ``result`` is not ready every stage holds, the read data too.

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
        Toeplitz secret key, at least 16 bytes; Microsoft's RSS default key by default.
    poison_collisions : bool
        For simulation: a block RAM read of the row written in the same clock returns the old
        slot with its id inverted, as a block RAM's read is undefined then
        (``registered_read_port``'s ``poison_for``), so the tests see a design that would use
        one: the lookup of the slot's key would hit with another id.

    Members
    -------
    lookup : ``In(stream.Signature(KeyLayout()))``
        Keys to look up, one per clock.
    result : ``Out(stream.Signature(ResultLayout(id_width)))``
        One result per key, in order, :data:`LOOKUP_LATENCY` clocks after it was accepted.
        ``lookup.ready`` is ``~result.valid | result.ready``: while the result sink is not
        ready the pipeline holds, losing and duplicating nothing.
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
        # way_data[t][w][row]: the contents of sub-table t, way w (for tests to inspect).
        self.way_data = [[MemoryData(shape=EntryLayout(self._id_width), depth=self._rows, init=[])
                          for _ in range(ref.WAYS)] for _ in range(ref.TABLES)]

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
    def memory_bits(self):
        """Bits of entry memory (all ways), excluding the walk log."""
        return ref.TABLES * ref.WAYS * self._rows * EntryLayout(self._id_width).size

    def _read_port(self, m, mem, name, write):
        """A read port whose data come a clock after its address, as a block RAM's.

        A read of the row `write` writes in the same clock is not used (see the lookup
        pipeline): the port needs no bypass logic (:data:`~hdl.memories.NO_RW_CHECK`), and
        nothing stands between the RAM and the slot register after it. (That register keeps
        its reset, so it stays a flip-flop, as before: without it, :mod:`flow.bram_outreg`
        would fold it into the RAM as its output register, which is not yet measured routed.)

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
            id_field = EntryLayout(self._id_width)["id"]
            return registered_read_port(m, mem, name=name, output_register=False,
                                        poison_for=(write,) if self._poison_collisions else (),
                                        poison_mask=Const(-1, id_field.width) << id_field.offset)
        port = mem.read_port(domain="comb")
        registered = RegisteredRead(addr=port.addr, en=Signal(init=1, name=f"{name}_en"),
                                    data=Signal.like(port.data, name=f"{name}_data"), latency=1)
        with m.If(registered.en):
            m.d.sync += registered.data.eq(port.data)
        return registered

    def elaborate(self, platform):
        m = Module()
        T, W, rb = range(ref.TABLES), range(ref.WAYS), self._row_bits
        entry_layout = EntryLayout(self._id_width)

        # Memories: per (table, way) a lookup read port and a control read/write port. Neither
        # uses a read of the row written on the same clock edge, so a block RAM needs no
        # bypass logic: the lookup takes the entry being written from the write's registers
        # instead (below); the control FSM never uses a read made on the edge of one of its
        # writes (each decision reads its rows afresh).
        lk_rd, ctl_rd, ctl_wr = ([[None] * ref.WAYS for _ in T] for _ in range(3))
        ctl_addr = [Signal(rb, name=f"ctl_addr{t}") for t in T]
        # A decision's write goes through registers (the entry, one enable per memory) and
        # reaches the memories a clock later, so that what drives their write ports (fanned
        # out to every LUT RAM cell, twice: a copy per read port) comes from flip-flops only.
        # Its rows are still in `ctl_addr` then: no decision moves them, so the control port
        # keeps one address for its read and its write (a true dual-port block RAM).
        wr_entry = Signal(entry_layout)             # the decision's (comb)
        wr_slots = Signal(len(T) * len(W))
        wr_entry_r = Signal(entry_layout)
        wr_slots_r = Signal(len(T) * len(W))
        m.d.sync += [wr_entry_r.eq(wr_entry), wr_slots_r.eq(wr_slots)]
        for t in T:
            for w in W:
                mem = m.submodules[f"t{t}_way{w}"] = Memory(data=self.way_data[t][w],
                                                            attrs=NO_RW_CHECK)
                ctl_wr[t][w] = wr = mem.write_port()
                lk_rd[t][w] = self._read_port(m, mem, f"lk_rd{t}{w}", wr)
                ctl_rd[t][w] = self._read_port(m, mem, f"ctl_rd{t}{w}", wr)
                m.d.comb += [wr.addr.eq(ctl_addr[t]), ctl_rd[t][w].addr.eq(ctl_addr[t]),
                             wr.data.eq(wr_entry_r), wr.en.eq(wr_slots_r[t * len(W) + w])]

        # Walk state shared with the lookup path.
        victim = Signal(entry_layout)
        pending = Signal()          # an insert walk is under way (victim valid, key hidden)
        cmd_reg = Signal(CommandLayout(self._id_width))
        # `pending` a clock ago: the command's key stays hidden until the write that ends its
        # walk is in the memories (the key stays in `cmd_reg` until the response is taken)
        pending_before = Signal()
        m.d.sync += pending_before.eq(pending)

        def same_key(a, b):
            return a.as_value() == b.as_value()

        # ---- Lookup pipeline: 0 registers the key and its rows, 1 reads the buckets, 2
        # registers the slots, 3 the matches, and the result register selects the id. Every
        # stage moves only on `advance`.
        advance = Signal()
        m.d.comb += [advance.eq(~self.result.valid | self.result.ready),
                     self.lookup.ready.eq(advance)]
        # Stage 0: the key and its rows registered (the RAM's address comes from registers
        # only).
        s0_valid = Signal()
        s0_key = Signal(KeyLayout())
        s0_rows = [Signal(rb, name=f"s0_row{t}") for t in T]
        in_rows = toeplitz_rows(self.lookup.payload, self._toeplitz_key, rb)
        for t in T:
            for w in W:
                m.d.comb += [lk_rd[t][w].addr.eq(s0_rows[t]), lk_rd[t][w].en.eq(advance)]

        # Stage 1: the rows are read on the edge that moves the key out of stage 0, and the
        # victim, the entry being written, the walk flag and the hidden key are sampled on
        # that same edge: the slots and the walk state seen together are those of one clock,
        # so a lookup sees the table before or after any step of a walk, never an entry in
        # no place (an entry may be seen twice, in its old slot and where it goes: the same
        # id). A stalled stage 1 keeps both (the read port is not enabled), so a stall
        # changes nothing.
        # Besides the slots, a lookup compares the victim of a walk under way and the entry a
        # decision writes, on its way into the memories (`wr_entry` is 0 in a clock without a
        # write, and a delete writes an invalid entry). A slot read on the edge that writes it
        # is dropped (`s1_written`): a block RAM's read is undefined then, and the entry
        # compared aside is what the slot holds after the edge. (What it held before is the
        # victim, for a walk step or an undo step, or nothing a lookup may find: a free slot,
        # or a deleted key. So a lookup still sees the table before or after the edge.)
        aside = [(pending, victim), (wr_entry_r.valid, wr_entry_r)]
        s1_valid = Signal()
        s1_key = Signal(KeyLayout())
        s1_aside_match = Signal(len(aside))
        s1_aside_ids = [Signal(self._id_width, name=f"s1_aside_id{i}") for i in range(len(aside))]
        s1_hidden = Signal()
        s1_written = Signal(len(T) * len(W))    # per slot read: written on the same edge
        # Stage 2: the slots read, registered (a block RAM's read data are late in the clock).
        s2_valid = Signal()
        s2_key = Signal(KeyLayout())
        s2_slots = [Signal(entry_layout, name=f"s2_slot{i}") for i in range(len(T) * len(W))]
        s2_aside_match = Signal(len(aside))
        s2_aside_ids = [Signal(self._id_width, name=f"s2_aside_id{i}") for i in range(len(aside))]
        s2_hidden = Signal()
        s2_written = Signal(len(s1_written))
        # Stage 3: one match bit per slot, the victim and the entry being written (those set
        # are copies of one entry: a key has one id), and their ids.
        s3_valid = Signal()
        s3_match = Signal(len(s2_slots) + len(aside))
        s3_ids = [Signal(self._id_width, name=f"s3_id{i}")
                  for i in range(len(s2_slots) + len(aside))]
        s3_hidden = Signal()

        with m.If(advance):
            m.d.sync += [s0_valid.eq(self.lookup.valid), s0_key.eq(self.lookup.payload)]
            m.d.sync += [s0_rows[t].eq(in_rows[t]) for t in T]
            m.d.sync += [s1_valid.eq(s0_valid), s1_key.eq(s0_key),
                         s1_aside_match.eq(Cat(held & same_key(entry.key, s0_key)
                                               for held, entry in aside)),
                         *[id_.eq(entry.id) for id_, (_, entry) in zip(s1_aside_ids, aside)],
                         s1_hidden.eq((pending | pending_before) & same_key(cmd_reg.key, s0_key)),
                         s1_written.eq(Cat(wr_slots_r[t * len(W) + w] & (ctl_addr[t] == s0_rows[t])
                                           for t in T for w in W))]
            m.d.sync += [s2_valid.eq(s1_valid), s2_key.eq(s1_key),
                         s2_aside_match.eq(s1_aside_match),
                         *[a.eq(b) for a, b in zip(s2_aside_ids, s1_aside_ids)],
                         s2_hidden.eq(s1_hidden), s2_written.eq(s1_written)]
            m.d.sync += [s2_slots[t * len(W) + w].eq(lk_rd[t][w].data) for t in T for w in W]
            m.d.sync += [s3_valid.eq(s2_valid), s3_hidden.eq(s2_hidden),
                         s3_match.eq(Cat(*(s.valid & ~written & same_key(s.key, s2_key)
                                           for s, written in zip(s2_slots, s2_written)),
                                         s2_aside_match))]
            m.d.sync += [id_.eq(s.id) for id_, s in zip(s3_ids, s2_slots)]
            m.d.sync += [a.eq(b) for a, b in zip(s3_ids[len(s2_slots):], s2_aside_ids)]
            m.d.sync += [self.result.valid.eq(s3_valid),
                         self.result.payload.hit.eq(s3_match.any() & ~s3_hidden),
                         self.result.payload.id.eq(Mux(s3_hidden, 0, or_all(
                             Mux(s3_match[i], id_, 0) for i, id_ in enumerate(s3_ids))))]

        # ---- Control port. A bucket read takes four clocks: its rows registered (the RAM's
        # address comes from registers only), the read, its slots registered (`slots`), and
        # their key compares and free ways registered; a decision then uses only registers.
        # Nothing writes the rows read while a decision waits for them.
        row_reg = [Signal(rb, name=f"row{t}") for t in T]
        for t in T:
            m.d.comb += ctl_addr[t].eq(row_reg[t])      # registered: no logic before the RAM
        cmd_rows = toeplitz_rows(self.cmd.payload.key, self._toeplitz_key, rb)
        victim_rows = toeplitz_rows(victim.key, self._toeplitz_key, rb)

        slots = [[Signal(entry_layout, name=f"slot{t}_{w}") for w in W] for t in T]
        m.d.sync += [slots[t][w].eq(ctl_rd[t][w].data) for t in T for w in W]
        # Per sub-table and way (bit 4 t + w): the command's key is there; the slot is free;
        # the bucket's lowest free way (one-hot per sub-table); where an insert without a
        # walk goes (one-hot: the less occupied bucket, ties sub-table 0; none if both full).
        seen_match = Signal(len(T) * len(W))
        seen_free = Signal(len(T) * len(W))
        seen_first_free = Signal(len(T) * len(W))
        seen_place = Signal(len(T) * len(W))
        free = [Cat(*(~slots[t][w].valid for w in W)) for t in T]
        first_free = [Cat(*(free[t][w] & ~free[t][:w].any() if w else free[t][0] for w in W))
                      for t in T]
        free_count = [sum(free[t][w] for w in W) for t in T]
        place_t1 = free_count[1] > free_count[0]
        m.d.sync += [seen_match.eq(Cat(*(slots[t][w].valid & same_key(slots[t][w].key, cmd_reg.key)
                                         for t in T for w in W))),
                     seen_free.eq(Cat(*free)),
                     seen_first_free.eq(Cat(*first_free)),
                     seen_place.eq(Cat(Mux(place_t1, 0, first_free[0]),
                                       Mux(place_t1, first_free[1], 0)))]
        found_id = Signal(self._id_width)
        m.d.comb += found_id.eq(or_all(Mux(seen_match[t * len(W) + w], slots[t][w].id, 0)
                                       for t in T for w in W))

        lfsr = Signal(16, init=ref.LFSR_SEED)
        lfsr_next = Cat(lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10], lfsr[:15])
        kicks = Signal(range(self._max_kicks + 1))
        alt_table = Signal()        # the sub-table of the victim's other bucket
        undo_table = Signal()
        undo_way = Signal(2)

        log = m.submodules.walk_log = Memory(shape=_LogLayout(rb), depth=self._max_kicks, init=[])
        log_wr = log.write_port()
        log_rd = log.read_port()
        m.d.comb += [log_wr.addr.eq(kicks), log_rd.addr.eq(kicks + Const(-1 % 2 ** len(kicks), len(kicks)))]

        rsp_status = Signal(Status)
        rsp_id = Signal(self._id_width)
        m.d.comb += [self.rsp.payload.status.eq(rsp_status), self.rsp.payload.id.eq(rsp_id)]

        def write_slots(onehot, entry):
            """Write `entry` at the row in ctl_addr into the slots set in `onehot` (bit 4 t + w)."""
            m.d.comb += [wr_entry.eq(entry), wr_slots.eq(onehot)]

        def slot_bit(table, way):
            """One-hot of (table, way), both signals."""
            return Cat(*(Cat(way, table) == i for i in range(len(T) * len(W))))

        # The registered slot the victim swaps with: one 8-way mux whose select is a register,
        # `pick`, set in the clock before each decision that may swap (`will_swap`; the LFSR,
        # `alt_table` and the undo step it is made of change only in decisions), so that the
        # victim's input is that mux alone.
        pick = Signal(3)            # 4 table + way
        picked = Signal(entry_layout)
        with m.Switch(pick):
            for t in T:
                for w in W:
                    with m.Case(t * len(W) + w):
                        m.d.comb += picked.eq(slots[t][w])

        def will_swap(table, way):
            """The next clock's decision may swap the victim with slot (table, way)."""
            m.d.sync += pick.eq(Cat(way, table))

        state = Signal(_State)

        def goto(next_state):
            m.d.sync += state.eq(next_state)

        def respond(status, id_=0):
            m.d.sync += [rsp_status.eq(status), rsp_id.eq(id_)]
            goto(_State.WAIT_RESPONSE_TAKEN)

        cmd_entry = Signal(entry_layout)
        m.d.comb += [cmd_entry.valid.eq(1), cmd_entry.key.eq(cmd_reg.key),
                     cmd_entry.id.eq(cmd_reg.id)]

        with m.Switch(state):
            with m.Case(_State.WAIT_COMMAND):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += cmd_reg.eq(self.cmd.payload)
                    m.d.sync += [row_reg[t].eq(cmd_rows[t]) for t in T]
                    goto(_State.WAIT_READ)

            with m.Case(_State.WAIT_READ):
                goto(_State.WAIT_BUCKETS)

            with m.Case(_State.WAIT_BUCKETS):
                goto(_State.WAIT_SLOTS)

            with m.Case(_State.WAIT_SLOTS):
                will_swap(lfsr_next[2], lfsr_next[:2])
                goto(_State.WAIT_MATCHES)

            with m.Case(_State.WAIT_MATCHES):
                with m.If(seen_match.any()):
                    with m.If(cmd_reg.op == Op.DELETE):
                        write_slots(seen_match, 0)
                        m.d.sync += self.count.eq(self.count - 1)
                        respond(Status.OK, found_id)
                    with m.Else():
                        respond(Status.EXISTS, found_id)
                with m.Elif(cmd_reg.op == Op.DELETE):
                    respond(Status.NOT_FOUND)
                with m.Elif(seen_place.any()):
                    write_slots(seen_place, cmd_entry)
                    m.d.sync += self.count.eq(self.count + 1)
                    respond(Status.OK)
                with m.Else():
                    # Both buckets full: first eviction, table LFSR bit 2, way LFSR bits 0-1.
                    table, way = lfsr_next[2], lfsr_next[:2]
                    write_slots(slot_bit(table, way), cmd_entry)
                    m.d.sync += [lfsr.eq(lfsr_next), victim.eq(picked),
                                 alt_table.eq(~table), kicks.eq(1)]
                    m.d.comb += [log_wr.en.eq(1), log_wr.addr.eq(0), log_wr.data.table.eq(table),
                                 log_wr.data.way.eq(way),
                                 log_wr.data.row.eq(Cat(row_reg[0], row_reg[1]).word_select(table, rb))]
                    goto(_State.WAIT_VICTIM_HASH)

            with m.Case(_State.WAIT_VICTIM_HASH):
                m.d.comb += pending.eq(1)
                m.d.sync += [row_reg[t].eq(victim_rows[t]) for t in T]
                goto(_State.WAIT_ALTERNATE_READ)

            with m.Case(_State.WAIT_ALTERNATE_READ):
                m.d.comb += pending.eq(1)
                goto(_State.WAIT_ALTERNATE_BUCKET)

            with m.Case(_State.WAIT_ALTERNATE_BUCKET):
                m.d.comb += pending.eq(1)
                goto(_State.WAIT_ALTERNATE_SLOTS)

            with m.Case(_State.WAIT_ALTERNATE_SLOTS):
                m.d.comb += pending.eq(1)
                will_swap(alt_table, lfsr_next[:2])
                goto(_State.WAIT_ALTERNATE_FREE)

            with m.Case(_State.WAIT_ALTERNATE_FREE):
                m.d.comb += pending.eq(1)
                alt_mask = Mux(alt_table, 0xF0, 0x0F)     # the slots of sub-table alt_table
                with m.If((seen_free & alt_mask).any()):
                    write_slots(seen_first_free & alt_mask, victim)
                    m.d.sync += self.count.eq(self.count + 1)
                    respond(Status.OK)
                with m.Elif(kicks == self._max_kicks):
                    goto(_State.WAIT_LOG)
                with m.Else():
                    way = lfsr_next[:2]
                    write_slots(slot_bit(alt_table, way), victim)
                    m.d.sync += [lfsr.eq(lfsr_next), victim.eq(picked),
                                 alt_table.eq(~alt_table), kicks.eq(kicks + 1)]
                    m.d.comb += [log_wr.en.eq(1), log_wr.data.table.eq(alt_table),
                                 log_wr.data.way.eq(way),
                                 log_wr.data.row.eq(Cat(row_reg[0], row_reg[1]).word_select(alt_table, rb))]
                    goto(_State.WAIT_VICTIM_HASH)

            with m.Case(_State.WAIT_LOG):           # log_rd.addr is kicks - 1
                m.d.comb += pending.eq(1)
                goto(_State.WAIT_UNDO_STEP)

            with m.Case(_State.WAIT_UNDO_STEP):
                m.d.comb += pending.eq(1)
                m.d.sync += [row_reg[t].eq(log_rd.data.row) for t in T]
                m.d.sync += [undo_table.eq(log_rd.data.table), undo_way.eq(log_rd.data.way)]
                goto(_State.WAIT_UNDO_READ)

            with m.Case(_State.WAIT_UNDO_READ):
                m.d.comb += pending.eq(1)
                goto(_State.WAIT_UNDO_BUCKET)

            with m.Case(_State.WAIT_UNDO_BUCKET):
                m.d.comb += pending.eq(1)
                will_swap(undo_table, undo_way)
                goto(_State.WAIT_UNDO_SLOT)

            with m.Case(_State.WAIT_UNDO_SLOT):
                m.d.comb += pending.eq(1)
                write_slots(slot_bit(undo_table, undo_way), victim)
                m.d.sync += [victim.eq(picked), kicks.eq(kicks - 1)]
                m.d.comb += log_rd.addr.eq(kicks + Const(-2 % 2 ** len(kicks), len(kicks)))
                with m.If(kicks == 1):
                    respond(Status.FULL)
                with m.Else():
                    goto(_State.WAIT_UNDO_STEP)

            with m.Case(_State.WAIT_RESPONSE_TAKEN):
                m.d.comb += self.rsp.valid.eq(1)
                with m.If(self.rsp.ready):
                    goto(_State.WAIT_COMMAND)
        return m
