"""The NIC top: Verilog for both widths, lint-clean with only the named waivers.

Its behaviour is compared with the golden model scenario by scenario in tests/test_nic_rtl.py;
here is what can be checked without a simulator run.
"""

import pytest

from flow.build import lint_component
from hdl.nic import COUNTERS, NIC
from model.policy import Policy
from flow.tools import BUILD


@pytest.mark.parametrize("data_width", [64, 8])
def test_lint(data_width):
    nic = NIC(data_width=data_width, connections=8, processes=8)
    lint_component(nic, f"nic_{data_width}", BUILD / "test" / "nic")


def test_counters_are_named_once():
    names = [name for name, _ in COUNTERS]
    assert len(names) == len(set(names)) and "drop_rx_fifo_full" in names and "drop_bad_l4_checksum" in names


def test_rejects_bad_parameters():
    with pytest.raises(TypeError, match="Tick length must be a non-negative number of cycles, not -1"):
        NIC(tick_cycles=-1)
    with pytest.raises(ValueError, match="Tick length must be 0 or at least 69 cycles with 64 "
                                         "connections"):
        NIC(tick_cycles=68)
    with pytest.raises(TypeError, match="Policy snd_buffer must be a power of two from 64 to 1048576"):
        NIC(policy=Policy(rcv_buffer=2048, snd_buffer=2 ** 21, udp_rcv_buffer=2048))
    with pytest.raises(TypeError, match="Policy snd_buffer must be a power of two from 64 to 1048576"):
        NIC(policy=Policy(rcv_buffer=2048, snd_buffer=3000, udp_rcv_buffer=2048))
