"""A random campaign: seeded random scenarios (``tb.scenarios.random_scenario``) on the RTL
NIC against the golden model (``tb/campaign.py``).

Runs only with ``--campaign`` (``make campaign N= SEED= [SIM=] [WIDTH=]``).
``NIC_CAMPAIGN_SEEDS`` is how many seeds (default 5), ``NIC_CAMPAIGN_FIRST`` the first
(default 0), ``NIC_CAMPAIGN_SIM`` the simulator (default verilator), ``NIC_CAMPAIGN_WIDTH``
the data path (default 64). Each seed is a test of its own, so ``pytest -n 2`` shards the
seeds over both cores; the simulator is built once (the first worker builds, the others wait
on its lock) and every seed runs in a fresh simulator process. A failing seed is reported
with its first mismatch, the pcapngs of both wires, its shortest failing prefix
``random:SEED:K`` with the command that replays it, and a waveform of that prefix; each
seed's summary goes to ``build/sim/campaign/SIM_WIDTH/SEED.json``, the campaign's to
``build/sim/campaign/summary.md`` (``tests/conftest.py``'s terminal summary).
"""

import json

import pytest

import tb.campaign
from tb.campaign import SEEDS, describe_failure, run_seed
from tb.scenarios import random_scenario


@pytest.mark.campaign
@pytest.mark.cocotb
@pytest.mark.parametrize("seed", SEEDS)
def test_random_seed(seed, record_property):
    summary = run_seed(seed)
    record_property("campaign", summary)        # for the summary, from any xdist worker
    if not summary["equal"]:
        raise AssertionError(f"{describe_failure(summary)}\n\nthe scoreboard's report:\n"
                             f"{summary['report']}")


def _fake_rtl(monkeypatch, tmp_path, fails_from):
    """tb.campaign without a simulator: a prefix random:SEED:K fails from K = `fails_from`."""
    runs = []

    def run_scenario(sim, config, name, waves=False, variant=""):
        runs.append(name)
        k = int(name.split(":")[2]) if name.count(":") == 2 else random_scenario(int(name[7:])).steps
        if k >= fails_from:
            raise AssertionError("scenario random: RTL differs from the model\ntraces differ at "
                                 "entry 3:\nexpected | actual\n!a | b")
        return {"equal": True, "cycles": 10, "segments": 2, "trace_entries": 5}
    monkeypatch.setattr(tb.campaign, "run_scenario", run_scenario)
    (tmp_path / "verilog.sha256").write_text("0123abcd")
    monkeypatch.setattr(tb.campaign, "build", lambda sim, config: tmp_path)
    monkeypatch.setattr(tb.campaign, "_waveform", lambda sim, config, name, variant, out:
                        str(out / f"{name}.fst"))
    monkeypatch.setattr(tb.campaign, "BUILD", tmp_path)
    monkeypatch.setattr(tb.campaign, "OUT", tmp_path / "campaign")
    return runs


@pytest.mark.parametrize("fails_from", [0, 1, 37, "all"])
def test_shrinking_finds_the_shortest_failing_prefix_in_8_runs(monkeypatch, tmp_path, fails_from):
    steps = random_scenario(11).steps
    fails_from = steps if fails_from == "all" else fails_from
    runs = _fake_rtl(monkeypatch, tmp_path, fails_from)
    found = run_seed(11)
    assert found["shortest_prefix"] == fails_from and len(runs) <= 1 + 8 + 1
    # (the simulator and width a campaign's settings give: `make campaign WIDTH=8` runs this too)
    assert found["replay"] == (f"python -m tb.sim --sim {tb.campaign.SIM} --width {tb.campaign.WIDTH} "
                               "--scenario "
                               + ("random:11" if fails_from == steps else f"random:11:{fails_from}"))
    assert found["first_mismatch"].splitlines()[1:] == ["  model: a", "  RTL:   b"]
    assert "waveform" in found and not found["equal"]


def test_the_summary_counts_the_seeds(monkeypatch, tmp_path):
    _fake_rtl(monkeypatch, tmp_path, 10)
    records = {3: run_seed(3), 4: None}
    records[3]["equal"] = True
    records[5] = run_seed(5)
    text = tb.campaign.write_summary(records, 36.0)
    summary = json.loads((tmp_path / "campaign" / "summary.json").read_text())
    assert (summary["run"], summary["passed"], summary["failed"], summary["no_result"]) == (3, 1, 2, [4])
    assert summary["scenarios_per_hour"] == 300 and summary["failures"][0]["seed"] == 5
    assert "| 3 | 1 | 2 | 36.0 s | 300.0 |" in text and "random:5:10" in text
    assert summary["verilog_sha256"] == ["0123abcd"] and "`0123abcd`" in text
