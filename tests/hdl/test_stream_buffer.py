"""hdl.buffers.stream_buffer.StreamBuffer against model.bytestream.StreamBuffer, many connections at once.

A program is a list of operations run on one reference buffer per connection; the driver
issues them back to back (with idle cycles from `in_pauses`), monitors take the responses and
read data (holding ready low on `out_pauses`) and everything is compared in order.
"""

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from flow.build import lint_component
from hdl.buffers.stream_buffer import (POSITIONED_READ_DECISION_CLOCKS, QUERY_LATENCY,
                                       RANGE_SUM_CLOCKS,
                                       RANGE_SUM_FIRST_BEAT_CLOCKS, READ_DECISION_CLOCKS,
                                       READ_FIRST_BEAT_CLOCKS, TAIL_WRITE_FIRST_BEAT_CLOCKS,
                                       WRITE_DECISION_CLOCKS, StreamBuffer)
from model.bytestream import StreamBuffer as RefBuffer
from model.checksum import ones_complement_sum
from tb.amaranth_sim import frame_to_beats, recv_frame, send_frame

MOD = 2 ** 32
BUILD = Path(__file__).resolve().parents[2] / "build" / "test" / "stream_buffer"


# Operations. Offsets are the model's unbounded stream offsets; the hardware sees them mod 2**32.
def init(conn, offset):
    return ("init", conn, offset)


def write(conn, offset, data, reserve=0):
    """`reserve`: ring bytes withheld from the write's window (a receive buffer cap)."""
    return ("write", conn, offset, bytes(data), reserve)


def read(conn, length, peek=False, skip=0, discard=False):
    """Read from ``head + skip``; a `discard` read returns its count and no data."""
    return ("read", conn, length, peek, skip, discard)


def query(conn):
    return ("query", conn)


def positioned_read(conn, length, position):
    """A peek of `length` bytes from stream offset `position` (mod 2**32), all held."""
    return ("pread", conn, length, position)


@dataclass
class Expected:
    write_resps: list = field(default_factory=list)   # (advance, refused)
    read_resps: list = field(default_factory=list)    # count
    frames: list = field(default_factory=list)        # non-empty read data, not discarded
    queries: list = field(default_factory=list)       # (head, tail, free, ranges) per query op
    marks: list = field(default_factory=list)         # output counts due before each query
    # per read: where its bytes start if it is a peek of bytes all held (a positioned read
    # may stand for it), else None
    positions: list = field(default_factory=list)


def by_recency(buf, recent):
    """`buf`'s ranges in the order the hardware keeps them: the one holding the most recent
    out-of-order write's offset first (``model.tcp.Tcb._sack_blocks``' order), from
    `recent`, those offsets, the newest first."""
    order = []
    for offset in recent:
        held = next(((lo, hi) for lo, hi in buf.ranges if lo <= offset < hi), None)
        if held is not None and held not in order:
            order.append(held)
    assert sorted(order) == buf.ranges, (order, buf.ranges)
    return order


def ref_state(buf, recent):
    return (buf.head % MOD, buf.tail % MOD, buf.free,
            [(lo % MOD, hi % MOD) for lo, hi in by_recency(buf, recent)])


def run_model(program, connections, ring_bytes, max_ooo_ranges):
    """What the hardware must produce for `program`, and the final states (`ref_state`)."""
    bufs = [RefBuffer(ring_bytes, max_ooo_ranges) for _ in range(connections)]
    recent = [[] for _ in range(connections)]     # out-of-order write offsets, newest first
    exp = Expected()
    for op in program:
        kind, conn = op[0], op[1]
        if kind == "pread":
            # the peek it stands for, at its offset from the head
            _, _, length, position = op
            skip = (position - bufs[conn].head) % MOD
            assert 0 < length and skip + length <= bufs[conn].readable, \
                f"a positioned read of bytes not all held: {op}, {bufs[conn]}"
            kind, op = "read", read(conn, length, peek=True, skip=skip)
        if kind == "init":
            bufs[conn] = RefBuffer(ring_bytes, max_ooo_ranges, head=op[2], tail=op[2])
            recent[conn] = []
        elif kind == "write":
            # a reserve clips the write to head + ring - reserve, like a smaller window
            data = op[3][:max(0, bufs[conn].head + ring_bytes - op[4] - op[2])]
            advance = bufs[conn].write(op[2], data)
            if advance == 0 and op[2] > bufs[conn].tail:
                recent[conn].insert(0, op[2])
            exp.write_resps.append((0, 1) if advance < 0 else (advance, 0))
        elif kind == "read":
            _, _, length, peek, skip, discard = op
            exp.positions.append(bufs[conn].head + skip
                                 if peek and not discard and 0 < length
                                 and skip + length <= bufs[conn].readable else None)
            out = bufs[conn].read(length, peek, skip)
            exp.read_resps.append(len(out))
            if out and not discard:
                exp.frames.append(out)
        elif kind == "query":
            exp.queries.append(ref_state(bufs[conn], recent[conn]))
            exp.marks.append((len(exp.write_resps), len(exp.read_resps), len(exp.frames)))
    return exp, [ref_state(buf, offsets) for buf, offsets in zip(bufs, recent)]


def pause_iter(pattern):
    return itertools.cycle(pattern) if pattern else itertools.repeat(False)


async def send_cmd(ctx, port, payload, pauses):
    while next(pauses):
        ctx.set(port.valid, 0)
        await ctx.tick()
    ctx.set(port.valid, 1)
    ctx.set(port.payload, payload)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


def hw_state(dut, q):
    """The query's state (and the free bytes `ring_free` works out from it), its valid ranges
    in slot order (which must come first)."""
    valid = [r.valid for r in getattr(q, "ranges", ())]                 # none kept: no field
    assert valid == sorted(valid, reverse=True), f"a range slot free before a held one: {valid}"
    free = dut.ring_bytes - (q.tail - q.head) % MOD
    return (q.head, q.tail, free, [(r.lo, r.hi) for r in getattr(q, "ranges", ()) if r.valid])


