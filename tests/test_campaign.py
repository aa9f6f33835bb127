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

import pytest

from tb.campaign import SEEDS, describe_failure, run_seed

pytestmark = [pytest.mark.campaign, pytest.mark.cocotb]


@pytest.mark.parametrize("seed", SEEDS)
def test_random_seed(seed, record_property):
    summary = run_seed(seed)
    record_property("campaign", summary)        # for the summary, from any xdist worker
    if not summary["equal"]:
        raise AssertionError(f"{describe_failure(summary)}\n\nthe scoreboard's report:\n"
                             f"{summary['report']}")
