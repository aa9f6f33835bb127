"""Prefix sums beside a send ring: any byte range's ones' complement sum from two words.

For each 64-bit word ``w`` of a :class:`~hdl.buffers.stream_buffer.StreamBuffer`'s data RAM,
``P[w]`` is the ones' complement sum of the connection's stream bytes before the word's first
byte, in ring alignment (a byte at an even ring position is the high byte of its 16-bit word).
The unit follows the stream buffer's RAM writes (address, data, lane enables: the write side's
``dwp``), which for a send ring only ever append at the tail: when a write fills a word's lane
0, ``P`` of that word is the connection's running sum, which then takes the written lanes.

A range ``[s, e)`` whose first and last bytes lie in different words sums as
``B(e) - B(s)``, byte-swapped when ``s`` is odd: ``B(e) = P[word(e - 1)]`` plus that word's
lanes up to ``e - 1``, and ``B(s) = P[word(s) + 1]`` less ``word(s)``'s lanes from ``s`` on
(from above, because when the ring is full the lanes below ``s`` and so ``P[word(s)]`` may
already belong to the newest bytes); a range within one word is that word's lanes. So two
reads of ``P`` and the two edge words, whatever the range's length. No word's lanes need
clearing at a stream's start: the running sum takes written lanes only, and the stream's
first word's ``P`` (never written when the stream starts mid-word) is read only for a range
that also starts in that word, which is the one-word case. Nor does the running sum need a
start value: a range's sum is a difference of two of its values, so any start cancels.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.checksum import ones_add
from hdl.memories import NO_RW_CHECK, registered_read_port

__all__ = ["PrefixSums", "word_lanes_sum"]


def word_lanes_sum(m, word, lanes_en, name, registered_pairs=True):
    """Ones' complement sum of a 64-bit RAM word's 16-bit words in ring alignment (byte 0,
    bits 0-7, is the high byte of the first), lanes not enabled counted as zero; a tree of
    ``ones_add`` with a register after each level (one carry chain a clock), and the lanes
    registered before it unless `registered_pairs` is false (inputs straight from registers:
    the lane selects then go into the first adders). Returns the sum and the clocks it
    follows its inputs by."""
    pairs = []
    for j in range(len(word) // 16):
        high = Mux(lanes_en[2 * j], word[16 * j:16 * j + 8], 0)
        low = Mux(lanes_en[2 * j + 1], word[16 * j + 8:16 * j + 16], 0)
        pair = Signal(16, name=f"{name}_pair{j}")
        if registered_pairs:
            m.d.sync += pair.eq(Cat(low, high))
        else:
            m.d.comb += pair.eq(Cat(low, high))
        pairs.append(pair)
    depth = 1 if registered_pairs else 0
    while len(pairs) > 1:
        level = []
        for k in range(0, len(pairs), 2):
            node = Signal(16, name=f"{name}{depth}_{k // 2}")
            m.d.sync += node.eq(ones_add(m, pairs[k], pairs[k + 1], f"{name}{depth}_{k // 2}_add"))
            level.append(node)
        pairs, depth = level, depth + 1
    return pairs[0], depth


class PrefixSums(wiring.Component):
    """``P`` for every word of a 64-bit send ring, and each connection's running sum.

    Parameters
    ----------
    connections : int
        Number of connections (a power of two), as the stream buffer's.
    ring_bytes : int
        Bytes of ring per connection (a power of two, at least 8).
    poison_collisions : bool
        For simulation only: a read of ``P`` in the clock its word is written returns it
        inverted (see the stream buffer's).

    Members
    -------
    write : In(word writes)
        ``valid``, ``addr`` (the data RAM's word address: connection, then word in its ring),
        ``data`` and ``en`` (lane enables): the stream buffer's RAM write, in the same clock.
    read_addr, read_data : the ``P`` RAM's read port, ``read_data`` :attr:`READ_LATENCY`
        clocks after ``read_addr``.

    A write's ``P`` is in the RAM :attr:`WRITE_LATENCY` clocks after it is offered.
    """

    WRITE_LATENCY = 4
    READ_LATENCY = 2

    def __init__(self, connections, ring_bytes, poison_collisions=False):
        if connections < 1 or connections & (connections - 1):
            raise ValueError(f"connections must be a power of two, not {connections!r}")
        if ring_bytes < 8 or ring_bytes & (ring_bytes - 1):
            raise ValueError(f"ring_bytes must be a power of two of at least 8, not {ring_bytes!r}")
        self._connections = connections
        self._poison_collisions = bool(poison_collisions)
        self._ring_bytes = ring_bytes
        self._words = connections * ring_bytes // 8
        addr_bits = exact_log2(self._words)
        super().__init__({
            "write": In(data.StructLayout({"valid": 1, "addr": addr_bits, "data": 64, "en": 8})),
            "read_addr": In(addr_bits),
            "read_data": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        word_bits = exact_log2(self._ring_bytes // 8)

        def conn_of(addr):
            return addr[word_bits:] if self._connections > 1 else C(0, 1)

        # The word's lanes summed in registered levels, its address and lane 0 beside them.
        word_sum, depth = word_lanes_sum(m, self.write.data, self.write.en, "lanes")
        stages = [(self.write.valid, self.write.addr, self.write.en[0])]
        for stage in range(depth):
            regs = (Signal(name=f"valid{stage}"), Signal.like(self.write.addr, name=f"addr{stage}"),
                    Signal(name=f"first{stage}"))
            m.d.sync += [reg.eq(value) for reg, value in zip(regs, stages[-1])]
            stages.append(regs)
        (_, ahead_addr, _), (sum_valid, sum_addr, sum_first) = stages[-2:]

        # The running sums (LUT RAM) are read a clock ahead, from the stage before, and
        # registered; the word just before, if of the same connection, is not in the RAM yet
        # then, and its result is taken instead (`follows`, registered too), so the loop from
        # one word's running sum to the next is one ones' complement adder and a 2:1 select.
        m.submodules.running = running = Memory(shape=16, depth=self._connections, init=[])
        run_rd = running.read_port(domain="comb")
        run_wr = running.write_port()
        run_read = Signal(16)
        follows = Signal()
        result = Signal(16)
        m.d.comb += run_rd.addr.eq(conn_of(ahead_addr))
        m.d.sync += [run_read.eq(run_rd.data),
                     follows.eq(sum_valid & (conn_of(ahead_addr) == conn_of(sum_addr)))]
        before = Signal(16)                 # the connection's running sum before this word
        after = Signal(16)
        m.d.comb += [before.eq(Mux(follows, result, run_read)),
                     after.eq(ones_add(m, before, word_sum, "running_add")),
                     run_wr.addr.eq(conn_of(sum_addr)), run_wr.en.eq(sum_valid),
                     run_wr.data.eq(after)]
        m.d.sync += result.eq(after)

        m.submodules.p_mem = p_mem = Memory(shape=16, depth=self._words, init=[],
                                            attrs=NO_RW_CHECK)
        p_wr = p_mem.write_port()
        m.d.comb += [p_wr.addr.eq(sum_addr), p_wr.data.eq(before),
                     p_wr.en.eq(sum_valid & sum_first)]
        p_rd = registered_read_port(m, p_mem, name="p_rd",
                                    poison_for=(p_wr,) if self._poison_collisions else ())
        m.d.comb += [p_rd.addr.eq(self.read_addr), self.read_data.eq(p_rd.data)]
        return m
