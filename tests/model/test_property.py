"""Property tests (issue test 9): random calls by many processes and random wire events never
lose, duplicate or reorder stream bytes, and raise nothing but the documented errors."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_pair

from model.constants import MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL
from model.errors import SocketError, WouldBlock

ALLOWED = {"EAGAIN", "EBADF"}

action = st.one_of(
    st.tuples(st.just("send"), st.sampled_from("ab"), st.integers(0, 7), st.integers(0, 4000), st.booleans()),
    st.tuples(st.just("recv"), st.sampled_from("ab"), st.integers(0, 7), st.integers(0, 3000),
              st.sampled_from([0, MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL])),
    st.tuples(st.just("fork"), st.sampled_from("ab"), st.integers(0, 7)),
    st.tuples(st.just("dup"), st.sampled_from("ab"), st.integers(0, 7)),
    st.tuples(st.just("pass"), st.sampled_from("ab"), st.integers(0, 7), st.integers(0, 7)),
    st.tuples(st.just("close"), st.sampled_from("ab"), st.integers(0, 7)),
    st.tuples(st.just("stranger"), st.sampled_from("ab")),
    st.tuples(st.just("step"), st.integers(1, 3)),
    st.tuples(st.just("advance"), st.integers(1, 500)),
)


def pattern(direction: str, start: int, n: int) -> bytes:
    """The stream's bytes are a function of their offset, so any loss or reorder shows."""
    salt = 7 if direction == "a" else 13
    return bytes((i * salt + (i >> 8)) & 0xFF for i in range(start, start + n))


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(action, min_size=5, max_size=80), seed=st.integers(0, 2**16),
       loss=st.sampled_from([0.0, 0.1, 0.3]))
def test_random_calls_and_wire_events_keep_the_stream(actions, seed, loss):
    pair = make_pair(seed=seed, drop=loss, duplicate=loss, reorder=loss, corrupt=loss / 3)
    host = {"a": pair.a, "b": pair.b}
    holders = {"a": [(pair.pa, pair.ca)], "b": [(pair.pb, pair.sb)]}    # (process, its fd)
    sent = {"a": 0, "b": 0}                # bytes each side's socket accepted
    got = {"a": bytearray(), "b": bytearray()}    # bytes each side read (sent by the other)
    other = {"a": "b", "b": "a"}

    def holder(side, i):
        return holders[side][i % len(holders[side])]

    def check_prefix():
        for side in "ab":
            src = other[side]
            assert bytes(got[side]) == pattern(src, 0, len(got[side])), "stream corrupted"
            assert len(got[side]) <= sent[src]

    for act in actions:
        kind, side = act[0], act[1] if len(act) > 1 else None
        try:
            if kind == "send":
                proc, fd = holder(side, act[2])
                data = pattern(side, sent[side], act[3])
                sent[side] += proc.send(fd, data, 0 if act[4] else MSG_DONTWAIT)
            elif kind == "recv":
                proc, fd = holder(side, act[2])
                flags = act[4]
                data = proc.recv(fd, act[3], flags)
                if flags & MSG_PEEK:
                    start = len(got[side])
                    assert data == pattern(other[side], start, len(data))
                else:
                    got[side] += data
            elif kind == "fork":
                proc, fd = holder(side, act[2])
                holders[side].append((proc.fork(), fd))
            elif kind == "dup":
                proc, fd = holder(side, act[2])
                holders[side].append((proc, proc.dup(fd)))
            elif kind == "pass":
                proc, fd = holder(side, act[2])
                target = host[side].spawn() if act[3] % 2 else holder(side, act[3])[0]
                holders[side].append((target, proc.send_fd(fd, target)))
            elif kind == "close":
                if len(holders[side]) > 1:                     # keep the connection open
                    proc, fd = holders[side].pop(act[2] % len(holders[side]))
                    proc.close(fd)
            elif kind == "stranger":
                proc, fd = holders[side][0]
                stranger = host[side].spawn()
                try:
                    stranger.recv(fd, 10)
                    raise AssertionError("a stranger read")
                except SocketError as err:
                    assert err.errno == "EBADF"
            elif kind == "step":
                for _ in range(act[1]):
                    pair.wire.step()
            elif kind == "advance":
                pair.wire.run(max_ticks=act[1])
        except SocketError as err:
            assert err.errno in ALLOWED, f"{act}: undocumented {err.errno}"
        except WouldBlock:
            assert kind in ("send", "recv")
        check_prefix()

    # heal the wire, drain both directions through whoever holds the fd, and compare all
    pair.wire.drop = pair.wire.duplicate = pair.wire.reorder = pair.wire.corrupt = 0.0

    def drain():
        for side in "ab":
            proc, fd = holders[side][-1]
            while True:
                try:
                    data = proc.recv(fd, 100_000, MSG_DONTWAIT)
                except SocketError as err:
                    assert err.errno == "EAGAIN"
                    break
                assert data
                got[side] += data
        return all(len(got[s]) == sent[other[s]] for s in "ab")

    assert pair.wire.run(drain, max_ticks=200_000)
    check_prefix()
    for side in "ab":
        assert bytes(got[side]) == pattern(other[side], 0, sent[other[side]])


