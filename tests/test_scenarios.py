"""The scenarios on the golden model alone: what each exists to show, checked on its trace."""

import pytest

from model.packet import parse_frame
from tb.scenarios import (LENGTHS, SCENARIOS, get_scenario, model_runner,
                          random_scenario)


def _run(name):
    runner = model_runner(name, 16)
    get_scenario(name).fn(runner)
    return runner


def _calls(runner, side=None):
    return [e for e in runner.trace if e[0] == "call" and (side is None or e[2] == side)]


def test_concurrent_writes_keep_each_process_on_its_own_connection():
    """Issue 14: a 64 KiB send and a "hello" outstanding at once on two connections: every
    byte the dut sends to port 85 is the big writer's, every byte to port 86 the other's."""
    runner = _run("concurrent_writes")
    streams = {85: b"", 86: b""}
    for frame in runner.frames("dut"):
        tcp = parse_frame(frame).tcp
        streams[tcp.dst_port] += tcp.payload
    assert streams == {85: bytes([0xA5]) * 4096, 86: b"helloworld"}
    sends = [e[6] for e in _calls(runner, "dut") if e[4] == "send"]
    assert sends == ["2048", "5", "5", "2048"]
    recvs = [e[6] for e in _calls(runner, "peer") if e[4] == "recv"]
    assert recvs[0] == "b'hello'" and recvs[2] == "b'world'"


def test_random_scenarios_are_deterministic_and_draw_everything():
    seen_ops, seen_flags, wires, isses = set(), set(), [], set()
    for seed in range(12):
        first, second = model_runner(f"random:{seed}", 16), model_runner(f"random:{seed}", 16)
        spec = random_scenario(seed)
        spec.fn(first)
        spec.fn(second)
        assert first.trace == second.trace
        seen_ops |= {e[4] for e in _calls(first)}
        seen_ops |= {"burst" for e in first.trace if e[0] == "rx"}
        wires.append(spec.wire)
        isses.add(spec.peer_iss > 2**32 - 70_000)
    assert {"send", "recv", "sendto", "recvfrom", "poll", "fork", "dup", "send_fd", "shutdown",
            "burst"} <= seen_ops
    assert any("corrupt" in w for w in wires) and any("duplicate" in w for w in wires)
    assert isses == {True, False}
    assert {0, 1, 65535, 65536, 2**20} <= set(LENGTHS)


def test_random_scenario_names_replay_the_same_program():
    assert get_scenario("random:5").doc == random_scenario(5).doc
    calls = [e for e in _calls(_run("random:2")) if e[4] == "send"]
    assert any("<65536 bytes" in e[5] or "<1048576 bytes" in e[5] for e in calls)
    assert "random_1" in SCENARIOS and "random_2" in SCENARIOS


def test_random_prefixes_keep_the_first_k_steps():
    """``random:SEED:K`` (a campaign's shortest failing prefix) is the program of
    ``random:SEED`` cut after K random steps: all of them is the same trace, none is the
    set-up and the closing calls alone."""
    full = random_scenario(4)
    assert get_scenario(f"random:4:{full.steps}").steps == full.steps
    assert _run(f"random:4:{full.steps}").trace == _run("random:4").trace
    shortest, short = _run("random:4:0"), _run("random:4:5")
    assert len(_calls(shortest)) < len(_calls(short)) < len(_calls(_run("random:4")))
    for bad in ("random:4:x", "random:4:1:2", f"random:4:{full.steps + 1}"):
        with pytest.raises(KeyError):
            get_scenario(bad)


def test_a_campaign_failure_names_its_first_mismatch():
    from model.scenario import compare_traces
    from tb.campaign import first_mismatch, replay_command
    expected = [("call", 1, "dut", 1, "send", "(3,)", "5"), ("tx", 2, "dut", "tcp", 1, 8, "ACK")]
    actual = [expected[0], ("tx", 2, "dut", "tcp", 1, 9, "ACK")]
    found = first_mismatch("scenario random:3: RTL differs\n" + compare_traces(expected, actual))
    assert found.splitlines() == ["traces differ at entry 1:",
                                  "  model: ('tx', 2, 'dut', 'tcp', 1, 8, 'ACK')",
                                  "  RTL:   ('tx', 2, 'dut', 'tcp', 1, 9, 'ACK')"]
    assert first_mismatch("the simulator wrote no results") == "the simulator wrote no results"
    assert replay_command("verilator", 64, "random:3:7") == \
        "python -m tb.sim --sim verilator --width 64 --scenario random:3:7"


def test_crafted_segments_sit_where_their_kind_says():
    """The crafted peer places each kind against the dut's own RCV.NXT and window (the model
    TCB's, not the wire log the peer reads them from)."""
    from model.tcp import seq_diff
    from tb.crafted_peer import KINDS
    from tb.scenarios import _bring_up, _crafted_listener
    runner = model_runner("crafted_states", 16)
    ports, p1, lfd = _crafted_listener(runner)
    _, fd, peer = _bring_up(runner, "ESTABLISHED", 40100, (p1, lfd), ports)
    runner.call(p1, "send", fd, b"outstanding")
    tcb = runner.dut.host.processes[p1].fds[fd].tcb
    for kind in KINDS:
        seg = peer.segment(kind)
        start, end = seq_diff(seg.seq, tcb.rcv_nxt), seq_diff(seg.seq, tcb.rcv_nxt) + seg.seg_len - 1
        expected = {"RST_EXACT": start == 0, "RST_IN_WINDOW": 0 < start < tcb.rcv_wnd,
                    "RST_OUTSIDE": start >= tcb.rcv_wnd, "OLD_DUPLICATE": end < 0,
                    "DATA_OUT_OF_WINDOW": start >= tcb.rcv_wnd and seg.payload,
                    "DATA_IN_WINDOW": start == 0 and seg.payload, "FIN": start == 0,
                    "ACK": start == 0 and seg.seg_len == 0, "SYN": True, "SYN_ACK": True}[kind]
        assert expected, (kind, seg, tcb.rcv_nxt, tcb.rcv_wnd)
        assert (seg.ack == tcb.snd_una) == (kind not in ("SYN", "RST_EXACT", "RST_IN_WINDOW",
                                                         "RST_OUTSIDE")), kind
    # the crafted peer acknowledges only what it was told to: the data stays outstanding
    assert seq_diff(tcb.snd_max, tcb.snd_una) == len(b"outstanding")
    # nothing of these 4-tuples reached the real peer
    assert not runner.peer.host.tcbs


