"""Per-connection access table: which processes may issue commands on which connection.

Every host command carries the process id of the doorbell page it came in on (the OS maps one
page per process, so a process cannot forge it). The NIC checks (connection, process) here
before it touches any connection state; only the privileged control port changes the table.
"""

from amaranth import *
from amaranth.utils import exact_log2
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.layouts import check_power_of_two
from hdl.memories import NO_RW_CHECK, registered_read_port

__all__ = ["AccessOp", "AccessCheck", "AccessResult", "AccessControl", "AccessTable"]


class AccessOp(enum.Enum, shape=2):
    """Control-port operations on one connection's row."""
    GRANT = 0   #: let process `pid` use connection `conn`
    REVOKE = 1  #: take that right away
    CLEAR = 2   #: no process may use `conn` (done when a connection is installed or removed)


class AccessCheck(data.StructLayout):
    """A (connection, process) pair to check."""

    def __init__(self, conn_bits, pid_bits):
        super().__init__({"conn": conn_bits, "pid": pid_bits})


class AccessResult(data.StructLayout):
    """The pair checked and whether the process may use the connection."""

    def __init__(self, conn_bits, pid_bits):
        super().__init__({"conn": conn_bits, "pid": pid_bits, "allowed": 1})


class AccessControl(data.StructLayout):
    """A privileged change to one connection's row (the control port's, through the engine)."""

    def __init__(self, conn_bits, pid_bits):
        super().__init__({"op": AccessOp, "conn": conn_bits, "pid": pid_bits})


class _Control(enum.Enum, shape=1):
    """What the control side waits for (an enum register switched with ``m.Switch``, as in
    :mod:`hdl.tables.socket_table`: a misspelt state is an AttributeError at elaboration)."""
    WAIT_OPERATION = 0      # an operation on `control`
    WAIT_ROW_CLEARED = 1    # CLEAR: the connection's bits written one per cycle


class AccessTable(wiring.Component):
    """One bit per (connection, process), addressed ``{conn, pid}`` in a one-bit-wide block RAM.

    A check reads exactly its own bit, through the block RAM's read and output registers
    (:func:`hdl.memories.registered_read_port`) with no logic after them. Checks are pipelined
    at one per clock with a latency of two cycles. GRANT and REVOKE write one bit in one cycle;
    CLEAR writes a connection's bits one per cycle (``processes`` cycles). Checks wait while a
    control operation runs, so no check reads in a clock that writes (the memory needs no
    read/write bypass); a check accepted after its ``done`` sees its effect.

    Parameters
    ----------
    connections : int
        Number of connections, a power of two.
    processes : int
        Number of process doorbell pages, a power of two.
    poison_collisions : bool
        For simulation only: a check's read in the clock a control operation writes its bit
        returns the bit inverted, as the block RAM's is undefined then
        (``registered_read_port``'s ``poison_for``), so a test sees a design that would use
        one.

    Members
    -------
    check : In(stream.Signature(AccessCheck))
        A (connection, process) pair to check.
    result : Out(stream.Signature(AccessResult))
        The pair and whether the process may use the connection; in order, one per check.
    control : In(stream.Signature(AccessControl))
        Privileged changes to the table.
    done : Out(1)
        Pulses for one cycle when a control operation has been carried out.
    """

    def __init__(self, *, connections, processes, poison_collisions=False):
        self.connections = check_power_of_two("Connection count", connections)
        self.processes = check_power_of_two("Process count", processes)
        self._poison_collisions = bool(poison_collisions)
        conn_bits, pid_bits = exact_log2(connections), exact_log2(processes)
        super().__init__({
            "check": In(stream.Signature(AccessCheck(conn_bits, pid_bits))),
            "result": Out(stream.Signature(AccessResult(conn_bits, pid_bits))),
            "control": In(stream.Signature(AccessControl(conn_bits, pid_bits))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.bits = bits = memory.Memory(
            shape=1, depth=self.connections * self.processes, init=[], attrs=NO_RW_CHECK)
        bit_write = bits.write_port()
        check_read = registered_read_port(m, bits, name="check_read",
                                          poison_for=(bit_write,) if self._poison_collisions else ())

        # Check pipeline: the bit is read in the cycle the check is accepted and the result
        # is valid two cycles later. Both stages advance when the result is taken or empty.
        read = Signal.like(self.check.payload)      # the checks in the RAM's two registers
        read_valid = Signal()
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
                read_valid.eq(self.check.valid & self.check.ready),
                read.eq(self.check.payload),
                self.result.valid.eq(read_valid),
                pending.eq(read),
            ]

        # Control: GRANT/REVOKE write their bit at once; CLEAR walks the connection's bits.
        conn = Signal.like(self.control.payload.conn)
        pid = Signal.like(self.control.payload.pid)
        m.d.comb += bit_write.addr.eq(Cat(pid, conn))
        m.d.sync += self.done.eq(0)
        step = Signal(_Control)
        with m.Switch(step):
            with m.Case(_Control.WAIT_OPERATION):
                m.d.comb += [
                    self.control.ready.eq(1),
                    bit_write.addr.eq(Cat(self.control.payload.pid, self.control.payload.conn)),
                    bit_write.data.eq(self.control.payload.op == AccessOp.GRANT),
                ]
                with m.If(self.control.valid):
                    with m.If(self.control.payload.op == AccessOp.CLEAR):
                        m.d.sync += [conn.eq(self.control.payload.conn), pid.eq(0),
                                     step.eq(_Control.WAIT_ROW_CLEARED)]
                    with m.Else():
                        m.d.comb += bit_write.en.eq(1)
                        m.d.sync += self.done.eq(1)
            with m.Case(_Control.WAIT_ROW_CLEARED):
                m.d.comb += [busy.eq(1), bit_write.en.eq(1), bit_write.data.eq(0)]
                m.d.sync += pid.eq(pid + 1)
                with m.If(pid == self.processes - 1):
                    m.d.sync += [self.done.eq(1), step.eq(_Control.WAIT_OPERATION)]
        return m
