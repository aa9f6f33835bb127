"""TcpEngine in the Amaranth simulator against model.tcp.Tcb, segment by segment.

The engine is driven on its own ports (control commands, receive events with their payloads,
host commands, ticks) exactly as the receive path and the OS would, and a model Tcb gets the
same inputs; every segment the engine hands the framer must equal the model's (seq, ack,
flags, window, payload, MSS option), and every host answer the model's socket call result.
The whole NIC is compared with the model scenario by scenario in tests/test_nic_rtl.py.
"""

from dataclasses import replace

import pytest
from amaranth.sim import Simulator

from hdl.tables.access_table import AccessOp
from hdl.config import NIC_POLICY
from flow.build import lint_component
from hdl.ports import CtlOp, EventKind, HostOp, RxRoute
from hdl.engine.tcb import ConnKind, Errno, TcpState
from hdl.engine.tcp_engine import TcpEngine
from hdl.wire import L4Protocol
from model.checksum import ones_complement_sum
from model.protocol import TcpFlag
from model.packet import TcpSegment
from model.policy import LINUX_RTO, Policy, wscale_for
from model.tcp import State, Tcb
from tb.amaranth_sim import beats_to_frame, frame_to_beats
from flow.tools import BUILD

POLICY = NIC_POLICY
LOCAL, REMOTE = ("192.0.2.1", 49152), ("192.0.2.2", 80)


def model_view(seg: TcpSegment):
    return (seg.seq, seg.ack, int(seg.flags), seg.window, seg.payload, seg.mss is not None,
            seg.wscale is not None, seg.sack_permitted,
            tuple((left % 2 ** 32, right % 2 ** 32) for left, right in seg.sack))


class Checked(list):
    """The names of the comparisons that passed, in order."""

    def same(self, hw, model_segments, what):
        """The engine's segments `hw` must equal the model's `model_segments`."""
        want = [model_view(s) for s in model_segments]
        assert hw == want, f"{what}:\n hardware {hw}\n model    {want}"
        self.append(what)


