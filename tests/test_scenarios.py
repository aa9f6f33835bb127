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
