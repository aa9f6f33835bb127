"""`make verilog` and `make lint`: every entry of flow.build.BLOCKS converts and is lint-clean.

The files go where `make verilog` writes them (build/verilog/), stamped with the digest of
their sources, so a `make verilog` or `make lint` after the suite finds them up to date.
"""

import re
from pathlib import Path

import pytest

from flow.build import BLOCKS, LINT_WAIVERS, build
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
