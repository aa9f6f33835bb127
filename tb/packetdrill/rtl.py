"""Running packetdrill scripts on the RTL NIC: one simulator process per script.

``run_on_rtl(paths, config, sim)`` builds the NIC (the same build as the scenario tests,
``tb.nic_run``) and runs each script in a fresh cocotb simulation (reset, empty memories) of
``rtl_cocotb.py``, which runs the ordinary packetdrill `Runner` against
`backends.rtl.RtlBackend` in a ``bridge`` thread and writes the `Result` as JSON.
"""

import dataclasses
import json
from pathlib import Path

from .grammar import Skipped
from .runner import Config, Result

__all__ = ["run_on_rtl"]


def _nic_config():
    """The reference NIC made Linux-like as the model backend is (``LINUX_LIKE_CONFIG``):
    Linux's RTO (the scripts time Linux's retransmissions), window scaling (its shift is 0,
    the rings being 2 KiB; lenient runs do not compare our window or options), four
    out-of-order ranges and SACK."""
    from hdl.config import LINUX_LIKE_CONFIG
    return LINUX_LIKE_CONFIG


def run_on_rtl(paths, config: Config, sim: str = "verilator") -> list[Result]:
    from tb.nic_run import run_cocotb
    from flow.tools import BUILD
    out = BUILD / "packetdrill" / "rtl"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for path in paths:
        path = Path(path).resolve()
        result_file = out / f"{path.stem}.json"
        result_file.unlink(missing_ok=True)
        env = {"PACKETDRILL_SCRIPT": str(path), "PACKETDRILL_RESULT": str(result_file),
               "PACKETDRILL_CONFIG": json.dumps(_config_fields(config))}
        try:
            run_cocotb(sim, _nic_config(), "tb.packetdrill.rtl_cocotb", f"packetdrill_{path.stem}", env)
        except AssertionError as err:
            results.append(Result(str(path), "rtl", False, config.lenient, failure=str(err)))
            continue
        fields = json.loads(result_file.read_text())
        fields["skipped"] = [Skipped(**line) for line in fields["skipped"]]
        results.append(Result(**fields))
    return results


def _config_fields(config: Config) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