def collector(port, out, pattern, convert):
    """A testbench taking every item of stream `port` (ready low on `pattern`) into `out`."""
    async def run(ctx):
        pauses = pause_iter(pattern)
        beats = []
        while True:
            ready = not next(pauses)
            ctx.set(port.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
            if ready and valid:
                convert(out, payload, beats)
    return run


def frame_beat_checker(lanes):
    """A `collector` conversion: beats into frames, checking how `keep` is packed."""
    def frame_beat(out, payload, beats):
        keep = payload.keep
        # every beat but the last is full, the last packed from lane 0
        assert keep == (1 << lanes) - 1 or payload.last, f"partial beat before last: {keep:b}"
        assert keep & (keep + 1) == 0 and keep, f"keep not packed from lane 0: {keep:b}"
        word = payload.data.to_bytes(lanes, "little")
        beats.extend(word[:keep.bit_length()])
        if payload.last:
            out.append(bytes(beats))
            beats.clear()
    return frame_beat


def simulate(program, data_width=64, connections=4, ring_bytes=64, max_ooo_ranges=1,
             in_pauses=(), out_pauses=(), timeout=2_000, read_queue=1, positioned=False):
    """Run `program` on the hardware and compare everything with the model. `positioned`:
    every peek of bytes all held goes as a positioned read of them (`positioned_reads`)."""
    exp, states = run_model(program, connections, ring_bytes, max_ooo_ranges)
    dut = StreamBuffer(data_width, connections, ring_bytes, max_ooo_ranges, read_queue,
                       poison_collisions=True, positioned_reads=positioned)
    positions = iter(exp.positions)
    got_write, got_read, got_frames, got_queries, done = [], [], [], [], []
    lanes = data_width // 8

    frame_beat = frame_beat_checker(lanes)

    async def driver(ctx):
        pauses = pause_iter(in_pauses)
        n_query = 0
        for op in program:
            kind, conn = op[0], op[1]
            if kind == "init":
                await send_cmd(ctx, dut.init, {"conn": conn, "offset": op[2] % MOD}, pauses)
            elif kind == "write":
                await send_cmd(ctx, dut.write_cmd, {"conn": conn, "offset": op[2] % MOD,
                                                    "length": len(op[3]), "reserve": op[4]}, pauses)
                if op[3]:
                    await send_frame(ctx, dut.write_data, op[3], data_width, pauses)
            elif kind == "read":
                position = next(positions)
                fields = ({"positioned": position is not None, "position": (position or 0) % MOD}
                          if positioned else {})
                await send_cmd(ctx, dut.read_cmd, {"conn": conn, "length": op[2], "peek": op[3],
                                                   "skip": op[4], "discard": op[5], **fields},
                               pauses)
            elif kind == "query":
                mark = exp.marks[n_query]
                n_query += 1
                for _ in range(timeout):
                    if all(a >= b for a, b in zip((len(got_write), len(got_read), len(got_frames)), mark)):
                        break
                    await ctx.tick()
                await ctx.tick().repeat(2)       # the state write-back of the last command
                ctx.set(dut.query_conn, conn)
                await ctx.tick().repeat(QUERY_LATENCY)
                got_queries.append(hw_state(dut, ctx.get(dut.query)))
        want = (len(exp.write_resps), len(exp.read_resps), len(exp.frames))
        for _ in range(timeout):
            if (len(got_write), len(got_read), len(got_frames)) == want:
                break
            await ctx.tick()
        await ctx.tick().repeat(8)                # nothing more may come out
        final = []
        for conn in range(connections):
            ctx.set(dut.query_conn, conn)
            await ctx.tick().repeat(QUERY_LATENCY)
            final.append(hw_state(dut, ctx.get(dut.query)))
        got_queries.append(final)
        got_queries.append(ctx.get(dut.refused_count))
        done.append(True)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(collector(dut.write_resp, got_write, out_pauses,
                                lambda out, p, _: out.append((p.advance, p.refused))),
                      background=True)
    sim.add_testbench(collector(dut.read_resp, got_read, out_pauses[1:] + out_pauses[:1],
                                lambda out, p, _: out.append(p.count)), background=True)
    sim.add_testbench(collector(dut.read_data, got_frames, out_pauses, frame_beat),
                      background=True)
    cycles = timeout + 50 * sum(len(op[3]) if op[0] == "write" else 1 for op in program)
    for chunk in range(0, cycles, 500):             # stop as soon as the driver is done
        if done:
            break
        sim.run_until((chunk + 500) * 1e-8)
    assert done, (f"stuck: {len(got_write)}/{len(exp.write_resps)} write responses, "
                  f"{len(got_read)}/{len(exp.read_resps)} read counts, "
                  f"{len(got_frames)}/{len(exp.frames)} frames after {cycles} cycles")

    refused = got_queries.pop()
    final = got_queries.pop()
    assert got_write == exp.write_resps, f"write responses: hardware {got_write} model {exp.write_resps}"
    assert got_read == exp.read_resps, f"read counts: hardware {got_read} model {exp.read_resps}"
    assert got_frames == exp.frames, f"read data: hardware {got_frames} model {exp.frames}"
    assert got_queries == exp.queries, f"queries: hardware {got_queries} model {exp.queries}"
    assert final == states
    assert refused == sum(r for _, r in exp.write_resps)
    return exp


WIDTHS = pytest.mark.parametrize("data_width", [8, 64])


# Constructor checks --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error", [
    ({"data_width": 32}, "Data width must be 8 or 64, not 32"),
    ({"connections": 3}, "Connection count must be a positive power of two, not 3"),
    ({"connections": 0}, "Connection count must be a positive power of two, not 0"),
    ({"ring_bytes": 48}, "Ring size must be a power of two from 8 to 2**30 bytes, not 48"),
    ({"ring_bytes": 4}, "Ring size must be a power of two from 8 to 2**30 bytes, not 4"),
    ({"max_ooo_ranges": -1}, "Out-of-order range count must be a non-negative integer, not -1"),
    ({"read_queue": 0}, "Read queue depth must be a positive integer, not 0"),
])
def test_constructor_checks(kwargs, error):
    args = {"data_width": 64, "connections": 4, "ring_bytes": 64, **kwargs}
    with pytest.raises(TypeError) as info:
        StreamBuffer(**args)
    assert str(info.value) == error


def test_memory_bits():
    dut = StreamBuffer(64, 256, 4096, max_ooo_ranges=1)
    assert dut.memory_bits() == (256 * 4096 * 8, 256 * (64 + 65))


# Directed programs ---------------------------------------------------------------------------

SEED = b"a" + bytes(random.Random(101).randrange(256) for _ in range(100))


@WIDTHS
def test_seed_program(data_width):
    """101 bytes arrive; one read takes exactly 'a'; a second takes exactly the other 100."""
    exp = simulate([write(1, 0, SEED), read(1, 1), query(1), read(1, 100), read(1, 100),
                    query(1)],
                   data_width=data_width, ring_bytes=128)
    assert exp.frames == [b"a", SEED[1:]]
    assert exp.read_resps == [1, 100, 0]


@WIDTHS
def test_wrap_ring_and_offset_space(data_width):
    rng = random.Random(1)
    start = MOD - 37
    program = [init(2, start), init(3, MOD - 1)]
    pos = start
    for n in (13, 29, 31, 7, 33, 40, 64, 1, 63):
        chunk = bytes(rng.randrange(256) for _ in range(n))
        program += [write(2, pos, chunk), read(2, 5, peek=True), read(2, max(n - 3, 0)), query(2),
                    read(2, 3)]
        pos += n
    program += [write(3, MOD - 1, b"xyz"), query(3), read(3, 3)]
    simulate(program, data_width=data_width, ring_bytes=64)


@WIDTHS
def test_out_of_order_fill(data_width):
    data = bytes(range(60))
    program = [write(0, 40, data[40:50]), write(0, 10, data[10:20]), query(0),
               read(0, 60),                                 # nothing in order yet
               write(0, 25, data[25:40]), query(0),         # touches [40, 50): merged
               write(0, 20, data[20:25]),                   # joins [10, 20) and [25, 50)
               write(0, 0, data[0:12]), query(0),           # in order, swallows everything
               read(0, 64), write(0, 50, data[50:60]), read(0, 64)]
    exp = simulate(program, data_width=data_width, max_ooo_ranges=2)
    assert exp.write_resps == [(0, 0), (0, 0), (0, 0), (0, 0), (50, 0), (10, 0)]
    assert exp.frames == [data[:50], data[50:]]


@WIDTHS
def test_refused_writes(data_width):
    program = [write(0, 20, b"B" * 10), write(0, 5, b"A" * 5), query(0),  # refused: 2 ranges
               write(0, 25, b"C" * 20), query(0),                          # merges, stored
               write(0, 0, b"D" * 20), read(0, 64),
               write(1, 3, b"x"), init(1, 100), write(1, 103, b"y"), write(1, 100, b"abc"),
               read(1, 10)]
    exp = simulate(program, data_width=data_width, max_ooo_ranges=1)
    assert exp.write_resps[1] == (0, 1)
    simulate(program, data_width=data_width, max_ooo_ranges=0)


@WIDTHS
def test_nothing_readable_beyond_tail(data_width):
    program = [write(0, 0, b"hello"), write(0, 6, b"world"), read(0, 2 ** 32 - 1, peek=True),
               read(0, 100), read(0, 1), write(0, 5, b" "), read(0, 100),
               write(0, 11, bytes(80)),                       # clipped to the 64-byte window
               query(0), read(0, 1000), read(0, 1000),
               write(0, 0, b"old data"), write(0, 11 + 64 + 64, b"far"),  # both dropped
               query(0), read(0, 1000)]
    exp = simulate(program, data_width=data_width, ring_bytes=64)
    assert exp.frames[:3] == [b"hello", b"hello", b" world"]


@WIDTHS
def test_reserve_clips_the_window(data_width):
    """A write's reserve withholds ring bytes from its window: in order, out of order, and
    a reserve larger than the free space (nothing stored); without one the whole ring."""
    data = bytes(range(100))
    program = [write(0, 0, data[:60], reserve=24), query(0),      # 40 of the 64 bytes
               read(0, 10), write(0, 40, data[40:70], reserve=24),  # up to head + 40 = 50
               write(0, 55, data[55:60], reserve=24), query(0),     # beyond it: dropped
               write(0, 50, data[50:58], reserve=60), query(0),     # reserve > free: none
               write(0, 50, data[50:80], reserve=0), query(0),      # the whole ring: to 74
               read(0, 100)]
    exp = simulate(program, data_width=data_width, ring_bytes=64)
    assert [a for a, _ in exp.write_resps] == [40, 10, 0, 0, 24]
    assert exp.frames == [data[:10], data[10:74]]


@WIDTHS
def test_back_to_back_with_pauses(data_width):
    rng = random.Random(7)
    program = [init(c, rng.randrange(MOD)) for c in range(4)]
    tails = {c: program[c][2] for c in range(4)}
    for _ in range(40):
        c = rng.randrange(4)
        n = rng.randrange(1, 40)
        program.append(write(c, tails[c], bytes(rng.randrange(256) for _ in range(n))))
        tails[c] += n
        program.append(read(c, rng.randrange(1, 40), peek=rng.random() < 0.2))
        if rng.random() < 0.5:                  # from an offset, maybe beyond the tail
            program.append(read(c, rng.randrange(1, 40), peek=rng.random() < 0.7,
                                skip=rng.randrange(50), discard=rng.random() < 0.3))
    for c in range(4):
        program.append(read(c, 1000))
    simulate(program, data_width=data_width, in_pauses=(0, 0, 1, 0, 1), out_pauses=(0, 1, 1, 0))


