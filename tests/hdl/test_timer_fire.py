"""hdl/engine/timer_fire.py against ``model.tcp.Tcb.on_timer``, in the Amaranth simulator.

Random connections in every TCP state, with each of the close, RTO and persist timers off,
running, due exactly now or overdue, the peer's window closed or open, bytes queued or not,
retries up to the limit and probes up to the record's 15, on the fixed RTO and on Linux's
estimated one. For each, ``Tcb.on_timer(now)`` must fire what the unit says and leave the
timer fields the unit gives; the unit's next step must be the one that implies.
"""

import copy
import random
from dataclasses import replace

import pytest
from amaranth.sim import Simulator

from hdl.config import NIC_POLICY
from hdl.engine.tcb import TcpState
from hdl.engine.timer_fire import LATENCY, TimerFire, TimerNext
from model.errors import Errno
from model.policy import LINUX_RTO
from model.tcp import State, Tcb, seq_add

CASES = 2000
POLICIES = {"fixed": NIC_POLICY, "estimated": replace(NIC_POLICY, **LINUX_RTO)}
STATES = [s for s in State if s is not State.LISTEN]


def _deadline(rng, now):
    """None (off), or due now, overdue, or still to come."""
    return rng.choice([None, now, now - rng.randint(1, 500), now + rng.randint(1, 500)])


def _connection(rng, policy, now):
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000), rng.getrandbits(32), policy)
    tcb.state = rng.choice(STATES)
    tcb.snd_una = seq_add(tcb.iss, rng.randint(1, 5000))
    tcb.send_queue = bytearray(rng.choice([0, 0, rng.randint(1, 2000)]))
    tcb.snd_nxt = seq_add(tcb.snd_una, rng.randint(0, len(tcb.send_queue)))
    tcb.snd_wnd = rng.choice([0, 0, rng.randint(1, 65535)])
    tcb.dupacks = rng.randint(0, 3)
    tcb.retries = rng.choice([0, rng.randint(0, policy.max_retries), policy.max_retries])
    tcb.persist_probes = rng.choice([0, rng.randint(0, 15), 14, 15])
    if policy.rtt_estimation and rng.random() < 0.7:
        tcb.srtt8, tcb.rttvar4, tcb.rtt_sampled = rng.randint(8, 8000), rng.randint(4, 4000), True
    tcb.rto = tcb.rto_after(tcb.retries)
    tcb.rtt_seq = rng.choice([None, tcb.snd_una])
    tcb.close_deadline = _deadline(rng, now) if rng.random() < 0.3 else None
    tcb.rto_deadline = _deadline(rng, now)
    tcb.persist_deadline = _deadline(rng, now)
    return tcb


def _inputs(tcb, now, policy):
    fields = {
        "live": tcb.state != State.CLOSED, "state": TcpState[tcb.state.name], "now": now,
        "close_armed": tcb.close_deadline is not None, "close_deadline": tcb.close_deadline or 0,
        "rto_armed": tcb.rto_deadline is not None, "rto_deadline": tcb.rto_deadline or 0,
        "persist_armed": tcb.persist_deadline is not None,
        "persist_deadline": tcb.persist_deadline or 0, "persist_probes": tcb.persist_probes,
        "retries": tcb.retries, "window_zero": tcb.snd_wnd == 0,
        "queued": len(tcb.send_queue) != 0,
    }
    if policy.rtt_estimation:
        fields |= {"rto": tcb.rto, "rto_base": tcb.rto_after(0)}
    return fields


def _check(v, before, tcb, now, policy):
    fired = {kind for _, kind, _ in tcb.events[len(before.events):]}
    closed = tcb.state == State.CLOSED and before.state != State.CLOSED
    timed_out = closed and tcb.error == Errno.ETIMEDOUT
    assert (v["closed"], v["timed_out"]) == (closed and not timed_out, timed_out)
    assert v["zero_window"] == ("zwnd" in fired)
    assert v["rto_fired"] == ("rto" in fired)
    assert v["probe"] == ("probe" in fired) == (len(tcb.outbox) > len(before.outbox))
    if closed:
        assert v["next"] == TimerNext.CLOSED
    elif fired:
        assert v["next"] == TimerNext.DISPATCH
        assert tcb.state == before.state
    else:
        assert v["next"] == TimerNext.NONE
        assert (tcb.rto_deadline, tcb.persist_deadline, tcb.retries) == \
            (before.rto_deadline, before.persist_deadline, before.retries)
    assert v["retries"] == tcb.retries % 16    # (past 15 only once timed out)
    if not closed:
        # the deadlines the record keeps armed (a disarmed one keeps its old value)
        if tcb.rto_deadline is not None:
            assert v["rto_deadline"] == tcb.rto_deadline
        if tcb.persist_deadline is not None:
            assert v["persist_deadline"] == tcb.persist_deadline
        assert v["persist_probes"] == min(tcb.persist_probes, 15)
        if fired & {"zwnd", "rto"}:
            assert tcb.snd_nxt == tcb.snd_una and tcb.rtt_seq is None
        if policy.rtt_estimation:
            assert v["rto"] == tcb.rto


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_timer_fire_equals_the_model(policy_name):
    policy = POLICIES[policy_name]
    rng = random.Random(policy_name)
    dut = TimerFire(policy)
    seen = {}

    async def testbench(ctx):
        for case in range(CASES):
            now = rng.randint(1000, 2 ** 31 - 1000)
            tcb = _connection(rng, policy, now)
            ctx.set(dut.inputs, _inputs(tcb, now, policy))
            await ctx.tick().repeat(LATENCY)
            v = {name: ctx.get(getattr(dut.verdict, name))
                 for name in dut.verdict.shape().members}
            before = copy.deepcopy(tcb)
            if tcb.state != State.CLOSED:
                tcb.on_timer(now)
            _check(v, before, tcb, now, policy)
            for name in ("closed", "timed_out", "zero_window", "rto_fired", "probe"):
                seen[name] = seen.get(name, 0) + v[name]
            seen["none"] = seen.get("none", 0) + (v["next"] == TimerNext.NONE)
            # an expiry on the fixed RTO at every count of retries
            if v["rto_fired"]:
                seen[("rto", before.retries)] = 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for name in ("closed", "timed_out", "zero_window", "rto_fired", "probe", "none"):
        assert seen.get(name), (name, seen)
    assert all(seen.get(("rto", k)) for k in (0, policy.max_retries - 1)), seen


def test_retries_must_fit_the_record():
    with pytest.raises(ValueError, match="max_retries"):
        Simulator(TimerFire(replace(NIC_POLICY, max_retries=16)))
