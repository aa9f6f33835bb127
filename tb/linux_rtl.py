"""The simulated RTL NIC (and the golden model) against the Linux kernel over a TAP device.

``run_on_rtl(program)`` builds the NIC (the scenario tests' build, ``tb.nic_run``) and runs a
program of ``tb.linux_programs`` in a fresh simulation of ``tb/linux_rtl_cocotb.py``, which
creates the namespace itself; ``run_on_model(program)`` runs the same program with the
golden model (the NIC's policy: 2 KiB rings) in this process. Both return the report.

``python -m tb.linux_rtl`` (``make linux``) is the demo: the kernel opens several connections
at once to the NIC's server (1 MiB echoed, a file, a smaller echo), then the NIC connects to
a Linux server; it prints throughput in simulated clocks and wall time, each side's
retransmissions by cause, and writes the wire's pcapng under ``build/linux/``.
"""

import argparse
import json
import sys
from pathlib import Path

from flow.tools import BUILD
from hdl.config import NIC_POLICY
from tb.linux_programs import (HOST_IP, HOST_MAC, LINUX_IP, LINUX_MAC, PROGRAMS,
                               expected_outcome, outcome, run_program)
from tb.netns import NamespacedDevice, unavailable_reason

__all__ = ["OUT", "run_on_rtl", "run_on_model", "summary"]

OUT = BUILD / "linux"


def _nic_config():
    from tb.nic_run import NicConfig
    return NicConfig(data_width=64, connections=64, processes=16)


def _program(name: str):
    if name not in PROGRAMS:
        raise KeyError(f"No Linux program {name!r}; there are {', '.join(PROGRAMS)}")
    return PROGRAMS[name]


def run_on_rtl(name: str, sim: str = "verilator", out: Path = OUT) -> dict:
    """Run program `name` between the RTL NIC on `sim` and Linux; its report (JSON), with
    the pcapng's path. Raises AssertionError with the simulator's message and the pcapng
    when the run failed."""
    from tb.nic_run import run_cocotb
    _program(name)
    out = Path(out) / sim
    result = out / f"{name}.json"
    result.unlink(missing_ok=True)
    try:
        run_cocotb(sim, _nic_config(), "tb.linux_rtl_cocotb", f"linux_{name}",
                   {"LINUX_PROGRAM": name, "LINUX_OUT": str(out)})
    except AssertionError as err:
        note = json.loads(result.read_text()) if result.exists() else {}
        raise AssertionError(f"{err}\n{note.get('error', '')}\npcapng of the wire: "
                             f"{note.get('pcapng', 'none written')}; NIC drops: "
                             f"{note.get('drops')}") from None
    return json.loads(result.read_text())


def run_on_model(name: str, out: Path = OUT) -> dict:
    """Run program `name` between the golden model (the NIC's policy) and Linux, here."""
    program = _program(name)
    from model.host import Host
    pcap = Path(out) / "model" / f"{name}.pcapng"
    with NamespacedDevice(address=f"{LINUX_IP}/24", mac=LINUX_MAC, peer_ip=HOST_IP,
                          peer_mac=HOST_MAC) as device:
        host = Host(HOST_MAC, HOST_IP, NIC_POLICY, name="model", max_pid=15)
        host.add_neighbor(LINUX_IP, LINUX_MAC)
        try:
            report = run_program(program, host, device)
        except BaseException as exc:
            if getattr(exc, "bridge", None) is not None:
                exc.bridge.write_pcap(str(pcap))
                exc.add_note(f"pcapng of the wire: {pcap}")
            raise
    report.pop("bridge").write_pcap(str(pcap))
    report["pcapng"] = str(pcap)
    return report


def _causes(counts: dict) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total} (" + ", ".join(f"{cause} {n}" for cause, n in sorted(counts.items())) + ")"


def summary(name: str, side: str, report: dict) -> str:
    """A few lines for a person: bytes, wall time, clocks, retransmissions by cause."""
    lines = [f"{name} on {side}: {PROGRAMS[name].doc}"]
    wall, moved = report["wall_s"], report["bytes"]
    line = f"  {moved:,} bytes in {wall:.1f} s wall ({moved / wall / 1e3:,.1f} kB/s)"
    if report.get("clocks"):
        clocks = report["clocks"]
        line += (f", {clocks:,} simulated clocks ({moved / clocks:.2f} bytes/clock, "
                 f"{clocks / wall:,.0f} clocks/s)")
    lines.append(line)
    lines.append(f"  host clock {report['ticks']:,} ticks (waited for Linux {report['waited_s']:.1f} s);"
                 f" {report['frames']:,} frames {report['fates']}")
    retrans = report["retransmissions"]
    lines.append(f"  retransmissions: Linux {_causes(retrans.get('linux', {}))}; "
                 f"{side} {_causes(retrans.get('host', {}))}; RSTs {report['resets']}")
    lines.append(f"  pcapng: {report['pcapng']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--program", default="demo", choices=sorted(PROGRAMS))
    parser.add_argument("--model", action="store_true",
                        help="also run the program with the golden model and compare outcomes")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(f"error: cannot run against Linux: {reason}", file=sys.stderr)
        return 2
    failed = False
    expected = expected_outcome(PROGRAMS[args.program])
    runs = [("RTL " + args.sim, lambda: run_on_rtl(args.program, args.sim))]
    if args.model:
        runs.append(("model", lambda: run_on_model(args.program)))
    for side, run in runs:
        report = run()
        print(summary(args.program, side, report), flush=True)
        if outcome(report) != expected:
            failed = True
            print(f"  MISMATCH: expected {json.dumps(expected)}\n  got {json.dumps(outcome(report))}")
        else:
            print("  every byte checked by SHA-256: equal; every connection ended as expected")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
