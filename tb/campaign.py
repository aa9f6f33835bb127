"""Random campaigns (``make campaign``, ``tests/test_campaign.py``): what a failing seed gets,
and the summary of a run.

A seed ``random:SEED`` (``tb.scenarios.random_scenario``) runs on the RTL and on the model.
When the traces differ, :func:`investigate` gathers what a person needs to act on it, with at
most ``SHRINK_RUNS`` more runs of the seed and one with a waveform:

- the first mismatch (the first differing entry of both traces, from the scoreboard's report);
- the pcapng of both wires (the RTL run's and the model's, written by ``tb.nic_cocotb``);
- the shortest failing prefix ``random:SEED:K`` (bisection over K, the number of random steps
  kept; the set-up and the closing calls stay), with the one-line command that replays it;
- a waveform of that prefix (a second simulator build with tracing, made on the first failure).

Each seed's summary (cycles, segments, trace entries, wall time, and for a failing seed the
above) goes to ``build/sim/campaign/SIM_WIDTH/SEED.json`` and into the test's report (a
``record_property``, so it reaches the controller from xdist workers, local or remote);
:func:`write_summary` (called by the terminal summary hook in ``tests/conftest.py`` once
pytest is done) writes ``build/sim/campaign/summary.md`` and ``summary.json`` (and a copy in
``SIM_WIDTH/``): seeds run, passed and failed, scenarios per hour (wall), clocks, segments
and trace entries compared, and every failing seed's findings.

The campaign's simulator and width come from ``NIC_CAMPAIGN_SIM`` (default verilator) and
``NIC_CAMPAIGN_WIDTH`` (default 64), its seeds from ``NIC_CAMPAIGN_SEEDS`` (how many, default
5) and ``NIC_CAMPAIGN_FIRST`` (the first, default 0).
"""

import fcntl
import json
import os
import re
import shutil
import time
from pathlib import Path

from tb.nic_run import NicConfig, build, run_scenario
from tb.scenarios import random_scenario
from flow.tools import BUILD

__all__ = ["SIM", "WIDTH", "SEEDS", "CONFIG", "OUT", "SHRINK_RUNS", "replay_command",
           "first_mismatch", "shrink", "investigate", "describe_failure", "run_seed",
           "write_summary"]

SIM = os.environ.get("NIC_CAMPAIGN_SIM", "verilator")
WIDTH = int(os.environ.get("NIC_CAMPAIGN_WIDTH", "64"))
FIRST = int(os.environ.get("NIC_CAMPAIGN_FIRST", "0"))
SEEDS = range(FIRST, FIRST + int(os.environ.get("NIC_CAMPAIGN_SEEDS", "5")))
# the configuration `python -m tb.sim` builds, so that the replay command replays exactly
CONFIG = NicConfig(data_width=WIDTH, connections=64, processes=16)
OUT = BUILD / "sim" / "campaign"
SHRINK_RUNS = 8             # bisection over at most 2**8 - 1 = 255 steps (a program has <= 160)

if SIM not in ("icarus", "verilator"):
    raise ValueError(f"NIC_CAMPAIGN_SIM must be icarus or verilator, not {SIM!r}")
if WIDTH not in (8, 64):
    raise ValueError(f"NIC_CAMPAIGN_WIDTH must be 8 or 64, not {WIDTH!r}")


def replay_command(sim: str, width: int, scenario: str) -> str:
    """The one line that replays `scenario` (with a waveform and the trace printed)."""
    return f"python -m tb.sim --sim {sim} --width {width} --scenario {scenario}"


def first_mismatch(report: str) -> str:
    """The first differing entry of both traces in a scoreboard report (``compare_traces``:
    a header, then lines ``<mark>expected | actual`` with ``!`` from the first difference);
    the report's first line when it has no trace comparison (the run failed otherwise)."""
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("traces differ at entry"):
            first = next((row for row in lines[i + 2:] if row.startswith("!")), None)
            if first is not None:
                expected, _, actual = first[1:].partition(" | ")
                return f"{line}\n  model: {expected.rstrip()}\n  RTL:   {actual.rstrip()}"
            return line
    return lines[0] if lines else report


