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
    """A bit per (connection, process) in one block RAM row per connection.

    Checks are pipelined at one per clock with a latency of one cycle (the block RAM read).
    A control operation is a read-modify-write of one row and takes two cycles, during which
    checks wait; a check accepted after an operation's ``done`` sees its effect.

    Parameters
    ----------
    connections : int
        Number of connections (rows), a power of two.
    processes : int
        Number of process doorbell pages (bits per row), a power of two.

    Members
    -------
    check : In(stream.Signature(StructLayout({"conn", "pid"})))
        A (connection, process) pair to check.
    result : Out(stream.Signature(StructLayout({"conn", "pid", "allowed"})))
        The pair and whether the process may use the connection; in order, one per check.
    control : In(stream.Signature(StructLayout({"op": AccessOp, "conn", "pid"})))
        Privileged changes to the table.
    done : Out(1)
        Pulses for one cycle when a control operation has been written.
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
        m.submodules.rows = rows = memory.Memory(shape=self.processes, depth=self.connections, init=[])
        row_write = rows.write_port()
        check_read = rows.read_port(transparent_for=(row_write,))
        control_read = rows.read_port(transparent_for=(row_write,))

        # Check pipeline: the row is read in the cycle the check is accepted, and the result
        # is valid the next cycle. The stage advances when the result is taken or empty.
        pending = Signal.like(self.check.payload)
        advance = Signal()
        modifying = Signal()
        m.d.comb += [
            advance.eq(~self.result.valid | self.result.ready),
            self.check.ready.eq(advance & ~modifying & ~self.control.valid),
            check_read.addr.eq(self.check.payload.conn),
            check_read.en.eq(advance),
            self.result.payload.conn.eq(pending.conn),
            self.result.payload.pid.eq(pending.pid),
            self.result.payload.allowed.eq(check_read.data.bit_select(pending.pid, 1)),
        ]
        with m.If(advance):
            m.d.sync += [
                self.result.valid.eq(self.check.valid & self.check.ready),
                pending.eq(self.check.payload),
            ]

        # Control: read the row, then write it back changed. Checks are held off meanwhile
        # so none reads a row half-way through a change.
        op = Signal.like(self.control.payload)
        m.d.comb += [
            control_read.addr.eq(self.control.payload.conn),
            row_write.addr.eq(op.conn),
            row_write.data.eq(control_read.data),
        ]
        with m.Switch(op.op):
            with m.Case(AccessOp.GRANT):
                m.d.comb += row_write.data.bit_select(op.pid, 1).eq(1)
            with m.Case(AccessOp.REVOKE):
                m.d.comb += row_write.data.bit_select(op.pid, 1).eq(0)
            with m.Case(AccessOp.CLEAR):
                m.d.comb += row_write.data.eq(0)
        m.d.sync += self.done.eq(0)
        with m.FSM():
            with m.State("wait for operation"):
                # Let a check already in the pipeline leave before the row changes.
                m.d.comb += self.control.ready.eq(1)
                with m.If(self.control.valid):
                    m.d.sync += op.eq(self.control.payload)
                    m.next = "write row"
            with m.State("write row"):
                m.d.comb += [modifying.eq(1), row_write.en.eq(1)]
                m.d.sync += self.done.eq(1)
                m.next = "wait for operation"
        return m