class EngineBench:
    """Drives one TcpEngine: every call runs until the engine is idle again."""

    @classmethod
    def ready(cls, ctx, dut, data_width):
        """A bench with every port the engine drives ready."""
        for port in (dut.tx_header, dut.tx_payload, dut.events, dut.ctl_rsp, dut.host_rsp,
                     dut.host_rdata, dut.rx_action, *cls.sum_port(dut)):
            ctx.set(port.ready, 1)
        return cls(ctx, dut, data_width)

    @staticmethod
    def sum_port(dut):
        """The 64-bit engine's payload sums (the send ring's range sums), if it has them."""
        return (dut.tx_payload_sum,) if hasattr(dut, "tx_payload_sum") else ()

    def __init__(self, ctx, dut, data_width):
        self.ctx, self.dut, self.width = ctx, dut, data_width
        self.segments = []                          # what went to the framer
        self.events = []
        self.steps = set()                          # engine steps seen (``receive`` clears it)
        self._payload = []
        self._payloads = []                         # payloads and sums not yet compared
        self._sums = []
        self._tcp_payloads = []                     # per header with a payload: is it TCP

    async def cycle(self, *extra):
        """One clock, recording what the engine sends; returns `extra` signals as sampled."""
        ctx, dut = self.ctx, self.dut
        _, _, hv, hp, pv, pp, ev, ep, step, *values = await ctx.tick().sample(
            dut.tx_header.valid, dut.tx_header.payload, dut.tx_payload.valid, dut.tx_payload.payload,
            dut.events.valid, dut.events.payload, dut.step, *extra)
        self.steps.add(step)
        if hv:
            h = hp
            blocks = (tuple((h.sack[k].left, h.sack[k].right) for k in range(h.sack_count))
                      if hasattr(h, "sack") else ())
            if h.length:
                self._tcp_payloads.append(h.protocol == L4Protocol.TCP)
            self.segments.append([h.seq, h.ack, h.flags.as_value().value, h.window, h.length,
                                  bool(h.mss_option), bool(h.wscale_option),
                                  bool(h.sack_permitted_option), blocks])
        if pv:
            self._payload.append((pp.data, pp.keep))
            if pp.last:
                payload = beats_to_frame(self._payload, self.width)
                self._payload.clear()
                if self._tcp_payloads.pop(0) and self.sum_port(dut):
                    self._payloads.append(payload)
                pending = next(s for s in self.segments if s[4] and not isinstance(s[4], bytes))
                pending[4] = payload
        if ev:
            self.events.append((ep.conn, ep.kind))
        for port in self.sum_port(dut):
            if ctx.get(port.valid):
                self._sums.append(ctx.get(port.payload))
        while self._payloads and self._sums:
            payload, got = self._payloads.pop(0), self._sums.pop(0)
            assert got % 0xFFFF == ones_complement_sum(payload) % 0xFFFF, \
                f"payload sum {got:#06x}, RFC 1071 {ones_complement_sum(payload):#06x}: {payload.hex()}"
        return values

    async def settle(self, limit=5_000):
        idle = 0
        for _ in range(limit):
            await self.cycle()
            idle = idle + 1 if self.ctx.get(self.dut.idle) else 0
            if idle == 4:
                if hasattr(self.dut, "send_ring_writer_error"):
                    assert not self.ctx.get(self.dut.send_ring_writer_error), \
                        "the send ring took a WRITE not at its tail or too long for it"
                return
        raise TimeoutError(f"engine not idle after {limit} cycles")

    def take(self):
        """Segments since the last take, as (seq, ack, flags, window, payload, MSS option,
        window scale option, SACK-permitted option, SACK blocks)."""
        out = [(*s[:4], s[4] if isinstance(s[4], bytes) else b"", *s[5:]) for s in self.segments]
        self.segments.clear()
        return out

    async def control(self, **fields):
        ctx, dut = self.ctx, self.dut
        ctx.set(dut.ctl_cmd.payload, fields)
        ctx.set(dut.ctl_cmd.valid, 1)
        await ctx.tick().until(dut.ctl_cmd.ready)
        ctx.set(dut.ctl_cmd.valid, 0)
        while not ctx.get(dut.ctl_rsp.valid):
            await self.cycle()
        rsp = ctx.get(dut.ctl_rsp.payload)
        await self.settle()
        return rsp

    async def grant(self, conn, pid):
        ctx, dut = self.ctx, self.dut
        ctx.set(dut.access_control.payload, {"op": AccessOp.GRANT, "conn": conn, "pid": pid})
        ctx.set(dut.access_control.valid, 1)
        await ctx.tick().until(dut.access_control.ready)
        ctx.set(dut.access_control.valid, 0)
        await ctx.tick().until(dut.access_done)

    async def host(self, data=b"", **fields):
        """One host command and its data; the answer may come before the data is taken (an
        EBADF is answered, then the data drained), so both are driven in one loop."""
        ctx, dut = self.ctx, self.dut
        ctx.set(dut.host_cmd.payload, {"length": len(data), **fields})
        ctx.set(dut.host_cmd.valid, 1)
        await ctx.tick().until(dut.host_cmd.ready)
        ctx.set(dut.host_cmd.valid, 0)
        beats = frame_to_beats(data, self.width) if data else []
        rsp, read = None, []
        for _ in range(20_000 + 2 * len(beats)):
            if beats:
                d, k, last = beats[0]
                ctx.set(dut.host_wdata.valid, 1)
                ctx.set(dut.host_wdata.payload, {"data": d, "keep": k, "last": last})
            else:
                ctx.set(dut.host_wdata.valid, 0)
            # (the engine may send segments while the data still moves: record them)
            w_ready, r_valid, r_payload, d_valid, d_payload = await self.cycle(
                dut.host_wdata.ready, dut.host_rsp.valid, dut.host_rsp.payload,
                dut.host_rdata.valid, dut.host_rdata.payload)
            if beats and w_ready:
                beats.pop(0)
            if r_valid:
                rsp = r_payload
            if d_valid:
                read.append((d_payload.data, d_payload.keep))
            done_reading = (rsp is not None and (fields["op"] != HostOp.READ or rsp.status != Errno.OK
                                                 or len(beats_to_frame(read, self.width)) == rsp.count))
            if rsp is not None and not beats and done_reading:
                break
        ctx.set(dut.host_wdata.valid, 0)
        await self.settle()
        return rsp, beats_to_frame(read, self.width) if read else b""

    async def open_active(self, model, same, what):
        """connect() on connection 1 (ISS 1000) and on `model`: their SYNs must be the same."""
        await self.control(op=CtlOp.INSTALL_TCP, conn=1, state=TcpState.SYN_SENT, iss=1000,
                           local_port=LOCAL[1], ip=0xC0000202, port=REMOTE[1], mac=2)
        model.open_active()
        same(self.take(), model.dispatch(0), what)

    async def exchange(self, seg: TcpSegment, model, same, what, conn=1):
        """`seg` in on connection `conn` and on `model`: what each sends must be the same."""
        await self.receive(seg, conn=conn)
        model.process(seg, 0)
        same(self.take(), model.dispatch(0), what)

    async def receive(self, seg: TcpSegment, conn=1):
        """A segment from the receive path: the event, the engine's action, then the payload."""
        ctx, dut = self.ctx, self.dut
        ctx.set(dut.rx_event.payload, {"conn": conn, "seq": seg.seq, "ack": seg.ack,
                                       "flags": seg.flags, "window": seg.window,
                                       "payload_offset": 54, "payload_length": len(seg.payload),
                                       "src_ip": 0xC0000202, "src_port": REMOTE[1],
                                       "mss": seg.mss or 0,
                                       "wscale_offered": seg.wscale is not None,
                                       "wscale": seg.wscale or 0,
                                       "sack_permitted": seg.sack_permitted})
        ctx.set(dut.rx_event.valid, 1)
        self.steps.clear()
        await ctx.tick().until(dut.rx_event.ready)
        ctx.set(dut.rx_event.valid, 0)
        while not ctx.get(dut.rx_action.valid):
            await self.cycle()
        route = ctx.get(dut.rx_action.payload.route)
        await self.cycle()                          # the action is taken
        if route == RxRoute.STORE and seg.payload:
            # the engine goes on while the payload moves: watch its outputs meanwhile
            for data, keep, last in frame_to_beats(seg.payload, self.width):
                ctx.set(dut.rx_payload.valid, 1)
                ctx.set(dut.rx_payload.payload, {"data": data, "keep": keep, "last": last})
                while not ctx.get(dut.rx_payload.ready):
                    await self.cycle()
                await self.cycle()
            ctx.set(dut.rx_payload.valid, 0)
        await self.settle()
        return route

    async def tick(self):
        self.ctx.set(self.dut.tick, 1)
        await self.cycle()
        self.ctx.set(self.dut.tick, 0)
        await self.settle()


async def connected(ctx, dut, data_width, tcb, same, *, peer_window):
    """Every port ready, and connection 1 opened actively as `tcb` (at tick 0): the SYN,
    then the peer's SYN-ACK (from the slow path, as INJECT) with `peer_window` and MSS 1000."""
    b = EngineBench.ready(ctx, dut, data_width)
    await b.open_active(tcb, same, "SYN")
    synack = TcpSegment(80, LOCAL[1], 5000, 1001, TcpFlag.SYN | TcpFlag.ACK, peer_window, mss=1000)
    await b.control(op=CtlOp.INJECT, conn=1, seq=5000, ack=1001,
                    flags=synack.flags, window=peer_window, mss=1000)
    tcb.process(synack, 0)
    same(b.take(), tcb.dispatch(0), "ACK of the SYN-ACK")
    return b


