"""ECP5 block RAM output registers: fold a flip-flop that copies a DP16KD's read data into the
RAM's own output register (``REGMODE_x = "OUTREG"``).

Yosys 0.70 maps every ECP5 block RAM with ``REGMODE_A/B = "NOREG"`` (``brams_map_16kd.v``), and
without its output register a DP16KD's clock-to-output is 4.1 ns at speed 8 (nextpnr's timing
database): a register right after it, even in the next slice, leaves a cycle of about 4.9 ns,
and any logic on the read data before the first register costs the rest of a 200 MHz cycle.
With the output register the clock-to-output is 0.74 ns. The design asks for the register
(a reset-less copy of the read data, enabled or not, see :mod:`hdl.memories`); this pass, run
on Yosys's JSON netlist before nextpnr, puts it in the RAM. It changes no behaviour: the RAM's
output register is that flip-flop.

A port's flip-flops fold only when every used bit of its read data drives exactly one input,
the D input of a flip-flop, and all of those flip-flops share the RAM port's clock (not
inverted), one clock enable (or none), no set or reset, and power up at 0 (as the RAM's
output register does); the port's own reset must be unused. Any other port is left alone. A
36-bit read (Yosys's mapping of a pseudo dual port RAM: port B reads all 36 bits, on DOA and
DOB) folds whole or not at all.
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


def _width(value):
    """A DP16KD width parameter: Yosys writes it as a binary string, nextpnr takes decimal."""
    text = str(value).strip()
    return int(text, 2) if text and set(text) <= {"0", "1"} and len(text) > 2 else int(text)


def _ports(ram):
    """(port name, its read data pins, the clock pins it must share, the ports whose
    REGMODE and OCE it sets) of a DP16KD. Yosys maps a 36-bit read (its PDPW16KD, pseudo
    dual port) as one DP16KD whose port B reads all 36 bits, on DOA and DOB, and port A only
    writes: that read's registers fold together or not at all, with both ports' output
    registers set (both clocks are required to be the one clock of the registers, so which
    of them the 36-bit read uses makes no difference)."""
    if _width(ram["parameters"].get("DATA_WIDTH_B", "18")) == 36:
        pins = [f"DO{p}{i}" for p in "AB" for i in range(_WIDTH)]
        return [("B", pins, ("CLKA", "CLKB"), "AB")]
    return [(port, [f"DO{port}{i}" for i in range(_WIDTH)], (f"CLK{port}",), port)
            for port in "AB"]


def fold_output_registers(netlist: dict, top: str = "top") -> list[Folded]:
    """Fold read data registers into the DP16KD output registers of `netlist` (Yosys JSON, the
    module `top`), in place. Returns what was folded."""
    module = netlist["modules"][top]
    cells = module["cells"]
    sinks = _sinks(module)
    folded = []
    for name in sorted(name for name, cell in cells.items() if cell["type"] == "DP16KD"):
        ram = cells[name]
        params, conns = ram["parameters"], ram["connections"]
        for port, pins, clocks, sets in _ports(ram):
            if any(params.get(f"REGMODE_{p}", "NOREG").strip() != "NOREG" for p in sets):
                continue
            if any(conns.get(f"RST{p}", ["0"]) != ["0"] for p in sets):
                continue
            if (len({tuple(conns.get(pin, ())) for pin in clocks}) != 1
                    or any(params.get(f"{pin}MUX", pin).strip() != pin for pin in clocks)):
                continue
            outputs = {pin: conns[pin][0] for pin in pins
                       if pin in conns and isinstance(conns[pin][0], int)}
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
                if enable is False or ff["connections"]["CLK"] != conns[clocks[0]]:
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
                for p in sets:
                    conns[f"OCE{p}"] = ["1"] if enable is None else [enable]
                    params[f"REGMODE_{p}"] = "OUTREG"
                folded.append(Folded(name, port, len(registers),
                                     "none" if enable is None else "shared"))
    return folded