def test_crafted_states_visits_every_state_with_every_kind():
    """crafted_states sends every segment kind in every TCP state (on the model: the state of
    the dut's TCB when each crafted segment arrives), SYN-SENT's windowless kinds aside."""
    from model.tcp import State
    from tb import crafted_peer
    seen = set()
    send = crafted_peer.CraftedPeer.send

    def record(peer, kind, **options):
        for tcb in peer.r.dut.host.tcbs.values():
            if tcb.local[1] == peer.dut_port and tcb.remote[1] == peer.port:
                seen.add((tcb.state.name, kind))
        return send(peer, kind, **options)
    crafted_peer.CraftedPeer.send = record
    try:
        _run("crafted_states")
    finally:
        crafted_peer.CraftedPeer.send = send
    states = [s.name for s in State if s.number is not None and s != State.CLOSED]
    windowless = {("SYN_SENT", k) for k in ("DATA_IN_WINDOW", "RST_IN_WINDOW", "OLD_DUPLICATE")}
    # SYN-SENT's SYN-ACK, RST at RCV.NXT and a simultaneous open's SYN are sent as the
    # handshake's own segments (rst_for_syn, the walk to SYN-RECEIVED)
    handshake = {("SYN_SENT", "SYN_ACK"), ("SYN_SENT", "RST_EXACT")}
    missing = {(s, k) for s in states for k in crafted_peer.KINDS} - seen - windowless - handshake
    assert not missing, sorted(missing)


def test_bad_frames_are_each_dropped_once_under_their_cause():
    from model.drops import DropCause
    from tb.crafted_peer import bad_frames
    from tb.scenarios import DUT_IP, DUT_MAC, PEER_IP, PEER_MAC
    frames = bad_frames(PEER_MAC, DUT_MAC, PEER_IP, DUT_IP, 1111, 5353, "192.0.2.99")
    for cause, frame in frames.items():
        runner = model_runner("crafted_errors", 16)
        runner.inject(frame)
        assert runner.dut.drop_counts() == {cause.name: 1}, cause
    assert set(frames) >= {DropCause.BAD_IHL, DropCause.BAD_IP_LENGTH, DropCause.BAD_UDP_LENGTH,
                           DropCause.BAD_IP_CHECKSUM, DropCause.BAD_TCP_OFFSET,
                           DropCause.IP_FRAGMENT, DropCause.UNKNOWN_PROTOCOL,
                           DropCause.NOT_FOR_US, DropCause.NO_NEIGHBOR}


def test_crafted_errors_return_every_pending_error_once():
    calls = [(e[4], e[6]) for e in _calls(_run("crafted_errors"), "dut")]
    for op in ("recv", "send", "getsockopt_error"):
        for errno in ("ECONNREFUSED", "ETIMEDOUT"):
            assert any(o == op and errno in r for o, r in calls), (op, errno)
    assert ("recv", "-1 ENOTCONN") in calls and ("shutdown", "-1 ENOTCONN") in calls
    assert ("send", "-1 ECONNRESET") in calls
    assert calls.count(("getsockopt_error", "-1 EBADF")) == 1 and ("close", "-1 EBADF") in calls


def test_steered_random_programs_draw_the_steered_steps():
    """random:SEED draws crafted segments, malformed frames and refused connects; random_1
    and random_2 (CI's) draw none: their programs are what they were."""
    crafted = refused = 0
    for seed in range(12):
        runner = _run(f"random:{seed}")
        crafted += sum(1 for e in runner.trace if e[0] == "rx")
        refused += sum(1 for e in _calls(runner, "dut") if e[4] == "connect" and "', 9))" in e[5])
    assert crafted > 12 and refused >= 2
    for name in ("random_1", "random_2"):
        assert not any(e[4] == "connect" and "', 9))" in e[5] for e in _calls(_run(name), "dut"))


def test_big_window_needs_rings_above_64_kib():
    """``big_window`` on the model: with 128 KiB rings (window scale 2) our windows say more
    than 64 KiB and the 96 KiB each way take a few round trips; with the reference NIC's 2 KiB
    rings the same transfer takes 48 round trips each way."""
    from scapy.all import TCP, Ether
    from hdl.config import NicConfig

    big = NicConfig(window=128 * 1024, connections=8, window_scaling=True)
    runs = {}
    for config in (NicConfig(), big):
        runner = model_runner("big_window", 16, config.policy)
        get_scenario("big_window").fn(runner)
        segments = [Ether(f)[TCP] for f in runner.frames("dut")]
        windows = [tcp.window for tcp in segments if not tcp.flags.S]     # a SYN's: unscaled
        runs[config.window] = runner.now, max(windows) << config.policy.wscale
    assert runs[big.window][1] > 65535 >= runs[2048][1]
    assert runs[big.window][0] < 2500 and runs[2048][0] > 25000
