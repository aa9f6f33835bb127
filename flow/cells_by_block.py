"""A mapped netlist's cells by the Amaranth submodule they come from (approximate).

yosys flattens the design before it maps it, so a LUT or flip-flop no longer says which block
it belongs to; the nets it drives still carry hierarchical names (``block.engine.rx_ring.w_step``).
Each cell goes to the deepest submodule (a ``module`` of the ``top.il`` that
:mod:`flow.synth` writes beside the netlist) that prefixes the best-named net it drives: its
plainest name, with the fewest ``$`` and the fewest characters. A cell whose nets have only
yosys's own names goes to ``?``. Logic merged across a boundary is counted once, on the side
whose name survived, so read the figures as a breakdown, not as each block's cost alone
(``python -m flow.synth BLOCK`` gives that).

``python -m flow.cells_by_block DIR`` prints, for the ``top.il`` and ``netlist.json`` in
`DIR`, a table of each submodule's LUTs, carry cells, flip-flops and block RAMs, largest
first.
"""

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from flow.logic_paths import bit_names
from flow.synth import cell_type_is

__all__ = ["KINDS", "submodules", "cells_by_block", "main"]

#: The cell kinds counted, by column: the yosys cell types of each (ECP5 and iCE40; a
#: trailing ``*`` takes every type with that prefix, as in :data:`flow.synth.TARGETS`).
KINDS = {"LUT": ("LUT4", "SB_LUT4"), "carry": ("CCU2C", "SB_CARRY"),
         "FF": ("TRELLIS_FF", "SB_DFF*"), "block RAM": ("DP16KD", "SB_RAM40_4K")}


def _kind(cell_type):
    """The column of `cell_type` in :data:`KINDS`, or None."""
    return next((kind for kind, types in KINDS.items() for name in types
                 if cell_type_is(cell_type, name)), None)

_MODULE = re.compile(r"^module \\top\.(\S+)$", re.MULTILINE)


def submodules(rtlil_text):
    """The submodule paths of an Amaranth design's RTLIL (``block.engine``, ...)."""
    return _MODULE.findall(rtlil_text)


def cells_by_block(netlist, paths):
    """{path: Counter(kind: cells)} for `netlist` (yosys JSON, its top module ``top``) and
    the submodule `paths`; cells of the top itself go to ``top``."""
    module = netlist["modules"]["top"]
    names = bit_names(module)
    by_depth = sorted(paths, key=len, reverse=True)
    counts = {}
    for cell in module["cells"].values():
        kind = _kind(cell["type"])
        if kind is None:
            continue
        driven = [name for port, direction in cell["port_directions"].items()
                  if direction == "output" for bit in cell["connections"][port]
                  for name in names.get(bit, ()) if not name.startswith("$")]
        if driven:
            best = min(driven, key=lambda name: (name.count("$"), len(name)))
            owner = next((path for path in by_depth if best.startswith(path + ".")), "top")
        else:
            owner = "?"
        counts.setdefault(owner, Counter())[kind] += 1
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a flow.synth output: top.il and netlist.json")
    args = parser.parse_args(argv)
    paths = submodules((args.dir / "top.il").read_text())
    counts = cells_by_block(json.loads((args.dir / "netlist.json").read_text()), paths)
    total = sum(counts.values(), Counter())
    print("| block | " + " | ".join(KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for owner, count in sorted(counts.items(), key=lambda item: -sum(item[1].values())):
        print(f"| `{owner}` | " + " | ".join(f"{count[kind]:,}" for kind in KINDS) + " |")
    print("| all | " + " | ".join(f"{total[kind]:,}" for kind in KINDS) + " |")


if __name__ == "__main__":
    main()
