"""One scenario, two backends: the runner, its trace, and the scoreboard's comparison."""

import dataclasses
import os

from model.host import Host
from model.policy import DEFAULT_POLICY
from model.scenario import ModelBackend, Runner, compare_traces, write_pcap


def seed_scenario(runner: Runner):
    """The seed's program as a scenario: it speaks only the Backend interface."""
    server = runner.peer.spawn()
    lfd = runner.call(server, "socket", "tcp", side="peer").value
    runner.call(server, "bind", lfd, ("0.0.0.0", 80), side="peer")
    runner.call(server, "listen", lfd, 4, side="peer")
    p1 = runner.dut.spawn()
    fd = runner.call(p1, "socket", "tcp").value
    assert runner.call(p1, "connect", fd, (runner.peer.ip, 80)).value is None
    conn, _ = runner.call(server, "accept", lfd, side="peer").value
    runner.call(server, "send", conn, b"a" + b"b" * 100, side="peer")
    assert runner.call(p1, "recv", fd, 1).value == b"a"
    p2 = runner.call(p1, "fork").value
    assert runner.call(p2, "recv", fd, 100, 0x100).value == b"b" * 100     # MSG_WAITALL
    stranger = runner.dut.spawn()
    assert runner.call(stranger, "recv", fd, 1).errno == "EBADF"
    fd3 = runner.call(p1, "send_fd", fd, stranger).value
    assert runner.call(stranger, "send", fd3, b"from a passed fd").value == 16
    assert runner.call(p2, "recv", fd, 1, 0x40).errno == "EAGAIN"
    runner.call(p1, "close", fd)
    runner.call(p2, "close", fd)
    runner.call(stranger, "close", fd3)
    runner.call(server, "recv", conn, 100, side="peer")
    runner.call(server, "close", conn, side="peer")
    runner.run(2000)


def make_runner(policy=DEFAULT_POLICY, **wire):
    dut = ModelBackend(Host("02:00:00:00:00:01", "192.0.2.1", policy, name="dut"))
    peer = ModelBackend(Host("02:00:00:00:00:02", "192.0.2.2", name="peer", iss_base=7))
    return Runner(dut, peer, **wire)


def test_scenario_is_deterministic_and_traced():
    first, second = make_runner(seed=3, drop=0.2), make_runner(seed=3, drop=0.2)
    seed_scenario(first)
    seed_scenario(second)
    assert compare_traces(first.trace, second.trace) is None
    kinds = {entry[0] for entry in first.trace}
    assert kinds == {"call", "tx"}
    tx = [e for e in first.trace if e[0] == "tx" and e[2] == "dut" and e[3] == "tcp"]
    assert tx[0][6] == "SYN" and all(isinstance(e[9], int) for e in tx)       # flags, checksum


def test_scoreboard_reports_a_difference_side_by_side(tmp_path):
    reference, other = make_runner(), make_runner(dataclasses.replace(DEFAULT_POLICY, rcv_buffer=30000))
    seed_scenario(reference)
    seed_scenario(other)
    report = compare_traces(reference.trace, other.trace)
    assert report is not None and report.startswith("traces differ at entry 4:")   # the SYN
    lines = report.splitlines()
    syn = next(line for line in lines if line.startswith("!"))
    assert "'SYN', 65535" in syn and "'SYN', 30000" in syn
    path = os.path.join(tmp_path, "dut.pcap")
    write_pcap(path, reference.frames("dut"))
    assert os.path.getsize(path) > 24


def test_injected_frames_are_traced_and_answered():
    from model.protocol import TcpFlag
    from model.packet import TcpSegment, build_tcp_frame
    runner = make_runner()
    syn = TcpSegment(4444, 9, 1000, 0, TcpFlag.SYN, 1000)
    runner.inject(build_tcp_frame(runner.peer.mac, runner.dut.mac, runner.peer.ip, runner.dut.ip, syn))
    rx, tx = runner.trace[-2:]
    assert rx[0] == "rx" and rx[3:7] == ("tcp", 1000, 0, "SYN")
    assert tx[0] == "tx" and tx[2] == "dut" and tx[3:7] == ("tcp", 0, 1001, "RST|ACK")


