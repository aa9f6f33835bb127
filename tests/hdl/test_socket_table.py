"""SocketTable (hdl) against its reference (model): same responses, same memory slot by slot,
lookups at one per clock with a fixed latency, backpressure, concurrency with cuckoo walks."""

import ipaddress
import itertools
import random

import pytest
from amaranth.sim import Simulator

from flow.build import lint_component
from hdl.tables.socket_table import (LOOKUPS_IN_FLIGHT, Op, SocketTable, Status, EntryLayout,
                                     SlotLayout)
from model import socket_table as ref
from model.protocol import IpProto
from model.socket_table import SocketKey
from flow.tools import BUILD

TCP, UDP = IpProto.TCP, IpProto.UDP


def random_key(rng, udp_share=0.1):
    """A random TCP 4-tuple key, or (sometimes) a bound UDP key with the remote side zero."""
    if rng.random() < udp_share:
        return SocketKey(UDP, rng.getrandbits(32), rng.getrandbits(16), 0, 0)
    return SocketKey(TCP, rng.getrandbits(32), rng.getrandbits(16),
                     rng.getrandbits(32), rng.getrandbits(16))


def distinct_keys(rng, count, exclude=()):
    keys, seen = [], set(exclude)
    while len(keys) < count:
        key = random_key(rng)
        if key not in seen:
            seen.add(key)
            keys.append(key)
    return keys


def key_from_hash_input(protocol, data: int) -> SocketKey:
    """The key whose RSS hash input (SocketKey.hash_input, as a big-endian integer) is `data`."""
    raw = data.to_bytes(ref.HASH_INPUT_BYTES, "big")
    return SocketKey(protocol, int.from_bytes(raw[4:8], "big"), int.from_bytes(raw[10:12], "big"),
                     int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[8:10], "big"))


