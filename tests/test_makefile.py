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
    for variable in ("SIM=", "WIDTH=", "SCENARIO=", "QUICK=1", "PYTEST_ARGS=", "SYNTH_JOBS=", "HOSTS="):
        assert variable in out, f"make help does not name {variable}"


def test_campaign_hosts_carry_the_settings():
    """`make campaign HOSTS=...` adds each gateway to two local workers, with the campaign's
    settings in its spec (a remote worker inherits no environment); without HOSTS, `-n 2`."""
    def command(*args):
        out = subprocess.run(["make", "-n", "-s", "-C", str(REPO), "campaign", *args],
                             capture_output=True, text=True, check=True).stdout
        return out[out.index("-m pytest"):]
    settings = "//env:NIC_CAMPAIGN_SEEDS=3//env:NIC_CAMPAIGN_FIRST=7//env:NIC_CAMPAIGN_SIM=icarus"
    spread = command("N=3", "SEED=7", "SIM=icarus", "HOSTS=2*ssh=b//chdir=/x 1*popen//chdir=/y")
    assert "--dist load --tx 2*popen " in spread and " -n 2 " not in spread
    assert f"--tx 2*ssh=b//chdir=/x{settings}//env:NIC_CAMPAIGN_WIDTH=64 " in spread
    assert f"--tx 1*popen//chdir=/y{settings}//env:NIC_CAMPAIGN_WIDTH=64 " in spread
    assert " -n 2 " in command("N=3") and "--tx" not in command("N=3")
