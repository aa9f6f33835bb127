"""Build the NIC's Verilog and run scenarios on it with cocotb (Icarus Verilog or Verilator).

Used by ``make sim`` (``tb/sim.py``), the test suite (``tests/test_nic_rtl.py``) and the
benchmarks. A simulator build is made once per NIC configuration and reused by every
scenario (each scenario runs in a fresh simulator process, so every run starts from reset
with empty memories); it is rebuilt when the Verilog changes.
"""

import fcntl
import functools
import hashlib
import json
from xml.etree import ElementTree
from pathlib import Path

from cocotb_tools.runner import get_results, get_runner

from hdl.config import NicConfig
from flow.build import to_verilog
from flow.tools import BUILD, REPO, install_simulator_env

__all__ = ["SIMULATORS", "NicConfig", "build", "build_verilog", "run_module", "run_cocotb",
           "run_scenario", "for_icarus"]

SIMULATORS = ("icarus", "verilator")

# Yosys writes combinational logic as `always @*` blocks; in Icarus Verilog 11 such a block
# runs only when one of its inputs changes. Yosys adds a time-zero trigger (a dummy register
# with an initialiser) to the multi-line blocks, but Icarus applies initialisers before any
# process waits, and the one-line blocks that drive part of a vector have no trigger at all.
# A block whose inputs keep their initial values then never runs and its output stays X
# (seen: a ring command's connection number for connection 0). So the Icarus build gives
# every module a register that changes at time zero, after `#0` (when every block waits),
# and makes every `always @*` block read it. (`always_comb` would do the same, but Icarus
# widens its sensitivity to whole vectors and the NIC's part-select assignments then loop.)
_TRIGGER = "icarus_time_zero"


def for_icarus(verilog: str) -> str:
    """`verilog` with every `always @*` block run once at time zero (see above)."""
    out = []
    lines = verilog.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        stripped = line.strip()
        if stripped.startswith("module "):
            while not lines[i].rstrip().endswith(");"):        # the port list
                i += 1
                out.append(lines[i])
            out.append(f"  reg {_TRIGGER};")
            out.append(f"  initial #0 {_TRIGGER} = 1'b0;")
        elif stripped == "always @* begin":
            out.append(f"    if ({_TRIGGER}) begin end")
        elif stripped == "always @*":
            statement = lines[i + 1]
            if not statement.rstrip().endswith(";"):
                raise ValueError(f"unexpected always block at line {i + 1}: {statement!r}")
            out[-1] = line.replace("always @*", "always @* begin")
            out.append(f"    if ({_TRIGGER}) begin end")
            out.append(statement)
            out.append("  end")
            i += 1
        i += 1
    return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=None)
def _verilog(config: NicConfig, variant: str) -> str:
    """The NIC's Verilog, generated once per process (it takes seconds); `variant` keys a
    modified design, which the caller has put in place before the first call."""
    return to_verilog(config.build(debug=True), "nic")


def build(sim: str, config: NicConfig, waves: bool = False, variant: str = "") -> Path:
    """Generate ``nic.v`` for `config` and build it for `sim`; returns the build folder.

    `variant` names a modified design (a test's mutation) so that it gets builds of its own.
    """
    name = config.name + (f"_{variant}" if variant else "")
    folder = BUILD / "cocotb" / name / (sim + ("_waves" if waves else ""))
    verilog = BUILD / "verilog" / f"{name}{'_icarus' if sim == 'icarus' else ''}.v"
    return build_verilog(sim, _verilog(config, variant), folder, verilog, waves)


def build_verilog(sim: str, text: str, folder: Path, verilog: Path, waves: bool = False,
                  toplevel: str = "nic") -> Path:
    """Build the Verilog `text` (top module `toplevel`) for `sim` in `folder`, writing it to `verilog`;
    returns `folder`. Made again only when the Verilog changes; test processes that build
    the same folder at once wait for each other."""
    install_simulator_env()
    if sim == "icarus":
        text = for_icarus(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    stamp = folder / "verilog.sha256"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)            # another test process may be building it
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
        runner.build(sources=[verilog], hdl_toplevel=toplevel, build_dir=folder,
                     timescale=("1ns", "1ps"), build_args=build_args, always=True, waves=waves)
        stamp.write_text(digest)
    return folder


def run_module(sim: str, folder: Path, test_module: str, name: str, env: dict, what: str,
               waves: bool = False, toplevel: str = "nic") -> None:
    """Run cocotb module `test_module` in a fresh simulator process of the build in `folder`;
    raises "`what` (log: ...)" with the failures' messages when a test failed. `name` names
    the results file."""
    results = folder / f"results_{name}.xml"
    results.unlink(missing_ok=True)
    try:
        get_runner(sim).test(hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                             test_module=test_module, build_dir=folder, test_dir=folder,
                             waves=waves, timescale=("1ns", "1ps"),
                             extra_env={"PYTHONPATH": str(REPO), **env}, results_xml=str(results))
    except SystemExit:
        pass                    # the runner exits under pytest when a test failed: see results
    total, failed = get_results(results) if results.exists() else (0, 0)
    if total == 0 or failed:
        messages = ([f.get("message", "") for f in ElementTree.parse(results).iter("failure")]
                    if results.exists() else ["the simulator wrote no results"])
        raise AssertionError(f"{what} (log: {results}):\n" + "\n".join(messages))


def run_cocotb(sim: str, config: NicConfig, test_module: str, name: str, env: dict,
               waves: bool = False, variant: str = "") -> None:
    """Run cocotb module `test_module` on a fresh simulator process of `config`'s build;
    raises with the failures' messages when a test failed. `name` names the results file."""
    folder = build(sim, config, waves, variant)
    run_module(sim, folder, test_module, name,
               {**config.environment(), **env},
               f"{name} failed on {sim} at {config.data_width} bits", waves)


def run_scenario(sim: str, config: NicConfig, scenario: str, waves: bool = False,
                 variant: str = "", settle_limit: int | None = None) -> dict:
    """Run one scenario on the RTL (and the model); returns its summary, raises on a mismatch
    with the scoreboard's report. Its functional coverage goes to
    ``build/sim/coverage/<build>/<sim>/<scenario>.json`` (``python -m tb.coverage report``),
    unless `variant` names a modified design. A `settle_limit` replaces the bench's
    (``NicBench.settle_limit``); such a run's outputs go to a folder of their own."""
    build_name = config.name + (f"_{variant}" if variant else "")
    out = BUILD / "sim" / build_name / sim
    env = {"NIC_SCENARIO": scenario, "NIC_OUT": str(out)}
    results = scenario
    if settle_limit is not None:
        results = f"{scenario}_settle{settle_limit}"
        out = out / f"settle{settle_limit}"
        env.update(NIC_SETTLE_LIMIT=str(settle_limit), NIC_OUT=str(out))
    elif not variant:           # a mutant's runs say nothing of the design's coverage
        env["NIC_COVERAGE"] = str(BUILD / "sim" / "coverage" / build_name / sim)
    try:
        run_cocotb(sim, config, "tb.nic_cocotb", results, env, waves, variant)
    except AssertionError as err:
        raise AssertionError(f"scenario {err} (traces and pcaps: {out})") from None
    return json.loads((out / f"{scenario}.json").read_text())
