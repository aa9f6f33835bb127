"""hdl/engine/rx_ack.py against ``model.tcp.Tcb._process_ack``, in the Amaranth simulator.

Random connections in every synchronized state that takes the fifth step (SYN acknowledged
or not, bytes queued or none, SND.NXT behind SND.MAX, our FIN queued, sent or acknowledged,
duplicate ACKs counted up to the record's 4, orphaned or not) meet random ACKs: below SND.UNA,
at it, into and past what is queued, at SND.MAX and one past it, across the 2**32 wrap, with
the window repeated or not and SND.WL1/WL2 either side of the segment's. For each,
``_process_ack`` must do exactly what the unit says.
"""

import copy
import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hdl.config import NIC_POLICY, ring_policy
from hdl.engine.rx_ack import DUPACKS_MAX, LATENCY, RxAck
from hdl.engine.tcb import TcpState, ring_count_bits, sum3
from model.packet import TcpSegment
from model.protocol import TcpFlag
from model.tcp import SYNCHRONIZED, State, Tcb, seq_add

CASES = 2500
POLICIES = {
    "reference": NIC_POLICY,
    "scaled": ring_policy(2 ** 17, window_scaling=True, wscale=2, sack=True),
}
# TIME-WAIT takes its own path (Tcb._process_time_wait)
STATES = sorted(SYNCHRONIZED - {State.TIME_WAIT}, key=str)
NOW = 50_000


def _connection(rng, policy):
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000),
              rng.choice([rng.getrandbits(32), 2 ** 32 - rng.randint(1, 3000)]), policy)
    tcb.state = rng.choice(STATES)
    tcb.snd_una = seq_add(tcb.iss, rng.choice([0, 1, rng.randint(1, 100_000)]))
    queued = rng.choice([0, rng.randint(1, 3000), policy.snd_buffer])
    tcb.send_queue = bytearray(queued)
    tcb.fin_queued = rng.random() < 0.3
    tcb.fin_acked = tcb.fin_queued and rng.random() < 0.2
    syn = 0 if tcb.syn_acked else 1
    fin = 1 if tcb.fin_queued and not tcb.fin_acked else 0
    span = syn + queued + fin                       # what SND.MAX may reach beyond SND.UNA
    sent = rng.choice([span, rng.randint(0, span)])
    tcb.snd_max = seq_add(tcb.snd_una, sent)
    tcb.snd_nxt = seq_add(tcb.snd_una, rng.choice([sent, rng.randint(0, sent)]))
    if policy.window_scaling:
        tcb.wscale_ok = rng.random() < 0.7
        tcb.snd_wscale = rng.randint(0, 14) if tcb.wscale_ok else 0
    tcb.snd_wnd = rng.choice([0, rng.getrandbits(16)]) << tcb.snd_wscale
    tcb.dupacks = rng.randint(0, DUPACKS_MAX)
    tcb.orphan = rng.random() < 0.3
    tcb.persist_deadline, tcb.persist_probes = rng.randint(1, 1000), rng.randint(0, 5)
    tcb.rto_deadline = rng.choice([None, rng.randint(1, 1000)])
    return tcb, sent


def _segment(rng, tcb, sent):
    ack = rng.choice([tcb.snd_una, tcb.snd_max, seq_add(tcb.snd_max, 1),
                      seq_add(tcb.snd_una, rng.randint(-3, 0)),
                      seq_add(tcb.snd_una, rng.randint(0, max(sent, 1)))])
    seq = rng.getrandbits(32)
    # the window update rule, either side of each edge
    tcb.snd_wl1 = rng.choice([seq_add(seq, -1), seq, seq_add(seq, 1)])
    tcb.snd_wl2 = rng.choice([seq_add(ack, -1), ack, seq_add(ack, 1)])
    window = rng.choice([tcb.snd_wnd >> tcb.snd_wscale, 0, rng.getrandbits(16)])
    flags = TcpFlag.ACK | (TcpFlag.FIN if rng.random() < 0.1 else 0)
    payload = bytes(rng.choice([0, 0, 0, 1, 100]))
    return TcpSegment(4000, 80, seq, ack, flags, window, payload)


def _inputs(tcb, seg):
    return {"state": TcpState[tcb.state.name], "iss": tcb.iss, "snd_una": tcb.snd_una,
            "snd_nxt": tcb.snd_nxt, "snd_max": tcb.snd_max, "snd_wnd": tcb.snd_wnd,
            "snd_wl1": tcb.snd_wl1, "snd_wl2": tcb.snd_wl2, "queued": len(tcb.send_queue),
            "dupacks": tcb.dupacks, "fin_acked": tcb.fin_acked, "orphan": tcb.orphan,
            "seq": seg.seq, "ack": seg.ack, "peer_wnd": tcb._peer_wnd(seg),
            "carries_data": bool(seg.payload) or bool(seg.flags & TcpFlag.FIN)}