@pytest.mark.parametrize("data_width", [64, 8])
def test_engine_follows_the_model(data_width):
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY)
    now = 0
    checked = Checked()
    same = checked.same

    async def bench(ctx):
        nonlocal now
        b = await connected(ctx, dut, data_width, tcb, same, peer_window=3000)
        state = await b.control(op=CtlOp.READ_STATE, conn=1)
        assert state.state == TcpState.ESTABLISHED and tcb.state == State.ESTABLISHED
        assert b.events == [(1, EventKind.SYNCHRONIZED)]
        # a process without access learns nothing; one with access writes
        rsp, _ = await b.host(b"denied", pid=2, conn=1, op=HostOp.WRITE)
        assert rsp.status == Errno.EBADF and b.take() == []
        await b.grant(conn=1, pid=1)
        data = bytes(range(256)) * 10
        rsp, _ = await b.host(data, pid=1, conn=1, op=HostOp.WRITE, nonblock=1)
        assert rsp.status == Errno.OK and rsp.count == tcb.send(data) == 2048
        same(b.take(), tcb.dispatch(now), "data within the peer's window and the MSS")
        # the peer acknowledges 1000 bytes and sends 300
        ack = TcpSegment(80, LOCAL[1], 5001, 2001, TcpFlag.ACK | TcpFlag.PSH, 3000,
                         payload=bytes(range(100, 250)) * 2)
        assert await b.receive(ack) == RxRoute.STORE
        tcb.process(ack, now)
        same(b.take(), tcb.dispatch(now), "ACK of received data")
        # byte-granular reads, one peek
        for n, flags in ((1, 1), (1, 0), (500, 0)):
            rsp, got = await b.host(pid=1, conn=1, op=HostOp.READ, length=n, peek=flags)
            assert got == tcb.receive(n, peek=bool(flags)) and rsp.count == len(got)
        same(b.take(), tcb.dispatch(now), "window update after reading")
        # silence: the retransmission timer fires at its deadline and backs off; the engine
        # reports the same next deadline as the model, and idle ticks are skipped over
        for expiry in range(3):
            deadline = tcb.next_deadline()
            rsp = await b.control(op=CtlOp.NEXT_DEADLINE)
            assert rsp.flag and now + rsp.value == deadline
            if deadline - now > 1:
                await b.control(op=CtlOp.ADVANCE, seq=deadline - now)
            await b.tick()
            now = deadline
            tcb.on_timer(now)
            same(b.take(), tcb.dispatch(now), f"retransmission timeout {expiry + 1} at tick {now}")
        assert [e[1] for e in tcb.events if e[1] == "rto"] == ["rto"] * 3

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "retransmission timeout 3 at tick 1400" in checked


@pytest.mark.parametrize("data_width", [64, 8])
def test_receive_fast_path_equals_the_slow_path(data_width):
    """In-order data in ESTABLISHED that acknowledges nothing new skips the step-by-step
    path; out-of-order data, a filled hole, new acknowledgements and unsent data do not. Both
    answer as the model does."""
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY)
    now = 0
    checked = Checked()
    same = checked.same

    async def bench(ctx):
        b = await connected(ctx, dut, data_width, tcb, same, peer_window=600)
        await b.grant(conn=1, pid=1)

        async def segment(seq, ack, payload, window=600, fast=False, what=""):
            seg = TcpSegment(80, LOCAL[1], seq, ack, TcpFlag.ACK | TcpFlag.PSH, window,
                             payload=payload)
            route = await b.receive(seg)
            assert route == RxRoute.STORE, f"{what}: {route} after {sorted(s.name for s in b.steps)}"
            tcb.process(seg, now)
            same(b.take(), tcb.dispatch(now), what)
            took_fast = "DISPATCH" not in {s.name for s in b.steps}   # (the slow path ends there)
            assert took_fast == fast, f"{what}: fast path {took_fast}, expected {fast}"

        data = bytes(range(7, 207))
        await segment(5001, 1001, data, fast=True, what="in order")
        await segment(5201, 1001, data[:1], window=900, fast=True, what="in order, window opens")
        await segment(5402, 1001, data, what="beyond a hole: a range is held")
        await segment(5202, 1001, data, what="the hole filled: the range joins")
        await segment(5602, 1001, data[:13], fast=True, what="in order again")
        rsp, _ = await b.host(bytes(1500), pid=1, conn=1, op=HostOp.WRITE, nonblock=1)
        assert rsp.count == tcb.send(bytes(1500))
        same(b.take(), tcb.dispatch(now), "a write beyond the peer's window")
        await segment(5615, 1001, data, what="data while ours waits unsent")
        await segment(5815, 1601, data, what="an acknowledgement of ours")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "an acknowledgement of ours" in checked


