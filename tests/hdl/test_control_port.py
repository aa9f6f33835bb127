"""ControlPort: each privileged command reaches the one unit it concerns and is answered once."""

import pytest
from amaranth.sim import Simulator

from hdl.tables.access_table import AccessOp
from flow.build import lint_component
from hdl.control_port import ControlPort
from hdl.ports import CtlOp
from hdl.tables.socket_table import Op, Status
from hdl.engine.tcb import Errno, TcpState
from model.protocol import IpProto
from flow.tools import BUILD

KEY = {"protocol": IpProto.TCP, "local_ip": 0xC0000201, "local_port": 80, "remote_ip": 0xC0000202,
       "remote_port": 4242}


def run(commands):
    """Send `commands`; the fake units answer; returns [(unit, what it got, response)]."""
    dut = ControlPort(conn_bits=3, pid_bits=2, counters=3)
    log = []

    async def bench(ctx):
        for i in range(3):
            ctx.set(dut.counters[i], 100 + i)
        ctx.set(dut.rsp.ready, 1)
        for fields in commands:
            ctx.set(dut.cmd.payload, fields)
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
            ctx.set(dut.cmd.valid, 0)
            unit, got = "port", None
            for _ in range(50):
                if ctx.get(dut.socket_cmd.valid):
                    unit, got = "socket", ctx.get(dut.socket_cmd.payload)
                    ctx.set(dut.socket_cmd.ready, 1)
                    await ctx.tick()
                    ctx.set(dut.socket_cmd.ready, 0)
                    ctx.set(dut.socket_rsp.payload, {"status": Status.FULL, "id": 0})
                    ctx.set(dut.socket_rsp.valid, 1)
                    await ctx.tick().until(dut.socket_rsp.ready)
                    ctx.set(dut.socket_rsp.valid, 0)
                elif ctx.get(dut.access_control.valid):
                    unit, got = "access", ctx.get(dut.access_control.payload)
                    ctx.set(dut.access_control.ready, 1)
                    await ctx.tick()
                    ctx.set(dut.access_control.ready, 0)
                    await ctx.tick()
                    ctx.set(dut.access_done, 1)
                    await ctx.tick()
                    ctx.set(dut.access_done, 0)
                elif ctx.get(dut.engine_cmd.valid):
                    unit, got = "engine", ctx.get(dut.engine_cmd.payload)
                    ctx.set(dut.engine_cmd.ready, 1)
                    await ctx.tick()
                    ctx.set(dut.engine_cmd.ready, 0)
                    ctx.set(dut.engine_rsp.payload, {"status": Errno.OK, "state": TcpState.LAST_ACK,
                                                     "value": 7, "flag": 1})
                    ctx.set(dut.engine_rsp.valid, 1)
                    await ctx.tick().until(dut.engine_rsp.ready)
                    ctx.set(dut.engine_rsp.valid, 0)
                if ctx.get(dut.rsp.valid):
                    log.append((unit, got, ctx.get(dut.rsp.payload)))
                    await ctx.tick()
                    break
                await ctx.tick()
            else:
                raise TimeoutError(f"no response to {fields}")
        log.append(("address", ctx.get(dut.our_mac), ctx.get(dut.our_ip)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return log


def test_every_command_reaches_its_unit():
    log = run([
        {"op": CtlOp.SOCKET_INSERT, "conn": 5, "key": KEY},
        {"op": CtlOp.SOCKET_DELETE, "key": KEY},
        {"op": CtlOp.GRANT, "conn": 3, "pid": 2},
        {"op": CtlOp.CLEAR_ACCESS, "conn": 4},
        {"op": CtlOp.INSTALL_TCP, "conn": 6, "iss": 1234, "state": TcpState.SYN_SENT},
        {"op": CtlOp.READ_COUNTER, "index": 2},
        {"op": CtlOp.READ_COUNTER, "index": 7},          # no such counter: 0
        {"op": CtlOp.SET_ADDRESS, "mac": 0x020000000001, "ip": 0xC0000201},
    ])
    insert, delete, grant, clear, install, counter, missing, address, final = log
    assert insert[0] == "socket" and insert[1].op == Op.INSERT and insert[1].id == 5
    assert insert[1].key.remote_port == 4242
    assert insert[2].status == Errno.EINVAL and insert[2].value == Status.FULL.value
    assert delete[0] == "socket" and delete[1].op == Op.DELETE
    assert grant[0] == "access" and (grant[1].op, grant[1].conn, grant[1].pid) == (AccessOp.GRANT, 3, 2)
    assert clear[0] == "access" and clear[1].op == AccessOp.CLEAR and clear[1].conn == 4
    assert install[0] == "engine" and install[1].iss == 1234 and install[1].conn == 6
    assert install[2].state == TcpState.LAST_ACK and install[2].value == 7 and install[2].flag
    assert counter[0] == "port" and counter[2].value == 102
    assert missing[2].value == 0
    assert address[0] == "port" and final == ("address", 0x020000000001, 0xC0000201)


def test_lint():
    lint_component(ControlPort(conn_bits=6, pid_bits=4, counters=24), "control_port",
                   BUILD / "test" / "control_port")
