"""A random campaign: seeded random scenarios (``tb.scenarios.random_scenario``) on the RTL
NIC (Verilator, 64-bit data path) against the golden model.

Runs only with ``--campaign``. ``NIC_CAMPAIGN_SEEDS`` is how many seeds (default 5),
``NIC_CAMPAIGN_FIRST`` the first (default 0). Each seed is a test of its own, so
``pytest -n 2`` shards the seeds over both cores; the simulator is built once (the first
worker builds, the others wait on its lock) and every seed runs in a fresh simulator process.
A failing seed is reported with the command that replays it (with a waveform and the trace
printed); each seed's summary goes to ``build/sim/campaign/SEED.json``.
"""

import json
import os
import time

import pytest

from tb.nic_run import NicConfig, run_scenario
from flow.tools import BUILD

pytestmark = [pytest.mark.campaign, pytest.mark.cocotb]

SIM, WIDTH = "verilator", 64
CONFIG = NicConfig(data_width=WIDTH, connections=64, processes=16)
FIRST = int(os.environ.get("NIC_CAMPAIGN_FIRST", "0"))
SEEDS = range(FIRST, FIRST + int(os.environ.get("NIC_CAMPAIGN_SEEDS", "5")))


def replay_command(seed: int) -> str:
    return f"python -m tb.sim --sim {SIM} --width {WIDTH} --scenario random:{seed}"


@pytest.mark.parametrize("seed", SEEDS)
def test_random_seed(seed):
    started = time.monotonic()
    try:
        summary = run_scenario(SIM, CONFIG, f"random:{seed}")
    except AssertionError as err:
        raise AssertionError(f"seed {seed} failed; replay: {replay_command(seed)}\n{err}") from None
    summary["seed_wall_s"] = round(time.monotonic() - started, 1)
    out = BUILD / "sim" / "campaign"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{seed}.json").write_text(json.dumps(summary) + "\n")
    assert summary["equal"]
