"""`make` alone prints the help, and the help names every target of the Makefile."""

import re
import subprocess

from flow.tools import REPO


def test_bare_make_prints_help_naming_every_target():
    out = subprocess.run(["make", "-s", "-C", str(REPO)], capture_output=True, text=True, check=True).stdout
    assert out == subprocess.run(["make", "-s", "-C", str(REPO), "help"], capture_output=True,
                                 text=True, check=True).stdout
    phony = re.search(r"^\.PHONY:(.*)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    for target in phony:
        if target != "sysdeps":                      # internal: deps names what it installs
            assert re.search(rf"^\s+make {target}\b", out, re.M), f"make help does not list {target}"
    for variable in ("SIM=", "WIDTH=", "SCENARIO=", "QUICK=1", "PYTEST_ARGS=", "SYNTH_JOBS="):
        assert variable in out, f"make help does not name {variable}"
