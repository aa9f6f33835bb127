"""The integrated NIC's RTL against the golden model: every scenario, both simulators, both widths.

Each scenario (``tb/scenarios.py``) runs on the generated Verilog under cocotb with the OS
driver (``tb/nic_os.py``) and on the model; the scoreboard compares every call result and
every transmitted segment. One build per simulator and width serves all scenarios, each in a
fresh simulator process. That the comparison can fail at all is shown by the injected bugs of
``tests/test_mutants.py``.
"""

import pytest

from hdl.config import LINUX_LIKE_CONFIG
from tb.nic_run import SIMULATORS, NicConfig, run_scenario
from tb.scenarios import SCENARIOS

WIDTHS = (64, 8)
CONFIGS = {width: NicConfig(data_width=width, connections=64, processes=16) for width in WIDTHS}

pytestmark = pytest.mark.cocotb


# `big_window` moves 96 KiB each way over a 300-tick round trip: 48 round trips on 2 KiB rings
# (30,000 ticks), so it runs on the build with rings that hold it (BIG_RING_CONFIG) instead.
REFERENCE_SCENARIOS = [name for name in SCENARIOS if name != "big_window"]


# One test per scenario (not one per build) so that pytest-xdist shares the slow 8-bit Icarus
# runs between both cores; the first test of a build builds it, the others wait on its lock.
@pytest.mark.parametrize("scenario", REFERENCE_SCENARIOS)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("sim", SIMULATORS)
def test_scenario_equals_the_model(sim, width, scenario):
    summary = run_scenario(sim, CONFIGS[width], scenario)      # raises with the report on a mismatch
    assert summary["equal"] and summary["scenario"] == scenario


# The NIC closer to Linux (LINUX_LIKE_CONFIG: Linux's RTO, window scaling, four out-of-order
# ranges, SACK) on the scenarios whose retransmission timing, windows, reassembly or options
# it changes: its own build on each simulator, 64 bits.
LINUX_SCENARIOS = ("long_path", "lossy_wire", "rto_backoff", "zero_window", "crafted_states",
                   "random_1", "window_scaled", "out_of_order", "sack_holes")


@pytest.mark.parametrize("scenario", LINUX_SCENARIOS)
@pytest.mark.parametrize("sim", SIMULATORS)
def test_scenario_on_the_linux_like_nic_equals_the_model(sim, scenario):
    summary = run_scenario(sim, LINUX_LIKE_CONFIG, scenario)
    assert summary["equal"] and summary["scenario"] == scenario


# The Linux-like NIC with 128 KiB rings (window scale 2) and 8 connections: windows beyond
# 64 KiB, more than 64 KiB in flight, the unscaled window's 65535 cap.
BIG_RING_CONFIG = NicConfig(data_width=64, connections=8, processes=16, window=128 * 1024,
                            linux_rto=True, window_scaling=True, sack=True)
BIG_RING_SCENARIOS = ("big_window", "window_scaled", "long_path")


@pytest.mark.parametrize("scenario", BIG_RING_SCENARIOS)
@pytest.mark.parametrize("sim", SIMULATORS)
def test_scenario_with_rings_above_64_kib_equals_the_model(sim, scenario):
    summary = run_scenario(sim, BIG_RING_CONFIG, scenario)
    assert summary["equal"] and summary["scenario"] == scenario


@pytest.mark.campaign
def test_one_mib_each_way_over_a_long_path_with_linux_rto():
    """Issue 15's long path on the RTL: 1 MiB each way over a 300-tick round trip, equal to
    the model, whose run resends only what the silent peer lost (tests/model/test_rtt.py)."""
    summary = run_scenario("verilator", LINUX_LIKE_CONFIG, "long_path:1048576")
    assert summary["equal"]


def test_a_write_longer_than_a_settle():
    """A host write of more beats than the bench's settle limit (65,546 bytes is 8,194
    beats at 64 bits): a settle allows a clock per queued beat beyond its limit (a 1 MiB
    write at 8 bits, drained beat by beat, once timed out: random:3003 and random:3015)."""
    summary = run_scenario("verilator", CONFIGS[64], "host_limits", settle_limit=4000)
    assert summary["equal"]
