"""``make bench``'s code path on a tiny plan: the JSON has every field, with sane numbers.

The smoke plan (``tb.bench_run.QUICK``: four connections with 4 KiB rings, 256-byte frames,
eight of them per measurement) runs the very benchmarks of ``make bench`` (receive on one and
on four connections, transmit, the three latencies, the bench's own simulation speed, the
golden model's throughput) on Icarus Verilog, which builds the NIC in seconds where Verilator
takes minutes. The ``lossy_wire`` speed runs are left out (``--no-speed``). About 20 s.
No timing is asserted beyond sanity: rates are positive and at most the physical limit.
"""

import json

import pytest

from tb import readme_tables
from tb.bench_run import main, report_markdown, report_tables

pytestmark = pytest.mark.cocotb

RECEIVE_FIELDS = {
    "frame_bytes", "port_bytes", "payload_bytes", "connections", "nic_connections", "ring_bytes",
    "frames_offered", "frames_per_burst", "bursts", "frames_stored", "frames_dropped",
    "segments_refused", "frames_in_order", "backpressure_cycles", "payload_bytes_delivered",
    "cycles", "cycles_to_idle", "payload_bytes_per_clock", "frame_bytes_per_clock",
    "line_rate_ratio", "accepted_bytes_per_clock", "beats_per_frame",
    "engine_cycles_per_segment", "engine_steps", "dispatch_steps",
}
TRANSMIT_FIELDS = {
    "frame_bytes", "port_bytes", "mss", "nic_connections", "ring_bytes", "writes", "write_bytes",
    "segments", "write_retries", "payload_bytes_sent", "cycles", "payload_bytes_per_clock",
    "frame_bytes_per_clock", "line_rate_ratio", "burst_frame_bytes_per_clock",
    "burst_line_rate_ratio", "min_gap_cycles", "engine_cycles_per_segment", "engine_steps",
}
LATENCY_FIELDS = {"frame_bytes", "payload_bytes", "nic_connections", "ring_bytes",
                  "rx_to_readable", "rx_to_ring", "polls", "rx_to_ack_out", "write_to_wire"}


def test_quick_benchmarks(tmp_path):
    assert main(["--sim", "icarus", "--quick", "--no-speed", "--out", str(tmp_path),
                 "--command", "pytest tests/test_bench.py"]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {"date", "command", "simulator", "tools", "data_width", "plans", "receive",
            "transmit", "latency", "bench_sim", "sim_speed", "model", "shortfalls", "build_s",
            "run_s", "wall_s"} <= set(report)
    assert report["simulator"] == "icarus" and report["tools"]["icarus"].startswith("Icarus")
    lanes = report["data_width"] // 8

    # receive: 256-byte frames on one connection and round robin over four
    assert [(r["frame_bytes"], r["connections"]) for r in report["receive"]] == [(256, 1), (256, 4)]
    for row in report["receive"]:
        assert RECEIVE_FIELDS <= set(row), RECEIVE_FIELDS - set(row)
        assert row["payload_bytes"] == 198 and row["port_bytes"] == 252
        assert row["frames_offered"] == 8
        assert row["frames_stored"] + row["frames_dropped"] == row["frames_offered"]
        assert 0 < row["frames_in_order"] <= row["frames_stored"]
        assert row["payload_bytes_delivered"] == row["frames_in_order"] * 198
        assert 0 < row["cycles"] <= row["cycles_to_idle"]
        assert 0 < row["line_rate_ratio"] <= 1
        assert row["frame_bytes_per_clock"] == pytest.approx(row["line_rate_ratio"] * lanes)
        assert 0 < row["payload_bytes_per_clock"] < row["frame_bytes_per_clock"]
        assert 0 < row["accepted_bytes_per_clock"] <= lanes
        assert row["engine_cycles_per_segment"] > 0 and row["beats_per_frame"] > 0
        assert "TCP_START" in row["engine_steps"] and "WAIT_ACTION" in row["dispatch_steps"]

    # transmit: MSS 198 gives 256-byte frames
    (row,) = report["transmit"]
    assert TRANSMIT_FIELDS <= set(row), TRANSMIT_FIELDS - set(row)
    assert row["mss"] == 198 and row["segments"] == 8 and row["payload_bytes_sent"] == 8 * 198
    assert 0 < row["line_rate_ratio"] <= row["burst_line_rate_ratio"] <= 1
    assert row["engine_cycles_per_segment"] > 0 and "EMIT" in row["engine_steps"]

    # latency: every path takes some clocks (a READ may be answered before the segment's last
    # byte is in the ring: the ring decided the write, and the read's beats wait for the bytes)
    (row,) = report["latency"]
    assert LATENCY_FIELDS <= set(row), LATENCY_FIELDS - set(row)
    assert row["rx_to_ring"] > 0 and row["rx_to_readable"] > 0
    assert row["rx_to_ack_out"] > 0 and row["write_to_wire"] > 0 and row["polls"] >= 1

    # simulation speed and the model
    (sim,) = report["bench_sim"]
    assert sim["cycles"] > 0 and sim["cycles_per_s"] > 0
    assert report["sim_speed"] == []
    assert report["model"]["bytes_per_s"] > 0 and report["model"]["bytes"] == 64 * 1024

    # rates in Gb/s at 156.25 MHz, every phase counted, the host, the plot
    for row in report["receive"] + report["transmit"]:
        assert row["frame_gbps"] == pytest.approx(row["frame_bytes_per_clock"] * 1.25, abs=1e-3)
    assert report["clock_hz"] == 156.25e6
    phases = report["phases"]
    assert any(name.startswith("Verilog and icarus build of nic_w64_c4_p4_r4096") for name in phases)
    assert any(name.startswith("benchmarks on nic_w64_c4_p4_r4096") for name in phases)
    assert {"golden model throughput", "plot"} <= set(phases)
    assert -0.5 <= report["wall_s"] - sum(phases.values()) < 0.2 * report["wall_s"] + 5   # rounding
    assert report["host"]["cpus"] >= 1 and report["host"]["cpu"] and len(report["host"]["load_after"]) == 3
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # bench.md and the README section come from the same report
    assert (tmp_path / "bench.md").read_text() == report_markdown(report)
    tables = report_tables(report)
    assert "| 256 | 4 x 4 KiB | 4 | 8 / 8 |" in tables
    assert "on one connection or round robin over 4;" in tables and "over 64" not in tables
    assert "`pytest tests/test_bench.py`" in tables
    readme = "intro\n<!-- bench-table:begin -->\nold\n<!-- bench-table:end -->\nrest\n"
    (tmp_path / "build" / "bench").mkdir(parents=True)
    (tmp_path / "build" / "bench" / "bench.json").write_text(json.dumps(report))
    new = readme_tables.regenerate(readme, root=tmp_path, names=["bench-table"], log=lambda _: None)
    assert readme_tables.section_body(new, "bench-table") == tables.strip("\n")
    assert new.startswith("intro\n") and new.endswith("<!-- bench-table:end -->\nrest\n")