@WIDTHS
@pytest.mark.parametrize("positioned", [False, True])
def test_retransmit_peeks_and_release(data_width, positioned):
    """The send buffer's use: peeks at every offset, acknowledged bytes freed by discard reads.

    Checked against the stream itself as well as against the model: a peek at ``skip``
    returns ``stream[una + skip:nxt][:length]``; a release returns its count and no data.
    The ring (64 bytes) wraps six times and the 32-bit offsets wrap once. `positioned`: each
    peek of bytes all held goes as a positioned read (the engine's segments), the others as
    before.
    """
    rng = random.Random(5)
    ring = 64
    start = MOD - 50
    stream = bytes(rng.randrange(256) for _ in range(400))
    una = nxt = 0                        # acknowledged and written, relative to start
    program, counts, frames = [init(1, start)], [], []

    def expect(got):
        counts.append(len(got))
        if got:
            frames.append(got)

    while nxt < len(stream):
        n = min(rng.randrange(1, ring), ring - (nxt - una), len(stream) - nxt)
        program.append(write(1, start + nxt, stream[nxt:nxt + n]))
        nxt += n
        for skip in range(nxt - una + 2):                      # every offset, and beyond
            length = rng.choice([1, 7, 8, 9, ring])
            program.append(read(1, length, peek=True, skip=skip))
            expect(stream[una + skip:nxt][:length])
        acked = rng.randrange(nxt - una + 1)
        program += [read(1, acked, discard=True), query(1)]       # release acked bytes
        expect(b"")
        counts[-1] = acked
        una += acked
    # the largest length and skip: length + skip needs 33 bits
    program += [read(1, MOD - 1, peek=True, skip=2), read(1, MOD - 1, peek=True, skip=2 ** 16 - 1)]
    expect(stream[una + 2:nxt])
    expect(b"")
    # a peeking discard moves nothing; a read with skip consumes the skipped bytes too
    program += [read(1, ring, peek=True, discard=True), query(1),
                read(1, 5, skip=3), query(1)]
    counts.append(nxt - una)
    expect(stream[una + 3:nxt][:5])
    una = min(una + 3 + 5, nxt)
    # a skip beyond the tail returns nothing; without peek it moves head to tail
    program.append(write(1, start + nxt, b"tail"))
    nxt += 4
    beyond = nxt - una + 1
    program += [read(1, 10, peek=True, skip=beyond), query(1), read(1, 10, skip=beyond),
                query(1), read(1, 10)]
    counts += [0, 0, 0]
    exp = simulate(program, data_width=data_width, connections=2, ring_bytes=ring,
                   timeout=20_000, positioned=positioned)
    assert sum(p is not None for p in exp.positions) > 100 or not positioned
    assert (exp.read_resps, exp.frames) == (counts, frames)
    assert exp.queries[-2][:3] == ((start + una) % MOD, (start + nxt) % MOD, ring - (nxt - una))
    assert exp.queries[-1][:3] == ((start + nxt) % MOD, (start + nxt) % MOD, ring)


# Sustained rate ------------------------------------------------------------------------------

@pytest.mark.parametrize("data_width, range_sums, tail_writes, positioned",
                         [(8, False, False, False), (64, False, False, False),
                          (64, True, False, False), (64, True, True, False),
                          (64, True, True, True), (8, False, False, True)])
