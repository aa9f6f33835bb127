"""``make bench``'s code path on a tiny plan: the JSON has every field, with sane numbers.

The smoke plan (``tb.bench_run.QUICK``: four connections with 4 KiB rings, 256-byte frames,
eight of them per measurement) runs the very benchmarks of ``make bench`` (receive on one and
on four connections, transmit, transmit from several processes, the mixed load, the three
latencies, the bench's own simulation speed, the golden model's throughput) on Icarus
Verilog, which builds the NIC in seconds where Verilator takes minutes. The ``lossy_wire`` speed runs are left out (``--no-speed``). About 20 s.
No timing is asserted beyond sanity: rates are positive and at most the physical limit.
"""

import json

import pytest

from tb import readme_tables
from tb.bench_run import main, report_markdown, report_tables, shortfalls

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
    "burst_line_rate_ratio", "min_gap_cycles", "tx_underrun_cycles", "engine_cycles_per_segment",
    "engine_steps",
}
TRANSMIT_LOAD_FIELDS = {
    "frame_bytes", "port_bytes", "mss", "processes", "connections", "writers", "write_bytes",
    "payload_bytes_written", "writes", "partial_writes", "write_retries", "peer_acks", "segments",
    "payload_bytes_sent", "mean_frame_bytes", "cycles", "payload_bytes_per_clock",
    "frame_bytes_per_clock", "line_rate_ratio", "min_gap_cycles", "tx_underrun_cycles",
    "engine_cycles_per_segment", "engine_steps", "nic_connections", "ring_bytes",
}
MIXED_FIELDS = {
    "frame_bytes", "port_bytes", "payload_bytes", "rx_connections", "tx_connections", "processes",
    "tx_mss", "cycles", "rx_frames_offered", "rx_frames_dropped", "rx_segments_refused",
    "rx_frames_in_order", "rx_backpressure_cycles", "rx_cycles", "rx_payload_bytes_delivered",
    "rx_frame_bytes_per_clock", "rx_line_rate_ratio", "peer_acks", "reads", "read_eagain",
    "bytes_read_during", "tx_write_bytes", "tx_payload_bytes_written", "tx_writes",
    "tx_partial_writes", "tx_write_retries", "tx_segments", "tx_payload_bytes_sent",
    "tx_mean_frame_bytes", "tx_cycles", "tx_frame_bytes_per_clock", "tx_line_rate_ratio",
    "tx_ack_frames", "tx_underrun_cycles", "tx_port_bytes_per_clock", "line_rate_ratio", "engine_steps",
    "nic_connections", "ring_bytes", "rx_frame_gbps", "tx_frame_gbps",
}
LATENCY_FIELDS = {"frame_bytes", "payload_bytes", "nic_connections", "ring_bytes",
                  "rx_to_readable", "rx_to_ring", "polls", "rx_to_ack_out", "write_to_wire",
                  "write_underrun_cycles"}