def _check(v, before, tcb, seg, kept):
    assert v["unsent"] == (not kept)
    if not kept:
        assert tcb.ack_needed           # the caller answers with an ACK, drops the segment
        return
    if not v["closed"]:                         # (closing empties the whole send queue)
        assert v["released"] == len(before.send_queue) - len(tcb.send_queue)
    assert v["advanced"] == (tcb.snd_una != before.snd_una)
    assert (v["snd_una"], v["snd_nxt"], v["fin_acked"]) == (tcb.snd_una, tcb.snd_nxt, tcb.fin_acked)
    if v["advanced"] and not (v["closed"] or v["time_wait"]):
        assert v["rto_running"] == (tcb.rto_deadline is not None)
    assert v["dupacks"] == min(tcb.dupacks, DUPACKS_MAX)
    fired = {kind for _, kind, _ in tcb.events[len(before.events):]}
    assert v["fast_retransmit"] == ("fast" in fired)
    window = (tcb.snd_wnd, tcb.snd_wl1, tcb.snd_wl2)
    if v["window_update"]:
        assert window == (seg.window << tcb.snd_wscale, seg.seq, seg.ack)
    else:
        assert window == (before.snd_wnd, before.snd_wl1, before.snd_wl2)
    if v["closed"] or v["time_wait"]:
        assert tcb.persist_deadline is None         # (every timer but TIME-WAIT's stops)
    else:
        assert v["persist_stop"] == (tcb.persist_deadline is None)
    assert v["state"] == TcpState[tcb.state.name]
    assert v["fin_wait_2_timer"] == (tcb.close_deadline is not None and tcb.state == State.FIN_WAIT_2)
    assert v["time_wait"] == (tcb.state == State.TIME_WAIT)
    assert v["closed"] == (tcb.state == State.CLOSED)


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_ack_equals_the_model(policy_name):
    policy = POLICIES[policy_name]
    rng = random.Random(policy_name)
    dut = RxAck(policy, ring_count_bits(policy))
    seen = {}

    async def testbench(ctx):
        for case in range(CASES):
            tcb, sent = _connection(rng, policy)
            seg = _segment(rng, tcb, sent)
            ctx.set(dut.inputs, _inputs(tcb, seg))
            await ctx.tick().repeat(LATENCY)
            v = {name: ctx.get(getattr(dut.verdict, name)) for name in dut.verdict.shape().members}
            before = copy.deepcopy(tcb)
            carries_data = bool(seg.payload) or bool(seg.flags & TcpFlag.FIN)
            kept = tcb._process_ack(seg, carries_data, NOW)
            _check(v, before, tcb, seg, kept)
            for name in ("unsent", "advanced", "fast_retransmit", "window_update",
                         "persist_stop", "fin_wait_2_timer", "time_wait", "closed"):
                seen[name] = seen.get(name, 0) + v[name]
            seen["fin_acked_now"] = seen.get("fin_acked_now", 0) + (v["fin_acked"] and not before.fin_acked)
            seen["syn_acked_now"] = seen.get("syn_acked_now", 0) + (v["advanced"] and not before.syn_acked)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert all(seen.values()), seen


def test_dupack_threshold_checked():
    with pytest.raises(ValueError, match="dupack_threshold"):
        RxAck(ring_policy(2048, dupack_threshold=4), 16)


def test_sum3_is_the_sum_modulo_2_32():
    """``hdl.engine.tcb.sum3``, the verdicts' carry-save three-operand adder: every `plus`,
    operands at 0, at their widths' maxima and random, a 12-bit one zero-extended."""
    a, b, c = Signal(32), Signal(12), Signal(32)
    m = Module()
    results = [Signal(32, name=f"sum_plus{plus}") for plus in range(3)]
    m.d.comb += [r.eq(sum3(a, b, c, plus)) for plus, r in enumerate(results)]
    rng = random.Random(7)
    edges = [(0, 0, 0), (2 ** 32 - 1, 2 ** 12 - 1, 2 ** 32 - 1), (2 ** 31, 1, 2 ** 31 - 1)]
    cases = edges + [(rng.getrandbits(32), rng.getrandbits(12), rng.getrandbits(32))
                     for _ in range(500)]

    async def bench(ctx):
        for x, y, z in cases:
            ctx.set(a, x)
            ctx.set(b, y)
            ctx.set(c, z)
            for plus, r in enumerate(results):
                assert ctx.get(r) == (x + y + z + plus) % 2 ** 32, (x, y, z, plus)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
