"""Socket hash table: the bit-exact reference for ``hdl/tables/socket_table.py``.

The table maps a socket key (protocol, local address/port, remote address/port; for a bound
UDP socket the remote side is zero) to a connection id chosen by the control port. It is a
bucketized cuckoo hash table:

* two sub-tables (``T0``, ``T1``) of ``entries // 8`` buckets, each bucket 4 ways;
* a key may live in bucket ``T0[row0]`` or ``T1[row1]``, where ``row0`` and ``row1`` are two
  bit fields of the Toeplitz (RSS) hash of the key, computed with :data:`RSS_DEFAULT_KEY`
  unless another Toeplitz key is given;
* every key has a 16-bit *tag*, more bits of the same hash (:meth:`SocketTable.tag_of`), and
  no bucket ever holds two keys of one tag: the hardware's ways store the tag and the id, and
  the full keys sit in a block RAM of their own, read for the one way per bucket whose tag
  matches (``hdl/tables/socket_table.py``);
* an insert goes into the less occupied of its two buckets that has a free way and no key of
  its tag (ties: ``T0``), lowest free way first; when neither can take it, it evicts an entry
  and moves that one to its other bucket, and so on (a cuckoo walk) for at most ``max_kicks``
  evictions. The entry evicted from a bucket is the one with the tag of the entry coming in if
  there is one, else one chosen by a 16-bit LFSR; the walk ends in a bucket with a free way and
  no key of the tag of the entry it carries. If the walk finds none, every move is undone in
  reverse order and the insert answers ``FULL``: the table is exactly as before.

Everything here (hash, bucket choice, way choice, LFSR sequence, undo) is what the hardware
does, so a test can predict every response and compare the memories slot by slot.
"""

import enum
import functools
from dataclasses import dataclass

__all__ = [
    "RSS_DEFAULT_KEY", "toeplitz_hash", "SocketKey", "Op", "Status", "Lfsr", "SocketTable",
    "WAYS", "TABLES", "TAG_BITS", "HASH_BITS", "LFSR_SEED", "MAX_KICKS", "check_entries",
    "check_id_width", "check_max_kicks",
    "check_toeplitz_key",
]

# Microsoft's default RSS secret key (40 bytes), from the "Verifying the RSS Hash Calculation"
# page of the Windows driver documentation.
RSS_DEFAULT_KEY = bytes([
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
    0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
    0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
    0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
])

TABLES = 2          # sub-tables, one per hash function
WAYS = 4            # ways per bucket (one memory per way and sub-table)
HASH_INPUT_BYTES = 12
ROW1_OFFSET = 16    # row1 is hash bits [16:16+row_bits], row0 is hash bits [0:row_bits]
# The tag: the Toeplitz hash taken on to 48 bits (each data bit XORs in a 48-bit window of the
# secret key): its top 32 bits are the RSS hash, its low TAG_BITS the tag.
TAG_BITS = 16
HASH_BITS = 32 + TAG_BITS
LFSR_SEED = 0xACE1
MAX_KICKS = 128     # default bound on evictions per insert


def check_entries(entries):
    if not isinstance(entries, int) or isinstance(entries, bool) or entries < 16 \
            or entries > 1 << 19 or entries & (entries - 1):
        raise TypeError(f"Entries must be a power of two from 16 to 524288, not {entries!r}")
    return entries


def check_id_width(id_width):
    if not isinstance(id_width, int) or isinstance(id_width, bool) or not 1 <= id_width <= 32:
        raise TypeError(f"Id width must be an integer from 1 to 32, not {id_width!r}")
    return id_width


def check_max_kicks(max_kicks):
    if not isinstance(max_kicks, int) or isinstance(max_kicks, bool) or not 1 <= max_kicks <= 1024:
        raise TypeError(f"Max kicks must be an integer from 1 to 1024, not {max_kicks!r}")
    return max_kicks


def check_toeplitz_key(toeplitz_key):
    if not isinstance(toeplitz_key, (bytes, bytearray)) or \
            len(toeplitz_key) * 8 < HASH_INPUT_BYTES * 8 + HASH_BITS:
        raise TypeError(f"Toeplitz key must be at least {HASH_INPUT_BYTES + HASH_BITS // 8} bytes, "
                        f"not {toeplitz_key!r}")
    return bytes(toeplitz_key)