def _two_connections(runner):
    """Two dut processes, each with a connection to its own peer process."""
    pairs = []
    for port in (80, 81):
        server = runner.peer.spawn()
        lfd = runner.call(server, "socket", "tcp", side="peer").value
        runner.call(server, "bind", lfd, ("0.0.0.0", port), side="peer")
        runner.call(server, "listen", lfd, 4, side="peer")
        pid = runner.dut.spawn()
        fd = runner.call(pid, "socket", "tcp").value
        runner.call(pid, "connect", fd, (runner.peer.ip, port))
        conn, _ = runner.call(server, "accept", lfd, side="peer").value
        pairs.append((pid, fd, server, conn))
    return pairs


def test_calls_are_outstanding_at_once_and_traced_in_list_order():
    runner = make_runner()
    (p1, fd1, s1, c1), (p2, fd2, s2, c2) = _two_connections(runner)
    start = len(runner.trace)
    results = runner.calls([(p1, "send", fd1, b"one"), (p2, "send", fd2, b"two"),
                            (p1, "recv", fd1, 10, 0x40)])                    # MSG_DONTWAIT
    assert [str(r) for r in results] == ["3", "3", "-1 EAGAIN"]
    calls = [e for e in runner.trace[start:] if e[0] == "call"]
    assert [(e[3], e[4], e[6]) for e in calls] == [(p1, "send", "3"), (p2, "send", "3"),
                                                   (p1, "recv", "-1 EAGAIN")]
    assert runner.call(s1, "recv", c1, 10, side="peer").value == b"one"
    assert runner.call(s2, "recv", c2, 10, side="peer").value == b"two"


def test_blocked_calls_of_a_batch_are_retried_until_done():
    runner = make_runner()
    (p1, fd1, s1, c1), (p2, fd2, s2, c2) = _two_connections(runner)
    # both block (nothing to read); the peer's data arrives while the runner moves the wire
    runner.call(s2, "send", c2, b"late", side="peer", block=False)
    results = runner.calls([(p1, "recv", fd1, 10), (p2, "recv", fd2, 10)], max_ticks=50)
    assert results[0].blocked and results[1].value == b"late"


def test_frames_sent_at_once_go_on_the_wire_in_flow_order():
    runner = make_runner()
    (p1, fd1, s1, c1), (p2, fd2, s2, c2) = _two_connections(runner)
    start = len(runner.trace)
    runner.calls([(p2, "send", fd2, b"b" * 3000), (p1, "send", fd1, b"a" * 3000)])
    tx = [e for e in runner.trace[start:] if e[0] == "tx" and e[2] == "dut"]
    payloads = [e[8][:1] for e in tx]
    assert payloads == [b"a", b"a", b"a", b"b", b"b", b"b"]          # p1's flow has the lower port


def test_a_burst_is_traced_and_runts_are_counted():
    from model.drops import DropCause
    runner = make_runner()
    runner.inject_burst([b"", b"\x01", b"\xff" * 14])
    rx = [e for e in runner.trace if e[0] == "rx"]
    assert [e[3:5] for e in rx] == [("unparsable", "RUNT")] * 2 + [("unparsable", "UNKNOWN_ETHERTYPE")]
    assert runner.dut.host.drops[DropCause.RUNT] == 2
    assert not runner.frames("dut")


def test_trace_lines_show_large_bytes_by_length_and_crc():
    from model.scenario import brief
    assert brief((3, b"ab")) == "(3, b'ab')"
    assert brief((3, bytes(100))) == "(3, <100 bytes crc32 9988c6ca>)"
    assert brief((bytes(100),)) != brief((bytes(99) + b"\x01",))