def test_rate(data_width, range_sums, tail_writes, positioned):
    """Beats per clock once started, and the cycles each command costs (with range sums, a
    read's first beat and its sum on an idle port; with tail writes, a write's first beat;
    with positioned reads, the peek goes as one, decided sooner)."""
    lanes = data_width // 8
    dut = StreamBuffer(data_width, 2, 1024, 0 if range_sums else 1, poison_collisions=True,
                       range_sums=range_sums, tail_writes=tail_writes,
                       positioned_reads=positioned)
    sums, frames = [], []
    n = 20 * lanes + 3                     # 21 beats from an unaligned offset
    payload = bytes(range(n))
    cycles = {}
    writer_error = []

    async def bench(ctx):
        for port in (dut.read_data, dut.read_resp, dut.write_resp,
                     *((dut.read_sum,) if range_sums else ())):
            ctx.set(port.ready, 1)
        ctx.set(dut.init.valid, 1)
        ctx.set(dut.init.payload, {"conn": 1, "offset": 5})
        await ctx.tick().until(dut.init.ready)
        ctx.set(dut.init.valid, 0)
        # two writes back to back, the first unaligned
        for k, (off, data) in enumerate([(5, payload[:n - 5]), (n, payload[n - 5:] + payload)]):
            ctx.set(dut.write_cmd.valid, 1)
            ctx.set(dut.write_cmd.payload, {"conn": 1, "offset": off, "length": len(data)})
            await ctx.tick().until(dut.write_cmd.ready)
            ctx.set(dut.write_cmd.valid, 0)
            ctx.set(dut.write_data.valid, 1)
            beats = 0
            count = 0
            while count < 1000:
                data_chunk = data[beats * lanes:(beats + 1) * lanes]
                ctx.set(dut.write_data.payload, {
                    "data": int.from_bytes(data_chunk, "little"),
                    "keep": (1 << len(data_chunk)) - 1,
                    "last": (beats + 1) * lanes >= len(data)})
                count += 1
                _, _, ready = await ctx.tick().sample(dut.write_data.ready)
                if ready:
                    beats += 1
                    if beats * lanes >= len(data):
                        break
            ctx.set(dut.write_data.valid, 0)
            cycles[f"write{k}"] = (beats, count)
        stream = payload[:n - 5] + payload[n - 5:] + payload      # from offset 5

        async def read_frame(length, peek=0, skip=0, position=None):
            """Issue a read (at `position`: a positioned one); (cycle of its first beat, of
            its last beat) and its bytes."""
            ctx.set(dut.read_cmd.valid, 1)
            ctx.set(dut.read_cmd.payload, {
                "conn": 1, "length": length, "peek": peek, "skip": skip, "discard": 0,
                **({"positioned": position is not None, "position": position or 0}
                   if positioned else {})})
            await ctx.tick().until(dut.read_cmd.ready)
            ctx.set(dut.read_cmd.valid, 0)
            got, t, first = bytearray(), 0, None
            watched = (dut.read_sum.valid, dut.read_sum.payload) if range_sums else ()
            while t < 1000:
                t += 1
                _, _, valid, p, *summed = await ctx.tick().sample(
                    dut.read_data.valid, dut.read_data.payload, *watched)
                if summed and summed[0]:
                    sums.append((t, summed[1]))
                if valid:
                    first = first or t
                    got += p.data.to_bytes(lanes, "little")[:p.keep.bit_length()]
                    if p.last:
                        break
            while watched and len(sums) < len(frames) + 1:
                t += 1
                _, _, sum_valid, sum_value = await ctx.tick().sample(*watched)
                if sum_valid:
                    sums.append((t, sum_value))
            frames.append(bytes(got))
            return (first, t), bytes(got)

        # a peek from an unaligned offset past the head
        skip, length = 2 * lanes + 6, 5 * lanes + 1
        cycles["peek"], got = await read_frame(length, peek=1, skip=skip,
                                               position=5 + skip if positioned else None)
        assert got == stream[skip:skip + length]
        # discard reads back to back: a peek of everything, a release of lanes + 1 bytes
        # (the head stays unaligned) and a peek beyond the tail; no data comes out
        ctx.set(dut.read_cmd.valid, 1)
        accepted, t = [], 0
        for cmd in ({"length": 10_000, "peek": 1, "skip": 0},
                    {"length": lanes + 1, "peek": 0, "skip": 0},
                    {"length": 10_000, "peek": 1, "skip": 2 * n}):
            ctx.set(dut.read_cmd.payload, {"conn": 1, "discard": 1, **cmd})
            while t < 100:
                t += 1
                _, _, ready, valid = await ctx.tick().sample(dut.read_cmd.ready,
                                                             dut.read_data.valid)
                assert not valid, "a discard read sent data"
                if ready:
                    accepted.append(t)
                    break
        ctx.set(dut.read_cmd.valid, 0)
        cycles["discard"] = accepted
        # a read of everything left, from offset 6 + lanes
        cycles["read"], got = await read_frame(10_000)
        assert got == stream[lanes + 1:]
        if tail_writes:
            writer_error.append(ctx.get(dut.writer_error))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # Writes: every cycle after the decision cycle takes a beat (with tail writes, from the
    # TAIL_WRITE_FIRST_BEAT_CLOCKS-th after the command).
    for k in (0, 1):
        beats, count = cycles[f"write{k}"]
        # the decision's clocks, then 1 beat/clock
        wait = TAIL_WRITE_FIRST_BEAT_CLOCKS - 1 if tail_writes else WRITE_DECISION_CLOCKS
        assert count == beats + wait, cycles
    assert writer_error == ([0] if tail_writes else []), "writes at the tail that fit, flagged"
    # Reads: READ_FIRST_BEAT_CLOCKS from command to first beat, then 1/clock, from any byte;
    # with range sums two clocks more, and the sum RANGE_SUM_CLOCKS after the command.
    to_first = RANGE_SUM_FIRST_BEAT_CLOCKS if range_sums else READ_FIRST_BEAT_CLOCKS
    sooner = READ_DECISION_CLOCKS - POSITIONED_READ_DECISION_CLOCKS if positioned else 0
    first, t = cycles["peek"]
    assert first == to_first - sooner and t == first + 6 - 1, cycles
    beats = -(-(2 * n - lanes - 1) // lanes)
    first, t = cycles["read"]
    assert first == to_first and t == first + beats - 1, cycles
    if range_sums:
        assert [clock for clock, _ in sums] == [RANGE_SUM_CLOCKS - sooner, RANGE_SUM_CLOCKS], sums
        assert [value for _, value in sums] == [ones_complement_sum(f) for f in frames], sums
    # Discard reads: the command and its decision's clocks each, however many bytes they cover.
    assert cycles["discard"] == [1 + k * (1 + READ_DECISION_CLOCKS) for k in range(3)], cycles


# Random programs against the model -----------------------------------------------------------

def programs(connections, ring_bytes, max_ops):
    conn = st.one_of(st.just(0), st.integers(0, connections - 1))   # half on connection 0
    # a read's skip: 0, within the readable bytes, next to the tail, or anywhere
    skips = st.one_of(st.just(0), st.tuples(st.just("quarters"), st.integers(0, 3)),
                      st.tuples(st.just("readable"), st.integers(-3, 2)),
                      st.integers(0, ring_bytes + 8), st.integers(0, 2 ** 16 - 1))
    reads = (st.integers(0, ring_bytes + 8), st.booleans(), skips,
             st.sampled_from([False, False, True]))                       # length .. discard
    edge = st.tuples(st.just("edge"), conn, st.integers(0, 3), st.integers(-2, 2),
                     st.integers(1, 8), st.integers(0, 2 ** 16))  # next to a held range's edge
    op = st.one_of(edge, edge,
        st.tuples(st.just("write"), conn, st.integers(-8, ring_bytes + 8),
                  st.integers(0, ring_bytes + 8), st.integers(0, 2 ** 16)),
        st.tuples(st.just("write"), conn, st.just(0), st.integers(1, ring_bytes // 2),
                  st.integers(0, 2 ** 16)),                                     # in order
        st.tuples(st.just("write"), conn, st.integers(1, ring_bytes), st.integers(1, 6),
                  st.integers(0, 2 ** 16)),                                     # small holes
        st.tuples(st.just("read"), conn, *reads),
        st.tuples(st.just("fill_read"), conn, st.integers(1, ring_bytes),
                  st.integers(0, 2 ** 16), *reads),          # in-order bytes, then a read
        st.tuples(st.just("query"), conn),
    )
    inits = st.lists(st.tuples(conn, st.one_of(st.integers(0, MOD - 1),
                                               st.integers(MOD - 3 * ring_bytes, MOD - 1))),
                     max_size=connections)
    return st.tuples(inits, st.lists(op, min_size=1, max_size=max_ops))


def concrete(drawn, connections, ring_bytes, max_ooo_ranges):
    """Resolve offsets drawn relative to the tail into absolute ones, through the model."""
    inits, ops = drawn
    bufs = [RefBuffer(ring_bytes, max_ooo_ranges) for _ in range(connections)]
    program = []
    for conn, offset in inits:
        bufs[conn] = RefBuffer(ring_bytes, max_ooo_ranges, head=offset, tail=offset)
        program.append(init(conn, offset))
    for op in ops:
        if op[0] in ("write", "edge"):
            if op[0] == "write":
                _, conn, rel, length, seed = op
                offset = bufs[conn].tail + rel
            else:                  # start or end just before, at or after a range's lo or hi
                _, conn, edge, delta, length, seed = op
                edges = [x for r in bufs[conn].ranges for x in r] or [bufs[conn].tail]
                offset = edges[edge % len(edges)] + delta - (length if edge % 2 == 0 else 0)
            rng = random.Random(seed)
            op = write(conn, offset, bytes(rng.randrange(256) for _ in range(length)))
            bufs[conn].write(op[2], op[3])
        elif op[0] in ("read", "fill_read"):
            if op[0] == "fill_read":
                _, conn, n, seed, *op = op
                rng = random.Random(seed)
                fill = write(conn, bufs[conn].tail, bytes(rng.randrange(256) for _ in range(n)))
                bufs[conn].write(fill[2], fill[3])
                program.append(fill)
                op = ("read", conn, *op)
            _, conn, length, peek, skip, discard = op
            if isinstance(skip, tuple):        # relative to the bytes readable now
                readable = bufs[conn].readable
                skip = (readable * skip[1] // 4 if skip[0] == "quarters"
                        else max(0, readable + skip[1]))
            op = read(conn, length, peek, skip, discard)
            bufs[conn].read(length, peek, skip)
        program.append(op)
    return program


PAUSES = st.lists(st.booleans(), max_size=5).map(lambda p: p + [False])   # never stuck
CONFIGS = [(8, 2, 3), (64, 1, 1), (64, 3, 4)]      # width, ranges, read queue


def check_random(config, drawn, in_pauses, out_pauses, connections=8, ring_bytes=32,
                 positioned=False):
    data_width, max_ooo_ranges, read_queue = config
    program = concrete(drawn, connections, ring_bytes, max_ooo_ranges)
    simulate(program, data_width=data_width, connections=connections, ring_bytes=ring_bytes,
             max_ooo_ranges=max_ooo_ranges, in_pauses=tuple(in_pauses),
             out_pauses=tuple(out_pauses), read_queue=read_queue, positioned=positioned)


@pytest.mark.parametrize("config", CONFIGS)
@settings(max_examples=60)
@given(drawn=programs(8, 32, 40), in_pauses=PAUSES, out_pauses=PAUSES)
def test_random_against_model(config, drawn, in_pauses, out_pauses):
    check_random(config, drawn, in_pauses, out_pauses)


@pytest.mark.parametrize("config", [(8, 1, 1), (64, 2, 3)])
@settings(max_examples=30)
@given(drawn=programs(8, 32, 40), in_pauses=PAUSES, out_pauses=PAUSES)
def test_random_positioned_against_model(config, drawn, in_pauses, out_pauses):
    """As ``test_random_against_model``, each peek of bytes all held going as a positioned
    read: its count, bytes and what follows are the model's (whose peek it stands for)."""
    check_random(config, drawn, in_pauses, out_pauses, positioned=True)


@WIDTHS
@pytest.mark.parametrize("max_ooo_ranges", [1, 2])
def test_writes_far_from_the_tail(data_width, max_ooo_ranges):
    """Offsets and ends from the tail at 2 ** count_bits (64 for a 32-byte ring: the first
    value above every count, where a compare of a count with only the low bits of an offset
    would go wrong) and at the sequence space's halves, before and after the tail, with a
    range held: stored, clipped or dropped as the model says."""
    edges = [-2 ** 31, -2 ** 31 + 5, -65, -64, -63, -1, 31, 32, 63, 64, 65, 2 ** 31 - 64,
             2 ** 31 - 1]
    ops = [("write", 0, 10, 4, 0)]                                # [10, 14) held
    for k, rel in enumerate(edges):
        lengths = {1, 5} | ({-rel - 1, -rel, -rel + 1, -rel + 3} if -80 < rel < 0 else set())
        ops += [("write", 0, rel, length, k) for length in sorted(lengths)] + [("query", 0)]
    for length in (3, 4, 5, 6):                                   # ends at 63, 64, 65, 66
        ops += [("write", 0, 60, length, length), ("write", 0, 20, length + 40, length)]
    ops += [("query", 0), ("write", 0, 0, 20, 1), ("read", 0, 64, False, 0, False), ("query", 0)]
    program = concrete(([], ops), 2, 32, max_ooo_ranges)
    exp = simulate(program, data_width=data_width, connections=2, ring_bytes=32,
                   max_ooo_ranges=max_ooo_ranges)
    assert any(advance > 0 for advance, _ in exp.write_resps[1:])   # some in order, clipped


@pytest.mark.campaign
@pytest.mark.parametrize("config", CONFIGS + [(8, 0, 1), (64, 0, 2), (8, 1, 1)])
@settings(max_examples=300)
@given(drawn=programs(8, 32, 120), in_pauses=PAUSES, out_pauses=PAUSES)
def test_random_campaign(config, drawn, in_pauses, out_pauses):
    check_random(config, drawn, in_pauses, out_pauses)


# Writes and reads at once -------------------------------------------------------------------

def simulate_concurrent(inits, writes, reads, data_width, connections, ring_bytes,
                        max_ooo_ranges=1, seed=0, timeout=20_000, read_queue=1,
                        range_sums=False, stall=True, tail_writes=False, positioned=False):
    """Writes (with their beats) from one thread and reads from another, all at once, with
    every valid and ready randomly stalled. The order in which the hardware accepted the
    commands is the order the model replays; responses, read bytes and the final states must
    be the model's, and with `range_sums` each read's sum RFC 1071's of its bytes. With
    `tail_writes` the writer keeps the contract as the engine does: each write of `writes`
    gives only its connection and length, and goes at the tail the state query shows,
    clipped to the free bytes (none free: left out), its bytes the connection's next; the
    ring must not flag it (`writer_error`). With `positioned` the reader reads as the engine
    does its segments: each peek of `reads` goes as a positioned read of bytes held (its skip
    taken modulo them, its length cut to them) once its own reads are decided: from the head
    the state query shows to the tail it shows, or with tail writes to the tail of the writes
    taken so far (decided before the read, their bytes perhaps still on their way into the
    RAM). The writer and the reader take turns at the state query, as the engine's steps do.
    Returns the clocks the run took."""
    dut = StreamBuffer(data_width, connections, ring_bytes, max_ooo_ranges, read_queue,
                       poison_collisions=True, range_sums=range_sums, tail_writes=tail_writes,
                       positioned_reads=positioned)
    rng = random.Random(seed)
    stalls = [tuple(stall and rng.random() < p for _ in range(rng.randrange(3, 9))) + (False,)
              for p in (0.2, 0.3, 0.3, 0.3, 0.3, 0.2, 0.3)]
    accepted, got_write, got_read, got_frames, final, done = [], [], [], [], [], []
    got_sums = []
    lanes = data_width // 8
    issued = [] if tail_writes else writes        # the writes the hardware was given
    streams = {conn: random.Random(seed + conn).randbytes(len(writes) * ring_bytes)
               for conn, _ in inits}

    query_taken = []                            # the state query is in use (a thread's turn)
    accepted_tail = {}                          # with tail writes: the tail once the writes
                                                # taken so far are decided

    async def state_of(ctx, conn, pending):
        """The connection's state once `pending` (a port) is low, the query port's turn
        taken and given back."""
        while query_taken:
            await ctx.tick()
        query_taken.append(True)
        ctx.set(dut.query_conn, conn)
        await ctx.tick()
        while ctx.get(pending):
            await ctx.tick()
        await ctx.tick().repeat(QUERY_LATENCY)
        q = ctx.get(dut.query)
        query_taken.clear()
        return q

    async def tail_write(ctx, conn, wanted):
        """As the engine: the connection's state once no command on it is undecided, then
        a write at its tail of at most its free bytes."""
        q = await state_of(ctx, conn, dut.query_pending)
        base = next(offset for c, offset in inits if c == conn)
        written = sum(len(d) for c, _, d in issued if c == conn)
        assert q.tail == (base + written) % MOD, "the tail moved by other than the writes"
        n = min(wanted, ring_bytes - (q.tail - q.head) % MOD)
        return base + written, streams[conn][written:written + n]

    async def writer(ctx):
        pauses = pause_iter(stalls[0])
        for conn, offset in inits:
            await send_cmd(ctx, dut.init, {"conn": conn, "offset": offset % MOD}, pauses)
        for conn, offset, data in writes:
            if tail_writes:
                offset, data = await tail_write(ctx, conn, len(data))
                if not data:
                    continue
                issued.append((conn, offset, data))
            await send_cmd(ctx, dut.write_cmd, {"conn": conn, "offset": offset % MOD,
                                                "length": len(data)}, pauses)
            if tail_writes:
                accepted_tail[conn] = (offset + len(data)) % MOD
            if data:
                await send_frame(ctx, dut.write_data, data, data_width, pause_iter(stalls[1]))
        done.append("writer")

    async def reader(ctx):
        pauses = pause_iter(stalls[2])
        await ctx.tick().repeat(rng.randrange(1, 9))
        for conn, length, peek, skip, discard in reads:
            fields = {"conn": conn, "length": length, "peek": peek, "skip": skip,
                      "discard": discard}
            if positioned and peek and not discard:
                # (the tail only grows, and only this thread moves the head); nothing held:
                # asked again for a while, so reads follow the writes closely
                for _ in range(30):
                    q = await state_of(ctx, conn, dut.query_read_pending)
                    held = (accepted_tail.get(conn, q.tail) - q.head) % MOD
                    if held:
                        break
                if held:
                    skip %= held
                    fields.update(positioned=1, position=(q.head + skip) % MOD,
                                  length=min(length, held - skip), skip=0)
            await send_cmd(ctx, dut.read_cmd, fields, pauses)
        done.append("reader")

    async def acceptances(ctx):
        """The command order: what fired on init, write_cmd and read_cmd, clock by clock."""
        ports = (dut.init, dut.write_cmd, dut.read_cmd)
        while True:
            sampled = await ctx.tick().sample(*(s for p in ports for s in (p.valid, p.ready, p.payload)))
            fired = [(kind, sampled[2 + 3 * k + 2]) for k, kind in enumerate(("init", "write", "read"))
                     if sampled[2 + 3 * k] and sampled[2 + 3 * k + 1]]
            assert len(fired) <= 1, f"two commands accepted in one clock: {fired}"
            accepted.extend(fired)

    frame_beat = frame_beat_checker(lanes)

    n_frames = sum(1 for r in reads if not r[4])      # an upper bound: empty reads send none
    clocks = []

    async def finish(ctx):
        t = 0
        while len(done) < 2 or len(got_write) < len(issued) or len(got_read) < len(reads):
            await ctx.tick()
            t += 1
            assert t < timeout, (f"stuck after {t} clocks: {done}, {len(got_write)}/{len(writes)} "
                                 f"write responses, {len(got_read)}/{len(reads)} read counts")
        while ctx.get(dut.busy) or ctx.get(dut.state_pending):
            await ctx.tick()
            t += 1
        clocks.append(t)
        if tail_writes:
            assert not ctx.get(dut.writer_error), "a write at the tail that fit was flagged"
        await ctx.tick().repeat(2)
        for conn in range(connections):
            ctx.set(dut.query_conn, conn)
            await ctx.tick().repeat(QUERY_LATENCY)
            final.append(hw_state(dut, ctx.get(dut.query)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(writer, background=True)
    sim.add_testbench(reader, background=True)
    sim.add_testbench(acceptances, background=True)
    sim.add_testbench(collector(dut.write_resp, got_write, stalls[3],
                                lambda out, p, _: out.append((p.advance, p.refused))),
                      background=True)
    sim.add_testbench(collector(dut.read_resp, got_read, stalls[4],
                                lambda out, p, _: out.append(p.count)), background=True)
    sim.add_testbench(collector(dut.read_data, got_frames, stalls[5], frame_beat),
                      background=True)
    if range_sums:
        sim.add_testbench(collector(dut.read_sum, got_sums, stalls[6],
                                    lambda out, p, _: out.append(p)), background=True)
    sim.add_testbench(finish)
    sim.run()

    # The model, fed the commands in the order the hardware took them.
    write_data = iter(issued)
    program = []
    for kind, p in accepted:
        if kind == "init":
            program.append(init(p.conn, p.offset))
        elif kind == "write":
            conn, offset, data = next(write_data)
            assert (p.conn, p.offset, p.length) == (conn, offset % MOD, len(data))
            program.append(write(conn, offset, data))
        elif positioned and p.positioned:
            program.append(positioned_read(p.conn, p.length, p.position))
        else:
            program.append(read(p.conn, p.length, bool(p.peek), p.skip, bool(p.discard)))
    assert len(program) == len(inits) + len(issued) + len(reads)
    if positioned:
        assert sum(op[0] == "pread" for op in program) >= len(reads) // 5, "few positioned reads"
    exp, states = run_model(program, connections, ring_bytes, max_ooo_ranges)
    assert got_write == exp.write_resps, f"write responses: hardware {got_write} model {exp.write_resps}"
    assert got_read == exp.read_resps, f"read counts: hardware {got_read} model {exp.read_resps}"
    assert got_frames == exp.frames, f"read data: hardware {got_frames} model {exp.frames}"
    assert len(got_frames) <= n_frames
    assert final == states, f"states: hardware {final} model {states}"
    if range_sums:
        # (ones' complement: 0 and 0xFFFF are the same sum)
        want = [ones_complement_sum(frame) for frame in got_frames]
        assert [s % 0xFFFF for s in got_sums] == [s % 0xFFFF for s in want], \
            f"read sums: hardware {[hex(s) for s in got_sums]} RFC 1071 {[hex(s) for s in want]}"
    return clocks[0]


def concurrent_program(seed, connections, ring_bytes, n=60):
    """Writes that carry each connection's one stream (in order, retransmitted from behind,
    or ahead of a hole) and reads that consume, peek from any offset, or release."""
    rng = random.Random(seed)
    base = [rng.randrange(MOD) for _ in range(connections)]
    streams = [bytes(rng.randrange(256) for _ in range(40 * ring_bytes)) for _ in range(connections)]
    sent = [0] * connections
    writes = []
    for _ in range(n):
        c = rng.randrange(connections)
        start = max(0, sent[c] - rng.choice([0, 0, 0, rng.randrange(ring_bytes)])
                    + rng.choice([0, 0, 0, rng.randrange(1, 9)]))
        length = rng.choice([rng.randrange(1, 9), rng.randrange(1, ring_bytes), ring_bytes // 2])
        writes.append((c, base[c] + start, streams[c][start:start + length]))
        sent[c] = max(sent[c], start + length)
    reads = []
    for _ in range(n):
        kind = rng.random()
        reads.append((rng.randrange(connections), rng.randrange(1, ring_bytes + 1),
                      kind < 0.3, rng.randrange(ring_bytes) if kind < 0.4 else 0,
                      0.3 <= kind < 0.4))
    return [(c, base[c]) for c in range(connections)], writes, reads


@WIDTHS
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("connections", [1, 2])
def test_concurrent_against_model(data_width, seed, connections):
    """One thread writes while another reads (one or two connections: every hazard is on
    the same connection), stalls everywhere; the acceptance order replayed on the model.
    Odd seeds let three decided reads wait behind the one streaming."""
    inits, writes, reads = concurrent_program(seed, connections, 64)
    simulate_concurrent(inits, writes, reads, data_width, connections, 64, seed=seed,
                        read_queue=1 + 2 * (seed % 2))


def check_positioned_concurrent(seed):
    data_width = (64, 8)[seed % 2]
    connections = 1 + seed % 3 // 2
    inits, writes, reads = concurrent_program(seed, connections, 64, n=100)
    # mostly peeks; the others consume (or release) a few bytes
    reads = [(c, length, 1, skip, 0) if k % 3 else (c, 1 + length % 8, 0, 0, discard)
             for k, (c, length, peek, skip, discard) in enumerate(reads)]
    simulate_concurrent(inits, writes, reads, data_width, connections, 64, max_ooo_ranges=0,
                        seed=seed, read_queue=1 + seed % 4, range_sums=data_width == 64,
                        stall=seed % 6 < 3, tail_writes=True, positioned=True)


@pytest.mark.parametrize("seed", range(16))
def test_positioned_reads_concurrent_against_model(seed):
    """Positioned reads (the engine's segments) while writes at the tail come (a send ring
    as the engine drives it): read up to the tail of the writes taken, so some wait for
    bytes decided and not yet in the RAM; stalls everywhere (seeds 0-2 mod 6) or none,
    8 and 64 bits, one or two connections, with range sums at 64 bits: everything the
    model's, every sum RFC 1071's. (A read that does not wait for its last byte fails
    seed 14 here, and 3 of seeds 0-59.)"""
    check_positioned_concurrent(seed)


@pytest.mark.campaign
@pytest.mark.parametrize("seed", range(16, 400))
def test_positioned_reads_concurrent_campaign(seed):
    check_positioned_concurrent(seed)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("connections", [1, 2])
def test_range_sums_against_rfc1071(seed, connections):
    """A send ring's read sums (64 bits, in-order writes only): the concurrent harness's
    writes and reads, stalls everywhere (seeds 0-2) or none, 64- and 32-byte rings (full
    rings, reads of the whole ring, reads in one word and across its end); every sum equals
    RFC 1071's of the read's bytes, which equal the model's."""
    ring = (64, 32)[seed % 2]
    inits, writes, reads = concurrent_program(seed, connections, ring, n=100)
    simulate_concurrent(inits, writes, reads, 64, connections, ring, max_ooo_ranges=0,
                        seed=seed, read_queue=1 + seed % 4, range_sums=True, stall=seed < 3)


@pytest.mark.parametrize("seed", range(8))
def test_tail_writes_against_model(seed):
    """A send ring whose writer keeps the tail-write contract (the engine's): the concurrent
    harness's reads (consume, peek from any offset, release) while writes at the tail, of at
    most the free bytes, take their beats before the decision whenever no waiting read's
    slots are in the way; stalls everywhere (seeds below 4) or none, 8 and 64 bits, one or
    two connections, 64- and 32-byte rings, read queues of 1 to 4, range sums at 64 bits.
    Everything equals the model, every sum RFC 1071's, and no write is flagged."""
    data_width = (64, 8)[seed % 2]
    ring = (64, 32)[seed // 2 % 2]
    connections = 1 + seed // 4
    inits, writes, reads = concurrent_program(seed, connections, ring, n=100)
    simulate_concurrent(inits, writes, reads, data_width, connections, ring, max_ooo_ranges=0,
                        seed=seed, read_queue=1 + seed % 4, range_sums=data_width == 64,
                        stall=seed < 4, tail_writes=True)


@pytest.mark.parametrize("broken", ["past the tail", "before the tail", "too long"])
def test_tail_writes_flag_a_broken_writer(broken):
    """A write that breaks the contract sets `writer_error` (its beats may already be in):
    one past the tail, one before it, one longer than the free bytes."""
    dut = StreamBuffer(64, 2, 64, 0, tail_writes=True)
    offset, length = {"past the tail": (110, 8), "before the tail": (90, 8),
                      "too long": (100, 70)}[broken]

    async def bench(ctx):
        ctx.set(dut.write_resp.ready, 1)
        for cmd, payload in ((dut.init, {"conn": 1, "offset": 100}),
                             (dut.write_cmd, {"conn": 1, "offset": 100, "length": 16})):
            await send_cmd(ctx, cmd, payload, pause_iter(()))
        await send_frame(ctx, dut.write_data, bytes(16), 64)
        await ctx.tick().repeat(10)
        assert not ctx.get(dut.writer_error), "a write at the tail that fit was flagged"
        await send_cmd(ctx, dut.write_cmd, {"conn": 1, "offset": offset + 16, "length": length},
                       pause_iter(()))
        await send_frame(ctx, dut.write_data, bytes(length), 64)
        await ctx.tick().repeat(10)
        assert ctx.get(dut.writer_error), f"a write {broken} was not flagged"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("held, busy, at", [(0, False, 1000), (5, False, 1000),
                                            (13, False, 1000), (24, True, 1000),
                                            (13, False, MOD - 8), (24, True, MOD - 3)])
def test_positioned_read_passes_a_write_being_decided(held, busy, at):
    """The engine's WRITE -> segment path on a send ring: a positioned read of a tail write's
    bytes (and of `held` bytes before them), offered the clock after the write's command, is
    taken before the write is decided, waits for the write's beats, and returns those bytes
    and their RFC 1071 sum. `busy`: the write before's beats are still to come, so the
    write's cannot start before its decision (the read waits for a write not yet decided,
    then for one decided and queued). `at`: the write's offset (just below 2**32: its bytes
    cross the offsets' wrap)."""
    dut = StreamBuffer(64, 2, 256, 0, poison_collisions=True, range_sums=True, tail_writes=True,
                       positioned_reads=True)
    old = bytes(random.Random(held).randrange(256) for _ in range(held))
    new = bytes(random.Random(100 + held).randrange(256) for _ in range(21))
    base = (at - held) % MOD
    clocks = {}
    got, sums = [], []

    async def bench(ctx):
        for port in (dut.write_resp, dut.read_resp, dut.read_sum):
            ctx.set(port.ready, 1)
        await send_cmd(ctx, dut.init, {"conn": 1, "offset": base}, pause_iter(()))
        if held:
            await send_cmd(ctx, dut.write_cmd, {"conn": 1, "offset": base, "length": held},
                           pause_iter(()))
            if not busy:
                await send_frame(ctx, dut.write_data, old, 64)
                while ctx.get(dut.busy):
                    await ctx.tick()
        await send_cmd(ctx, dut.write_cmd, {"conn": 1, "offset": at, "length": len(new)},
                       pause_iter(()))
        ctx.set(dut.read_cmd.payload, {"conn": 1, "length": held + len(new), "peek": 1,
                                       "skip": 0, "discard": 0, "positioned": 1,
                                       "position": base})
        ctx.set(dut.read_cmd.valid, 1)
        beats = (frame_to_beats(old, 64) if busy else []) + frame_to_beats(new, 64)
        for clock in range(1, 200):
            if beats:
                data, keep, last = beats[0]
                ctx.set(dut.write_data.payload, {"data": data, "keep": keep, "last": last})
            ctx.set(dut.write_data.valid, bool(beats))
            _, _, taken, beat_taken, decided, sum_valid, value = await ctx.tick().sample(
                dut.read_cmd.ready, dut.write_data.ready, dut.write_resp.valid,
                dut.read_sum.valid, dut.read_sum.payload)
            if decided:
                clocks.setdefault("write decided", clock)
            if taken and ctx.get(dut.read_cmd.valid):
                clocks["read taken"] = clock
                ctx.set(dut.read_cmd.valid, 0)
            if beats and beat_taken:
                beats.pop(0)
            if sum_valid:
                sums.append(value)
            if sums and got:
                break

    async def reader(ctx):
        got.append(await recv_frame(ctx, dut.read_data, 64))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(reader, background=True)
    sim.run()
    # taken in the clock it is first offered, before the write (taken a clock ahead) is decided
    assert clocks["read taken"] == 1 and clocks["write decided"] > 1, clocks
    assert got == [old + new]
    assert sums[0] % 0xFFFF == ones_complement_sum(old + new) % 0xFFFF


@pytest.mark.parametrize("start", [0, 3, 7])
def test_range_sums_of_a_full_ring(start):
    """Range sums at the edges: a full ring read whole (from mid-word its last byte is in its
    first word, and it is no one-word read), then one byte, a word's last byte, ranges
    ending at a word's end, and the ring refilled past its start."""
    rng = random.Random(start)
    ring = 64
    data = rng.randbytes(3 * ring)
    inits = [(0, start)]
    writes = [(0, start, data[:ring]), (0, start + ring, data[ring:ring + 20]),
              (0, start + ring + 20, data[ring + 20:2 * ring])]
    reads = [(0, ring, 1, 0, 0), (0, 1, 1, 0, 0), (0, 1, 1, 7 - start % 8, 0),
             (0, 8 - start % 8, 1, 0, 0), (0, 16, 1, 8 - start % 8, 0),
             (0, 20, 0, 0, 0),                       # frees 20 bytes: the second write goes in
             (0, ring, 1, 0, 0), (0, ring - 1, 1, 1, 0), (0, 9, 1, ring - 9, 0)]
    simulate_concurrent(inits, writes, reads, 64, 1, ring, max_ooo_ranges=0, seed=start,
                        range_sums=True)


@pytest.mark.parametrize("read_queue", [1, 4])
def test_range_sums_of_short_reads_back_to_back(read_queue):
    """Short peeks (1 to 9 bytes, in one word or two, from even and odd positions) one after
    another with nothing stalled: a read starts a few clocks after the one before it, while
    that one's sum is still being worked out."""
    rng = random.Random(read_queue)
    data = rng.randbytes(64)
    reads = [(0, rng.randrange(1, 10), 1, rng.randrange(0, 54), 0) for _ in range(40)]
    simulate_concurrent([(0, 5)], [(0, 5, data)], reads, 64, 1, 64, max_ooo_ranges=0,
                        read_queue=read_queue, range_sums=True, stall=False)


def test_no_read_uses_a_word_written_in_its_clock():
    """The campaign's seed 18 at 64 bits makes the read side fetch a word in the clock the RAM
    writes it (a block RAM's word is undefined then; the simulation inverts it): without the
    fetch's wait (`fetch_collides`) it fails, with it the stream equals the model."""
    inits, writes, reads = concurrent_program(18, 1, 32, n=150)
    simulate_concurrent(inits, writes, reads, 64, 1, 32, max_ooo_ranges=0, seed=18,
                        read_queue=3)


@pytest.mark.campaign
@WIDTHS
@pytest.mark.parametrize("seed", range(4, 200))
def test_concurrent_campaign(data_width, seed):
    inits, writes, reads = concurrent_program(seed, 1 + seed % 3 // 2, 32, n=150)
    simulate_concurrent(inits, writes, reads, data_width, 1 + seed % 3 // 2, 32,
                        max_ooo_ranges=seed % 3, seed=seed, read_queue=1 + seed % 4)


def overlap_clocks(data_width, same_conn, peek):
    """Clocks from a write's command and a read's command, offered together, to both
    finished: a write of 64 beats and a read of 64 beats."""
    lanes = data_width // 8
    n = 64 * lanes
    ring = 4 * n
    dut = StreamBuffer(data_width, 2, ring, poison_collisions=True)
    old = bytes(random.Random(3).randrange(256) for _ in range(n))
    new = bytes(random.Random(4).randrange(256) for _ in range(n))
    src = 0 if same_conn else 1
    result = {}

    async def bench(ctx):
        for port in (dut.read_data, dut.read_resp, dut.write_resp):
            ctx.set(port.ready, 1)
        for conn in (0, 1):
            await send_cmd(ctx, dut.init, {"conn": conn, "offset": 0}, pause_iter(()))
        await send_cmd(ctx, dut.write_cmd, {"conn": src, "offset": 0, "length": n}, pause_iter(()))
        await send_frame(ctx, dut.write_data, old, data_width)
        while ctx.get(dut.busy) or ctx.get(dut.state_pending):
            await ctx.tick()
        # both commands offered in one clock: the write is taken first, the read a clock later
        ctx.set(dut.write_cmd.valid, 1)
        ctx.set(dut.write_cmd.payload, {"conn": 0, "offset": n if same_conn else 0, "length": n})
        ctx.set(dut.read_cmd.payload, {"conn": src, "length": n, "peek": peek, "skip": 0,
                                       "discard": 0})
        ctx.set(dut.read_cmd.valid, 1)
        ctx.set(dut.write_data.valid, 1)
        beats_in, got, t = 0, bytearray(), 0
        while t < 1000 and (beats_in < 64 or len(got) < n):
            if beats_in < 64:
                ctx.set(dut.write_data.payload, {
                    "data": int.from_bytes(new[beats_in * lanes:(beats_in + 1) * lanes], "little"),
                    "keep": (1 << lanes) - 1, "last": beats_in == 63})
            t += 1
            _, _, wc, rc, wd, rv, rp = await ctx.tick().sample(
                dut.write_cmd.ready, dut.read_cmd.ready, dut.write_data.ready,
                dut.read_data.valid, dut.read_data.payload)
            if wc:
                ctx.set(dut.write_cmd.valid, 0)
            if rc and not ctx.get(dut.write_cmd.valid):
                ctx.set(dut.read_cmd.valid, 0)
            if wd and beats_in < 64:
                beats_in += 1
                if beats_in == 64:
                    ctx.set(dut.write_data.valid, 0)
            if rv:
                got += rp.data.to_bytes(lanes, "little")[:rp.keep.bit_length()]
        result["clocks"] = t
        result["got"] = bytes(got)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert result["got"] == old
    return result["clocks"]


@WIDTHS
@pytest.mark.parametrize("same_conn, peek", [(False, 0), (True, 1), (True, 0)])
def test_write_and_read_overlap(data_width, same_conn, peek):
    """A write of 64 beats and a read of 64 other beats, offered in the same clock, finish in
    about 64 clocks, not 128: on two connections, and on one (a send ring's segment read
    while the host writes behind it; a receive ring's host read while a segment lands)."""
    clocks = overlap_clocks(data_width, same_conn, peek)
    # the read is taken a clock after the write (on one connection, the clock after the
    # write's decision), then READ_FIRST_BEAT_CLOCKS to its first beat, 64 beats
    taken = WRITE_DECISION_CLOCKS + 1 if same_conn else 1
    assert clocks == taken + READ_FIRST_BEAT_CLOCKS + 64, clocks


@WIDTHS
@pytest.mark.parametrize("read_queue", [1, 3])
def test_reads_decided_while_data_port_stalls(data_width, read_queue):
    """With nobody taking `read_data`, one read streams (stalled) and `read_queue` decided
    reads wait behind it: that many more commands are taken and answered at once, the next
    waits for the data port (the host's READ does not wait for the beats before it); then the
    beats come out in command order."""
    lanes = data_width // 8
    chunk = 4 * lanes
    reads = read_queue + 2
    dut = StreamBuffer(data_width, 1, 64 * lanes, read_queue=read_queue, poison_collisions=True)
    data = bytes(random.Random(5).randrange(256) for _ in range(reads * chunk))
    result = {}

    async def bench(ctx):
        ctx.set(dut.read_resp.ready, 1)
        ctx.set(dut.write_resp.ready, 1)
        await send_cmd(ctx, dut.init, {"conn": 0, "offset": 0}, pause_iter(()))
        await send_cmd(ctx, dut.write_cmd, {"conn": 0, "offset": 0, "length": len(data)},
                       pause_iter(()))
        await send_frame(ctx, dut.write_data, data, data_width)
        while ctx.get(dut.busy) or ctx.get(dut.state_pending):
            await ctx.tick()
        answered = 0
        for _ in range(reads):
            ctx.set(dut.read_cmd.valid, 1)
            ctx.set(dut.read_cmd.payload, {"conn": 0, "length": chunk})
            for _ in range(20):
                _, _, ready, resp = await ctx.tick().sample(dut.read_cmd.ready, dut.read_resp.valid)
                answered += resp
                if ready:
                    break
            else:
                break
            ctx.set(dut.read_cmd.valid, 0)
            for _ in range(3):
                _, _, resp = await ctx.tick().sample(dut.read_resp.valid)
                answered += resp
        ctx.set(dut.read_cmd.valid, 0)
        result["answered"] = answered
        ctx.set(dut.read_data.ready, 1)
        got = bytearray()
        while len(got) < answered * chunk:
            _, _, valid, payload = await ctx.tick().sample(dut.read_data.valid, dut.read_data.payload)
            if valid:
                got += payload.data.to_bytes(lanes, "little")[:payload.keep.bit_length()]
        result["got"] = bytes(got)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # one streaming, `read_queue` waiting; the next is not taken while the data port stalls
    assert result["answered"] == 1 + read_queue
    assert result["got"] == data[:(1 + read_queue) * chunk]


@WIDTHS
def test_read_answered_before_its_bytes_land(data_width):
    """A read of bytes whose write is decided but whose beats have not come is decided and
    answered at once (`state_pending` low: the engine goes on); its beats follow the write's
    and carry the written bytes."""
    lanes = data_width // 8
    n = 8 * lanes
    dut = StreamBuffer(data_width, 2, 64 * lanes, read_queue=2, poison_collisions=True)
    data = bytes(random.Random(6).randrange(256) for _ in range(n))
    result, frames = {}, []

    async def bench(ctx):
        for port in (dut.read_resp, dut.write_resp):
            ctx.set(port.ready, 1)
        await send_cmd(ctx, dut.init, {"conn": 1, "offset": 0}, pause_iter(()))
        await send_cmd(ctx, dut.write_cmd, {"conn": 1, "offset": 0, "length": n}, pause_iter(()))
        # one beat in, the rest held back
        await send_frame(ctx, dut.write_data, data[:lanes], data_width)
        await send_cmd(ctx, dut.read_cmd, {"conn": 1, "length": n}, pause_iter(()))
        clocks = 0
        while True:
            _, _, answered = await ctx.tick().sample(dut.read_resp.valid)
            clocks += 1
            if answered:
                result["count"] = ctx.get(dut.read_resp.payload.count)
                break
            assert clocks < 10, "the read waited at its decision for the write's beats"
        await ctx.tick().repeat(2)
        result["pending"] = ctx.get(dut.state_pending)
        result["early"] = list(frames)
        await send_frame(ctx, dut.write_data, data[lanes:], data_width)
        await ctx.tick().until(~dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(collector(dut.read_data, frames, (), frame_beat_checker(lanes)),
                      background=True)
    sim.run()
    assert result["count"] == n
    assert not result["pending"]
    assert result["early"] == []                    # no beat before its bytes were written
    assert frames == [data]


@WIDTHS
@pytest.mark.parametrize("where", ["streaming", "queued"])
@pytest.mark.parametrize("extra", [0, 1])
def test_write_waits_exactly_for_the_slots_of_a_waiting_read(data_width, where, extra):
    """A consuming read of the ring's second half, [R/2, R), waits for the data port (its
    beats stalled, or queued behind another connection's stalled read), and a write of
    R/2 + `extra` bytes at R follows. With R/2 bytes it fills the slots of [0, R/2) only,
    which that read released, and is decided at once; with one byte more it would fill the
    slot of the read's first byte, so it waits until the read's beats are out. Either way the
    read returns the old bytes and the ring then holds the new ones."""
    lanes = data_width // 8
    ring = 64 * lanes
    half = ring // 2
    dut = StreamBuffer(data_width, 2, ring, read_queue=2, poison_collisions=True)
    rng = random.Random(8)
    old = bytes(rng.randrange(256) for _ in range(ring))
    other = bytes(rng.randrange(256) for _ in range(2 * lanes))
    new = bytes(rng.randrange(256) for _ in range(half + extra))
    frames, result = [], {}

    async def bench(ctx):
        ctx.set(dut.write_resp.ready, 1)
        ctx.set(dut.read_resp.ready, 1)
        ctx.set(dut.read_data.ready, 1)
        for conn in (0, 1):
            await send_cmd(ctx, dut.init, {"conn": conn, "offset": 0}, pause_iter(()))
        for conn, data in ((0, old), (1, other)):
            await send_cmd(ctx, dut.write_cmd, {"conn": conn, "offset": 0, "length": len(data)},
                           pause_iter(()))
            await send_frame(ctx, dut.write_data, data, data_width)
        await send_cmd(ctx, dut.read_cmd, {"conn": 0, "length": half}, pause_iter(()))
        assert await recv_frame(ctx, dut.read_data, data_width) == old[:half]
        await ctx.tick().until(~dut.busy & ~dut.state_pending)
        ctx.set(dut.read_data.ready, 0)
        if where == "queued":
            await send_cmd(ctx, dut.read_cmd, {"conn": 1, "length": len(other)}, pause_iter(()))
        await send_cmd(ctx, dut.read_cmd, {"conn": 0, "length": half}, pause_iter(()))
        await send_cmd(ctx, dut.write_cmd, {"conn": 0, "offset": ring, "length": len(new)},
                       pause_iter(()))
        for _ in range(40):                         # the read's beats held back meanwhile
            _, _, answered = await ctx.tick().sample(dut.write_resp.valid)
            if answered:
                break
        result["decided_while_read_waits"] = bool(answered)
        if where == "queued":
            frames.append(await recv_frame(ctx, dut.read_data, data_width))
        frames.append(await recv_frame(ctx, dut.read_data, data_width))
        await ctx.tick().until(~dut.busy & ~dut.state_pending)
        await send_cmd(ctx, dut.read_cmd, {"conn": 0, "length": ring}, pause_iter(()))
        frames.append(await recv_frame(ctx, dut.read_data, data_width))

    async def beats(ctx):
        # the write's beats, offered from its command on (taken once it is decided)
        await ctx.tick().until(dut.write_cmd.valid & dut.write_cmd.ready
                               & (dut.write_cmd.payload.offset == ring))
        await send_frame(ctx, dut.write_data, new, data_width)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(beats, background=True)
    sim.run()
    assert result["decided_while_read_waits"] == (extra == 0)
    assert frames == ([other] if where == "queued" else []) + [old[half:], new]


@WIDTHS
def test_query_never_shows_a_word_being_written(data_width):
    """A connection queried every clock while it is installed and a write to it is decided
    and its state written (the RAM's word is undefined in that clock; the simulation inverts
    it): each query shows the tail before or after, and after the write at the end."""
    lanes = data_width // 8
    n = 3 * lanes
    dut = StreamBuffer(data_width, 4, 64 * lanes, read_queue=2, poison_collisions=True)
    tails = []

    async def bench(ctx):
        for port in (dut.read_resp, dut.write_resp):
            ctx.set(port.ready, 1)
        await send_cmd(ctx, dut.init, {"conn": 1, "offset": 100}, pause_iter(()))
        await send_cmd(ctx, dut.write_cmd, {"conn": 1, "offset": 100, "length": n},
                       pause_iter(()))
        await send_frame(ctx, dut.write_data, bytes(n), data_width)

    async def watch(ctx):
        ctx.set(dut.query_conn, 1)
        for _ in range(30):
            await ctx.tick()
            tails.append(ctx.get(dut.query.tail))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(watch)
    sim.run()
    assert set(tails) <= {0, 100, 100 + n} and tails[-1] == 100 + n, tails


@WIDTHS
def test_query_pending_is_the_queried_connections_own(data_width):
    """`query_pending` is `state_pending` for a command on the connection queried, and low for
    any other connection, and `query_read_pending` is its part that is a read's: a write, then
    a consuming read, on connection 1 while 0, 1 and 3 are queried in turn each clock until
    the command is decided."""
    lanes = data_width // 8
    n = 4 * lanes
    dut = StreamBuffer(data_width, 4, 64 * lanes, read_queue=2, poison_collisions=True)
    seen = {"pending": 0}

    async def watch(ctx, reading):
        for _ in range(12):
            pending = ctx.get(dut.state_pending)
            seen["pending"] += pending
            for conn in (0, 1, 3):
                ctx.set(dut.query_conn, conn)
                assert ctx.get(dut.query_pending) == (pending and conn == 1), conn
                assert ctx.get(dut.query_read_pending) == (pending and conn == 1 and reading)
            await ctx.tick()

    async def bench(ctx):
        for port in (dut.read_resp, dut.write_resp):
            ctx.set(port.ready, 1)
        for conn in (0, 1):
            await send_cmd(ctx, dut.init, {"conn": conn, "offset": 0}, pause_iter(()))
        await send_cmd(ctx, dut.write_cmd, {"conn": 1, "offset": 0, "length": n}, pause_iter(()))
        await watch(ctx, reading=False)
        await send_frame(ctx, dut.write_data, bytes(range(n)), data_width)
        await ctx.tick().until(~dut.busy)
        await send_cmd(ctx, dut.read_cmd, {"conn": 1, "length": lanes}, pause_iter(()))
        await watch(ctx, reading=True)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.add_testbench(collector(dut.read_data, [], (), frame_beat_checker(lanes)),
                      background=True)
    sim.run()
    assert seen["pending"] >= 2                     # both commands were seen pending


# Lint ----------------------------------------------------------------------------------------

@WIDTHS
def test_lint(data_width):
    lint_component(StreamBuffer(data_width, 8, 256, max_ooo_ranges=2),
                   f"stream_buffer_{data_width}", BUILD)