@pytest.mark.parametrize("data_width", [64, 8])
def test_receive_fast_path_at_its_length_limits(data_width):
    """Payloads of 0 bytes (a bare ACK: slow), 1 byte and exactly the window (fast), and one
    byte into a closed window (slow): every answer as the model's."""
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY)
    checked = Checked()

    async def bench(ctx):
        b = await connected(ctx, dut, data_width, tcb, checked.same, peer_window=600)

        async def segment(payload, fast, what):
            seg = TcpSegment(80, LOCAL[1], tcb.rcv_nxt, 1001, TcpFlag.ACK, 600, payload=payload)
            route = await b.receive(seg)
            tcb.process(seg, 0)
            checked.same(b.take(), tcb.dispatch(0), what)
            took_fast = "DISPATCH" not in {s.name for s in b.steps}   # (the slow path ends there)
            assert took_fast == fast, f"{what}: fast path {took_fast}, expected {fast} ({route})"

        await segment(b"", False, "a bare ACK")
        await segment(b"x", True, "one byte")
        await segment(bytes(range(256)) * (tcb.rcv_wnd // 256) + bytes(tcb.rcv_wnd % 256), True,
                      "exactly the window")
        assert tcb.rcv_wnd == 0
        await segment(b"y", False, "a byte into the closed window")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "a byte into the closed window" in checked


def test_rejects_bad_parameters():
    with pytest.raises(TypeError, match="Connection count must be a power of two of at least 2, not 3"):
        TcpEngine(data_width=64, connections=3, processes=4)
    with pytest.raises(TypeError, match="Policy rcv_buffer must be a power of two from 64 to 1048576"):
        TcpEngine(data_width=64, connections=4, processes=4, policy=Policy(rcv_buffer=3000))


@pytest.mark.parametrize("data_width,rtt", [(8, False), (64, False), (64, True)])
def test_lint(data_width, rtt):
    """Verilator's lint, with and without the RTT estimator (Policy.rtt_estimation), the
    latter with window scaling (Policy.window_scaling, our shift 3) too."""
    policy = replace(POLICY, **LINUX_RTO, window_scaling=True, wscale=3) if rtt else POLICY
    engine = TcpEngine(data_width=data_width, connections=4, processes=4, policy=policy)
    lint_component(engine, f"tcp_engine_{data_width}{'_rtt' if rtt else ''}",
                   BUILD / "test" / "tcp_engine")


@pytest.mark.parametrize("data_width", [64])       # 8 bits: the RTL scenario host_limits
def test_host_command_ranges(data_width):
    """Every value a doorbell can carry is handled: a connection number past the last slot
    gets EBADF (its low bits name another connection, which stays untouched), and a WRITE of
    any 32-bit length takes what the send ring has room for, its other bytes drained, so the
    next command's data is its own. (Once, a 65,536-byte write wrapped the ring's 16-bit
    length: it took nothing, and its bytes landed on the next writer's connection.)"""
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY)

    async def bench(ctx):
        b = await connected(ctx, dut, data_width, tcb, Checked().same, peer_window=0)
        for pid in (1, 2):
            await b.grant(conn=1, pid=pid)
        # connection numbers 5, 1 + 2**k and the largest: EBADF, the data drained, nothing sent
        for conn in (4, 5, 1 + 4 * 16, 0xFFFF):
            rsp, _ = await b.host(b"forged", pid=1, conn=conn, op=HostOp.WRITE)
            assert rsp.status == Errno.EBADF, conn
            rsp, got = await b.host(pid=1, conn=conn, op=HostOp.READ, length=10)
            assert rsp.status == Errno.EBADF and got == b"", conn
        rsp = await b.control(op=CtlOp.READ_STATE, conn=1)
        assert rsp.state == TcpState.ESTABLISHED and b.take() == []
        # writes of 2**16 and more (the peer's window is 0: nothing goes out, the ring fills)
        for size, want in ((2 ** 16, 2048), (2 ** 16 + 10, 0), (1, 0)):
            data = bytes([size % 251]) * size
            rsp, _ = await b.host(data, pid=1, conn=1, op=HostOp.WRITE, nonblock=1)
            model = tcb.send(data) if want else 0
            assert (rsp.status, rsp.count) == ((Errno.OK, want) if want else (Errno.EAGAIN, 0)), size
            assert rsp.count == model
        # a length the host cannot back with data (2**32 - 1) on a full ring: EAGAIN, and the
        # beats it did send (up to `last`) are drained
        rsp, _ = await b.host(b"x" * 9, pid=2, conn=1, op=HostOp.WRITE, nonblock=1,
                              length=2 ** 32 - 1)
        assert rsp.status == Errno.EAGAIN
        # the stream holds exactly the first write's first 2048 bytes: the peer opens its window
        # and the engine sends them, as the model does
        ack = TcpSegment(80, LOCAL[1], 5001, 1001, TcpFlag.ACK, 3000)
        await b.receive(ack)
        tcb.process(ack, 0)
        sent = b.take()
        assert sent == [model_view(s) for s in tcb.dispatch(0)]
        assert b"".join(s[4] for s in sent) == bytes([2 ** 16 % 251]) * 2048

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("data_width", [64, 8])
def test_host_commands_overlap_write_data(data_width):
    """A command without data is taken while a WRITE's bytes still move into the send ring
    (a POLL is answered meanwhile); a second WRITE's bytes follow the first's into the ring,
    a WRITE to a slot past the last has its bytes drained after them, a READ finds nothing;
    and the segments carry both writes' bytes in order, as the model sends them. The host
    feeds its data one beat every other clock, behind the commands."""
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY)
    first, second, forged = bytes(range(200)), bytes(range(100, 220)), b"forged!!"
    commands = [(dict(op=HostOp.WRITE, conn=1), first),
                (dict(op=HostOp.POLL, conn=1), b""),
                (dict(op=HostOp.WRITE, conn=1), second),
                (dict(op=HostOp.WRITE, conn=5), forged),
                (dict(op=HostOp.READ, conn=1, length=10), b"")]

    async def bench(ctx):
        b = await connected(ctx, dut, data_width, tcb, Checked().same, peer_window=0)
        await b.grant(conn=1, pid=1)
        beats = [beat for _, data in commands if data for beat in frame_to_beats(data, data_width)]
        first_beats = len(frame_to_beats(first, data_width))
        taken, answers, beats_taken, poll_taken_at = 0, [], 0, None
        clock = 0
        while len(answers) < len(commands) or beats_taken < len(beats):
            if taken < len(commands):
                fields, data = commands[taken]
                ctx.set(dut.host_cmd.payload, {"pid": 1, "nonblock": 1, "length": len(data),
                                               **fields})
            ctx.set(dut.host_cmd.valid, taken < len(commands))
            offer = beats_taken < len(beats) and clock % 2 == 0
            if offer:
                d, k, last = beats[beats_taken]
                ctx.set(dut.host_wdata.payload, {"data": d, "keep": k, "last": last})
            ctx.set(dut.host_wdata.valid, offer)
            c_ready, w_ready, r_valid, r_payload = await b.cycle(
                dut.host_cmd.ready, dut.host_wdata.ready, dut.host_rsp.valid, dut.host_rsp.payload)
            if c_ready and taken < len(commands):
                if commands[taken][0]["op"] == HostOp.POLL:
                    poll_taken_at = beats_taken
                taken += 1
            if offer and w_ready:
                beats_taken += 1
            if r_valid:
                answers.append((Errno(r_payload.status), r_payload.count))
            clock += 1
            assert clock < 20_000, "host commands not answered"
        ctx.set(dut.host_cmd.valid, 0)
        ctx.set(dut.host_wdata.valid, 0)
        await b.settle()
        assert poll_taken_at is not None and poll_taken_at < first_beats, \
            "the POLL waited for the first WRITE's bytes"
        assert [a[0] for a in answers] == [Errno.OK, Errno.OK, Errno.OK, Errno.EBADF,
                                           Errno.EAGAIN]
        assert (answers[0][1], answers[2][1]) == (tcb.send(first), tcb.send(second))
        # the peer opens its window: both writes' bytes go out, as the model sends them
        ack = TcpSegment(80, LOCAL[1], 5001, 1001, TcpFlag.ACK, 3000)
        await b.receive(ack)
        tcb.process(ack, 0)
        sent = b.take()
        assert sent == [model_view(s) for s in tcb.dispatch(0)]
        assert b"".join(s[4] for s in sent) == first + second

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("data_width", [64, 8])
def test_engine_syn_received_and_time_wait_follow_the_model(data_width):
    """Issue 14, items 5 to 7: SYN-RECEIVED answers with a pure ACK (a retransmitted SYN with
    the SYN-ACK), TIME-WAIT ACKs data and FINs and restarts 2 MSL as Linux does, and a
    listener's pending connection is closed without a RST."""
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY, passive=True)
    now = 0
    checked = Checked()
    same = checked.same

    def seg(seq, ack, flags, payload=b""):
        return TcpSegment(80, LOCAL[1], seq, ack, flags, 3000, payload)

    async def bench(ctx):
        nonlocal now
        b = EngineBench.ready(ctx, dut, data_width)

        async def step(segment, what, inject=False):
            if inject:
                await b.control(op=CtlOp.INJECT, conn=1, seq=segment.seq, ack=segment.ack,
                                flags=segment.flags, window=segment.window, mss=0)
            else:
                await b.receive(segment)
            tcb.process(segment, now)
            same(b.take(), tcb.dispatch(now), what)

        async def advance(ticks):
            nonlocal now
            await b.control(op=CtlOp.ADVANCE, seq=ticks)
            await b.tick()
            now += ticks
            tcb.on_timer(now)
            same(b.take(), tcb.dispatch(now), f"tick {now}")

        async def deadline_is_the_models():
            rsp = await b.control(op=CtlOp.NEXT_DEADLINE)
            assert rsp.flag and now + rsp.value == tcb.next_deadline()

        # a listener's SYN: SYN-RECEIVED
        await b.control(op=CtlOp.INSTALL_TCP, conn=1, state=TcpState.SYN_RECEIVED, iss=1000,
                        irs=5000, window=3000, mss=0, local_port=LOCAL[1], ip=0xC0000202,
                        port=REMOTE[1], mac=2)
        tcb.open_passive(seg(5000, 0, TcpFlag.SYN))
        same(b.take(), tcb.dispatch(now), "SYN-ACK")
        await step(seg(5010, 0, TcpFlag.RST), "challenge ACK in SYN-RECEIVED")
        await step(seg(5001 + 3000, 1001, TcpFlag.ACK), "ACK of an unacceptable segment")
        await step(seg(5000, 0, TcpFlag.SYN), "SYN-ACK for a retransmitted SYN", inject=True)
        await step(seg(5001, 1001, TcpFlag.ACK), "the handshake completes")
        assert tcb.state == State.ESTABLISHED
        # we close first, the peer's FIN follows: TIME-WAIT
        await b.grant(conn=1, pid=0)
        rsp, _ = await b.host(pid=0, conn=1, op=HostOp.SHUTDOWN, how=1)
        assert rsp.status == Errno.OK
        tcb.close_send()
        same(b.take(), tcb.dispatch(now), "our FIN")
        await step(seg(5001, 1002, TcpFlag.ACK | TcpFlag.FIN), "the peer's FIN")
        assert tcb.state == State.TIME_WAIT
        await advance(100)
        await step(seg(5002, 1002, TcpFlag.ACK | TcpFlag.PSH, b"late"), "in-window data")
        await deadline_is_the_models()
        await advance(100)
        await step(seg(5001, 1002, TcpFlag.ACK | TcpFlag.FIN), "a retransmitted FIN")
        await deadline_is_the_models()
        await advance(100)
        await step(seg(5002, 1002, TcpFlag.ACK), "a bare ACK")
        await deadline_is_the_models()
        await step(seg(5012, 0, TcpFlag.RST), "an inexact RST")
        await step(seg(5002, 0, TcpFlag.RST), "an exact RST")
        state = await b.control(op=CtlOp.READ_STATE, conn=1)
        assert state.state == TcpState.CLOSED and tcb.state == State.CLOSED
        # a closed listener's pending connection: closed, nothing sent
        await b.control(op=CtlOp.INSTALL_TCP, conn=2, state=TcpState.SYN_RECEIVED, iss=9000,
                        irs=7000, window=3000, mss=0, local_port=LOCAL[1], ip=0xC0000202,
                        port=REMOTE[1] + 1, mac=2)
        assert len(b.take()) == 1
        await b.grant(conn=2, pid=0)
        rsp, _ = await b.host(pid=0, conn=2, op=HostOp.CLOSE, abort=1)
        assert rsp.status == Errno.OK
        assert b.take() == []
        state = await b.control(op=CtlOp.READ_STATE, conn=2)
        assert state.state == TcpState.CLOSED

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "an exact RST" in checked


