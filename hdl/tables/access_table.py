"""Per-connection access table: which processes may issue commands on which connection.

Every host command carries the process id of the doorbell page it came in on (the OS maps one
page per process, so a process cannot forge it). The NIC checks (connection, process) here
before it touches any connection state; only the privileged control port changes the table.
"""

from amaranth import *
from amaranth.utils import exact_log2
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AccessOp", "AccessTable"]


class AccessOp(enum.Enum, shape=2):
    """Control-port operations on one connection's row."""
    GRANT = 0   #: let process `pid` use connection `conn`
    REVOKE = 1  #: take that right away
    CLEAR = 2   #: no process may use `conn` (done when a connection is installed or removed)


def _check_power_of_two(what, value):
    if not isinstance(value, int) or value < 2 or value & (value - 1):
        raise TypeError(f"{what} must be a power of two and at least 2, not {value!r}")
    return value


class AccessTable(wiring.Component):
    """One bit per (connection, process), addressed ``{conn, pid}`` in a one-bit-wide block RAM.

    A check reads exactly its own bit, so the block RAM output goes to the result with no
    multiplexer after it (the RAM's clock-to-output is most of a cycle on an ECP5). Checks are
    pipelined at one per clock with a latency of one cycle. GRANT and REVOKE write one bit in
    one cycle; CLEAR writes a connection's bits one per cycle (``processes`` cycles). Checks
    wait while a control operation runs; a check accepted after its ``done`` sees its effect.

    Parameters
    ----------
    connections : int
        Number of connections, a power of two.
    processes : int
        Number of process doorbell pages, a power of two.

    Members
    -------
    check : In(stream.Signature(StructLayout({"conn", "pid"})))
        A (connection, process) pair to check.
    result : Out(stream.Signature(StructLayout({"conn", "pid", "allowed"})))
        The pair and whether the process may use the connection; in order, one per check.
    control : In(stream.Signature(StructLayout({"op": AccessOp, "conn", "pid"})))
        Privileged changes to the table.
    done : Out(1)
        Pulses for one cycle when a control operation has been carried out.
    """

    def __init__(self, *, connections, processes):
        self.connections = _check_power_of_two("Connection count", connections)
        self.processes = _check_power_of_two("Process count", processes)
        conn_bits, pid_bits = exact_log2(connections), exact_log2(processes)
        pair = data.StructLayout({"conn": conn_bits, "pid": pid_bits})
        super().__init__({
            "check": In(stream.Signature(pair)),
            "result": Out(stream.Signature(data.StructLayout({
                "conn": conn_bits, "pid": pid_bits, "allowed": 1}))),
            "control": In(stream.Signature(data.StructLayout({
                "op": AccessOp, "conn": conn_bits, "pid": pid_bits}))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bits = bits = memory.Memory(
            shape=1, depth=self.connections * self.processes, init=[])
        bit_write = bits.write_port()
        check_read = bits.read_port(transparent_for=(bit_write,))

        # Check pipeline: the bit is read in the cycle the check is accepted and the result
        # is valid the next cycle. The stage advances when the result is taken or empty.
        pending = Signal.like(self.check.payload)
        advance = Signal()
        busy = Signal()
        m.d.comb += [
            advance.eq(~self.result.valid | self.result.ready),
            self.check.ready.eq(advance & ~busy & ~self.control.valid),
            check_read.addr.eq(Cat(self.check.payload.pid, self.check.payload.conn)),
            check_read.en.eq(advance),
            self.result.payload.conn.eq(pending.conn),
            self.result.payload.pid.eq(pending.pid),
            self.result.payload.allowed.eq(check_read.data),
        ]
        with m.If(advance):
            m.d.sync += [
                self.result.valid.eq(self.check.valid & self.check.ready),
                pending.eq(self.check.payload),
            ]

        # Control: GRANT/REVOKE write their bit at once; CLEAR walks the connection's bits.
        conn = Signal.like(self.control.payload.conn)
        pid = Signal.like(self.control.payload.pid)
        m.d.comb += bit_write.addr.eq(Cat(pid, conn))
        m.d.sync += self.done.eq(0)
        with m.FSM():
            with m.State("wait for operation"):
                m.d.comb += [
                    self.control.ready.eq(1),
                    bit_write.addr.eq(Cat(self.control.payload.pid, self.control.payload.conn)),
                    bit_write.data.eq(self.control.payload.op == AccessOp.GRANT),
                ]
                with m.If(self.control.valid):
                    with m.If(self.control.payload.op == AccessOp.CLEAR):
                        m.d.sync += [conn.eq(self.control.payload.conn), pid.eq(0)]
                        m.next = "clear row"
                    with m.Else():
                        m.d.comb += bit_write.en.eq(1)
                        m.d.sync += self.done.eq(1)
            with m.State("clear row"):
                m.d.comb += [busy.eq(1), bit_write.en.eq(1), bit_write.data.eq(0)]
                m.d.sync += pid.eq(pid + 1)
                with m.If(pid == self.processes - 1):
                    m.d.sync += self.done.eq(1)
                    m.next = "wait for operation"
        return m
