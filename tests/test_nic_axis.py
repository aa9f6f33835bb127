"""``nic_axis``, the NIC with AXI4-Stream ports towards the MAC, on both simulators.

cocotbext-axi's AxiStreamSource and AxiStreamSink send real Ethernet frames through it
(tb/nic_axis_cocotb.py): broadcasts reach host software whole, a frame the MAC marks bad
with ``tuser`` is dropped and counted, raw frames from host software leave on ``m_axis_tx``.
"""

import re

import pytest

from flow.build import to_verilog
from hdl.nic_axis import NicAxis
from hdl.config import NIC_POLICY
from tb.nic_run import SIMULATORS, build_verilog, run_module
from flow.tools import BUILD

WIDTH = 64
NAME = f"nic_axis_w{WIDTH}_c4_p4"


def nic_axis():
    return NicAxis(data_width=WIDTH, connections=4, processes=4,
                   policy=NIC_POLICY)


def test_ports_are_axi_stream():
    text = to_verilog(nic_axis(), "nic_axis")
    for port in ("input [63:0] s_axis_rx_tdata", "input [7:0] s_axis_rx_tkeep", "input s_axis_rx_tlast",
                 "input s_axis_rx_tvalid", "output s_axis_rx_tready", "input s_axis_rx_tuser",
                 "output [63:0] m_axis_tx_tdata", "output [7:0] m_axis_tx_tkeep", "output m_axis_tx_tlast",
                 "output m_axis_tx_tvalid", "input m_axis_tx_tready", "output m_axis_tx_tuser",
                 "input host_cmd__valid", "output ctl_rsp__valid", "output [31:0] rx_bad_frames"):
        assert re.search(rf"^\s*{re.escape(port)};", text, re.M), f"nic_axis has no port `{port}`"


@pytest.mark.cocotb
@pytest.mark.parametrize("sim", SIMULATORS)
def test_frames_through_axi_stream(sim):
    folder = BUILD / "cocotb" / NAME / sim
    verilog = BUILD / "verilog" / f"{NAME}{'_icarus' if sim == 'icarus' else ''}.v"
    build_verilog(sim, to_verilog(nic_axis(), "nic_axis"), folder, verilog, toplevel="nic_axis")
    run_module(sim, folder, "tb.nic_axis_cocotb", "nic_axis", {"NIC_WIDTH": str(WIDTH)},
               f"nic_axis failed on {sim}", toplevel="nic_axis")


def test_readme_port_map_is_current():
    from flow.port_map import port_map
    from flow.tools import REPO
    readme = (REPO / "README.md").read_text()
    begin = readme.index("<!-- port-map:begin -->\n") + len("<!-- port-map:begin -->\n")
    assert readme[begin:readme.index("<!-- port-map:end -->")] == port_map(), \
        "README.md's port map is stale: run `python -m flow.port_map --readme`"