call = st.one_of(
    st.tuples(st.just("socket"), st.sampled_from(["tcp", "udp", "bogus"])),
    st.tuples(st.just("bind"), st.integers(0, 8), st.sampled_from(["0.0.0.0", "192.0.2.1", "10.1.1.1"]),
              st.sampled_from([0, 80, 5000, 49152])),
    st.tuples(st.just("listen"), st.integers(0, 8), st.integers(-1, 3)),
    st.tuples(st.just("accept"), st.integers(0, 8)),
    st.tuples(st.just("connect"), st.integers(0, 8), st.sampled_from(["192.0.2.2", "192.0.2.9"]),
              st.sampled_from([5000, 81])),
    st.tuples(st.just("send"), st.integers(0, 8), st.binary(max_size=3000), st.sampled_from([0, MSG_DONTWAIT])),
    st.tuples(st.just("sendto"), st.integers(0, 8), st.binary(max_size=2000), st.sampled_from([5000, 81])),
    st.tuples(st.just("recv"), st.integers(0, 8), st.integers(-1, 3000),
              st.sampled_from([0, MSG_DONTWAIT, MSG_PEEK, MSG_WAITALL])),
    st.tuples(st.just("shutdown"), st.integers(0, 8), st.integers(-1, 3)),
    st.tuples(st.just("close"), st.integers(0, 8)),
    st.tuples(st.just("poll"), st.integers(0, 8), st.sampled_from([0, -1])),
    st.tuples(st.just("fcntl_nonblock"), st.integers(0, 8), st.booleans()),
    st.tuples(st.just("dup"), st.integers(0, 8)),
    st.tuples(st.just("fork"), st.integers(0, 8)),
    st.tuples(st.just("getsockopt_error"), st.integers(0, 8)),
    st.tuples(st.just("getpeername"), st.integers(0, 8)),
    st.tuples(st.just("wire"), st.integers(1, 400)),
)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(call, min_size=5, max_size=60), loss=st.sampled_from([0.0, 0.2]))
def test_any_call_sequence_raises_only_documented_errors(calls, loss):
    """Arbitrary calls on arbitrary fds, against a live server: only SocketError or WouldBlock."""
    from model.errors import Errno
    pair = make_pair(connect=False, seed=1, drop=loss, reorder=loss)
    lfd = pair.pb.socket("tcp")
    pair.pb.bind(lfd, ("0.0.0.0", 5000))
    pair.pb.listen(lfd, 2)
    ufd = pair.pb.socket("udp")
    pair.pb.bind(ufd, ("0.0.0.0", 81))
    procs = [pair.pa]
    for c in calls:
        numbered = isinstance(c[1], int) and c[0] != "wire"
        proc = procs[c[1] % len(procs)] if numbered else procs[0]
        fd = c[1] % 8 + 2 if numbered else 0
        try:
            if c[0] == "socket":
                proc.socket(c[1])
            elif c[0] == "bind":
                proc.bind(fd, (c[2], c[3]))
            elif c[0] == "listen":
                proc.listen(fd, c[2])
            elif c[0] == "accept":
                proc.accept(fd)
            elif c[0] == "connect":
                proc.connect(fd, (c[2], c[3]))
            elif c[0] == "send":
                proc.send(fd, c[2], c[3])
            elif c[0] == "sendto":
                proc.sendto(fd, c[2], ("192.0.2.2", c[3]))
            elif c[0] == "recv":
                proc.recv(fd, c[2], c[3])
            elif c[0] == "shutdown":
                proc.shutdown(fd, c[2])
            elif c[0] == "close":
                proc.close(fd)
            elif c[0] == "poll":
                proc.poll([(fd, 0x1 | 0x4)], c[2])
            elif c[0] == "fcntl_nonblock":
                proc.fcntl_nonblock(fd, c[2])
            elif c[0] == "dup":
                proc.dup(fd)
            elif c[0] == "fork":
                procs.append(proc.fork())
            elif c[0] == "getsockopt_error":
                proc.getsockopt_error(fd)
            elif c[0] == "getpeername":
                proc.getpeername(fd)
            elif c[0] == "wire":
                pair.wire.run(max_ticks=c[1])
        except SocketError as err:
            assert isinstance(err.errno, Errno)
        except WouldBlock:
            pass
    pair.wire.run(max_ticks=100_000)                  # and the hosts wind down without error
