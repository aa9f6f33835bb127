"""``make sim``: run a scenario on the RTL NIC and print its trace.

The scenario (``tb/scenarios.py``, default ``seed``: the seed's program) runs on the
generated Verilog under cocotb with Icarus Verilog (or Verilator), with the OS driver
playing the host, and the same scenario runs on the golden model; the two traces must be
equal. Prints every call and every segment on the wire, writes a pcap of the wire and a
waveform to ``build/sim/``.

    python -m tb.sim [--sim icarus|verilator] [--width 64|8] [--scenario NAME|random:SEED] [--list]
"""

import argparse
import ast
import shutil
import sys

from tb.nic_run import NicConfig, build, run_scenario
from tb.scenarios import SCENARIOS, get_scenario
from flow.tools import BUILD


def describe(entry: tuple) -> str:
    """One trace entry as a line a person reads."""
    kind, time, side = entry[0], entry[1], entry[2]
    if kind == "call":
        _, _, _, pid, op, args, result = entry
        return f"{time:6}  {side:4} pid {pid:<3} {op}{args if len(args) < 60 else args[:57] + '...'} = {result[:60]}"
    if entry[3] == "tcp":
        seq, ack, flags, window, payload, checksum = entry[4:]
        return (f"{time:6}  {side:4} TCP {flags:<12} seq {seq:<10} ack {ack:<10} win {window:<5} "
                f"len {len(payload):<4} csum {checksum:#06x}")
    if entry[3] == "udp":
        sport, dport, payload, checksum = entry[4:]
        return f"{time:6}  {side:4} UDP {sport} > {dport} len {len(payload)} csum {checksum:#06x}"
    return f"{time:6}  {side:4} {entry[3:]}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", default="icarus", choices=("icarus", "verilator"))
    parser.add_argument("--width", type=int, default=64, choices=(8, 64))
    parser.add_argument("--scenario", default="seed")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    args = parser.parse_args(argv)
    if args.list or not (args.scenario in SCENARIOS or args.scenario.startswith("random:")):
        if not args.list:
            print(f"unknown scenario {args.scenario!r}; the scenarios are:")
        for name, spec in SCENARIOS.items():
            print(f"  {name:18} {spec.doc.splitlines()[0] if spec.doc else ''}")
        return 0 if args.list else 2
    config = NicConfig(data_width=args.width, connections=64, processes=16)
    print(f"building the NIC ({config.name}) for {args.sim}...", flush=True)
    folder = build(args.sim, config, waves=True)
    try:
        summary = run_scenario(args.sim, config, args.scenario, waves=True)
        failure = None
    except AssertionError as err:
        summary, failure = {}, err
    out = BUILD / "sim" / config.name / args.sim
    trace_file = out / f"{args.scenario}.trace"
    if trace_file.exists():
        print(f"\n{args.scenario}: {get_scenario(args.scenario).doc}\n")
        print("  tick  side  call or segment")
        for line in trace_file.read_text().splitlines():
            print(describe(ast.literal_eval(line)))
    waves = sorted(folder.glob("*.fst")) + sorted(folder.glob("*.vcd"))
    if waves:
        target = out / f"{args.scenario}{waves[-1].suffix}"
        shutil.copy(waves[-1], target)
        print(f"\nwaveform: {target}")
    print(f"pcapng of the wire (simulation time, each frame's fate): {out / (args.scenario + '.rtl.pcapng')}")
    if failure is not None:
        print(f"\nFAILED: {failure}")
        return 1
    print(f"\nRTL trace equal to the model's: {summary['trace_entries']} entries, "
          f"{summary['segments']} segments from the NIC, {summary['cycles']} clock cycles, "
          f"{summary['ticks']} ticks, {summary['wall_s']} s on {args.sim}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
