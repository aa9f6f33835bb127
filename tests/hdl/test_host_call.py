"""hdl/engine/host_call.py against the model's own socket calls, in the Amaranth simulator.

Random connections in every TCP state (and UDP sockets, and free slots) with random pending
errors, shutdowns, FINs, queued bytes, caps and free space meet random commands (every op
and two that are none, lengths at 0, 1, the counts, one past them and 2**32 - 1, every flag).
For each, the model's call on the same socket (``Process._recv``, ``_send``, ``_poll_mask``,
``_shutdown_socket``, ``getsockopt_error``, ``Host._release``) must answer what the unit
answers and change the connection as the unit says, and the unit's next step must be the one
that call implies (nothing written back when nothing changed, the send ring emptied exactly
when the connection closed, data moved exactly when bytes are answered).
"""

import copy
import random

import pytest
from amaranth.sim import Simulator

from hdl.config import NIC_POLICY, ring_policy
from hdl.engine.host_call import HostCall, HostNext
from hdl.engine.tcb import ConnKind, Errno, TcpState, ring_count_bits
from hdl.ports import HostOp
from model.constants import (MSG_DONTWAIT, MSG_WAITALL, SHUT_RD, SHUT_RDWR, SOCK_DGRAM,
                             SOCK_STREAM, UDP_RECORD_BYTES)
from model.errors import Errno as ModelErrno
from model.errors import SocketError, WouldBlock
from model.host import Host, Socket
from model.tcp import State, Tcb, seq_add

CASES = 4000
PID_BITS = 4

POLICIES = {
    "reference": NIC_POLICY,
    "large": ring_policy(2 ** 17, window_scaling=True, wscale=2, sack=True),
}
ERRORS = [ModelErrno.ECONNRESET, ModelErrno.ECONNREFUSED, ModelErrno.ETIMEDOUT, ModelErrno.EPIPE]
STATES = [s for s in State if s is not State.LISTEN]    # LISTEN lives in host software