def same_hash_bits(table, key, count, rng, rows=(0, 1)):
    """`count` distinct keys other than `key`, of its protocol, with its tag and its rows in the
    sub-tables `rows` (so they share those buckets and their tag with it). The Toeplitz hash is
    linear in the input bits, so they are `key` XOR a random non-zero vector of the kernel of
    the hash bits kept (found by Gaussian elimination)."""
    bits = ref.HASH_INPUT_BYTES * 8
    mask = (1 << ref.TAG_BITS) - 1
    for t in rows:
        mask |= (table.rows - 1) << (ref.TAG_BITS + t * ref.ROW1_OFFSET)
    pivots, kernel = {}, []
    for j in range(bits):
        vector = 1 << (bits - 1 - j)
        image = ref.toeplitz_hash(table.toeplitz_key, vector.to_bytes(bits // 8, "big"),
                                  ref.HASH_BITS) & mask
        while image and image.bit_length() in pivots:
            pivot_image, pivot_vector = pivots[image.bit_length()]
            image, vector = image ^ pivot_image, vector ^ pivot_vector
        if image:
            pivots[image.bit_length()] = (image, vector)
        else:
            kernel.append(vector)
    base = int.from_bytes(key.hash_input(), "big")
    found = set()
    while len(found) < count:
        delta = 0
        for vector in kernel:
            if rng.random() < 0.5:
                delta ^= vector
        if delta:
            found.add(key_from_hash_input(key.protocol, base ^ delta))
    keys = sorted(found, key=lambda k: k.hash_input())
    rng.shuffle(keys)
    for other in keys:
        assert table.tag_of(other) == table.tag_of(key)
        assert all(table.rows_of(other)[t] == table.rows_of(key)[t] for t in rows)
    return keys


def keys_with_clashes(rng, table, count):
    """`count` distinct TCP keys, about half random and half in groups of 3-5 of one tag (each
    group sharing one bucket or both)."""
    keys, seen = [], set()
    while len(keys) < count:
        key = random_key(rng, udp_share=0)
        group = [key]
        if rng.random() < 0.5:
            group += same_hash_bits(table, key, rng.randint(2, 4), rng,
                                    rows=rng.choice([(0,), (1,), (0, 1)]))
        for k in group:
            if k not in seen and len(keys) < count:
                seen.add(k)
                keys.append(k)
    return keys


# ---------------------------------------------------------------------------------------------
# Testbench


class TB:
    """Owns the DUT and the reference, and drives the control and lookup ports.

    `cycle` counts clock edges; all drivers run in the same simulation and share it.
    """

    def __init__(self, entries, **kwargs):
        # a read of a block RAM row in the clock it is written returns garbage: no test may
        # pass on a design that uses one
        self.dut = SocketTable(entries, poison_collisions=True, **kwargs)
        self.model = ref.SocketTable(entries, **kwargs)
        self.sim = Simulator(self.dut)
        self.sim.add_clock(1e-8)
        self.log = []                 # (op, key, id, expected, actual, cycles) per command
        self.worst_cycles = {}        # status -> most cycles from command accepted to response
        self.first_full_load = None

    def run(self, *testbenches):
        for testbench in testbenches:
            self.sim.add_testbench(testbench)
        self.sim.run()

    async def command(self, ctx, op, key, id_=0):
        """Send one command, wait for its response; check it against the model's."""
        dut = self.dut
        ctx.set(dut.cmd.payload, {"op": op, "key": key.as_dict(), "id": id_})
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)
        ctx.set(dut.rsp.ready, 1)
        cycles = 0
        while True:
            _, _, valid, payload = await ctx.tick().sample(dut.rsp.valid, dut.rsp.payload)
            cycles += 1
            if valid:
                break
        ctx.set(dut.rsp.ready, 0)
        actual = (ref.Status(payload.status.value), payload.id)
        if op == Op.INSERT:
            count_before = self.model.count
            expected = self.model.insert(key, id_)
            if expected[0] == ref.Status.FULL and self.first_full_load is None:
                self.first_full_load = count_before / self.model.entries
        else:
            expected = self.model.delete(key)
        self.log.append((op, key, id_, expected, actual, cycles))
        assert actual == expected, \
            f"command {len(self.log)} {op.name} {key} id={id_}: rtl {actual}, model {expected}"
        # Clocks from the edge accepting the command to the edge taking the response.
        kicks = self.model.last_kicks if op == Op.INSERT else 0
        if actual[0] == ref.Status.FULL:
            assert cycles == 10 + 20 * self.model.max_kicks
        else:
            assert cycles == 10 + 10 * kicks
        assert ctx.get(dut.count) == self.model.count
        self.worst_cycles[actual[0]] = max(self.worst_cycles.get(actual[0], 0), cycles)
        return actual[0]

    async def check_memory(self, ctx):
        """Every slot of every way memory, with its key from the key memory, equals the
        model's, entry by entry; each slot's tag is its key's; no bucket holds a tag twice.
        (After the last command's key writes: they follow its slot by `key_read_delay` clocks.)"""
        await ctx.tick().repeat(self.dut.key_read_delay + 1)
        rtl = {}
        for t in range(ref.TABLES):
            for w in range(ref.WAYS):
                for row in range(self.model.rows):
                    slot = ctx.get(self.dut.way_data[t][w][row])
                    if slot.valid:
                        k = ctx.get(self.dut.key_data[t][row * ref.WAYS + w])
                        key = SocketKey(k.protocol, k.local_ip, k.local_port, k.remote_ip,
                                        k.remote_port)
                        assert slot.tag == self.model.tag_of(key), f"slot {t}/{row}/{w}: tag"
                        rtl[(t, row, w)] = (key, slot.id)
        self.model.check_tags()
        expected = self.model.slots()
        assert rtl == expected, "memory differs: " + ", ".join(
            f"{slot}: rtl {rtl.get(slot)} model {expected.get(slot)}"
            for slot in sorted(set(rtl) | set(expected)) if rtl.get(slot) != expected.get(slot))