@pytest.mark.parametrize("data_width", [64, 8])
def test_engine_socket_option_caps_follow_the_model(data_width):
    """INSTALL_TCP's SO_RCVBUF/SO_SNDBUF caps and TCP_MAXSEG: the SYN-ACK offers the window
    cap, data beyond it is clipped (in order and out of order), reading opens the window only
    up to the cap, a write takes at most the send cap, and the MSS caps the segments; a cap
    past the ring (or an MSS past the policy's) is EINVAL and installs nothing."""
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=POLICY, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, POLICY, passive=True, rcv_cap=700, snd_cap=900, adv_mss=400)
    checked = Checked()
    same = checked.same

    def seg(seq, flags, payload=b""):
        return TcpSegment(80, LOCAL[1], seq, 1001, flags, 3000, payload)

    async def bench(ctx):
        b = EngineBench.ready(ctx, dut, data_width)
        fields = dict(op=CtlOp.INSTALL_TCP, state=TcpState.SYN_RECEIVED, iss=1000, irs=5000,
                      window=3000, mss=1460, local_port=LOCAL[1], ip=0xC0000202, port=REMOTE[1], mac=2)
        for bad in ({"rcv_cap": POLICY.rcv_buffer + 1}, {"snd_cap": POLICY.snd_buffer + 1},
                    {"adv_mss": POLICY.mss + 1}):
            rsp = await b.control(conn=2, **fields, **bad)
            assert rsp.status == Errno.EINVAL, bad
            assert b.take() == [], bad
            assert (await b.control(op=CtlOp.READ_STATE, conn=2)).kind == ConnKind.FREE
        await b.control(conn=1, rcv_cap=700, snd_cap=900, adv_mss=400, **fields)
        tcb.open_passive(TcpSegment(80, LOCAL[1], 5000, 0, TcpFlag.SYN, 3000, mss=1460))
        same(b.take(), tcb.dispatch(0), "SYN-ACK with the window cap")

        async def step(segment, what):
            await b.receive(segment)
            tcb.process(segment, 0)
            same(b.take(), tcb.dispatch(0), what)

        await step(seg(5001, TcpFlag.ACK), "the handshake completes")
        assert tcb.eff_mss == 400
        await step(seg(5001 + 500, TcpFlag.ACK, bytes(range(250)) * 2), "out of order, clipped")
        await step(seg(5001, TcpFlag.ACK, bytes(500)), "in order to the cap")
        assert tcb.rcv_wnd == 0 and tcb.rcv.readable == 700
        await b.grant(conn=1, pid=0)
        rsp, data = await b.host(pid=0, conn=1, op=HostOp.READ, length=600)
        assert data == tcb.receive(600)
        same(b.take(), tcb.dispatch(0), "a window update, up to the cap")
        rsp, _ = await b.host(bytes(2000), pid=0, conn=1, op=HostOp.WRITE, nonblock=1)
        assert rsp.status == Errno.OK and rsp.count == tcb.send(bytes(2000)) == 900
        same(b.take(), tcb.dispatch(0), "MSS-capped segments")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "MSS-capped segments" in checked