def _fails(sim: str, config: NicConfig, scenario: str, variant: str) -> bool:
    try:
        run_scenario(sim, config, scenario, variant=variant)
    except AssertionError:
        return True
    return False


def shrink(sim: str, config: NicConfig, seed: int, variant: str = "",
           runs: int = SHRINK_RUNS) -> tuple[int, int]:
    """The shortest failing prefix of ``random:SEED`` (known to fail): bisection over K, the
    random steps kept, assuming that a prefix fails once a shorter one does. Returns
    ``(K, runs made)``; K is exact when the runs sufficed (K = the program's steps when no
    shorter prefix fails), else the shortest failing prefix found."""
    passing, failing = -1, random_scenario(seed).steps
    made = 0
    while failing - passing > 1 and made < runs:
        middle = (passing + failing) // 2
        made += 1
        if _fails(sim, config, f"random:{seed}:{middle}", variant):
            failing = middle
        else:
            passing = middle
    return failing, made


def _waveform(sim: str, config: NicConfig, scenario: str, variant: str, out: Path) -> str:
    """Run `scenario` once more with a waveform; returns the waveform's path (copied next to
    the traces). One run at a time: the waveform build writes its dump into its folder."""
    folder = build(sim, config, waves=True, variant=variant)
    with open(folder.parent / f"{folder.name}.run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for old in list(folder.glob("*.fst")) + list(folder.glob("*.vcd")):
            old.unlink()
        try:
            run_scenario(sim, config, scenario, waves=True, variant=variant)
        except AssertionError:
            pass                                    # it fails: that is why it is looked at
        dumps = sorted(folder.glob("*.fst")) + sorted(folder.glob("*.vcd"))
        if not dumps:
            return f"(the simulator wrote no waveform into {folder})"
        target = out / f"{scenario}{dumps[-1].suffix}"
        shutil.copy(dumps[-1], target)
    return str(target)


def investigate(sim: str, config: NicConfig, seed: int, report: str, variant: str = "",
                waves: bool = True) -> dict:
    """What a failing seed's campaign entry says: its first mismatch, the pcapngs of both
    wires, the shortest failing prefix K with its replay command, and (with `waves`) a
    waveform of that prefix."""
    name = f"random:{seed}"
    out = BUILD / "sim" / (config.name + (f"_{variant}" if variant else "")) / sim
    pcapngs = [str(out / f"{name}.{side}.pcapng") for side in ("rtl", "model")]
    found = {"seed": seed, "equal": False, "first_mismatch": first_mismatch(report),
             "pcapngs": [p for p in pcapngs if Path(p).exists()], "trace": str(out / f"{name}.trace")}
    started = time.monotonic()
    k, runs = shrink(sim, config, seed, variant)
    shortest = name if k == random_scenario(seed).steps else f"{name}:{k}"
    found.update(steps=random_scenario(seed).steps, shortest_prefix=k, shrink_runs=runs,
                 shortest=shortest, replay=replay_command(sim, config.data_width, shortest))
    if waves:
        found["waveform"] = _waveform(sim, config, shortest, variant, out)
    found["investigate_wall_s"] = round(time.monotonic() - started, 1)
    return found


def describe_failure(found: dict) -> str:
    """A failing seed's findings as the lines a person reads."""
    lines = [f"seed {found['seed']} failed: {found['first_mismatch']}",
             f"  pcapngs: {', '.join(found['pcapngs']) or '(none written)'}",
             f"  shortest failing prefix: {found['shortest_prefix']} of {found['steps']} random "
             f"steps ({found['shrink_runs']} runs); replay: {found['replay']}"]
    if "waveform" in found:
        lines.append(f"  waveform: {found['waveform']}")
    return "\n".join(lines)


def run_seed(seed: int, sim: str = SIM, config: NicConfig = CONFIG) -> dict:
    """Run ``random:SEED`` and return its summary (also written to ``OUT/SIM_WIDTH/SEED.json``):
    the RTL run's cycles, segments and trace entries, ``equal``, the wall time (and apart, the
    time spent waiting for the simulator build, ``build_wait_s``), and for a
    failing seed what :func:`investigate` found and the scoreboard's ``report``."""
    folder = OUT / f"{sim}_{config.data_width}"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    built_in = build(sim, config)   # made once (by the first worker; the others wait for it)
    built, started = time.monotonic() - started, time.monotonic()
    digest = built_in / "verilog.sha256"
    try:
        summary = run_scenario(sim, config, f"random:{seed}")
        report = None
    except AssertionError as err:
        report = str(err)
        rtl_summary = BUILD / "sim" / config.name / sim / f"random:{seed}.json"
        summary = json.loads(rtl_summary.read_text()) if rtl_summary.exists() else {}
        summary["equal"] = False
    summary["seed"] = seed
    # the RTL it ran on: campaigns of other days on the same Verilog add up
    summary["verilog_sha256"] = digest.read_text().strip() if digest.exists() else None
    summary["seed_wall_s"] = round(time.monotonic() - started, 1)
    summary["build_wait_s"] = round(built, 1)
    if report is not None:
        summary.update(investigate(sim, config, seed, report))
        summary["report"] = report
    (folder / f"{seed}.json").write_text(json.dumps(summary) + "\n")
    return summary


def write_summary(records: dict, wall_s: float, sim: str = SIM, width: int = WIDTH) -> str:
    """Write ``OUT/summary.md`` and ``summary.json`` for a campaign: `records` maps each seed
    pytest ran to its summary (`run_seed`; None when the test ended without one), `wall_s`
    is the campaign's wall time. Returns the Markdown."""
    done = [r for r in records.values() if r is not None]
    failed = [r for r in done if not r.get("equal")]
    build_s = max((r.get("build_wait_s", 0) for r in done), default=0)   # the longest wait
    missing = sorted(s for s, r in records.items() if r is None)
    total = {key: sum(r.get(key, 0) for r in done) for key in ("cycles", "segments", "trace_entries")}
    summary = {
        "simulator": sim, "width": width, "seeds": sorted(records),
        "run": len(records), "passed": len(done) - len(failed),
        "failed": len(failed) + len(missing), "no_result": missing,
        "wall_s": round(wall_s, 1),
        "scenarios_per_hour": round(len(records) * 3600 / wall_s, 1) if wall_s > 0 else None,
        "build_s": round(build_s, 1),
        "scenarios_per_hour_after_build": (round(len(records) * 3600 / (wall_s - build_s), 1)
                                           if wall_s > build_s else None),
        "seed_wall_s": round(sum(r.get("seed_wall_s", 0) for r in done), 1),
        "clocks": total["cycles"], "segments": total["segments"],
        "trace_entries": total["trace_entries"],
        "verilog_sha256": sorted({str(r.get("verilog_sha256")) for r in done}),
        "failures": [{k: r[k] for k in ("seed", "first_mismatch", "pcapngs", "shortest_prefix",
                                         "steps", "shrink_runs", "replay", "waveform") if k in r}
                     for r in failed],
    }
    seeds = sorted(records)
    span = f"seeds {seeds[0]} to {seeds[-1]}" if seeds else "no seeds"
    md = [f"# Campaign: {span} on {sim} at {width} bits", "",
          "| seeds run | passed | failed | wall | scenarios/hour | clocks | segments "
          "| trace entries compared |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|",
          f"| {summary['run']} | {summary['passed']} | {summary['failed']} | {summary['wall_s']} s "
          f"| {summary['scenarios_per_hour']} | {summary['clocks']:,} | {summary['segments']:,} "
          f"| {summary['trace_entries']:,} |", "",
          f"Scenarios per hour after the simulator build ({summary['build_s']} s): "
          f"{summary['scenarios_per_hour_after_build']}. Per-seed wall time "
          f"{summary['seed_wall_s']} s in all (over the workers).", "",
          "The generated Verilog (sha256; seeds run on the same Verilog on other days add up): "
          + ", ".join(f"`{d}`" for d in summary["verilog_sha256"]) + ".", ""]
    if missing:
        md += [f"No result (the test ended before its seed was run): seeds {missing}.", ""]
    for r in failed:
        md += ["```", describe_failure(r) if "replay" in r else f"seed {r['seed']} failed", "```", ""]
    text = "\n".join(md)
    for folder in (OUT, OUT / f"{sim}_{width}"):        # the last campaign, and the last per set-up
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        (folder / "summary.md").write_text(text)
    return text
