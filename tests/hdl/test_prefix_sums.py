"""PrefixSums (the send ring's transmit checksum): any range's sum from two P reads and the
two edge words equals RFC 1071's sum of the range's bytes. (The stream buffer's own test,
`test_range_sums_against_rfc1071`, checks the sums it reads this way.)"""

import random

import pytest
from amaranth.sim import Simulator

from hdl.buffers.prefix_sums import PrefixSums
from model.checksum import ones_complement_sum


def ones_add(a, b):
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def lanes_sum(word, lo, hi):
    s = 0
    for k in range(lo, hi):
        s = ones_add(s, word[k] << 8 if k % 2 == 0 else word[k])
    return s


def swap(x):
    return (x >> 8 | x << 8) & 0xFFFF


class Rings:
    """Send rings as the stream buffer's data RAM holds them, and the RAM writes (one word a
    clock, as its write side makes them) of appends at each stream's tail."""

    def __init__(self, rng, connections, ring_bytes):
        self.rng, self.n, self.ring = rng, connections, ring_bytes
        self.ram = bytearray(rng.randbytes(connections * ring_bytes))   # garbage at first
        self.base = [rng.randrange(2 ** 32) for _ in range(connections)]
        self.stream = [bytearray() for _ in range(connections)]

    def position(self, conn, offset):
        return conn * self.ring + (self.base[conn] + offset) % self.ring

    def append(self, conn, payload):
        writes = {}
        for k, byte in enumerate(payload):
            at = self.position(conn, len(self.stream[conn]) + k)
            self.ram[at] = byte
            word, lane = divmod(at, 8)
            writes.setdefault(word, 0)
            writes[word] |= 1 << lane
        self.stream[conn] += payload
        return [(word, int.from_bytes(self.ram[8 * word:8 * word + 8], "little"), en)
                for word, en in writes.items()]


@pytest.mark.parametrize("connections,ring_bytes", [(1, 64), (4, 256)])
def test_range_sums_from_prefixes(connections, ring_bytes):
    rng = random.Random(connections * 1000 + ring_bytes)
    dut = PrefixSums(connections, ring_bytes)
    rings = Rings(rng, connections, ring_bytes)
    checked = []

    async def bench(ctx):
        async def offer(write=None):
            if write is not None:
                addr, word, en = write
                ctx.set(dut.write, {"valid": 1, "addr": addr, "data": word, "en": en})
            await ctx.tick()
            ctx.set(dut.write.valid, 0)

        async def read_p(word):
            ctx.set(dut.read_addr, word)
            await ctx.tick().repeat(PrefixSums.READ_LATENCY)
            return ctx.get(dut.read_data)

        for _ in range(60):
            # appends to random connections, their words back to back or a clock apart, as
            # the stream buffer's write side takes one write after another
            for _ in range(rng.randrange(1, 4)):
                appended = rng.randrange(connections)
                payload = rng.randbytes(rng.randrange(1, ring_bytes // 2))
                for write in rings.append(appended, payload):
                    await offer(write)
                    for _ in range(rng.choice((0, 0, 0, 1))):
                        await offer()
            await ctx.tick().repeat(PrefixSums.WRITE_LATENCY)
            conn = appended
            stream = rings.stream[conn]
            live = max(0, len(stream) - ring_bytes)     # bytes before it are overwritten
            for k in range(4):
                # the first: every byte the ring holds (the whole ring once it is full)
                s = live if k == 0 else rng.randrange(live, len(stream))
                e = len(stream) if k == 0 else rng.randrange(s + 1, len(stream) + 1)

                first, last = rings.position(conn, s), rings.position(conn, e - 1)
                if first % 8 + (e - s) <= 8:        # one word: its lanes, no P (a whole
                    # ring's range starting mid-word ends in its first word, but is not this)
                    got = lanes_sum(rings.ram[first - first % 8:first - first % 8 + 8],
                                    first % 8, last % 8 + 1)
                else:
                    # B(s) from above: P of the word after s's less s's word from s on (the
                    # lanes below s may hold the newest bytes when the ring is full, and then
                    # so does P of s's word); B(e) from P of e - 1's word and its lanes to e
                    word = first // 8
                    per_ring = ring_bytes // 8      # the ring wraps within its connection's
                    after = word - word % per_ring + (word + 1) % per_ring
                    upper = lanes_sum(rings.ram[8 * word:8 * word + 8], first % 8, 8)
                    b_s = ones_add(await read_p(after), ~upper & 0xFFFF)
                    word = last // 8
                    b_e = ones_add(await read_p(word),
                                   lanes_sum(rings.ram[8 * word:8 * word + 8], 0, last % 8 + 1))
                    got = ones_add(b_e, ~b_s & 0xFFFF)
                if (rings.base[conn] + s) % 2:
                    got = swap(got)
                want = ones_complement_sum(bytes(stream[s:e]))
                assert got % 0xFFFF == want % 0xFFFF, (conn, s, e, hex(got), hex(want))
                checked.append((conn, s, e))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) == 240
