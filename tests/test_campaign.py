"""A random campaign: seeded random scenarios (``tb.scenarios.random_scenario``) on the RTL
NIC (Verilator, 64-bit data path) against the golden model.

Runs only with ``--campaign``. ``NIC_CAMPAIGN_SEEDS`` is how many seeds (default 5),
``NIC_CAMPAIGN_FIRST`` the first (default 0); ``NIC_CAMPAIGN_ALL=1`` draws the length
classes still pending a fix too (``random:SEED:all``). The simulator is built once; every seed runs
in a fresh simulator process. A failing seed is printed with the command that replays it
(with a waveform and the trace printed).
"""

import json
import os
import time

import pytest

from tb.nic_run import NicConfig, run_scenario
from tb.tools import BUILD

pytestmark = [pytest.mark.campaign, pytest.mark.cocotb]

SIM, WIDTH = "verilator", 64
CONFIG = NicConfig(data_width=WIDTH, connections=64, processes=16)


def scenario_name(seed: int) -> str:
    return f"random:{seed}{':all' if os.environ.get('NIC_CAMPAIGN_ALL') == '1' else ''}"


def replay_command(seed: int) -> str:
    return f"python -m tb.sim --sim {SIM} --width {WIDTH} --scenario {scenario_name(seed)}"


def test_random_campaign():
    count = int(os.environ.get("NIC_CAMPAIGN_SEEDS", "5"))
    first = int(os.environ.get("NIC_CAMPAIGN_FIRST", "0"))
    failures, summaries = [], []
    for seed in range(first, first + count):
        started = time.monotonic()
        try:
            summary = run_scenario(SIM, CONFIG, scenario_name(seed))
        except AssertionError as err:
            summary = {"scenario": scenario_name(seed), "equal": False}
            failures.append(f"seed {seed} failed; replay: {replay_command(seed)}\n{err}")
        summary["seed_wall_s"] = round(time.monotonic() - started, 1)
        summaries.append(summary)
        print(f"seed {seed}: {'equal' if summary['equal'] else 'MISMATCH'} in "
              f"{summary['seed_wall_s']} s", flush=True)
    (BUILD / "sim" / f"campaign_{SIM}_{WIDTH}.json").write_text(json.dumps(summaries, indent=1) + "\n")
    assert not failures, "\n\n".join(failures)
