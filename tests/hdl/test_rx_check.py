"""hdl/engine/rx_check.py against ``model.tcp.Tcb._check_segment``, in the Amaranth simulator.

Random connections in every state (SYN-SENT with our SYN sent or not, SYN-RECEIVED passive
or after a simultaneous open, every synchronized state, TIME-WAIT, and CLOSED, which
takes nothing) with the receive ring empty, part full or full (a zero window) meet
random segments: every combination of SYN, ACK, RST and FIN; SEQ at RCV.NXT, one either
side, at the window's last byte and one past it, at IRS (SYN-RECEIVED's special cases) and
anywhere; ACK at ISS, SND.UNA, SND.MAX and one past, and anywhere; payloads of 0, 1, the
window's bytes and one more; SYN options absent, at their edges and random. For each,
``_check_segment`` must do exactly what the unit says.
"""

import copy
import random

import pytest
from amaranth.sim import Simulator

from hdl.config import NIC_POLICY, ring_policy
from hdl.engine.rx_check import LATENCY, CheckNext, RxCheck
from hdl.engine.tcb import Errno, TcpState, ring_count_bits
from hdl.wire import TcpFlags
from model.packet import TcpSegment
from model.protocol import TcpFlag
from model.tcp import State, Tcb, seq_add

CASES = 4000
POLICIES = {
    "reference": NIC_POLICY,
    "scaled": ring_policy(2 ** 17, window_scaling=True, wscale=2, sack=True),
}
NOW = 50_000
STATES = sorted(set(State) - {State.LISTEN}, key=str)     # (LISTEN is host software)


def _connection(rng, policy):
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000),
              rng.choice([rng.getrandbits(32), 2 ** 32 - rng.randint(1, 3)]), policy)
    tcb.state = rng.choice(STATES)
    tcb.irs = rng.choice([rng.getrandbits(32), 2 ** 32 - rng.randint(1, 3)])
    tcb.passive = rng.random() < 0.5
    tcb.fin_queued = rng.random() < 0.3
    if tcb.state in (State.SYN_SENT, State.CLOSED, State.LISTEN) or \
            (tcb.state == State.SYN_RECEIVED and rng.random() < 0.7):
        tcb.snd_max = seq_add(tcb.iss, rng.choice([0, 1]))     # our SYN unacknowledged
    else:
        tcb.snd_una = seq_add(tcb.iss, 1 + rng.choice([0, rng.randint(0, 100_000)]))
        tcb.snd_max = seq_add(tcb.snd_una, rng.choice([0, 1, rng.randint(0, 3000)]))
    tcb.snd_nxt = rng.choice([tcb.snd_una, tcb.snd_max])
    tcb.snd_wnd, tcb.snd_wl1, tcb.snd_wl2 = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32)
    if policy.window_scaling:
        tcb.wscale_ok = rng.random() < 0.7
        tcb.snd_wscale = rng.randint(0, 14) if tcb.wscale_ok else 0
        tcb.rcv_wscale = policy.wscale if tcb.wscale_ok else 0
    tcb.sack_ok = policy.sack and rng.random() < 0.5
    tcb.adv_mss = rng.choice([policy.mss, rng.randint(1, policy.mss)])
    tcb.peer_mss = rng.randint(1, 65535)
    # the receive ring: empty, part full or full (RCV.WND 0)
    used = rng.choice([0, tcb.rcv_cap, rng.randint(0, tcb.rcv_cap)])
    tcb.rcv.head = rng.randint(0, 100_000)
    tcb.rcv.tail = tcb.rcv.head + used
    tcb.fin_received = tcb.state in (State.CLOSE_WAIT, State.LAST_ACK, State.CLOSING,
                                     State.TIME_WAIT) and rng.random() < 0.8
    tcb.ack_needed = rng.random() < 0.3
    tcb.close_deadline = rng.choice([None, NOW + 1])
    tcb.rto_deadline = rng.choice([None, NOW + 2])
    tcb.retries = rng.randint(0, 3)
    return tcb


def _segment(rng, tcb):
    wnd = tcb.rcv_wnd
    seq = rng.choice([tcb.rcv_nxt, seq_add(tcb.rcv_nxt, -1), seq_add(tcb.rcv_nxt, 1),
                      seq_add(tcb.rcv_nxt, max(wnd - 1, 0)), seq_add(tcb.rcv_nxt, wnd),
                      tcb.irs, rng.getrandbits(32)])
    ack = rng.choice([tcb.iss, tcb.snd_una, tcb.snd_max, seq_add(tcb.snd_max, 1),
                      seq_add(tcb.snd_una, 1), rng.getrandbits(32)])
    flags = TcpFlag(0)
    for bit, p in ((TcpFlag.SYN, 0.3), (TcpFlag.ACK, 0.7), (TcpFlag.RST, 0.2),
                   (TcpFlag.FIN, 0.2), (TcpFlag.PSH, 0.2)):
        if rng.random() < p:
            flags |= bit
    length = rng.choice([0, 0, 1, rng.randint(1, 1460), min(wnd, 0xFFFF), min(wnd + 1, 0xFFFF)])
    syn_options = flags & TcpFlag.SYN or rng.random() < 0.1
    mss = rng.choice([None, 1, 536, rng.randint(1, 65535), 65535]) if syn_options else None
    wscale = rng.choice([None, 0, 14, rng.randint(0, 14)]) if syn_options else None
    sack = syn_options and rng.random() < 0.5
    return TcpSegment(4000, 80, seq, ack, flags, rng.choice([0, 1, rng.getrandbits(16), 65535]),
                      bytes(length), mss=mss, wscale=wscale, sack_permitted=sack)


