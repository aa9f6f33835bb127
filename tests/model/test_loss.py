"""A lossy wire (issue test 5): 1 MiB each way byte-exact, and the RTO backing off as specified."""

import random

from conftest import B_IP, PORT, blocking, errno_of, make_pair

from model.errors import SocketError
from model.packet import parse_frame
from model.policy import DEFAULT_POLICY as P
from model.scenario import write_pcap

MIB = 1 << 20


def transfer_both_ways(pair, n: int, max_ticks: int = 10**6):
    """Nonblocking writers and readers on both sides, pumped at every step of the wire."""
    rng = random.Random(5)
    data = {"a": rng.randbytes(n), "b": rng.randbytes(n)}
    sent = {"a": 0, "b": 0}
    got = {"a": bytearray(), "b": bytearray()}
    ends = {"a": (pair.pa, pair.ca), "b": (pair.pb, pair.sb)}
    for proc, fd in ends.values():
        proc.fcntl_nonblock(fd, True)

    def pump():
        for side, (proc, fd) in ends.items():
            while sent[side] < n:
                try:
                    sent[side] += proc.send(fd, data[side][sent[side]:sent[side] + 65536])
                except SocketError as err:
                    assert err.errno == "EAGAIN"
                    break
            while True:
                try:
                    chunk = proc.recv(fd, 65536)
                except SocketError as err:
                    assert err.errno == "EAGAIN"
                    break
                assert chunk, "unexpected EOF"
                got[side] += chunk
        return len(got["a"]) == n and len(got["b"]) == n

    done = pair.wire.run(pump, max_ticks=max_ticks)
    return done, data, got


def test_one_mib_each_way_over_a_lossy_wire():
    pair = make_pair(seed=1, drop=0.1, duplicate=0.1, reorder=0.1, corrupt=0.01)
    start = pair.wire.now
    done, data, got = transfer_both_ways(pair, MIB)
    try:
        assert done
        assert bytes(got["b"]) == data["a"]
        assert bytes(got["a"]) == data["b"]
    except AssertionError:
        write_pcap("build/model/lossy_transfer.pcapng", pair.wire.log, {"a": "a", "b": "b"})
        raise
    ticks = pair.wire.now - start
    fates = {}
    for event in pair.wire.log:
        fates[event.fate] = fates.get(event.fate, 0) + 1
    assert fates["drop"] > 1000 and fates["dup"] > 1000 and fates["reorder"] > 1000
    for side, tcb in (("a", pair.tcb_a()), ("b", pair.tcb_b())):
        kinds = [kind for _, kind, _ in tcb.events]
        assert kinds.count("rto") > 10 and kinds.count("fast") > 10
        # every retransmission the timer ordered is on the wire at that very tick
        on_wire = {(e.time, parse_frame(e.frame).tcp.seq) for e in pair.wire.log if e.side == side}
        for time, kind, seq in tcb.events:
            if kind in ("rto", "fast"):
                assert (time, seq) in on_wire
        # consecutive expiries for the same SND.UNA are spaced as the policy says
        rtos = [(time, seq) for time, kind, seq in tcb.events if kind == "rto"]
        run = 0
        for (t0, s0), (t1, s1) in zip(rtos, rtos[1:]):
            run = run + 1 if s1 == s0 else 0
            if s1 == s0:
                assert t1 - t0 == P.rto_after(run), (t0, t1, run)
    for side, tcb in (("a", pair.tcb_a()), ("b", pair.tcb_b())):
        counts = {kind: [k for _, k, _ in tcb.events].count(kind) for kind in ("rto", "fast", "retx")}
        print(f"1 MiB each way, sender {side}: {ticks} ticks, {counts['rto']} RTO expiries, "
              f"{counts['fast']} fast retransmits, {counts['retx']} segments resent by go-back-N")
    print(f"wire: {fates}")


def test_rto_backoff_timing_and_etimedout():
    """ACKs stop coming: the segment is resent at RTO, 2 RTO, 4 RTO ... capped, then ETIMEDOUT."""
    pair = make_pair()
    pair.wire.block = lambda side, frame: side == "b"         # b's ACKs are lost
    t0 = pair.wire.now
    pair.pa.send(pair.ca, b"x" * 1000)
    seq = pair.tcb_a().snd_una
    pair.settle(200_000)
    times = [e.time - t0 for e in pair.wire.log
             if e.side == "a" and parse_frame(e.frame).tcp.seq == seq and parse_frame(e.frame).tcp.payload]
    expected = [0]
    for k in range(P.max_retries):
        expected.append(expected[-1] + P.rto_after(k))
    assert times == expected
    assert expected[1:4] == [200, 600, 1400]                  # x2 each time ...
    assert P.rto_after(P.max_retries) == P.rto_max            # ... up to the cap
    death = expected[-1] + P.rto_after(P.max_retries)
    assert pair.tcb_a().state.value == "CLOSED"
    assert errno_of(pair.pa.recv, pair.ca, 10) == "ETIMEDOUT"
    assert pair.pa.recv(pair.ca, 10) == b""
    assert death == sum(P.rto_after(k) for k in range(P.max_retries + 1))


def test_syn_backoff_then_etimedout():
    pair = make_pair(connect=False)
    pair.wire.block = lambda side, frame: True                 # nobody answers
    fd = pair.pa.socket("tcp")
    pair.pa.fcntl_nonblock(fd, True)
    assert errno_of(pair.pa.connect, fd, (B_IP, PORT)) == "EINPROGRESS"
    assert errno_of(pair.pa.connect, fd, (B_IP, PORT)) == "EALREADY"
    pair.settle(200_000)
    times = [e.time for e in pair.wire.log if e.side == "a"]
    assert times[:4] == [0, 200, 600, 1400]
    assert len(times) == P.max_retries + 1
    assert errno_of(pair.pa.connect, fd, (B_IP, PORT)) == "ETIMEDOUT"


def drop_first_data(wire) -> list[int]:
    """Make `wire` lose the first data segment side a sends; returns the list its sequence
    number goes to."""
    dropped = []

    def block(side, frame):
        tcp = parse_frame(frame).tcp
        if side == "a" and tcp.payload and not dropped:
            dropped.append(tcp.seq)
            return True
        return False

    wire.block = block
    return dropped


def test_fast_retransmit_on_third_duplicate_ack():
    pair = make_pair()
    dropped = drop_first_data(pair.wire)
    t0 = pair.wire.now
    pair.pa.send(pair.ca, bytes(range(256)) * 40)            # 7 segments, the first is lost
    got = blocking(pair.wire, pair.pb.recv, pair.sb, 20000)
    assert len(got) == 10240 and got == bytes(range(256)) * 40
    events = pair.tcb_a().events
    assert [kind for _, kind, _ in events] == ["fast"]
    assert events[0][2] == dropped[0]
    assert pair.wire.now - t0 < P.rto_initial                 # recovered before any RTO