async def lookups(ctx, dut, keys, results, idle=None, stalls=None, timing=None):
    """Stream `keys` into `lookup` (idle cycles from `idle`) and collect one result per key
    into `results` (ready held low by `stalls`). `timing`, if a list, gets (accepted edge,
    result edge) per key: both edges counted from the call."""
    idle = iter(idle) if idle is not None else itertools.repeat(False)
    stalls = iter(stalls) if stalls is not None else itertools.repeat(False)
    pending, accepted_at = list(keys), []
    edge = 0
    while len(results) < len(keys):
        offer = bool(pending) and not next(idle)
        ready = not next(stalls)
        ctx.set(dut.lookup.valid, offer)
        if offer:
            ctx.set(dut.lookup.payload, pending[0].as_dict())
        ctx.set(dut.result.ready, ready)
        _, _, in_ready, out_valid, out = await ctx.tick().sample(
            dut.lookup.ready, dut.result.valid, dut.result.payload)
        edge += 1
        if offer and in_ready:
            pending.pop(0)
            accepted_at.append(edge)
        if out_valid and ready:
            if timing is not None:
                timing.append((accepted_at[len(results)], edge))
            results.append((bool(out.hit), out.id))
    ctx.set(dut.lookup.valid, 0)
    ctx.set(dut.result.ready, 0)


def expected_lookups(model, keys):
    return [model.lookup(key) for key in keys]


# ---------------------------------------------------------------------------------------------
# Model


# "Verifying the RSS Hash Calculation" (Microsoft): destination addr:port, source addr:port,
# hash of the IPv4 addresses only, hash of IPv4 + TCP ports.
RSS_VECTORS = [
    ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e8fc2, 0x51ccc178),
    ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718262a, 0xc626b0ea),
    ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0a5de, 0x5c2b394a),
    ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xafc7327f),
    ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d1809c5, 0x10e828a2),
]


@pytest.mark.parametrize("dst, dst_port, src, src_port, ipv4_hash, tcp_hash", RSS_VECTORS)
def test_toeplitz_rss_verification_suite(dst, dst_port, src, src_port, ipv4_hash, tcp_hash):
    addrs = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    ports = src_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big")
    assert ref.toeplitz_hash(ref.RSS_DEFAULT_KEY, addrs) == ipv4_hash
    assert ref.toeplitz_hash(ref.RSS_DEFAULT_KEY, addrs + ports) == tcp_hash
    # The table hashes a received segment's key exactly as RSS does (local = destination).
    key = SocketKey(TCP, int(ipaddress.IPv4Address(dst)), dst_port,
                    int(ipaddress.IPv4Address(src)), src_port)
    assert ref.SocketTable(64).hash(key) == tcp_hash


def model_fill(entries, seed, max_kicks=ref.MAX_KICKS):
    """Insert random keys into a model table until the first FULL; the load reached then."""
    rng, table = random.Random(seed), ref.SocketTable(entries, max_kicks=max_kicks)
    for i in itertools.count():
        if table.insert(random_key(rng), i % entries)[0] == ref.Status.FULL:
            return table.count / entries


# Load factor before the first FULL over many random fills (model, random_key: 10 % UDP keys;
# max_kicks=128), measured with --campaign:
#   64 entries, 2000 fills: min 0.812, 1st percentile 0.906, median 0.984;
#   1024 entries, 100 fills: min 0.935, 1st percentile 0.945, median 0.966;
#   4096 entries, 10 fills: min 0.945, median 0.958.
# (Since the ways hold tags, an insert that meets its tag in a bucket changes the walk: 9 of
# the 100 fills of 1024 met one, and one of them, which reached 0.956 before, now 0.935.)
# A 64-entry table has only 8 buckets per sub-table, so a few fills meet a true overflow (more
# keys sharing a closed set of buckets than those hold; no eviction order fixes that). So the
# bound is on the 1st percentile for 64 entries and on the minimum from 1024 entries on.
LOAD_P1_BOUND = 0.90        # 64 entries: at least 99 % of fills reach this
LOAD_MIN_BOUND = {64: 0.80, 1024: 0.93, 4096: 0.94}