class _Sized:
    """`n` zero bytes without holding them: a WRITE's data as ``Process._send`` reads it."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, span):
        return bytes(len(range(*span.indices(self.n))))


def _tcp_socket(rng, policy):
    """A socket with a connection in a random state and condition (blocking: the command's
    ``nonblock`` is O_NONBLOCK or MSG_DONTWAIT, ``tb/nic_os.py``)."""
    rcv_cap = rng.choice([policy.rcv_buffer, rng.randint(1, policy.rcv_buffer)] * 2 + [1])
    snd_cap = rng.choice([policy.snd_buffer, rng.randint(1, policy.snd_buffer)])
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000), rng.getrandbits(32), policy,
              rcv_cap=rcv_cap, snd_cap=snd_cap)
    tcb.state = rng.choice(STATES)
    tcb.irs = rng.getrandbits(32)
    tcb.snd_una = seq_add(tcb.iss, 1)
    readable = rng.choice([0, 0, 0, 1, rcv_cap, rcv_cap, rng.randint(0, rcv_cap)])
    tcb.rcv.head = rng.randint(0, 3 * policy.rcv_buffer)
    tcb.rcv.tail = tcb.rcv.head + readable
    tcb.send_queue = bytearray(rng.choice([0, snd_cap, rng.randint(0, snd_cap)]))
    tcb.error = rng.choice([None] * 3 + ERRORS)
    tcb.reset = rng.random() < 0.2
    tcb.fin_received = rng.random() < 0.2
    tcb.fin_queued = rng.random() < 0.1
    tcb.orphan = False
    sock = Socket(SOCK_STREAM, tcb=tcb, shut_rd=rng.random() < 0.2, shut_wr=rng.random() < 0.2,
                  was_connected=rng.random() < 0.5)
    return sock


def _udp_socket(rng, policy):
    sock = Socket(SOCK_DGRAM, peer=rng.choice([None, ("10.0.0.2", 53)]),
                  shut_rd=rng.random() < 0.2, shut_wr=rng.random() < 0.2)
    for _ in range(rng.choice([0, 0, 1, 3])):
        payload = bytes(rng.randint(0, 100))
        sock.datagrams.append((payload, ("10.0.0.2", 53)))
        sock.queued_bytes += UDP_RECORD_BYTES + len(payload)
    return sock


def _command(rng, sock, policy):
    tcb = sock.tcb
    counts = [0, 1, 2 ** 32 - 1, rng.getrandbits(32), rng.randint(0, 4000)]
    if tcb is not None:
        counts += [tcb.rcv.readable, tcb.rcv.readable + 1, tcb.send_space, tcb.send_space + 1,
                   tcb.rcv_cap, tcb.rcv_cap + 1, tcb.snd_cap, tcb.snd_cap + 1]
    return {"op": rng.choice(list(HostOp) * 4 + [6, 7]),
            "length": max(0, min(rng.choice(counts), 2 ** 32 - 1)),
            "peek": rng.random() < 0.2, "waitall": rng.random() < 0.4,
            "nonblock": rng.random() < 0.3, "how": rng.randint(0, 3),
            "abort": rng.random() < 0.2, "dest_valid": 0, "dest_ip": 0, "dest_port": 0,
            "pid": 1, "conn": 0}


def _inputs(kind, sock, command, policy):
    """The unit's inputs, as the engine gives them from the record and the rings."""
    tcb = sock.tcb
    if tcb is None:
        readable = sock.queued_bytes
        fields = {"state": TcpState.CLOSED, "error": Errno.OK, "reset": 0, "fin_received": 0,
                  "was_connected": 0, "snd_space": policy.snd_buffer,
                  "rcv_cap": policy.rcv_buffer, "snd_cap": policy.snd_buffer}
    else:
        readable = tcb.rcv.readable
        fields = {"state": TcpState[tcb.state.name],
                  "error": Errno.OK if tcb.error is None else Errno[tcb.error.name],
                  "reset": tcb.reset, "fin_received": tcb.fin_received,
                  "was_connected": sock.was_connected, "snd_space": tcb.send_space,
                  "rcv_cap": tcb.rcv_cap, "snd_cap": tcb.snd_cap}
    return fields | {"kind": kind, "shut_rd": sock.shut_rd, "shut_wr": sock.shut_wr,
                     "peer_valid": sock.peer is not None, "readable": readable,
                     "command": command}


def _set_inputs(ctx, dut, fields):
    """Set the unit's inputs; the command's op may be a number that is no HostOp."""
    op = fields["command"]["op"]
    if isinstance(op, HostOp):
        ctx.set(dut.inputs, fields)
        return
    layout = dut.inputs.shape()
    raw = layout.const(fields | {"command": fields["command"] | {"op": HostOp.READ}}).as_value().value
    raw |= op << (layout["command"].offset + layout["command"].shape["op"].offset)
    ctx.set(dut.inputs.as_value(), raw)


def _call_the_model(host, fd, sock, command):
    """The model's call for `command` on `sock` (`fd` in process 1): (status, count, revents,
    error). A blocking call that would block answers EAGAIN, as the hardware does."""
    proc = host.processes[1]
    op, n = command["op"], command["length"]
    flags = (MSG_WAITALL if command["waitall"] else 0) | (MSG_DONTWAIT if command["nonblock"] else 0)
    try:
        if op == HostOp.READ:
            data, _ = proc._recv(fd, n, flags)
            return Errno.OK, len(data), 0, Errno.OK
        if op == HostOp.WRITE:
            return Errno.OK, proc._send(fd, _Sized(n), flags, None), 0, Errno.OK
        if op == HostOp.POLL:
            return Errno.OK, 0, proc._poll_mask(sock), Errno.OK
        if op == HostOp.SHUTDOWN:
            proc._shutdown_socket(sock, command["how"])
            return Errno.OK, 0, 0, Errno.OK
        if op == HostOp.CLOSE:
            sock.linger_abort = bool(command["abort"])
            host._release(sock)
            return Errno.OK, 0, 0, Errno.OK
        if op == HostOp.GETERR:
            error = proc.getsockopt_error(fd)
            return Errno.OK, 0, 0, Errno.OK if error is None else Errno[error.name]
        return Errno.EINVAL, 0, 0, Errno.OK             # no such op
    except WouldBlock:
        return Errno.EAGAIN, 0, 0, Errno.OK
    except SocketError as e:
        return Errno[e.errno.name], 0, 0, Errno.OK


