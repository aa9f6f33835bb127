"""The host command port's access check, ahead of the engine.

A process's command names a connection by number; only a process the OS granted it may use it
(``model.host``: a descriptor of that socket). :class:`HostGate` takes each command off the
host port, looks its (connection, process) pair up in the
:class:`~hdl.tables.access_table.AccessTable`, and offers the engine the command with its
verdict. It runs while the engine serves earlier events, so the engine spends no step on the
check (the application interface is its own unit, as in the fpgasystems TOE), and the
engine reads the command's record while the gate checks it (`hint`), so that an idle engine
that takes it has it at once.

A connection number past the last slot is refused without a lookup: its low bits would name
another process's connection. The gate holds one command; it takes the next once the engine
has taken that one, so commands keep their order and a check is never older than the
commands before it. A check sees every GRANT or REVOKE whose ``done`` came before the command
was taken (the access table's rule).
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.ports import ConnHint, HostCommand
from hdl.tables.access_table import AccessControl, AccessTable

__all__ = ["CheckedCommand", "HostGate"]


class CheckedCommand(data.StructLayout):
    """A host command and whether its process may use its connection."""

    def __init__(self, pid_bits):
        super().__init__({"command": HostCommand(pid_bits), "allowed": 1})


class _Slot(enum.Enum, shape=2):
    EMPTY = 0       # takes a command
    CHECKING = 1    # its pair is in the access table's pipeline
    HELD = 2        # offered to the engine with its verdict


class HostGate(wiring.Component):
    """Host commands in, checked commands out, one at a time; the access table inside.

    Parameters
    ----------
    connections : int
        Connection slots, a power of two.
    processes : int
        Doorbell pages (process ids), a power of two.
    poison_collisions : bool
        For simulation only: passed to the access table.

    Members
    -------
    cmd : In(stream.Signature(HostCommand))
        The processes' commands (the NIC's ``host_cmd``).
    checked : Out(stream.Signature(CheckedCommand))
        Each command, in order, with ``allowed``. From a register: the command taken in a
        clock is offered three clocks later (the access table's two, and this register);
        the next is taken in the clock after the engine takes it: a command every 4 clocks
        at most, far fewer than the engine spends on one.
    hint : Out(ConnHint)
        The connection of the command being checked (one past the last slot never is): the
        engine's next host command, whose record and ring states an idle engine reads while
        it waits.
    access_control : In(stream.Signature(AccessControl)), access_done : Out(1)
        The access table's control port (GRANT, REVOKE, CLEAR), for the control port.
    idle : Out(1)
        No command held or being checked.
    """

    def __init__(self, *, connections, processes, poison_collisions=False):
        self._connections = connections
        self._processes = processes
        self._poison_collisions = poison_collisions
        conn_bits = exact_log2(connections)
        pid_bits = exact_log2(processes)
        super().__init__({
            "cmd": In(stream.Signature(HostCommand(pid_bits))),
            "checked": Out(stream.Signature(CheckedCommand(pid_bits))),
            "hint": Out(ConnHint(conn_bits)),
            "access_control": In(stream.Signature(AccessControl(conn_bits, pid_bits))),
            "access_done": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.access = access = AccessTable(connections=self._connections,
                                                   processes=self._processes,
                                                   poison_collisions=self._poison_collisions)
        wiring.connect(m, wiring.flipped(self.access_control), access.control)
        m.d.comb += self.access_done.eq(access.done)

        slot = Signal(_Slot)
        command = self.cmd.payload
        in_range = command.conn < self._connections
        m.d.comb += [access.check.payload.conn.eq(command.conn),
                     access.check.payload.pid.eq(command.pid),
                     access.result.ready.eq(1),
                     self.checked.valid.eq(slot == _Slot.HELD),
                     self.hint.valid.eq(slot == _Slot.CHECKING),
                     self.hint.conn.eq(self.checked.payload.command.conn),
                     self.idle.eq(slot == _Slot.EMPTY)]

        with m.Switch(slot):
            with m.Case(_Slot.EMPTY):
                # a command in range waits for the table's port; one out of range does not
                m.d.comb += [access.check.valid.eq(self.cmd.valid & in_range),
                             self.cmd.ready.eq(~in_range | access.check.ready)]
                with m.If(self.cmd.valid & self.cmd.ready):
                    m.d.sync += [self.checked.payload.command.eq(command),
                                 self.checked.payload.allowed.eq(0),
                                 slot.eq(Mux(in_range, _Slot.CHECKING, _Slot.HELD))]
            with m.Case(_Slot.CHECKING):
                with m.If(access.result.valid):
                    m.d.sync += [self.checked.payload.allowed.eq(access.result.payload.allowed),
                                 slot.eq(_Slot.HELD)]
            with m.Case(_Slot.HELD):
                with m.If(self.checked.ready):
                    m.d.sync += slot.eq(_Slot.EMPTY)
        return m
