"""Functional coverage (tb/coverage.py): the collector without a simulator, and one RTL run
that writes its coverage file."""

import json

import pytest

from hdl.engine.observe import EventSource, SegmentKind, TimerKind
from hdl.engine.tcb import Errno, TcpState
from hdl.ports import HostOp
from tb.coverage import GROUPS, IMPOSSIBLE, Coverage, main, merge, report, summary


def test_groups_and_impossible_bins_are_consistent():
    for (group, name), reason in IMPOSSIBLE.items():
        assert name in GROUPS[group] and reason
    assert "ESTABLISHED x DATA_IN_WINDOW" in GROUPS["state_segment"]
    assert not any(b.startswith("CLOSED x") for b in GROUPS["state_segment"])
    assert "READ -> EAGAIN" in GROUPS["host"] and "POLL -> EAGAIN" not in GROUPS["host"]


def test_the_collector_counts_each_sample_in_its_bin():
    cov = Coverage(rcv_bytes=2048, snd_bytes=2048)
    cov.sample_event(source=EventSource.RX, state=TcpState.ESTABLISHED, rx_used=2048, rx_start=0,
                     tx_used=0, tx_start=100, waiting=["HOST"])
    cov.sample_segment(TcpState.ESTABLISHED, SegmentKind.DATA_IN_WINDOW)
    cov.sample_event(source=EventSource.HOST, state=TcpState.ESTABLISHED,
                     rx_used=100, rx_start=2000, tx_used=5, tx_start=0)
    cov.sample_event(source=EventSource.RX, state=TcpState.CLOSED)
    cov.sample_segment(TcpState.CLOSED, SegmentKind.SYN)
    cov.sample_segment(TcpState.ESTABLISHED, SegmentKind.NONE)
    cov.sample_event(source=EventSource.TICK, state=TcpState.SYN_SENT)
    cov.sample_timer(TimerKind.RTO)
    cov.sample_timer(TimerKind.NONE)
    cov.sample_host(HostOp.READ, Errno.EAGAIN, Errno.OK)
    cov.sample_host(HostOp.GETERR, Errno.OK, Errno.ECONNRESET)
    cov.sample_host(HostOp.POLL, Errno.EPIPE)                   # not a bin: reported
    cov.sample_drops({"BAD_IP_CHECKSUM": 2, "RUNT": 0})
    h = cov.hits
    assert h["state_segment"] == {"ESTABLISHED x DATA_IN_WINDOW": 1}
    assert h["races"] == {"TCP segment for a CLOSED connection": 1}
    assert h["ring"] == {"rx full": 1, "rx wrapped": 1, "rx empty": 2, "tx empty": 3}
    assert h["concurrent"] == {"RX taken with HOST waiting": 1}
    assert h["timer"] == {"RTO": 1, "RTO in SYN_SENT": 1}
    assert h["host"] == {"READ -> EAGAIN": 1, "GETERR -> OK": 1}
    assert h["pending_error"] == {"ECONNRESET": 1}
    assert h["drop"] == {"BAD_IP_CHECKSUM": 2}
    assert cov.unexpected == {"host: POLL -> EPIPE": 1}


def test_runs_merge_and_the_report_lists_unhit_bins(tmp_path, capsys):
    a, b = Coverage(), Coverage()
    a.sample_host("READ", "OK")
    b.sample_host("READ", "OK")
    b.sample_host("WRITE", "EPIPE")
    a.write(tmp_path / "a.json", "a")
    b.write(tmp_path / "b.json", "b")
    merged = merge(Coverage.from_json(json.loads((tmp_path / f).read_text())) for f in ("a.json", "b.json"))
    assert merged.runs == ["a", "b"]
    assert merged.hits["host"] == {"READ -> OK": 2, "WRITE -> EPIPE": 1}
    s = summary(merged)
    hit, possible, unhit = s["groups"]["host"]
    assert hit == 2 and "READ -> EAGAIN" in unhit and "SHUTDOWN -> EINVAL" not in unhit
    assert possible == len(GROUPS["host"]) - sum(g == "host" for g, _ in IMPOSSIBLE)
    text = report(merged)
    assert "2 run(s)" in text and "READ -> EAGAIN" in text and "impossible by construction" in text
    assert main(["report", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert "host" in capsys.readouterr().out


@pytest.mark.cocotb
def test_an_rtl_run_writes_its_coverage():
    """One short scenario on Verilator: the coverage file is there and its bins are hit."""
    from flow.tools import BUILD
    from tb.nic_run import NicConfig, run_scenario
    config = NicConfig(data_width=64, connections=64, processes=16)
    path = BUILD / "sim" / "coverage" / config.name / "verilator" / "handshake.json"
    path.unlink(missing_ok=True)
    run_scenario("verilator", config, "handshake")
    cov = Coverage.from_json(json.loads(path.read_text()))
    assert cov.runs == ["handshake"] and not cov.unexpected
    assert cov.hits["state_segment"]["SYN_SENT x SYN_ACK"] and cov.hits["state_segment"]["ESTABLISHED x ACK"]
    assert cov.hits["ring"]["rx empty"] and sum(cov.hits["host"].values())
