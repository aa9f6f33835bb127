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
    from model.packet import TcpFlags, TcpSegment, build_tcp_frame
    runner = make_runner()
    syn = TcpSegment(4444, 9, 1000, 0, TcpFlags.SYN, 1000)
    runner.inject(build_tcp_frame(runner.peer.mac, runner.dut.mac, runner.peer.ip, runner.dut.ip, syn))
    rx, tx = runner.trace[-2:]
    assert rx[0] == "rx" and rx[3:7] == ("tcp", 1000, 0, "SYN")
    assert tx[0] == "tx" and tx[2] == "dut" and tx[3:7] == ("tcp", 0, 1001, "RST|ACK")
