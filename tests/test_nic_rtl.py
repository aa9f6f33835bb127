"""The integrated NIC's RTL against the golden model: every scenario, both simulators, both widths.

Each scenario (``tb/scenarios.py``) runs on the generated Verilog under cocotb with the OS
driver (``tb/nic_os.py``) and on the model; the scoreboard compares every call result and
every transmitted segment. One simulator build per width serves all scenarios, each in a
fresh simulator process. That the comparison can fail at all is shown by the injected bugs of
``tests/test_mutants.py``.
"""

import json

import pytest

from tb.nic_run import SIMULATORS, NicConfig, run_scenario
from tb.scenarios import SCENARIOS
from flow.tools import BUILD

WIDTHS = (64, 8)
CONFIGS = {width: NicConfig(data_width=width, connections=64, processes=16) for width in WIDTHS}

pytestmark = pytest.mark.cocotb


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("sim", SIMULATORS)
def test_scenarios_equal_the_model(sim, width):
    failures, summaries = [], []
    for name in SCENARIOS:
        try:
            summaries.append(run_scenario(sim, CONFIGS[width], name))
        except AssertionError as err:
            failures.append(f"{name}: {err}")
    report = BUILD / "sim" / f"scenarios_{sim}_{width}.json"
    report.write_text(json.dumps(summaries, indent=1) + "\n")
    assert not failures, "\n".join(failures)
    assert len(summaries) == len(SCENARIOS) and all(s["equal"] for s in summaries)

