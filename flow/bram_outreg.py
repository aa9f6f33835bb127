"""ECP5 block RAM output registers: fold a flip-flop that copies a DP16KD's read data into the
RAM's own output register (``REGMODE_x = "OUTREG"``).

Yosys 0.70 maps every ECP5 block RAM with ``REGMODE_A/B = "NOREG"`` (``brams_map_16kd.v``), and
without its output register a DP16KD's clock-to-output is 4.1 ns at speed 8 (nextpnr's timing
database): a register right after it, even in the next slice, leaves a cycle of about 4.9 ns,
and any logic on the read data before the first register costs the rest of a 200 MHz cycle.
With the output register the clock-to-output is 0.74 ns. The design asks for the register
(a reset-less copy of the read data, enabled or not, see :mod:`hdl.engine.records` and
:mod:`hdl.tables.access_table`); this pass, run on Yosys's JSON netlist before nextpnr, puts it
in the RAM. It changes no behaviour: the RAM's output register is that flip-flop.

A port's flip-flops fold only when every used bit of its read data drives exactly one input,
the D input of a flip-flop, and all of those flip-flops share the RAM port's clock (not
inverted), one clock enable (or none), no set or reset, and power up at 0 (as the RAM's
output register does); the port's own reset must be unused. Any other port is left alone.
"""

from dataclasses import dataclass

__all__ = ["Folded", "fold_output_registers"]

_WIDTH = 18                         # a DP16KD port's data bits, DOx0..DOx17


@dataclass(frozen=True)
class Folded:
    """One RAM port whose read data register went into the RAM."""
    ram: str
    port: str           # "A" or "B"
    bits: int           # flip-flops removed
    enable: str         # "none" or "shared": the flip-flops' clock enable, now the port's OCE


def _sinks(module):
    """bit -> [(cell name or None for a module port, pin)] for every input pin and output port."""
    sinks = {}
    for name, cell in module["cells"].items():
        directions = cell.get("port_directions", {})
        for pin, bits in cell["connections"].items():
            if directions.get(pin, "input") == "output":
                continue
            for bit in bits:
                if isinstance(bit, int):
                    sinks.setdefault(bit, []).append((name, pin))
    for port_name, port in module.get("ports", {}).items():
        if port["direction"] != "input":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    sinks.setdefault(bit, []).append((None, port_name))
    return sinks


def _plain_register(cell):
    """A TRELLIS_FF that is a plain D flip-flop on the rising edge, powering up at 0, with no
    set or reset: its clock enable net (None when always enabled), or False."""
    if cell["type"] != "TRELLIS_FF":
        return False
    p, c = cell["parameters"], cell["connections"]
    if p.get("CLKMUX", "CLK").strip() != "CLK" or p.get("REGSET", "RESET").strip() != "RESET":
        return False
    lsr_mux = p.get("LSRMUX", "LSR").strip()
    if not (lsr_mux == "0" or (lsr_mux == "LSR" and c.get("LSR", ["0"]) == ["0"])):
        return False
    ce_mux = p.get("CEMUX", "1").strip()
    if ce_mux == "1":
        return None
    if ce_mux == "CE" and len(c.get("CE", [])) == 1:
        return c["CE"][0] if c["CE"] != ["1"] else None
    return False


def fold_output_registers(netlist: dict, top: str = "top") -> list[Folded]:
    """Fold read data registers into the DP16KD output registers of `netlist` (Yosys JSON, the
    module `top`), in place. Returns what was folded."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks = _sinks(module)
    folded = []
    for name in sorted(name for name, cell in cells.items() if cell["type"] == "DP16KD"):
        ram = cells[name]
        for port in "AB":
            if ram["parameters"].get(f"REGMODE_{port}", "NOREG").strip() != "NOREG":
                continue
            conns = ram["connections"]
            if conns.get(f"RST{port}", ["0"]) != ["0"]:
                continue
            outputs = {f"DO{port}{i}": conns[f"DO{port}{i}"][0] for i in range(_WIDTH)
                       if f"DO{port}{i}" in conns and isinstance(conns[f"DO{port}{i}"][0], int)}
            used = {pin: bit for pin, bit in outputs.items() if sinks.get(bit)}
            if not used:
                continue
            registers, enables = {}, set()
            for pin, bit in used.items():
                users = sinks[bit]
                if len(users) != 1 or users[0][0] is None or users[0][1] != "DI":
                    break
                ff = cells[users[0][0]]
                enable = _plain_register(ff)
                if enable is False or ff["connections"]["CLK"] != conns[f"CLK{port}"]:
                    break
                registers[pin] = users[0][0]
                enables.add(enable)
            else:
                if len(enables) != 1:
                    continue
                enable = enables.pop()
                for pin, ff_name in registers.items():
                    conns[pin] = list(cells[ff_name]["connections"]["Q"])
                    del cells[ff_name]
                conns[f"OCE{port}"] = ["1"] if enable is None else [enable]
                ram["parameters"][f"REGMODE_{port}"] = "OUTREG"
                folded.append(Folded(name, port, len(registers),
                                     "none" if enable is None else "shared"))
    return folded