def _inputs(tcb, seg):
    return {"state": TcpState[tcb.state.name], "iss": tcb.iss, "irs": tcb.irs,
            "snd_una": tcb.snd_una, "snd_nxt": tcb.snd_nxt, "snd_max": tcb.snd_max,
            "fin_queued": tcb.fin_queued, "passive": tcb.passive,
            "adv_mss": tcb.adv_mss, "rcv_nxt": tcb.rcv_nxt, "rcv_wnd": tcb.rcv_wnd,
            "seq": seg.seq, "last": seq_add(seg.seq, seg.seg_len - 1), "ack": seg.ack, "flags": TcpFlags.fields(seg.flags),
            "window": seg.window, "peer_wnd": tcb._peer_wnd(seg),
            "length": len(seg.payload), "mss": seg.mss or 0,
            "wscale_offered": seg.wscale is not None, "wscale": seg.wscale or 0,
            "sack_permitted": seg.sack_permitted}


def _check(v, before, tcb, seg, kept, policy):
    closed = tcb.state == State.CLOSED and before.state != State.CLOSED
    syn_taken = before.state == State.SYN_SENT and tcb.state != State.SYN_SENT and not closed
    expected_next = (CheckNext.ACK if kept is not None else CheckNext.CLOSE if closed
                     else CheckNext.SYN_SENT_INIT if syn_taken else CheckNext.DISPATCH)
    assert v["next"] == expected_next
    if kept is not None:
        assert (v["payload_kept"], v["fin_kept"]) == (bool(kept[0]), kept[1])
    assert v["state"] == TcpState[tcb.state.name]
    assert v["snd_nxt"] == tcb.snd_nxt
    assert v["syn_acked"] == (tcb.snd_una != before.snd_una)
    if v["syn_acked"]:
        assert (tcb.snd_una, tcb.rto_deadline, tcb.retries) == (seg.ack, None, 0)
    window = (v["snd_wnd"], seg.seq, v["snd_wl2"]) if v["window_update"] else \
        (before.snd_wnd, before.snd_wl1, before.snd_wl2)
    assert (tcb.snd_wnd, tcb.snd_wl1, tcb.snd_wl2) == window
    options = (seg.seq, v["eff_mss"], bool(v["wscale_ok"]), v["snd_wscale"], bool(v["sack_ok"])) \
        if v["syn_taken"] else (before.irs, before.eff_mss, before.wscale_ok, before.snd_wscale,
                                before.sack_ok)
    assert (tcb.irs, tcb.eff_mss, tcb.wscale_ok, tcb.snd_wscale, tcb.sack_ok) == options
    assert v["syn_taken"] == syn_taken
    assert tcb.ack_needed == ((before.ack_needed or bool(v["ack_needed"])) and not v["closed"])
    replies = tcb.outbox[len(before.outbox):]
    assert [(s.seq, s.flags) for s in replies] == ([(seg.ack, TcpFlag.RST)] if v["rst_reply"] else [])
    if not v["closed"]:
        restarted = NOW + policy.time_wait
        assert tcb.close_deadline == (restarted if v["time_wait_restart"] else before.close_deadline)
    assert v["closed"] == closed
    assert v["reset"] == (tcb.reset and not before.reset)
    if v["reset"]:
        assert v["error"] == (Errno.OK if tcb.error is None else Errno[tcb.error.name])


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_check_equals_the_model(policy_name):
    policy = POLICIES[policy_name]
    rng = random.Random(policy_name)
    dut = RxCheck(policy, ring_count_bits(policy))
    seen = {}

    async def testbench(ctx):
        for case in range(CASES):
            tcb = _connection(rng, policy)
            seg = _segment(rng, tcb)
            ctx.set(dut.inputs, _inputs(tcb, seg))
            await ctx.tick().repeat(LATENCY)
            v = {name: ctx.get(getattr(dut.verdict, name)) for name in dut.verdict.shape().members}
            before = copy.deepcopy(tcb)
            kept = tcb._check_segment(seg, NOW)
            _check(v, before, tcb, seg, kept, policy)
            for key in (v["next"], *(name for name in ("syn_acked", "window_update", "syn_taken",
                                                       "rst_reply", "time_wait_restart", "reset")
                                      if v[name])):
                seen[key] = seen.get(key, 0) + 1
            if kept is not None and seg.payload and not kept[0]:
                seen["zero window"] = seen.get("zero window", 0) + 1
            if v["state"] != TcpState[before.state.name]:
                seen[(before.state, tcb.state)] = seen.get((before.state, tcb.state), 0) + 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # each way out and each effect came up
    expected = {*CheckNext, "syn_acked", "window_update", "syn_taken", "rst_reply",
                "time_wait_restart", "reset", "zero window"}
    assert expected <= set(seen), expected - set(seen)
    # ... and each state change: the handshakes, the resets and TIME-WAIT's close
    changes = {(State.SYN_SENT, State.ESTABLISHED), (State.SYN_SENT, State.SYN_RECEIVED),
               (State.SYN_SENT, State.CLOSED), (State.SYN_RECEIVED, State.ESTABLISHED),
               (State.SYN_RECEIVED, State.FIN_WAIT_1), (State.SYN_RECEIVED, State.CLOSED),
               (State.ESTABLISHED, State.CLOSED), (State.LAST_ACK, State.CLOSED),
               (State.TIME_WAIT, State.CLOSED)}
    assert changes <= set(seen), changes - set(seen)
