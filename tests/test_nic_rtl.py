"""The integrated NIC's RTL against the golden model: every scenario, both simulators, both widths.

Each scenario (``tb/scenarios.py``) runs on the generated Verilog under cocotb with the OS
driver (``tb/nic_os.py``) and on the model; the scoreboard compares every call result and
every transmitted segment. One simulator build per width serves all scenarios, each in a
fresh simulator process. A mutated engine (ACK numbers off by one) must make the comparison
fail: that shows the comparison can fail at all.
"""

import json
import re
from pathlib import Path

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


def test_a_broken_ack_number_is_caught(monkeypatch):
    """The scoreboard is not a rubber stamp: ACK numbers off by one must fail the comparison."""
    import hdl.nic
    import hdl.engine.tcp_engine as engine_module
    source = Path(engine_module.__file__).read_text()
    mutated, count = re.subn(r"hdr\.ack\.eq\(e_ack\)", "hdr.ack.eq(e_ack + 1)", source)
    assert count == 1, "the mutation no longer applies: update this test"
    namespace = {"__name__": "hdl.engine.tcp_engine_mutant", "__package__": "hdl.engine"}
    exec(compile(mutated, "tcp_engine_mutant.py", "exec"), namespace)
    monkeypatch.setattr(hdl.nic, "TcpEngine", namespace["TcpEngine"])
    config = NicConfig(data_width=64, connections=8, processes=8)
    with pytest.raises(AssertionError, match="RTL differs from the model") as failure:
        run_scenario("icarus", config, "handshake", variant="ack_off_by_one")
    # the first difference is the dut's first ACK (the SYN carries no ACK number)
    assert re.search(r"!\('tx', \d+, 'dut', 'tcp', \d+, 8, 'ACK'.*\| \('tx', \d+, 'dut', 'tcp', \d+, 9, 'ACK'",
                     str(failure.value)), str(failure.value)