def toeplitz_hash(key: bytes, data: bytes, bits: int = 32) -> int:
    """`bits`-bit Toeplitz hash of `data` with secret `key`; with 32 bits, RSS's.

    For every set bit of `data` (most significant bit of byte 0 first, bit index ``j``), the
    `bits` key bits starting at key bit ``j`` are XORed into the result. (So the top 32 bits
    of a longer hash are the 32-bit hash.)
    """
    if len(key) * 8 < len(data) * 8 + bits:
        raise ValueError("Toeplitz key is too short for the input")
    key_int = int.from_bytes(key, "big")
    key_bits = len(key) * 8
    mask = (1 << bits) - 1
    result = 0
    for j in range(len(data) * 8):
        if data[j // 8] >> (7 - j % 8) & 1:
            result ^= (key_int >> (key_bits - bits - j)) & mask
    return result


@functools.lru_cache(maxsize=1 << 16)
def _hash48(toeplitz_key: bytes, key: "SocketKey") -> int:
    return toeplitz_hash(toeplitz_key, key.hash_input(), HASH_BITS)


@dataclass(frozen=True)
class SocketKey:
    """What a socket is found by. For a bound UDP socket, the remote side is zero."""
    protocol: int
    local_ip: int
    local_port: int
    remote_ip: int
    remote_port: int

    def hash_input(self) -> bytes:
        """The RSS TCP/IPv4 input of a received segment: source (remote) address, destination
        (local) address, source port, destination port, all big-endian."""
        return (self.remote_ip.to_bytes(4, "big") + self.local_ip.to_bytes(4, "big")
                + self.remote_port.to_bytes(2, "big") + self.local_port.to_bytes(2, "big"))

    def as_dict(self) -> dict:
        return {"protocol": self.protocol, "local_ip": self.local_ip,
                "local_port": self.local_port, "remote_ip": self.remote_ip,
                "remote_port": self.remote_port}


class Op(enum.IntEnum):
    """Control port command."""
    INSERT = 0
    DELETE = 1


class Status(enum.IntEnum):
    """Control port response code."""
    OK = 0          # inserted, or deleted (the response carries the deleted id)
    EXISTS = 1      # insert of a key already present (the response carries its id)
    NOT_FOUND = 2   # delete of a key not present
    FULL = 3        # insert found no slot within max_kicks evictions; nothing changed


class Lfsr:
    """16-bit Fibonacci LFSR, taps 16, 14, 13, 11 (maximal length), shifting left."""

    def __init__(self, state=LFSR_SEED):
        self.state = state

    @staticmethod
    def next_state(state: int) -> int:
        feedback = (state >> 15 ^ state >> 13 ^ state >> 12 ^ state >> 10) & 1
        return (state << 1 | feedback) & 0xFFFF

    def step(self) -> int:
        self.state = self.next_state(self.state)
        return self.state


@dataclass
class Entry:
    key: SocketKey
    id: int


class SocketTable:
    """Reference socket table.

    Parameters
    ----------
    entries : int
        Capacity in entries, a power of two from 16: ``2 * 4`` ways of ``entries // 8`` rows.
    id_width : int
        Width of a connection id; default ``log2(entries)``.
    max_kicks : int
        Bound on evictions in one insert's cuckoo walk.
    toeplitz_key : bytes
        Toeplitz secret key, at least 16 bytes.
    """

    def __init__(self, entries, *, id_width=None, max_kicks=MAX_KICKS,
                 toeplitz_key=RSS_DEFAULT_KEY):
        self.entries = check_entries(entries)
        self.id_width = check_id_width(entries.bit_length() - 1 if id_width is None else id_width)
        self.max_kicks = check_max_kicks(max_kicks)
        self.toeplitz_key = check_toeplitz_key(toeplitz_key)
        self.rows = entries // (TABLES * WAYS)
        self.row_bits = self.rows.bit_length() - 1
        # tables[t][row][way] is an Entry or None
        self.tables = [[[None] * WAYS for _ in range(self.rows)] for _ in range(TABLES)]
        self.lfsr = Lfsr()
        self.count = 0
        self.last_kicks = 0     # evictions made by the last insert (for statistics)

    def hash(self, key: SocketKey) -> int:
        """The key's 32-bit (RSS) Toeplitz hash: the top 32 bits of its 48-bit hash."""
        return _hash48(self.toeplitz_key, key) >> TAG_BITS

    def tag_of(self, key: SocketKey) -> int:
        """The key's tag: the low :data:`TAG_BITS` of its 48-bit Toeplitz hash."""
        return _hash48(self.toeplitz_key, key) & ((1 << TAG_BITS) - 1)

    def _clash(self, t, row, entry):
        """The way of bucket (t, row) holding a key of `entry`'s tag, or None. (Never the
        entry's own key: an entry moving in is in no slot.)"""
        tag = self.tag_of(entry.key)
        for way, other in enumerate(self.tables[t][row]):
            if other is not None and self.tag_of(other.key) == tag:
                return way
        return None

    def _takes(self, t, row, entry):
        """Bucket (t, row) has a free way and no other key of `entry`'s tag."""
        return None in self.tables[t][row] and self._clash(t, row, entry) is None

    def rows_of(self, key: SocketKey) -> tuple[int, int]:
        """The row of `key` in T0 and in T1."""
        h = self.hash(key)
        mask = self.rows - 1
        return h & mask, h >> ROW1_OFFSET & mask

    def _find(self, key):
        for t, row in enumerate(self.rows_of(key)):
            for way, entry in enumerate(self.tables[t][row]):
                if entry is not None and entry.key == key:
                    return t, row, way
        return None

    def lookup(self, key: SocketKey) -> tuple[bool, int]:
        """(hit, id); id is 0 on a miss."""
        slot = self._find(key)
        if slot is None:
            return False, 0
        t, row, way = slot
        return True, self.tables[t][row][way].id

    def delete(self, key: SocketKey) -> tuple[Status, int]:
        slot = self._find(key)
        if slot is None:
            return Status.NOT_FOUND, 0
        t, row, way = slot
        removed = self.tables[t][row][way]
        self.tables[t][row][way] = None
        self.count -= 1
        return Status.OK, removed.id

    def insert(self, key: SocketKey, id: int) -> tuple[Status, int]:
        if not 0 <= id < 1 << self.id_width:
            raise ValueError(f"id {id} does not fit in {self.id_width} bits")
        self.last_kicks = 0
        slot = self._find(key)
        if slot is not None:
            t, row, way = slot
            return Status.EXISTS, self.tables[t][row][way].id
        rows = self.rows_of(key)
        victim = Entry(key, id)
        free = [self.tables[t][rows[t]].count(None) if self._takes(t, rows[t], victim) else 0
                for t in range(TABLES)]
        if free[0] or free[1]:
            t = 0 if free[0] >= free[1] else 1
            self._place(t, rows[t], victim)
            return Status.OK, 0
        # Neither bucket takes it: cuckoo walk. The first eviction's table is LFSR bit 2.
        path = []
        t = self.lfsr.step() >> 2 & 1
        way = self.lfsr.state & 3
        row = rows[t]
        while True:
            clash = self._clash(t, row, victim)
            if clash is not None:       # the key of the same tag goes, whatever the LFSR says
                way = clash
            evicted = self.tables[t][row][way]
            self.tables[t][row][way] = victim
            path.append((t, row, way))
            victim = evicted
            t = 1 - t
            row = self.rows_of(victim.key)[t]
            if self._takes(t, row, victim):
                self._place(t, row, victim)
                self.last_kicks = len(path)
                return Status.OK, 0
            if len(path) == self.max_kicks:
                break
            way = self.lfsr.step() & 3
        # No slot found: undo every eviction, last first.
        self.last_kicks = len(path)
        for t, row, way in reversed(path):
            placed = self.tables[t][row][way]
            self.tables[t][row][way] = victim
            victim = placed
        assert victim.key == key and victim.id == id
        return Status.FULL, 0

    def check_tags(self):
        """Assert that no bucket holds two keys of one tag (what the hardware's lookups rely
        on)."""
        for t in range(TABLES):
            for row in range(self.rows):
                tags = [self.tag_of(e.key) for e in self.tables[t][row] if e is not None]
                assert len(tags) == len(set(tags)), f"bucket {t}/{row} holds a tag twice: {tags}"

    def _place(self, t, row, entry):
        bucket = self.tables[t][row]
        bucket[bucket.index(None)] = entry
        self.count += 1

    def slots(self):
        """Every slot as ``{(t, row, way): (key, id)}`` for the occupied ones."""
        return {(t, row, way): (entry.key, entry.id)
                for t in range(TABLES) for row in range(self.rows)
                for way, entry in enumerate(self.tables[t][row]) if entry is not None}