@pytest.mark.parametrize("data_width", [64])
def test_engine_rto_from_rtt_samples_follows_the_model(data_width):
    """Policy.rtt_estimation (Linux's RTO): the handshake's round trip and one timed segment
    per window set the RTO through the engine's RttEstimator; a resent segment's ACK gives no
    sample (Karn: after an RTO and after a fast retransmit); each expiry doubles the RTO and
    an ACK that moves SND.UNA brings it back to the estimate. Every segment, and the next
    deadline after each step, equal to model.tcp.Tcb's."""
    policy = replace(POLICY, **LINUX_RTO)
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=policy, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, policy, passive=True)
    now = 0
    checked = Checked()
    same = checked.same

    def seg(seq, ack, flags=TcpFlag.ACK, payload=b""):
        return TcpSegment(80, LOCAL[1], seq, ack, flags, 3000, payload)

    async def bench(ctx):
        nonlocal now
        b = EngineBench.ready(ctx, dut, data_width)

        async def deadline_is_the_models(what):
            rsp = await b.control(op=CtlOp.NEXT_DEADLINE)
            want = tcb.next_deadline()
            got = now + rsp.value if rsp.flag else None
            assert got == want, f"{what}: next deadline {got}, the model's {want}"

        async def step(segment, what):
            await b.receive(segment)
            tcb.process(segment, now)
            same(b.take(), tcb.dispatch(now), what)
            await deadline_is_the_models(what)

        async def advance(ticks, what):
            nonlocal now
            if ticks > 1:
                await b.control(op=CtlOp.ADVANCE, seq=ticks)
            await b.tick()
            now += ticks
            tcb.on_timer(now)
            same(b.take(), tcb.dispatch(now), f"{what} (tick {now})")
            await deadline_is_the_models(what)

        async def write(n, what):
            rsp, _ = await b.host(bytes(n), pid=0, conn=1, op=HostOp.WRITE, nonblock=1)
            assert rsp.status == Errno.OK and rsp.count == tcb.send(bytes(n)) == n
            same(b.take(), tcb.dispatch(now), what)
            await deadline_is_the_models(what)

        await b.control(op=CtlOp.INSTALL_TCP, conn=1, state=TcpState.SYN_RECEIVED, iss=1000,
                        irs=5000, window=3000, mss=0, local_port=LOCAL[1], ip=0xC0000202,
                        port=REMOTE[1], mac=2)
        tcb.open_passive(seg(5000, 0, TcpFlag.SYN))
        same(b.take(), tcb.dispatch(now), "SYN-ACK")
        await deadline_is_the_models("SYN-ACK: the initial RTO, 1000")
        await advance(300, "nothing yet")
        await step(seg(5001, 1001), "the handshake's ACK: a 300-tick sample, RTO 900")
        assert tcb.rto == 900
        await b.grant(conn=1, pid=0)
        await write(100, "timed data")
        await advance(500, "nothing yet")
        await step(seg(5001, 1101), "a 500-tick sample")
        assert tcb.rto == 975
        await write(100, "timed data, lost")
        await advance(975, "RTO: resent")
        await advance(1950, "RTO doubled: resent again")
        await step(seg(5001, 1201), "ACK of the resent segment: no sample (Karn), RTO 975")
        assert tcb.rto == 975 and tcb.srtt8 == 325 * 8
        await write(1000, "a window's worth")
        await step(seg(5001, 1201), "duplicate ACK 1")
        await step(seg(5001, 1201), "duplicate ACK 2")
        await step(seg(5001, 1201), "duplicate ACK 3: fast retransmit")
        await advance(10, "nothing yet")
        await step(seg(5001, 2201), "ACK after a fast retransmit: no sample (Karn)")
        assert tcb.srtt8 == 325 * 8
        await write(200, "timed data")
        await advance(60, "nothing yet")
        await step(seg(5001, 2401), "a 60-tick sample")
        assert tcb.srtt8 != 325 * 8
        assert [kind for _, kind, _ in tcb.events if kind in ("rto", "fast")] == ["rto", "rto", "fast"]
        # a second connection: the peer's SYN again (our SYN-ACK was lost), so the SYN-ACK is
        # resent and the handshake's ACK gives no sample (Karn)
        other = Tcb(LOCAL, (REMOTE[0], REMOTE[1] + 1), 7000, policy, passive=True)
        await b.control(op=CtlOp.INSTALL_TCP, conn=2, state=TcpState.SYN_RECEIVED, iss=7000,
                        irs=9000, window=3000, mss=0, local_port=LOCAL[1], ip=0xC0000202,
                        port=REMOTE[1] + 1, mac=2)
        syn = TcpSegment(REMOTE[1] + 1, LOCAL[1], 9000, 0, TcpFlag.SYN, 3000)
        other.open_passive(syn)
        same(b.take(), other.dispatch(now), "second SYN-ACK")
        await b.control(op=CtlOp.ADVANCE, seq=100)
        now += 100
        await b.control(op=CtlOp.INJECT, conn=2, seq=9000, ack=0, flags=TcpFlag.SYN, window=3000,
                        mss=0)
        other.process(syn, now)
        same(b.take(), other.dispatch(now), "the SYN-ACK again for the SYN again")
        await b.control(op=CtlOp.ADVANCE, seq=200)
        now += 200
        handshake = TcpSegment(REMOTE[1] + 1, LOCAL[1], 9001, 7001, TcpFlag.ACK, 3000)
        await b.receive(handshake, conn=2)
        other.process(handshake, now)
        same(b.take(), other.dispatch(now), "the handshake's ACK: no sample (Karn)")
        assert other.state == State.ESTABLISHED and not other.rtt_sampled and other.rto == 1000
        await b.grant(conn=2, pid=0)
        rsp, _ = await b.host(bytes(10), pid=0, conn=2, op=HostOp.WRITE, nonblock=1)
        assert rsp.count == other.send(bytes(10)) == 10
        same(b.take(), other.dispatch(now), "data on the second connection")
        rsp = await b.control(op=CtlOp.NEXT_DEADLINE)
        assert tcb.next_deadline() is None
        assert rsp.flag and now + rsp.value == other.next_deadline() == now + 1000

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "a 60-tick sample" in checked


