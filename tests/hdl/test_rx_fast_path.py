"""hdl/engine/rx_fast_path.py against ``model.tcp.Tcb``, in the Amaranth simulator.

Random connections (ESTABLISHED most often, every other synchronized or opening state too)
meet random segments (mostly in order, ACK or ACK+PSH, the odd control bit, sequence and
acknowledgement numbers off by a little, windows open and closed, the 2**32 wrap). For each,
the unit's verdict must be the fast path's rule as written here from the model's own
variables, and for a segment it takes, ``Tcb.process`` followed by ``Tcb.dispatch`` must do
exactly what the unit says: the payload in at RCV.NXT, the window taken or not, the persist
timer stopped or not, and one pure ACK with the unit's number and window, nothing else changed.
"""

import random

import pytest
from amaranth.sim import Simulator

from hdl.config import NIC_POLICY, ring_policy
from hdl.engine.rx_fast_path import RxFastPath
from hdl.engine.tcb import TcpState, ring_count_bits
from hdl.wire import TcpFlags
from model.packet import TcpSegment
from model.protocol import TcpFlag
from model.tcp import SYNCHRONIZED, State, Tcb, seq_add, seq_diff

CASES = 1500

POLICIES = {
    "reference": NIC_POLICY,
    # a 128 KiB ring: the window is limited by the field and rounded to our scale
    "scaled": ring_policy(2 ** 17, window_scaling=True, wscale=2, sack=True),
}


def _connection(rng, policy):
    """A random TCB; its state ESTABLISHED four times in five."""
    states = [State.ESTABLISHED] * 4 * (len(SYNCHRONIZED) + 1) + sorted(SYNCHRONIZED, key=str) \
        + [State.SYN_RECEIVED]
    cap = rng.choice([policy.rcv_buffer, policy.rcv_buffer, rng.randint(1, policy.rcv_buffer)])
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000), rng.getrandbits(32), policy, rcv_cap=cap)
    tcb.state = rng.choice(states)
    tcb.irs = rng.choice([rng.getrandbits(32), 2 ** 32 - rng.randint(1, 3000)])
    scaling = policy.window_scaling and rng.random() < 0.7
    tcb.wscale_ok, tcb.snd_wscale = scaling, rng.randint(0, 14) if scaling else 0
    tcb.rcv_wscale = policy.wscale if scaling else 0
    tcb.sack_ok = policy.sack and rng.random() < 0.5
    # the receive ring: head and tail offsets from IRS + 1, maybe a range beyond the tail
    used = rng.choice([0, cap, rng.randint(0, cap), rng.randint(max(0, cap - 8), cap)])
    head = rng.randint(0, 3 * policy.rcv_buffer)
    tcb.rcv.head, tcb.rcv.tail = head, head + used
    if rng.random() < 0.1 and cap - used > 2:
        lo = tcb.rcv.tail + rng.randint(1, cap - used - 1)
        tcb.rcv.ranges = [(lo, rng.randint(lo + 1, head + cap))]
        tcb.sack_recent = [lo]
    # the send side: SND.UNA after the SYN, queued bytes, SND.NXT within them
    queued = rng.choice([0, rng.randint(0, 3000)])
    tcb.snd_una = seq_add(tcb.iss, rng.randint(1, 100000))
    tcb.send_queue = bytearray(queued)
    sent = queued if rng.random() < 0.7 else rng.randint(0, queued)
    tcb.snd_nxt = seq_add(tcb.snd_una, sent)
    tcb.snd_max = seq_add(tcb.snd_nxt, rng.choice([0, 0, rng.randint(0, 500)]))
    tcb.snd_wnd = rng.getrandbits(16) << tcb.snd_wscale
    tcb.snd_wl1 = seq_add(tcb.irs, rng.randint(0, 200000))
    tcb.snd_wl2 = seq_add(tcb.snd_una, rng.randint(-50, 50))
    tcb.fin_queued = rng.random() < 0.05
    tcb.fin_received = rng.random() < 0.05
    if rng.random() < 0.05:
        tcb.fin_seq = seq_add(tcb.rcv_nxt, rng.randint(1, 100))
    tcb.orphan = rng.random() < 0.05
    tcb.persist_deadline = rng.choice([None, rng.randint(1, 1000)])
    tcb.rto_deadline = rng.choice([None, rng.randint(1, 1000)]) if sent else None
    return tcb


def _segment(rng, tcb):
    """A random segment for `tcb`: mostly what the fast path takes, each rule broken now
    and then."""
    flags = TcpFlag.ACK | (TcpFlag.PSH if rng.random() < 0.5 else 0)
    if rng.random() < 0.1:
        flags |= rng.choice([TcpFlag.SYN, TcpFlag.FIN, TcpFlag.RST, TcpFlag.URG])
    if rng.random() < 0.05:
        flags &= ~TcpFlag.ACK
    seq = tcb.rcv_nxt if rng.random() < 0.8 else seq_add(tcb.rcv_nxt, rng.randint(-3, 3))
    ack = tcb.snd_una if rng.random() < 0.8 else seq_add(tcb.snd_una, rng.randint(-3, 3))
    room = max(1, min(tcb.rcv_wnd, tcb.policy.mss))
    length = rng.choice([rng.randint(1, room), room, room + 1, 0, 1])
    window = rng.choice([0, rng.getrandbits(16), 0xFFFF])
    if rng.random() < 0.7:          # a segment that makes a window update (or not) on purpose
        seq_wl1 = rng.choice([seq_add(seq, -1), seq, seq_add(seq, 1)])
        tcb.snd_wl1 = seq_wl1
        tcb.snd_wl2 = rng.choice([seq_add(ack, -1), ack, seq_add(ack, 1)])
    return TcpSegment(4000, 80, seq, ack, TcpFlag(flags), window, bytes(rng.getrandbits(8)
                                                                          for _ in range(length)))


