"""The privileged control port: one OS command at a time, to the unit it concerns."""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.tables.access_table import AccessControl, AccessOp
from hdl.ports import ControlCommand, ControlResponse, CtlOp
from hdl.tables.socket_table import CommandLayout, Op, ResponseLayout, Status
from hdl.engine.tcb import Errno

__all__ = ["ControlPort"]


class _Step(enum.Enum, shape=2):
    WAIT_COMMAND = 0
    WAIT_UNIT = 1           # the unit taking the command
    WAIT_RESULT = 2         # the unit's answer
    WAIT_RESPONSE_TAKEN = 3


class ControlPort(wiring.Component):
    """Decode :class:`~hdl.ports.ControlCommand` and pass it to the socket table, the access
    table, the engine or the counters; answer with one :class:`~hdl.ports.ControlResponse`.

    Our own MAC and IP live here (SET_ADDRESS) and feed the classifier and the engine.

    Parameters
    ----------
    conn_bits, pid_bits : int
    counters : int
        Number of counter inputs readable with READ_COUNTER (index out of range reads 0).

    Members
    -------
    cmd : In(stream.Signature(ControlCommand)), rsp : Out(stream.Signature(ControlResponse))
    socket_cmd, socket_rsp
        The socket table's command port.
    access_control : Out(stream.Signature(AccessControl)), access_done : In(1)
        The access table's control port (through the engine).
    engine_cmd : Out(stream.Signature(ControlCommand)), engine_rsp : In(stream.Signature(ControlResponse))
        The engine's control operations: the command as it came, and the engine's answer
        passed on as it is.
    counters : In(ArrayLayout(32, counters))
    our_mac, our_ip : Out(48), Out(32)
    idle : Out(1)
        No command in progress or waiting.
    """

    def __init__(self, conn_bits, pid_bits, counters):
        self._counters = counters
        super().__init__({
            "cmd": In(stream.Signature(ControlCommand(conn_bits, pid_bits))),
            "rsp": Out(stream.Signature(ControlResponse())),
            "socket_cmd": Out(stream.Signature(CommandLayout(conn_bits))),
            "socket_rsp": In(stream.Signature(ResponseLayout(conn_bits))),
            "access_control": Out(stream.Signature(AccessControl(conn_bits, pid_bits))),
            "access_done": In(1),
            "engine_cmd": Out(stream.Signature(ControlCommand(conn_bits, pid_bits))),
            "engine_rsp": In(stream.Signature(ControlResponse())),
            "counters": In(data.ArrayLayout(32, counters)),
            "our_mac": Out(48),
            "our_ip": Out(32),
            "idle": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        step = Signal(_Step)
        c = Signal.like(self.cmd.payload)
        rsp = Signal.like(self.rsp.payload)
        op = c.op
        to_socket = (op == CtlOp.SOCKET_INSERT) | (op == CtlOp.SOCKET_DELETE)
        to_access = (op == CtlOp.GRANT) | (op == CtlOp.REVOKE) | (op == CtlOp.CLEAR_ACCESS)
        local = (op == CtlOp.SET_ADDRESS) | (op == CtlOp.READ_COUNTER)

        m.d.comb += [
            self.socket_cmd.payload.op.eq(Mux(op == CtlOp.SOCKET_DELETE, Op.DELETE, Op.INSERT)),
            self.socket_cmd.payload.key.eq(c.key), self.socket_cmd.payload.id.eq(c.conn),
            self.access_control.payload.op.eq(Mux(op == CtlOp.GRANT, AccessOp.GRANT,
                                                  Mux(op == CtlOp.REVOKE, AccessOp.REVOKE,
                                                      AccessOp.CLEAR))),
            self.access_control.payload.conn.eq(c.conn), self.access_control.payload.pid.eq(c.pid),
            self.engine_cmd.payload.eq(c),
        ]

        m.d.comb += self.idle.eq((step == _Step.WAIT_COMMAND) & ~self.cmd.valid)

        with m.Switch(step):
            with m.Case(_Step.WAIT_COMMAND):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [c.eq(self.cmd.payload), rsp.eq(0), step.eq(_Step.WAIT_UNIT)]

            with m.Case(_Step.WAIT_UNIT):
                with m.If(local):
                    with m.If(op == CtlOp.SET_ADDRESS):
                        m.d.sync += [self.our_mac.eq(c.mac), self.our_ip.eq(c.ip)]
                    with m.Else():
                        m.d.sync += rsp.value.eq(Mux(c.index < self._counters,
                                                     self.counters[c.index[:max(1, (self._counters - 1).bit_length())]], 0))
                    m.d.sync += step.eq(_Step.WAIT_RESPONSE_TAKEN)
                with m.Elif(to_socket):
                    m.d.comb += self.socket_cmd.valid.eq(1)
                    with m.If(self.socket_cmd.ready):
                        m.d.sync += step.eq(_Step.WAIT_RESULT)
                with m.Elif(to_access):
                    m.d.comb += self.access_control.valid.eq(1)
                    with m.If(self.access_control.ready):
                        m.d.sync += step.eq(_Step.WAIT_RESULT)
                with m.Else():
                    m.d.comb += self.engine_cmd.valid.eq(1)
                    with m.If(self.engine_cmd.ready):
                        m.d.sync += step.eq(_Step.WAIT_RESULT)

            with m.Case(_Step.WAIT_RESULT):
                with m.If(to_socket):
                    m.d.comb += self.socket_rsp.ready.eq(1)
                    with m.If(self.socket_rsp.valid):
                        status = self.socket_rsp.payload.status
                        m.d.sync += [rsp.status.eq(Mux(status == Status.OK, Errno.OK, Errno.EINVAL)),
                                     rsp.value.eq(status), step.eq(_Step.WAIT_RESPONSE_TAKEN)]
                with m.Elif(to_access):
                    with m.If(self.access_done):
                        m.d.sync += step.eq(_Step.WAIT_RESPONSE_TAKEN)
                with m.Else():
                    m.d.comb += self.engine_rsp.ready.eq(1)
                    with m.If(self.engine_rsp.valid):
                        m.d.sync += [rsp.eq(self.engine_rsp.payload),
                                     step.eq(_Step.WAIT_RESPONSE_TAKEN)]

            with m.Case(_Step.WAIT_RESPONSE_TAKEN):
                m.d.comb += [self.rsp.valid.eq(1), self.rsp.payload.eq(rsp)]
                with m.If(self.rsp.ready):
                    m.d.sync += step.eq(_Step.WAIT_COMMAND)

        return m
