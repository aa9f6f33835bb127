"""The deepest register-to-register paths of a mapped ECP5 netlist, before placement.

nextpnr gives a critical path only once routing finishes; a design whose routing does not
converge (the engine today) has none. This walks yosys's ``netlist.json`` instead: every
flip-flop, block RAM and LUT RAM output starts a path, every input of one ends it, and each
LUT, mux and carry cell on the way adds an assumed delay (:data:`CELL_DELAY_NS`: speed grade 8
cell delays plus a flat routing estimate per hop). The figure is an estimate, so read the
ranking and the cells, not the nanoseconds; the placed Fmax nextpnr prints is the bound.

``python -m flow.logic_paths NETLIST.json [--count N]`` prints the deepest paths, one per
register written, with the signals they pass through.
"""

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CELL_DELAY_NS", "LogicPath", "bit_names", "deepest_paths", "signal_of", "main"]

#: Input-to-output delay per cell type, routing included (a placed ECP5-8 design's LUT is
#: 0.4-0.5 ns and its wires 0.3-1.5 ns); ``"CCU2C.CIN"`` is one hop along a carry chain. LUT
#: RAM reads asynchronously: its read address passes through it like a LUT's inputs.
CELL_DELAY_NS = {"LUT4": 1.05, "PFUMX": 0.25, "L6MUX21": 0.25, "CCU2C": 1.05, "CCU2C.CIN": 0.05,
                 "TRELLIS_DPR16X4": 1.05}
#: Clock-to-output of the cells that start paths (DP16KD without its output register).
START_DELAY_NS = {"TRELLIS_FF": 0.4, "DP16KD": 4.3}
_CLOCKS = {"CLK", "CLKA", "CLKB", "WCK"}
# ABC and techmap name the nets they make after a signal plus cell suffixes; the signal is the
# part before the first suffix
_SUFFIX = re.compile(r"_(TRELLIS_|LUT4_|CCU2C_|PFUMX_|L6MUX21_|DP16KD_|DPR16X4).*$")


@dataclass(frozen=True)
class LogicPath:
    delay_ns: float         # estimated, see CELL_DELAY_NS
    logic_levels: int       # LUTs and muxes (carry hops not counted)
    carry_hops: int
    start: str              # the register or memory the path starts at
    end: str                # the register or memory input it ends at (cell.port)
    through: tuple          # the signals on the way, in order, repeats dropped

    def describe(self):
        return (f"{self.delay_ns:.1f} ns est., {self.logic_levels} logic levels, "
                f"{self.carry_hops} carry hops: {self.start} -> {self.end}")


def signal_of(name):
    """The signal a cell or net of Yosys's ECP5 netlist was made for (its name less the
    suffixes techmap and ABC add)."""
    return _SUFFIX.sub("", name)


def bit_names(module):
    """{bit: the names of the nets that carry it, shortest first} for a module of yosys's
    ``write_json`` netlist (constant bits have none)."""
    names = {}
    for name, net in sorted(module["netnames"].items(), key=lambda item: len(item[0])):
        for bit in net["bits"]:
            if isinstance(bit, int):
                names.setdefault(bit, []).append(name)
    return names


def _passes_through(kind, port):
    """A path goes on through this input of a `kind` cell: any of a logic cell's, only the
    read address of a LUT RAM (its write address, data and enable end paths)."""
    return kind != "TRELLIS_DPR16X4" or port.startswith("RAD")


def deepest_paths(netlist, count=10, module="top"):
    """The `count` deepest paths of `module` in `netlist` (yosys ``write_json``), the deepest
    first, at most one per ending register (its name less its bit index)."""
    top = netlist["modules"][module]
    cells = top["cells"]
    names = {bit: named[0] for bit, named in bit_names(top).items()}
    driver, inputs = {}, {}
    for cell_name, cell in cells.items():
        ins = inputs[cell_name] = []
        for port, bits in cell["connections"].items():
            direction = cell["port_directions"].get(port)
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if direction == "output":
                    driver[bit] = cell_name
                elif direction == "input" and port not in _CLOCKS:
                    ins.append((port, bit))
    through_ports = {cell_name: [(port, bit) for port, bit in ins
                                 if _passes_through(cells[cell_name]["type"], port)]
                     for cell_name, ins in inputs.items()}

    arrival = {}            # bit -> (ns, levels, carry hops, the input bit it came through)

    def settle(root):
        # depth first without recursion: a carry chain or a deep cone would exhaust the stack
        stack, expanded = [root], set()
        while stack:
            bit = stack[-1]
            if bit in arrival:
                stack.pop()
                continue
            cell_name = driver.get(bit)
            kind = cells[cell_name]["type"] if cell_name else None
            if cell_name is None or kind not in CELL_DELAY_NS:
                arrival[bit] = (START_DELAY_NS.get(kind, 0.0), 0, 0, None)
                stack.pop()
                continue
            if bit not in expanded:
                expanded.add(bit)
                # an input expanded but not settled is on the way here: a loop, cut there
                pending = [b for _, b in through_ports[cell_name]
                           if b not in arrival and b not in expanded]
                if pending:
                    stack.extend(pending)
                    continue
            best = (0.0, 0, 0, None)
            for port, b in through_ports[cell_name]:
                ns, levels, hops, _ = arrival.get(b, (0.0, 0, 0, None))
                carry = kind == "CCU2C" and port == "CIN"
                ns += CELL_DELAY_NS["CCU2C.CIN" if carry else kind]
                if ns > best[0]:
                    # a loop's cut input starts the path (no way back round the loop)
                    best = (ns, levels + (not carry), hops + carry, b if b in arrival else None)
            arrival[bit] = best
            stack.pop()

    ends = []
    for cell_name, cell in cells.items():
        kind = cell["type"]
        for port, bit in inputs[cell_name]:
            # a register's or block RAM's input, or a logic cell's that leads nowhere on
            if not (kind in START_DELAY_NS
                    or kind in CELL_DELAY_NS and not _passes_through(kind, port)):
                continue
            settle(bit)
            ends.append((arrival[bit][0], cell_name, port, bit))
    ends.sort(key=lambda end: -end[0])

    paths, seen = [], set()
    for ns, cell_name, port, bit in ends:
        q = cells[cell_name]["connections"].get("Q", [None])[0]
        target = signal_of(names.get(q, cell_name)) if q is not None else signal_of(cell_name)
        if target in seen:
            continue
        seen.add(target)
        chain, at = [], bit
        while at is not None:
            chain.append(at)
            at = arrival[at][3]
        through = []
        for b in reversed(chain[:-1]):
            signal = signal_of(names[b]) if b in names else None     # unnamed nets: skipped
            if signal and (not through or through[-1] != signal):
                through.append(signal)
        _, levels, hops, _ = arrival[bit]
        paths.append(LogicPath(round(ns, 2), levels, hops, signal_of(names.get(chain[-1], "?")),
                               f"{target}.{port}", tuple(through)))
        if len(paths) == count:
            break
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("netlist", type=Path, help="yosys write_json output (after synth_ecp5)")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--module", default="top")
    args = parser.parse_args(argv)
    for path in deepest_paths(json.loads(args.netlist.read_text()), args.count, args.module):
        print(path.describe())
        print("    through " + " -> ".join(path.through[:12]) + (" ..." if len(path.through) > 12 else ""))


if __name__ == "__main__":
    main()
