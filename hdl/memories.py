"""Block RAM read ports written as an FPGA's block RAM works: a read register, then an output
register, with no logic between the RAM and either.

An ECP5 DP16KD's read data leave 4.1 ns after the clock without its output register (0.74 ns
with it; nextpnr's timing database, speed 8): a 200 MHz cycle is 5 ns, so the RAM's data can
reach the next register but nothing more. Two things stand in the way of that register:

- Yosys keeps a synchronous read port's behaviour when its address is written in the same
  clock (the old data, or the new for a transparent port) with a bypass: a write-data register,
  an address compare and a 2:1 multiplexer on every data bit after the RAM. A memory whose
  design never reads an address in the clock it writes it (or never uses such a read) says so
  with :data:`NO_RW_CHECK`, and the bypass goes. Yosys honours the attribute only while it
  merges a register into an asynchronous read port, so the port here is asynchronous with its
  register written out (the same behaviour as a synchronous port: the data before the write).
- Yosys 0.70 maps every DP16KD without its output register; :mod:`flow.bram_outreg` puts the
  second register here into it after synthesis.
"""

from typing import NamedTuple

from amaranth import Const, Module, Mux, Signal, Value
from amaranth.lib import memory

__all__ = ["NO_RW_CHECK", "RegisteredRead", "registered_read_port"]

#: ``attrs`` for a :class:`~amaranth.lib.memory.Memory` none of whose reads meets a write of its
#: address in the same clock, or whose design drops such a read: the RAM may return anything
#: then (Yosys's ``no_rw_check``), and needs no bypass logic.
NO_RW_CHECK = {"no_rw_check": 1}


class RegisteredRead(NamedTuple):
    """A read port: `addr` and `en` as a synchronous port's; `data` is the read of the address
    given `latency` enabled clocks before."""
    addr: Value
    en: Value
    data: Value
    latency: int


def registered_read_port(m: Module, mem: memory.Memory, *, name: str,
                         output_register: bool = True, poison_for=(),
                         poison_mask=None) -> RegisteredRead:
    """A read port of `mem` (which must carry :data:`NO_RW_CHECK`) in the domain ``sync``.

    Its data come a clock after the address (the RAM's read register) or, with
    `output_register`, two clocks after it (and its output register). `en` (1 unless driven)
    enables both, so a stalled pipeline holds them.

    `poison_for`, write ports of `mem`, is for simulation: a read in a clock one of them writes
    its address returns the old word inverted (a block RAM's word is undefined then), so a
    test sees a design that uses such a read. Not for synthesis. `poison_mask` (all ones by
    default) says which bits are inverted: the ones whose garbage a test would see."""
    if mem.attrs.get("no_rw_check") != 1:
        raise ValueError(f"{name}: the memory must carry NO_RW_CHECK, or Yosys puts a bypass "
                         "multiplexer between the RAM and its output register")
    port = mem.read_port(domain="comb")
    en = Signal(init=1, name=f"{name}_en")
    read = Signal(mem.shape, name=f"{name}_read", reset_less=True)
    word = Value.cast(port.data)
    mask = Const(-1, len(word)) if poison_mask is None else poison_mask
    for write in poison_for:
        word = Mux(write.en.any() & (write.addr == port.addr), word ^ mask, word)
    with m.If(en):
        m.d.sync += read.eq(word)
    if not output_register:
        return RegisteredRead(port.addr, en, read, 1)
    data = Signal(mem.shape, name=f"{name}_data", reset_less=True)
    with m.If(en):
        m.d.sync += data.eq(read)
    return RegisteredRead(port.addr, en, data, 2)