def _snapshot(sock):
    tcb = sock.tcb
    if tcb is None:
        return (sock.shut_rd, sock.shut_wr, sock.released)
    return (sock.shut_rd, sock.shut_wr, tcb.state, tcb.error, tcb.fin_queued, tcb.orphan,
            tcb.close_deadline, len(tcb.outbox))


def _check(verdict, kind, before, sock, command, answer):
    """The unit's `verdict` is the model's `answer` and change of `sock` (from `before`)."""
    status, count, revents, error = answer
    op = command["op"]
    if kind == ConnKind.UDP and op == HostOp.WRITE:
        assert verdict["next"] == HostNext.UDP_ROUTE    # checked with its route (UDP_SEND)
        return
    assert (verdict["status"], verdict["revents"], verdict["error"]) == (status, revents, error)
    changed = _snapshot(sock) != _snapshot(before)
    nxt = verdict["next"]
    writes = op == HostOp.WRITE and command["length"] != 0
    assert verdict["drain"] == (writes and status != Errno.OK)
    if kind == ConnKind.UDP:
        if op == HostOp.READ and status == Errno.OK and before.datagrams:
            assert nxt == HostNext.UDP_READ         # the record header says the rest
            return
        assert (verdict["shut_rd"], verdict["shut_wr"]) == (sock.shut_rd, sock.shut_wr)
        assert verdict["free"] == sock.released
        # (a shutdown writes its flags back whether or not they were set already)
        writes_back = changed or (op == HostOp.SHUTDOWN and status == Errno.OK)
        assert count == 0 and nxt == (HostNext.WRITE_BACK if writes_back else HostNext.IDLE)
        return
    tcb, tcb0 = sock.tcb, before.tcb
    assert verdict["count"] == count
    assert (verdict["shut_rd"], verdict["shut_wr"]) == (sock.shut_rd, sock.shut_wr)
    assert verdict["state"] == TcpState[tcb.state.name]
    assert bool(verdict["fin_queued"]) | tcb0.fin_queued == tcb.fin_queued
    assert bool(verdict["orphan"]) == tcb.orphan
    assert verdict["abort_rst"] == (len(tcb.outbox) > len(tcb0.outbox))
    closed = tcb.state == State.CLOSED and tcb0.state != State.CLOSED
    assert verdict["closed"] == closed
    assert verdict["fin_wait_2_timer"] == (tcb.close_deadline is not None and not closed
                                           and tcb.close_deadline != tcb0.close_deadline)
    assert (verdict["clear_error"] and tcb0.error is not None) == \
        (tcb0.error is not None and tcb.error is None)
    assert not verdict["free"]
    if op == HostOp.READ and status == Errno.OK and (tcb0.rcv.readable or command["length"] == 0):
        expected = HostNext.READ_DATA
    elif op == HostOp.WRITE and count:
        expected = HostNext.WRITE_RING
    elif closed:
        expected = HostNext.CLEAR_SEND_RING
    elif op in (HostOp.SHUTDOWN, HostOp.CLOSE) and status == Errno.OK:
        expected = HostNext.DISPATCH              # a FIN to send, perhaps
    elif changed:
        expected = HostNext.WRITE_BACK
    else:
        expected = HostNext.IDLE
    assert nxt == expected


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_host_call_equals_the_model(policy_name):
    policy = POLICIES[policy_name]
    rng = random.Random(policy_name)
    dut = HostCall(pid_bits=PID_BITS, ring_bits=ring_count_bits(policy))
    seen = {}

    async def testbench(ctx):
        for case in range(CASES):
            host = Host("02:00:00:00:00:01", "10.0.0.1", policy)
            proc = host.spawn()
            assert proc.pid == 1
            kind = rng.choice([ConnKind.TCP] * 6 + [ConnKind.UDP] * 2 + [ConnKind.FREE])
            sock = _udp_socket(rng, policy) if kind == ConnKind.UDP else _tcp_socket(rng, policy)
            fd = proc._install(sock)
            command = _command(rng, sock, policy)
            _set_inputs(ctx, dut, _inputs(kind, sock, command, policy))
            await ctx.delay(1e-9)
            verdict = {name: ctx.get(getattr(dut.verdict, name))
                       for name in ("next", "status", "count", "revents", "error", "drain",
                                    "state", "fin_queued", "closed", "abort_rst", "orphan",
                                    "fin_wait_2_timer", "shut_rd", "shut_wr", "clear_error",
                                    "free")}
            if kind == ConnKind.FREE:
                # a slot with nothing in it: the process learns EBADF, nothing changes
                assert (verdict["status"], verdict["next"]) == (Errno.EBADF, HostNext.IDLE)
                assert verdict["drain"] == (command["op"] == HostOp.WRITE and command["length"] != 0)
                continue
            before = copy.deepcopy(sock)
            answer = _call_the_model(host, fd, sock, command)
            _check(verdict, kind, before, sock, command, answer)
            key = (kind, command["op"], verdict["next"], verdict["status"])
            seen[key] = seen.get(key, 0) + 1
            if kind == ConnKind.TCP and command["op"] == HostOp.READ and command["waitall"] \
                    and not command["nonblock"] and answer[1] and \
                    before.tcb.rcv.readable == before.tcb.rcv_cap < command["length"]:
                # MSG_WAITALL for more than SO_RCVBUF holds: answered once the buffer is full
                seen["waitall_at_cap"] = seen.get("waitall_at_cap", 0) + 1

    sim = Simulator(dut)
    sim.add_testbench(testbench)
    sim.run()
    # every answer the unit can give to a TCP socket's calls came up
    assert seen.get("waitall_at_cap"), seen
    for op, nxt, status in [
            (HostOp.READ, HostNext.READ_DATA, Errno.OK), (HostOp.READ, HostNext.IDLE, Errno.EAGAIN),
            (HostOp.READ, HostNext.WRITE_BACK, Errno.ECONNRESET),
            (HostOp.READ, HostNext.IDLE, Errno.ENOTCONN), (HostOp.READ, HostNext.IDLE, Errno.OK),
            (HostOp.WRITE, HostNext.WRITE_RING, Errno.OK), (HostOp.WRITE, HostNext.IDLE, Errno.EPIPE),
            (HostOp.WRITE, HostNext.IDLE, Errno.EAGAIN), (HostOp.WRITE, HostNext.WRITE_BACK, Errno.EPIPE),
            (HostOp.POLL, HostNext.IDLE, Errno.OK),
            (HostOp.SHUTDOWN, HostNext.DISPATCH, Errno.OK),
            (HostOp.SHUTDOWN, HostNext.CLEAR_SEND_RING, Errno.OK),
            (HostOp.SHUTDOWN, HostNext.IDLE, Errno.ENOTCONN),
            (HostOp.SHUTDOWN, HostNext.IDLE, Errno.EINVAL),
            (HostOp.CLOSE, HostNext.DISPATCH, Errno.OK),
            (HostOp.CLOSE, HostNext.CLEAR_SEND_RING, Errno.OK),
            (HostOp.GETERR, HostNext.WRITE_BACK, Errno.OK), (HostOp.GETERR, HostNext.IDLE, Errno.OK),
            (6, HostNext.IDLE, Errno.EINVAL)]:
        assert seen.get((ConnKind.TCP, op, nxt, status)), (op, nxt, status)