def _fast_by_the_model(tcb, seg):
    """The fast path's rule in the model's own variables."""
    return (tcb.state == State.ESTABLISHED and seg.flags & TcpFlag.ACK
            and not seg.flags & (TcpFlag.SYN | TcpFlag.RST | TcpFlag.FIN | TcpFlag.URG)
            and seg.seq == tcb.rcv_nxt and 0 < len(seg.payload) <= tcb.rcv_wnd
            and seg.ack == tcb.snd_una and tcb.unsent == 0
            and not tcb.fin_queued and not tcb.fin_received and tcb.fin_seq is None
            and not tcb.orphan and not tcb.rcv.ranges and not tcb.outbox)


def _inputs(tcb, seg, policy):
    """The unit's inputs for `tcb` and `seg`, as the engine gives them (ring offsets are
    sequence numbers)."""
    base = seq_add(tcb.irs, 1)
    tx_head = seq_add(tcb.snd_una, 0 if tcb.syn_acked else 1)
    fields = {
        "tcp": 1, "state": TcpState[tcb.state.name],
        "fin_queued": tcb.fin_queued, "fin_received": tcb.fin_received,
        "fin_pending": tcb.fin_seq is not None and not tcb.fin_received,
        "orphan": tcb.orphan, "ranges_held": bool(tcb.rcv.ranges), "outbox": bool(tcb.outbox),
        "snd_una": tcb.snd_una, "snd_nxt": tcb.snd_nxt,
        "snd_wl1": tcb.snd_wl1, "snd_wl2": tcb.snd_wl2,
        "rcv_reserve": policy.rcv_buffer - tcb.rcv_cap,
        "rx_head": seq_add(base, tcb.rcv.head), "rx_tail": seq_add(base, tcb.rcv.tail),
        "tx_head": tx_head, "tx_tail": seq_add(tx_head, len(tcb.send_queue)),
        "seq": seg.seq, "ack": seg.ack, "flags": TcpFlags.fields(int(seg.flags)),
        "window": seg.window, "length": len(seg.payload),
    }
    if policy.window_scaling:
        fields |= {"wscale_ok": tcb.wscale_ok, "snd_wscale": tcb.snd_wscale}
    return fields


def _check_effects(decision, before, tcb, seg, out):
    """`tcb` after process() and dispatch() (`out`) did what the taken `decision` says."""
    assert tcb.rcv.tail == before.tail + len(seg.payload) and not tcb.rcv.ranges
    assert tcb.rcv.read(len(seg.payload), peek=True, skip=before.readable) == seg.payload
    if decision["window_update"]:
        assert (tcb.snd_wnd, tcb.snd_wl1, tcb.snd_wl2) == (decision["snd_wnd"], seg.seq, seg.ack)
    else:
        assert (tcb.snd_wnd, tcb.snd_wl1, tcb.snd_wl2) == before.window
    assert tcb.persist_deadline == (None if decision["persist_stop"] else before.persist)
    [ack] = out
    assert (ack.flags, ack.seq, ack.payload, ack.sack) == (TcpFlag.ACK, before.snd_nxt, b"", ())
    assert ack.ack == decision["ack"] == tcb.rcv_nxt
    assert ack.window << tcb.rcv_wscale == decision["adv_wnd"] == tcb.last_adv_wnd
    assert not tcb.ack_needed and tcb.state == State.ESTABLISHED
    assert (tcb.snd_una, tcb.snd_nxt, tcb.snd_max, tcb.rto_deadline, tcb.dupacks) == before.send


class _Before:
    def __init__(self, tcb):
        self.tail, self.readable = tcb.rcv.tail, tcb.rcv.readable
        self.window = (tcb.snd_wnd, tcb.snd_wl1, tcb.snd_wl2)
        self.persist = tcb.persist_deadline
        self.snd_nxt = tcb.snd_nxt
        self.send = (tcb.snd_una, tcb.snd_nxt, tcb.snd_max, tcb.rto_deadline, tcb.dupacks)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_fast_path_equals_the_model(policy_name, seed):
    policy = POLICIES[policy_name]
    rng = random.Random(seed)
    dut = RxFastPath(policy, ring_count_bits(policy))
    counts = {"taken": 0, "left": 0}

    async def testbench(ctx):
        for case in range(CASES):
            tcb = _connection(rng, policy)
            seg = _segment(rng, tcb)
            ctx.set(dut.inputs, _inputs(tcb, seg, policy))
            await ctx.tick()
            decision = {name: ctx.get(getattr(dut.decision, name))
                        for name in ("take", "window_update", "snd_wnd", "persist_stop", "ack",
                                     "adv_wnd")}
            expected = _fast_by_the_model(tcb, seg)
            assert decision["take"] == bool(expected), (case, tcb, seg)
            if not expected:
                counts["left"] += 1
                continue
            counts["taken"] += 1
            before = _Before(tcb)
            tcb.process(seg, 1000)
            out = tcb.dispatch(1000)
            _check_effects(decision, before, tcb, seg, out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # neither side of the rule is left untried
    assert counts["taken"] > CASES // 10 and counts["left"] > CASES // 2, counts


def test_ring_bits_checked():
    with pytest.raises(ValueError, match="more than 16 bits"):
        RxFastPath(POLICIES["scaled"], 16)