def test_quick_benchmarks(tmp_path):
    assert main(["--sim", "icarus", "--quick", "--no-speed", "--out", str(tmp_path),
                 "--command", "pytest tests/test_bench.py"]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    assert {"date", "command", "simulator", "tools", "data_width", "plans", "receive",
            "transmit", "latency", "transmit_load", "mixed", "bench_sim", "sim_speed", "model", "shortfalls", "build_s",
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

    # transmit from 4 processes on one connection and from 2 processes over 2 (MSS 198): every
    # byte written reached the wire (checked in order by the bench), in frames of at most 256 B
    assert [(r["processes"], r["connections"]) for r in report["transmit_load"]] == [(4, 1), (2, 2)]
    for row in report["transmit_load"]:
        assert TRANSMIT_LOAD_FIELDS <= set(row), TRANSMIT_LOAD_FIELDS - set(row)
        assert row["mss"] == 198 and row["writers"] == max(row["processes"], row["connections"])
        assert row["payload_bytes_sent"] == row["payload_bytes_written"] >= 16 * 198
        assert row["writes"] >= row["writers"] and row["peer_acks"] >= 1
        assert row["segments"] >= row["payload_bytes_sent"] / 198
        assert 64 <= row["mean_frame_bytes"] <= 256
        assert 0 < row["line_rate_ratio"] <= 1
        assert row["frame_bytes_per_clock"] == pytest.approx(row["line_rate_ratio"] * lanes)
        assert 0 < row["payload_bytes_per_clock"] < row["frame_bytes_per_clock"]
        assert row["engine_cycles_per_segment"] > 0 and "EMIT" in row["engine_steps"]

    # mixed load: 256-byte frames in on 2 connections while 2 processes write on the other 2
    # and read the first 2: both directions moved every byte, nothing dropped
    (row,) = report["mixed"]
    assert MIXED_FIELDS <= set(row), MIXED_FIELDS - set(row)
    assert (row["rx_connections"], row["tx_connections"], row["processes"]) == (2, 2, 2)
    assert row["rx_frames_offered"] == 16 and row["rx_frames_dropped"] == 0
    assert row["rx_frames_in_order"] == 16 and row["rx_payload_bytes_delivered"] == 16 * 198
    assert 0 < row["bytes_read_during"] <= 16 * 198 and row["reads"] >= 1
    assert row["tx_payload_bytes_sent"] == row["tx_payload_bytes_written"] >= 16 * 198
    assert row["tx_segments"] >= row["tx_payload_bytes_sent"] / 1460 and row["tx_ack_frames"] > 0
    assert row["peer_acks"] >= row["tx_connections"]
    for side in ("rx", "tx"):
        assert 0 < row[f"{side}_cycles"] <= row["cycles"]
        assert 0 < row[f"{side}_line_rate_ratio"] <= 1
        assert row[f"{side}_frame_bytes_per_clock"] == pytest.approx(
            row[f"{side}_line_rate_ratio"] * lanes)
    assert 0 < row["line_rate_ratio"] <= 1

    # latency: every path takes some clocks (a READ may be answered before the segment's last
    # byte is in the ring: the ring decided the write, and the read's beats wait for the bytes)
    (row,) = report["latency"]
    assert LATENCY_FIELDS <= set(row), LATENCY_FIELDS - set(row)
    assert row["rx_to_ring"] > 0 and row["rx_to_readable"] > 0
    assert row["rx_to_ack_out"] > 0 and row["write_to_wire"] > 0 and row["polls"] >= 1

    # the cut-through framer never leaves a frame on tx without its next beat (a MAC would
    # underrun): not a rate, a property of every frame sent
    underruns = [r["tx_underrun_cycles"] for r in
                 report["transmit"] + report["transmit_load"] + report["mixed"]]
    assert underruns == [0] * len(underruns) and row["write_underrun_cycles"] == 0
    assert not any("underrun" in line for line in report["shortfalls"])

    # simulation speed and the model
    (sim,) = report["bench_sim"]
    assert sim["cycles"] > 0 and sim["cycles_per_s"] > 0
    assert report["sim_speed"] == []
    assert report["model"]["bytes_per_s"] > 0 and report["model"]["bytes"] == 64 * 1024

    # rates in Gb/s at 156.25 MHz, every phase counted, the host, the plot
    for row in report["receive"] + report["transmit"] + report["transmit_load"]:
        assert row["frame_gbps"] == pytest.approx(row["frame_bytes_per_clock"] * 1.25, abs=1e-3)
    assert report["clock_hz"] == 156.25e6
    phases = report["phases"]
    assert any(name.startswith("Verilog and icarus build of nic_w64_c4_p8_r4096") for name in phases)
    assert any(name.startswith("benchmarks on nic_w64_c4_p8_r4096") for name in phases)
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
    assert "**Transmit from several processes**" in tables and "| 256 / 256 | 4 x 4 KiB | 198 | 4 | 1 |" in tables
    assert "**Mixed load**" in tables and "| 256 | 4 x 4 KiB | 2 | 16 / 16 |" in tables
    readme = "intro\n<!-- bench-table:begin -->\nold\n<!-- bench-table:end -->\nrest\n"
    (tmp_path / "build" / "bench").mkdir(parents=True)
    (tmp_path / "build" / "bench" / "bench.json").write_text(json.dumps(report))
    new = readme_tables.regenerate(readme, root=tmp_path, names=["bench-table"], log=lambda _: None)
    assert readme_tables.section_body(new, "bench-table") == tables.strip("\n")
    assert new.startswith("intro\n") and new.endswith("<!-- bench-table:end -->\nrest\n")


def test_shortfalls_name_transmit_underruns():
    """A frame on tx that waited for a beat is a shortfall, with where it happened."""
    report = {"data_width": 64, "receive": [], "transmit": [], "transmit_load": [], "mixed": [],
              "latency": [{"frame_bytes": 1518, "write_underrun_cycles": 3}]}
    (line,) = shortfalls(report)
    assert line.startswith("transmit underruns:") and "3 in latency at 1518 B" in line
    report["latency"][0]["write_underrun_cycles"] = 0
    assert shortfalls(report) == []
