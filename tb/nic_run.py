"""Build the NIC's Verilog and run scenarios on it with cocotb (Icarus Verilog or Verilator).

Used by ``make sim`` (``tb/sim.py``), the test suite (``tests/test_nic_rtl.py``) and the
benchmarks. A simulator build is made once per NIC configuration and reused by every
scenario (each scenario runs in a fresh simulator process, so every run starts from reset
with empty memories); it is rebuilt when the Verilog changes.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.runner import get_results, get_runner

from hdl.build import to_verilog
from tb.tools import BUILD, REPO, install_simulator_env

__all__ = ["NicConfig", "build", "run_scenario", "for_icarus"]

# Yosys makes every `always @*` block run at time zero through a dummy register declared with
# an initialiser (`reg \$auto$...dump_module$N = 0;`). Icarus Verilog 11 applies declaration
# initialisers before any process starts, so that event is never seen and a combinational
# output that depends only on registers that keep their initial value stays X. An `initial`
# assignment is an event at time zero, as Yosys intends.
_TIME_ZERO_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
                                re.MULTILINE)


def for_icarus(verilog: str) -> str:
    """`verilog` with Yosys's time-zero triggers as `initial` assignments (see above)."""
    return _TIME_ZERO_TRIGGER.sub(r"\1reg \2;\n\1initial \2 = 1'b0;", verilog)


@dataclass(frozen=True)
class NicConfig:
    data_width: int = 64
    connections: int = 64
    processes: int = 16

    @property
    def name(self):
        return f"nic_w{self.data_width}_c{self.connections}_p{self.processes}"

    def component(self):
        from hdl.nic import NIC
        from tb.scenarios import NIC_POLICY
        return NIC(data_width=self.data_width, connections=self.connections,
                   processes=self.processes, policy=NIC_POLICY)


def build(sim: str, config: NicConfig, waves: bool = False) -> Path:
    """Generate ``nic.v`` for `config` and build it for `sim`; returns the build folder."""
    install_simulator_env()
    folder = BUILD / "cocotb" / config.name / (sim + ("_waves" if waves else ""))
    verilog = BUILD / "verilog" / f"{config.name}{'_icarus' if sim == 'icarus' else ''}.v"
    text = to_verilog(config.component(), "nic")
    if sim == "icarus":
        text = for_icarus(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    stamp = folder / "verilog.sha256"
    if stamp.exists() and stamp.read_text() == digest and verilog.exists():
        return folder
    verilog.parent.mkdir(parents=True, exist_ok=True)
    verilog.write_text(text)
    build_args = []
    if sim == "verilator":
        # lint is `make lint`'s job; here only the simulation model is built
        build_args = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "unique",
                      "--x-initial", "unique", "-O3"]
        if waves:
            build_args += ["--trace-fst", "--trace-structs"]
    runner = get_runner(sim)
    runner.build(verilog_sources=[verilog], hdl_toplevel="nic", build_dir=folder,
                 timescale=("1ns", "1ps"), build_args=build_args, always=True, waves=waves)
    stamp.write_text(digest)
    return folder


def run_scenario(sim: str, config: NicConfig, scenario: str, waves: bool = False) -> dict:
    """Run one scenario on the RTL (and the model); returns its summary, raises on a mismatch."""
    folder = build(sim, config, waves)
    out = BUILD / "sim" / config.name / sim
    runner = get_runner(sim)
    results = runner.test(hdl_toplevel="nic", hdl_toplevel_lang="verilog",
                          test_module="tb.nic_cocotb", build_dir=folder,
                          test_dir=folder, waves=waves, timescale=("1ns", "1ps"),
                          extra_env={"PYTHONPATH": str(REPO), "NIC_SCENARIO": scenario,
                                     "NIC_WIDTH": str(config.data_width),
                                     "NIC_CONNECTIONS": str(config.connections),
                                     "NIC_PROCESSES": str(config.processes),
                                     "NIC_OUT": str(out)},
                          results_xml=f"results_{scenario}.xml")
    total, failed = get_results(results)
    summary_file = out / f"{scenario}.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    if total == 0 or failed:
        raise AssertionError(f"scenario {scenario} failed on {sim} at {config.data_width} bits: "
                             f"see the log above, {results} and {out}")
    return summary