@pytest.mark.parametrize("data_width", [64, 8])
def test_engine_window_scaling_follows_the_model(data_width):
    """Policy.window_scaling with our shift 3 (so our windows round down to 8 bytes): our SYN
    offers it and the peer's SYN-ACK (wscale 5, on the wire path) turns it on; the peer's
    windows are then scaled (a 320-byte window lets 320 bytes go, the duplicate-ACK test
    compares scaled windows), ours are shifted and rounded (fast path and slow path alike).
    Passively, the SYN-ACK offers it only when the SYN (INSTALL_TCP) did; without, nothing is
    scaled either way."""
    policy = replace(POLICY, window_scaling=True, wscale=3)
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=policy, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, policy)
    checked = Checked()
    same = checked.same

    def seg(seq, ack, window, payload=b"", flags=TcpFlag.ACK):
        return TcpSegment(80, LOCAL[1], seq, ack, flags, window, payload)

    async def bench(ctx):
        b = EngineBench.ready(ctx, dut, data_width)

        async def step(segment, what, model=tcb, conn=1):
            await b.exchange(segment, model, same, what, conn)

        await b.open_active(tcb, same, "SYN with the window scale option")
        synack = TcpSegment(80, LOCAL[1], 5000, 1001, TcpFlag.SYN | TcpFlag.ACK, 1000, mss=1000,
                            wscale=5)
        await step(synack, "ACK of the SYN-ACK: our window shifted by 3")
        assert (tcb.wscale_ok, tcb.snd_wscale, tcb.rcv_wscale, tcb.snd_wnd) == (True, 5, 3, 1000)
        await step(seg(5001, 1001, 10, bytes(range(100))), "data in: the fast path's window rounded")
        assert tcb.snd_wnd == 320
        await b.grant(conn=1, pid=0)
        rsp, _ = await b.host(bytes(1000), pid=0, conn=1, op=HostOp.WRITE, nonblock=1)
        assert rsp.count == tcb.send(bytes(1000)) == 1000
        same(b.take(), tcb.dispatch(0), "a write: 320 bytes fit the scaled window")
        await step(seg(5101, 1321, 100), "the window opens to 3,200: the rest goes")
        for n in (1, 2, 3):
            await step(seg(5101, 1321, 100), f"duplicate ACK {n} (scaled windows equal)")
        assert [kind for _, kind, _ in tcb.events if kind == "fast"] == ["fast"]
        rsp, data = await b.host(pid=0, conn=1, op=HostOp.READ, length=100)
        assert data == tcb.receive(100)
        same(b.take(), tcb.dispatch(0), "a read")
        await step(seg(5101, 2001, 100, bytes(1500)), "more data in, the window rounded")
        # a read after which the rounded window has grown by exactly an MSS (1000) and the
        # exact one by less: the window update follows the rounded one, as the model's adv_wnd
        n = 1000 - tcb.rcv_wnd % 8
        assert n < 1000
        rsp, data = await b.host(pid=0, conn=1, op=HostOp.READ, length=n)
        assert data == tcb.receive(n) and tcb.ack_needed
        same(b.take(), tcb.dispatch(0), "a read: a window update by the rounded window")

        for conn, offered in ((2, True), (3, False)):
            other = Tcb(LOCAL, (REMOTE[0], REMOTE[1] + conn), 7000, policy, passive=True)
            await b.control(op=CtlOp.INSTALL_TCP, conn=conn, state=TcpState.SYN_RECEIVED,
                            iss=7000, irs=9000, window=3000, mss=0, wscale_offered=offered,
                            wscale=2, local_port=LOCAL[1], ip=0xC0000202, port=REMOTE[1] + conn,
                            mac=2)
            other.open_passive(TcpSegment(REMOTE[1] + conn, LOCAL[1], 9000, 0, TcpFlag.SYN, 3000,
                                          wscale=2 if offered else None))
            same(b.take(), other.dispatch(0), f"SYN-ACK, the peer offered scaling: {offered}")
            await step(seg(9001, 7001, 50, bytes(10)), f"data in, scaled: {offered}", other, conn)
            assert other.snd_wnd == (200 if offered else 50)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "more data in, the window rounded" in checked and len(checked) == 15


def test_engine_rings_above_64_kib_follow_the_model():
    """128 KiB rings (our shift 2): the SYN says at most 65535, a scaled connection says its
    whole ring in 2-bit-rounded units (the fast path too), an unscaled one at most 65535
    however much is free (passively, without the peer's option), a receive cap above 64 KiB
    (SO_RCVBUF), more than 64 KiB in flight (a segment's offset into the send ring beyond 16
    bits, an ACK releasing 70,000 bytes) and a 70,000-byte read."""
    ring = 128 * 1024
    policy = replace(POLICY, rcv_buffer=ring, snd_buffer=ring, udp_rcv_buffer=ring,
                     window_scaling=True, wscale=wscale_for(ring))
    assert policy.wscale == 2
    dut = TcpEngine(data_width=64, connections=4, processes=4, policy=policy, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, policy)
    checked = Checked()
    same = checked.same

    def seg(seq, ack, window, payload=b"", port=REMOTE[1]):
        return TcpSegment(port, LOCAL[1], seq, ack, TcpFlag.ACK, window, payload)

    async def bench(ctx):
        b = EngineBench.ready(ctx, dut, 64)
        await b.open_active(tcb, same, "SYN: window 65535 of a 128 KiB ring")
        synack = TcpSegment(80, LOCAL[1], 5000, 1001, TcpFlag.SYN | TcpFlag.ACK, 1000, mss=1000,
                            wscale=7)
        await b.exchange(synack, tcb, same, "ACK of the SYN-ACK: the whole ring, scaled")
        await b.exchange(seg(5001, 1001, 1000, bytes(700)), tcb, same, "data in: the fast path")
        await b.grant(conn=1, pid=0)
        data = bytes(range(256)) * 320
        rsp, _ = await b.host(data, pid=0, conn=1, op=HostOp.WRITE, nonblock=1)
        assert rsp.count == tcb.send(data) == len(data)
        out = tcb.dispatch(0)
        assert sum(len(s.payload) for s in out) == len(data) > 65535
        same(b.take(), out, "81,920 bytes in flight")
        await b.exchange(seg(5701, 1001 + 70000, 1000), tcb, same, "most of it acknowledged")
        for k in range(2):          # (larger than an MSS: the engine does not check)
            await b.exchange(seg(5701 + 35000 * k, 1001 + 70000, 1000, bytes([k + 1]) * 35000),
                             tcb, same, f"35,000 bytes more in ({k})")
        rsp, got = await b.host(pid=0, conn=1, op=HostOp.READ, length=70000)
        assert got == tcb.receive(70000) and len(got) == 70000
        same(b.take(), tcb.dispatch(0), "a 70,000-byte read: the window update")

        other = Tcb(LOCAL, (REMOTE[0], REMOTE[1] + 2), 7000, policy, passive=True,
                    rcv_cap=100000)
        await b.control(op=CtlOp.INSTALL_TCP, conn=2, state=TcpState.SYN_RECEIVED, iss=7000,
                        irs=9000, window=3000, mss=0, rcv_cap=100000, local_port=LOCAL[1],
                        ip=0xC0000202, port=REMOTE[1] + 2, mac=2)
        other.open_passive(TcpSegment(REMOTE[1] + 2, LOCAL[1], 9000, 0, TcpFlag.SYN, 3000))
        same(b.take(), other.dispatch(0), "SYN-ACK of an unscaled connection")
        await b.exchange(seg(9001, 7001, 3000, port=REMOTE[1] + 2), other, same,
                         "the handshake's ACK: 65535, not the 100,000-byte cap", conn=2)
        await b.exchange(seg(9001, 7001, 3000, bytes(900), port=REMOTE[1] + 2), other, same,
                         "data in: still 65535", conn=2)
        assert other.rcv_wnd == 65535 < other.rcv.free

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) == 11