def check_loads(entries, loads):
    loads = sorted(loads)
    assert loads[0] >= LOAD_MIN_BOUND[entries]
    if entries == 64:
        assert loads[len(loads) // 100] >= LOAD_P1_BOUND
    assert loads[len(loads) // 2] >= 0.95


@pytest.mark.parametrize("entries, fills", [(64, 100), (1024, 3)])
def test_model_load_factor(entries, fills, record_property):
    loads = sorted(model_fill(entries, seed) for seed in range(fills))
    record_property(f"model_load_min_{entries}", loads[0])
    record_property(f"model_load_median_{entries}", loads[len(loads) // 2])
    print(f"model {entries} entries, {fills} fills: min {loads[0]:.3f} "
          f"median {loads[len(loads) // 2]:.3f}")
    check_loads(entries, loads)


@pytest.mark.campaign
@pytest.mark.parametrize("entries, fills", [(64, 2000), (1024, 100), (4096, 10)])
def test_model_load_factor_campaign(entries, fills):
    loads = sorted(model_fill(entries, seed) for seed in range(fills))
    print(f"model {entries} entries, {fills} fills: min {loads[0]:.3f} "
          f"p1 {loads[len(loads) // 100]:.3f} median {loads[len(loads) // 2]:.3f}")
    check_loads(entries, loads)


def test_model_full_changes_nothing():
    rng, table = random.Random(5), ref.SocketTable(16, max_kicks=8)
    keys = distinct_keys(rng, 64)
    for i, key in enumerate(keys):
        before = dict(table.slots()), table.count, table.lfsr.state
        status, _ = table.insert(key, i % 16)
        if status == ref.Status.FULL:
            assert (table.slots(), table.count) == before[:2]
            assert table.lookup(key) == (False, 0)
            break
    else:
        pytest.fail("a 16-entry table took 64 keys")
    for slot, (key, id_) in table.slots().items():
        assert table.lookup(key) == (True, id_)


# ---------------------------------------------------------------------------------------------
# Constructor and shared definitions


@pytest.mark.parametrize("kwargs, message", [
    ({"entries": 48}, "Entries must be a power of two from 16 to 524288, not 48"),
    ({"entries": 8}, "Entries must be a power of two from 16 to 524288, not 8"),
    ({"entries": "64"}, "Entries must be a power of two from 16 to 524288, not '64'"),
    ({"entries": 64, "id_width": 0}, "Id width must be an integer from 1 to 32, not 0"),
    ({"entries": 64, "max_kicks": 0}, "Max kicks must be an integer from 1 to 1024, not 0"),
    ({"entries": 64, "toeplitz_key": b"short"},
     "Toeplitz key must be at least 18 bytes, not b'short'"),
    ({"entries": 64, "toeplitz_key": bytes(17)},
     "Toeplitz key must be at least 18 bytes, not " + repr(bytes(17))),
])
def test_constructor_checks(kwargs, message):
    with pytest.raises(TypeError) as info:
        SocketTable(**kwargs)
    assert str(info.value) == message
    with pytest.raises(TypeError) as info:
        ref.SocketTable(**kwargs)
    assert str(info.value) == message


def test_enums_match_model():
    assert {s.name: s.value for s in Status} == {s.name: s.value for s in ref.Status}
    assert {o.name: o.value for o in Op} == {o.name: o.value for o in ref.Op}


def test_memory_bits():
    # 8 way memories of entries/8 rows, slot = valid + 16-bit tag + log2(entries) id bits; 2 key
    # memories of entries/2 rows of 104 bits. (The entries the control port moves: 115 bits.)
    assert EntryLayout(10).size == 115
    assert SlotLayout(10).size == 27
    assert SocketTable(1024).memory_bits == 1024 * (27 + 104)
    assert SocketTable(64).memory_bits == 64 * (23 + 104)


@pytest.mark.parametrize("entries", [64, 1024])
def test_lint(entries):
    lint_component(SocketTable(entries), f"socket_table_{entries}", BUILD / "test" / "socket_table")


# ---------------------------------------------------------------------------------------------
# RTL against the model


@pytest.mark.parametrize("entries, fulls, delete_every", [(64, 8, 3), (1024, 2, 8)])
def test_fill_until_full(entries, fulls, delete_every, record_property):
    """Insert random keys until the first FULL (and a few more FULLs), every response equal to
    the model's; then every slot equals the model's, every present key looks up its id and
    absent keys miss (back to back, one per clock); then deletes, lookups, re-inserts."""
    tb = TB(entries)
    rng = random.Random(entries)
    keys = distinct_keys(rng, entries + entries // 4)
    absent = distinct_keys(rng, 64, exclude=keys)
    present = {}

    async def testbench(ctx):
        seen_full = 0
        for i, key in enumerate(keys):
            status = await tb.command(ctx, Op.INSERT, key, i % entries)
            if status == ref.Status.OK:
                present[key] = i % entries
            seen_full += status == ref.Status.FULL
            if seen_full == fulls:
                break
        assert seen_full == fulls
        await tb.check_memory(ctx)
        # EXISTS for present keys, with their id; nothing changes.
        for key in list(present)[:8]:
            assert await tb.command(ctx, Op.INSERT, key, 0) == ref.Status.EXISTS
        # Every present key hits with its id, every absent key misses.
        probe = list(present) + absent
        rng.shuffle(probe)
        results = []
        await lookups(ctx, tb.dut, probe, results)
        assert results == [(True, present[k]) if k in present else (False, 0) for k in probe]
        # Delete some (and some absent keys), look up again, re-insert half of the deleted.
        gone = list(present)[::delete_every]
        for key in gone + absent[:4]:
            await tb.command(ctx, Op.DELETE, key)
        await tb.check_memory(ctx)
        sample = probe[:256] + gone
        results = []
        await lookups(ctx, tb.dut, sample, results)
        assert results == expected_lookups(tb.model, sample)
        assert not any(hit for hit, _ in results[256:])
        for key in gone[:len(gone) // 2] + absent[:8]:
            await tb.command(ctx, Op.INSERT, key, rng.randrange(entries))
        await tb.check_memory(ctx)
        results = []
        await lookups(ctx, tb.dut, sample, results)
        assert results == expected_lookups(tb.model, sample)

    tb.run(testbench)
    load = tb.first_full_load
    record_property("load_before_first_full", load)
    record_property("worst_insert_cycles_ok", tb.worst_cycles[ref.Status.OK])
    record_property("worst_insert_cycles_full", tb.worst_cycles[ref.Status.FULL])
    print(f"{entries} entries: load before the first FULL {load:.3f} "
          f"({round(load * entries)} entries); worst command-to-response cycles {tb.worst_cycles}")
    # This fill is one of the model's statistics above: at least the 1st percentile (64)
    # or the minimum (1024) seen over many fills.
    assert load >= (LOAD_P1_BOUND if entries == 64 else LOAD_MIN_BOUND[entries])
    # A failed walk: max_kicks evictions and as many undo steps (the worst case).
    assert tb.worst_cycles[ref.Status.FULL] == 10 + 20 * tb.dut.max_kicks
    assert tb.worst_cycles[ref.Status.OK] <= 10 + 10 * tb.dut.max_kicks


# 64 entries: ways in LUT RAM (7 clocks); 256: in block RAM (8)
@pytest.mark.parametrize("entries, latency", [(64, 7), (256, 8)])
def test_lookup_throughput_and_latency(entries, latency, record_property):
    """Back-to-back lookups: one accepted per clock, each result `lookup_latency` clocks later."""
    tb = TB(entries)
    assert tb.dut.lookup_latency == latency
    rng = random.Random(7)
    keys = distinct_keys(rng, 40)
    probe = keys + distinct_keys(rng, 24, exclude=keys)
    rng.shuffle(probe)
    results, timing = [], []

    async def testbench(ctx):
        for i, key in enumerate(keys):
            await tb.command(ctx, Op.INSERT, key, i)
        await lookups(ctx, tb.dut, probe, results, timing=timing)

    tb.run(testbench)
    assert results == expected_lookups(tb.model, probe)
    accepted = [a for a, _ in timing]
    assert accepted == list(range(accepted[0], accepted[0] + len(probe)))   # one per clock
    latencies = {r - a for a, r in timing}
    assert latencies == {latency}
    cycles = timing[-1][1] - timing[0][0] + 1
    throughput = len(probe) / (timing[-1][0] - timing[0][0] + 1)
    record_property(f"lookup_latency_{entries}", latency)
    record_property("lookups_per_clock", throughput)
    print(f"{len(probe)} lookups: {throughput:.2f} accepted per clock, latency {latencies}, "
          f"{cycles} clocks from first accept to last result")
    assert throughput == 1.0


@pytest.mark.parametrize("entries", [64, 256])
def test_lookups_stop_while_results_wait(entries):
    """With the sink not ready, exactly LOOKUPS_IN_FLIGHT keys are taken (ready drops once their
    results have no more places), none is lost; then every result comes, in order."""
    tb = TB(entries)
    rng = random.Random(13)
    keys = distinct_keys(rng, 12)
    probe = keys[:6] + distinct_keys(rng, 14, exclude=keys)

    async def testbench(ctx):
        dut = tb.dut
        for i, key in enumerate(keys[:6]):
            await tb.command(ctx, Op.INSERT, key, i + 1)
        taken = 0
        ctx.set(dut.result.ready, 0)
        for _ in range(3 * LOOKUPS_IN_FLIGHT):
            ctx.set(dut.lookup.valid, 1)
            ctx.set(dut.lookup.payload, probe[taken].as_dict())
            _, _, ready = await ctx.tick().sample(dut.lookup.ready)
            taken += ready
        ctx.set(dut.lookup.valid, 0)
        assert taken == LOOKUPS_IN_FLIGHT
        # the results held, then those of the rest (offered one a clock meanwhile)
        results, pending = [], probe[taken:]
        ctx.set(dut.result.ready, 1)
        for _ in range(100):
            ctx.set(dut.lookup.valid, bool(pending))
            if pending:
                ctx.set(dut.lookup.payload, pending[0].as_dict())
            _, _, ready, valid, out = await ctx.tick().sample(
                dut.lookup.ready, dut.result.valid, dut.result.payload)
            if pending and ready:
                pending.pop(0)
            if valid:
                results.append((bool(out.hit), out.id))
        ctx.set(dut.lookup.valid, 0)
        assert not ctx.get(dut.result.valid)
        assert results == expected_lookups(tb.model, probe)

    tb.run(testbench)


@pytest.mark.parametrize("idle, stalls", [
    (None, [0, 1, 1, 0, 1]),
    ([0, 0, 1], [1, 1, 1, 0]),
    (None, [0] * 7 + [1] * 5),
])
def test_lookup_backpressure(idle, stalls):
    """The result sink stalls: every result arrives once, in order, with the right answer."""
    tb = TB(64)
    rng = random.Random(9)
    keys = distinct_keys(rng, 48)
    probe = keys + distinct_keys(rng, 16, exclude=keys)
    probe = [rng.choice(probe) for _ in range(150)]     # repeats too
    results = []

    async def testbench(ctx):
        for i, key in enumerate(keys):
            await tb.command(ctx, Op.INSERT, key, i)
        await lookups(ctx, tb.dut, probe, results,
                      idle=itertools.cycle(idle) if idle else None, stalls=itertools.cycle(stalls))

    tb.run(testbench)
    assert results == expected_lookups(tb.model, probe)


@pytest.mark.parametrize("stall_pattern", [
    [0, 0, 0, 1],
    # long stalls: lookups stop being taken while walk steps change the table
    [1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0],
])
# 64 entries: LUT RAM (8 rows a way); 256: block RAM (32 rows), whose read of a row in the
# clock it is written the lookups must drop. With clashes: half the keys in groups of one tag
# (walks that evict by tag, keys of one tag moving while lookups read their slots and keys).
@pytest.mark.parametrize("entries, clashes", [(64, False), (256, False), (64, True)])
def test_lookups_concurrent_with_walks(entries, clashes, stall_pattern, record_property):
    """Lookups run every clock while the control port fills a table past its first FULL
    (cuckoo walks, failed walks undone) and deletes: a key whose insert response was seen
    always hits with its id (even while a walk holds it in the victim register), a key whose
    insert will answer FULL and a never-inserted key always miss (even while a failed walk has
    placed it in a slot). The result sink stalls as `stall_pattern` says (1: not ready)."""
    tb = TB(entries)
    rng = random.Random(11)
    if clashes:
        keys = keys_with_clashes(rng, tb.model, entries * 3 // 2)
        never = []
        for key in rng.sample(keys, 8):     # of the tags and buckets of keys inserted
            never += [k for k in same_hash_bits(tb.model, key, 4, rng) if k not in keys][:2]
    else:
        keys = distinct_keys(rng, entries * 3 // 2)
        never = distinct_keys(rng, 16, exclude=keys)
    fulls = 4         # stop after this many failed walks
    doomed = set()
    # The model predicts which inserts will answer FULL (same sequence, fresh model).
    probe_model = ref.SocketTable(entries)
    for i, key in enumerate(keys):
        if probe_model.insert(key, i % entries)[0] == ref.Status.FULL:
            doomed.add(key)
    assert doomed
    committed = {}      # key -> id, for keys whose OK response was seen (and not deleted)
    tb.model_ids = {}
    state = {"done": False, "in_flight": None}
    checked = {"committed": 0, "doomed": 0, "never": 0}

    async def control(ctx):
        seen_full = 0
        for i, key in enumerate(keys):
            state["in_flight"] = key
            status = await tb.command(ctx, Op.INSERT, key, i % entries)
            state["in_flight"] = None
            if status == ref.Status.OK:
                committed[key] = tb.model_ids[key] = i % entries
            seen_full += status == ref.Status.FULL
            if seen_full == fulls:
                break
        assert seen_full == fulls
        for key in list(committed)[::4]:
            del committed[key]           # no longer expected before the delete completes
            await tb.command(ctx, Op.DELETE, key)
        state["done"] = True

    async def lookup_driver(ctx):
        dut, expect, checked_count = tb.dut, [], 0
        stalls = itertools.cycle(stall_pattern)

        def check(out):
            nonlocal checked_count
            key, kind = expect[checked_count]
            checked_count += 1
            checked[kind] += 1
            got = (bool(out.hit), out.id)
            if kind == "committed" and key not in committed:
                # deleted after the lookup was issued: either answer is a consistent state
                assert got in ((True, tb.model_ids[key]), (False, 0))
            elif kind == "committed":
                assert got == (True, committed[key]), f"lookup {checked_count} of {key}"
            else:
                assert got == (False, 0), f"lookup {checked_count} of {kind} key {key}"

        key = None
        while not state["done"]:
            if key is None:       # a new key only once the last one was accepted
                if state["in_flight"] in doomed and rng.random() < 0.5:
                    key, kind = state["in_flight"], "doomed"
                elif committed and rng.random() < 0.6:
                    key, kind = rng.choice(list(committed)), "committed"
                else:
                    key, kind = rng.choice(never), "never"
            ctx.set(dut.lookup.valid, 1)
            ctx.set(dut.lookup.payload, key.as_dict())
            ready = not next(stalls)
            ctx.set(dut.result.ready, ready)
            _, _, in_ready, out_valid, out = await ctx.tick().sample(
                dut.lookup.ready, dut.result.valid, dut.result.payload)
            if in_ready:
                expect.append((key, kind))
                key = None
            if out_valid and ready:
                check(out)
        ctx.set(dut.lookup.valid, 0)
        ctx.set(dut.result.ready, 1)
        while checked_count < len(expect):
            _, _, out_valid, out = await ctx.tick().sample(dut.result.valid, dut.result.payload)
            if out_valid:
                check(out)

    tb.run(control, lookup_driver)
    print(f"concurrent lookups checked: {checked}")
    record_property("concurrent_lookups", sum(checked.values()))
    assert all(n > 100 for n in checked.values())


def test_model_keys_of_one_four_tuple():
    """Keys that differ only in their protocol share their buckets and tag: two fit (one per
    bucket), a third answers FULL after its walk and changes nothing."""
    table = ref.SocketTable(64, max_kicks=8)
    rng = random.Random(3)
    for key in distinct_keys(rng, 40):
        table.insert(key, 1)
    base = SocketKey(TCP, 0x0A000001, 80, 0x0A000002, 4000)
    variants = [SocketKey(p, base.local_ip, base.local_port, base.remote_ip, base.remote_port)
                for p in (TCP, UDP, 1)]
    assert {table.tag_of(k) for k in variants} == {table.tag_of(base)}
    assert table.insert(variants[0], 2) == (ref.Status.OK, 0)
    assert table.insert(variants[1], 3) == (ref.Status.OK, 0)
    before = table.slots(), table.count
    assert table.insert(variants[2], 4) == (ref.Status.FULL, 0)
    assert (table.slots(), table.count) == before
    assert [table.lookup(k) for k in variants] == [(True, 2), (True, 3), (False, 0)]
    table.check_tags()


@pytest.mark.parametrize("entries", [16, 64])
def test_keys_of_one_tag(entries):
    """Keys in groups of one tag (sharing one bucket or both; and keys that differ only in
    their protocol), among random keys: every response, the memories and every lookup equal
    the model's, until several FULLs; then deletes and re-inserts."""
    tb = TB(entries, max_kicks=16)
    rng = random.Random(entries + 1)
    keys = keys_with_clashes(rng, tb.model, entries * 2)
    base = keys[0]
    keys[1:1] = [SocketKey(p, base.local_ip, base.local_port, base.remote_ip, base.remote_port)
                 for p in (UDP, 1)]
    absent = []
    for key in rng.sample(keys, 6):
        absent += [k for k in same_hash_bits(tb.model, key, 3, rng) if k not in keys][:1]

    met = {"clashes": 0}

    async def testbench(ctx):
        fulls = 0
        for i, key in enumerate(keys):
            rows = tb.model.rows_of(key)
            met["clashes"] += any(tb.model._clash(t, rows[t], ref.Entry(key, 0)) is not None
                                  for t in range(ref.TABLES))
            fulls += await tb.command(ctx, Op.INSERT, key, i % entries) == ref.Status.FULL
            if fulls == 6:
                break
        assert fulls == 6
        await tb.check_memory(ctx)
        results = []
        probe = keys + absent
        await lookups(ctx, tb.dut, probe, results)
        assert results == expected_lookups(tb.model, probe)
        for key in keys[::3] + absent[:2]:
            await tb.command(ctx, Op.DELETE, key)
        await tb.check_memory(ctx)
        for key in keys[::6] + absent:
            await tb.command(ctx, Op.INSERT, key, rng.randrange(entries))
        await tb.check_memory(ctx)
        results = []
        await lookups(ctx, tb.dut, probe, results, stalls=itertools.cycle([0, 1, 1]))
        assert results == expected_lookups(tb.model, probe)

    tb.run(testbench)
    # inserts that met a key of their tag in a bucket of theirs (placed in the other, or
    # evicting it)
    print(f"{met['clashes']} inserts met their tag")
    assert met["clashes"] >= 8


def test_udp_keys_local_side_only():
    """A bound UDP socket is found by its local side (remote zero); TCP keys with the same
    local side are different sockets; the protocol is part of the key."""
    tb = TB(64)
    udp = SocketKey(UDP, 0x0A000001, 53, 0, 0)
    tcp = SocketKey(TCP, 0x0A000001, 53, 0x0A000002, 4000)
    tcp_zero = SocketKey(TCP, 0x0A000001, 53, 0, 0)
    results = []

    async def testbench(ctx):
        assert await tb.command(ctx, Op.INSERT, udp, 5) == ref.Status.OK
        assert await tb.command(ctx, Op.INSERT, tcp, 6) == ref.Status.OK
        assert await tb.command(ctx, Op.INSERT, udp, 9) == ref.Status.EXISTS
        await lookups(ctx, tb.dut, [udp, tcp, tcp_zero], results)
        assert await tb.command(ctx, Op.DELETE, tcp_zero) == ref.Status.NOT_FOUND
        assert await tb.command(ctx, Op.DELETE, udp) == ref.Status.OK

    tb.run(testbench)
    assert results == [(True, 5), (True, 6), (False, 0)]
    assert tb.log[2][4] == (ref.Status.EXISTS, 5)
    assert tb.log[-1][4] == (ref.Status.OK, 5)


@pytest.mark.campaign
@pytest.mark.parametrize("seed", range(20))
def test_random_commands_campaign(seed):
    """Long random mix of inserts (also of present keys), deletes (also of absent keys) on a
    small table, memory compared with the model after every command."""
    entries = 16
    tb = TB(entries, max_kicks=8)
    rng = random.Random(seed)
    pool = distinct_keys(rng, 40)

    async def testbench(ctx):
        for _ in range(1500):
            key = rng.choice(pool)
            if rng.random() < 0.6:
                await tb.command(ctx, Op.INSERT, key, rng.randrange(entries))
            else:
                await tb.command(ctx, Op.DELETE, key)
            await tb.check_memory(ctx)
        results = []
        await lookups(ctx, tb.dut, pool, results, stalls=itertools.cycle([0, 1]))
        assert results == expected_lookups(tb.model, pool)

    tb.run(testbench)