@pytest.mark.parametrize("data_width", [64, 8])
def test_engine_sack_follows_the_model(data_width):
    """Policy.sack with 5 ranges held: our SYN offers SACK-permitted and the peer's SYN-ACK
    turns it on; then every ACK carries the held ranges, the most recently written first
    (a merge moves its range to the front), at most 4 of the 5 (the oldest unsaid), and data
    segments give the option its room (RFC 6691: 1000 - 4 - 8 n bytes). Passively, the
    SYN-ACK offers it only when the SYN (INSTALL_TCP) did; without, no blocks."""
    policy = replace(POLICY, sack=True, max_ooo_ranges=5)
    dut = TcpEngine(data_width=data_width, connections=4, processes=4, policy=policy, debug=True)
    tcb = Tcb(LOCAL, REMOTE, 1000, policy)
    checked = Checked()
    same = checked.same

    def seg(seq, ack, payload=b"", flags=TcpFlag.ACK, window=2000):
        return TcpSegment(80, LOCAL[1], seq, ack, flags, window, payload)

    async def bench(ctx):
        b = EngineBench.ready(ctx, dut, data_width)

        async def step(segment, what, model=tcb, conn=1):
            await b.exchange(segment, model, same, what, conn)

        await b.open_active(tcb, same, "SYN with SACK-permitted")
        synack = TcpSegment(80, LOCAL[1], 5000, 1001, TcpFlag.SYN | TcpFlag.ACK, 2000, mss=1000,
                            sack_permitted=True)
        await step(synack, "ACK of the SYN-ACK, no blocks yet")
        assert tcb.sack_ok
        # five holes' worth of out-of-order segments: 5101, 5301, 5501, 5701, 5901 (+50 each)
        for k, at in enumerate((5301, 5101, 5701, 5501, 5901)):
            await step(seg(at, 1001, bytes([k]) * 50), f"range {k + 1} held")
        assert len(tcb.rcv.ranges) == 5 and len(tcb._sack_blocks()) == 4
        await step(seg(5151, 1001, bytes(150)), "a merge of two ranges moves to the front")
        assert tcb._sack_blocks()[0] == (5101, 5351)
        await step(seg(5201, 1001, bytes(10)), "a duplicate inside a range moves it to the front")
        await b.grant(conn=1, pid=0)
        rsp, _ = await b.host(bytes(1500), pid=0, conn=1, op=HostOp.WRITE, nonblock=1)
        assert rsp.count == tcb.send(bytes(1500)) == 1500
        out = tcb.dispatch(0)
        assert [len(s.sack) for s in out] == [4, 4] and len(out[0].payload) == 964
        same(b.take(), out, "data out with 4 blocks: 964-byte segments")
        await step(seg(5001, 1001, bytes(100)), "the first hole filled: blocks drop out")
        await step(seg(5001, 2501, b"", window=3000), "an ACK of our data")
        await step(seg(5351, 2501, bytes(150)), "the next hole filled")
        for k in range(3):
            await step(seg(5001, 2501, b"", window=3000), f"duplicate {k}: nothing new")

        passive = {}
        for conn, offered in ((2, True), (3, False)):
            other = passive[conn] = Tcb(LOCAL, (REMOTE[0], REMOTE[1] + conn), 7000, policy,
                                        passive=True)
            await b.control(op=CtlOp.INSTALL_TCP, conn=conn, state=TcpState.SYN_RECEIVED,
                            iss=7000, irs=9000, window=3000, mss=0, sack_permitted=offered,
                            local_port=LOCAL[1], ip=0xC0000202, port=REMOTE[1] + conn, mac=2)
            other.open_passive(TcpSegment(REMOTE[1] + conn, LOCAL[1], 9000, 0, TcpFlag.SYN, 3000,
                                          sack_permitted=offered))
            same(b.take(), other.dispatch(0), f"SYN-ACK, the peer offered SACK: {offered}")
            await step(seg(9001, 7001), f"the handshake's ACK: {offered}", other, conn)
            await step(seg(9101, 7001, bytes(10)), f"out of order: blocks {offered}", other, conn)
        # an abort (close() with unread data) while a range is held: the RST carries none
        await step(seg(9001, 7001, bytes(20)), "unread data on the sacking connection",
                   passive[2], 2)
        await b.grant(conn=2, pid=0)
        rsp, _ = await b.host(pid=0, conn=2, op=HostOp.CLOSE, abort=1)
        assert rsp.status == Errno.OK
        passive[2].abort()
        same(b.take(), passive[2].dispatch(0), "RST|ACK without blocks")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert "data out with 4 blocks: 964-byte segments" in checked and len(checked) == 24
