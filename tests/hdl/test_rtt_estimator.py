"""hdl/engine/rtt.py against the model's estimator (``Tcb._rtt_ack``, ``Tcb.rto_after``), in
the Amaranth simulator: sample sequences from the smallest to the largest sample, and every
backoff."""

import random
from dataclasses import replace

import pytest
from amaranth.sim import Simulator

from hdl.engine.rtt import RTTVAR4_BITS, SRTT8_BITS, RttEstimator
from model.policy import DEFAULT_POLICY, LINUX_RTO, RTT_SAMPLE_BITS
from model.tcp import Tcb

POLICY = replace(DEFAULT_POLICY, **LINUX_RTO)
R_MAX = 2 ** RTT_SAMPLE_BITS - 1


def _run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def _sequences():
    rng = random.Random(6298)
    yield "steady", [300] * 40
    yield "smallest", [0, 0, 1, 0, 1] * 5
    yield "largest", [R_MAX] * 40                  # the state's bounds (module docstring)
    yield "swings", [R_MAX, 0] * 20 + [0, R_MAX] * 20
    yield "random", [rng.choice([rng.randrange(0, 64), rng.randrange(0, R_MAX + 1)])
                     for _ in range(300)]


@pytest.mark.parametrize("name, samples", list(_sequences()), ids=[n for n, _ in _sequences()])
def test_estimate_and_rto_equal_the_model(name, samples):
    """Each sample in turn through the unit and through a model TCB: the same srtt8,
    rttvar4 and, for every number of expiries, the same RTO."""
    dut = RttEstimator(POLICY)
    tcb = Tcb(("10.0.0.1", 1), ("10.0.0.2", 2), 0, POLICY)
    rng = random.Random(name)

    async def testbench(ctx):
        state = {"sampled": 0, "srtt8": 0, "rttvar4": 0}
        for r in samples:
            tcb.rtt_seq, tcb.rtt_start = 1, 0
            tcb._rtt_ack(1, r)
            expiries = rng.randrange(16)
            ctx.set(dut.state, state)
            ctx.set(dut.r, r)
            ctx.set(dut.sample, 1)
            ctx.set(dut.expiries, expiries)
            await ctx.tick().repeat(RttEstimator.LATENCY)
            after = ctx.get(dut.after)
            state = {"sampled": after.sampled, "srtt8": after.srtt8, "rttvar4": after.rttvar4}
            assert (after.sampled, after.srtt8, after.rttvar4) == (1, tcb.srtt8, tcb.rttvar4), r
            assert tcb.srtt8 < 2 ** SRTT8_BITS and tcb.rttvar4 < 2 ** RTTVAR4_BITS
            assert ctx.get(dut.rto) == tcb.rto_after(expiries), (r, expiries)

    _run(dut, testbench)


def test_no_sample_and_the_initial_rto():
    """Without a sample the state passes through; before the first sample the RTO is
    rto_initial, doubled per expiry up to rto_max."""
    dut = RttEstimator(POLICY)
    tcb = Tcb(("10.0.0.1", 1), ("10.0.0.2", 2), 0, POLICY)

    async def testbench(ctx):
        for expiries in range(16):
            ctx.set(dut.state, {"sampled": 0, "srtt8": 1234, "rttvar4": 99})
            ctx.set(dut.r, 5000)
            ctx.set(dut.sample, 0)
            ctx.set(dut.expiries, expiries)
            await ctx.tick().repeat(RttEstimator.LATENCY)
            after = ctx.get(dut.after)
            assert (after.sampled, after.srtt8, after.rttvar4) == (0, 1234, 99)
            assert ctx.get(dut.rto) == tcb.rto_after(expiries) == min(1000 << expiries, 120_000)

    _run(dut, testbench)


def test_a_fixed_rto_policy_is_refused():
    with pytest.raises(ValueError, match="rtt_estimation"):
        RttEstimator(DEFAULT_POLICY)


def test_one_sample_a_clock():
    """Samples of different connections back to back, one a clock: each result comes out
    LATENCY clocks after its sample, equal to the model's for that connection's state."""
    rng = random.Random(17)
    cases = []
    for _ in range(200):
        tcb = Tcb(("10.0.0.1", 1), ("10.0.0.2", 2), 0, POLICY)
        tcb.rtt_sampled = rng.random() < 0.8
        if tcb.rtt_sampled:
            tcb.srtt8, tcb.rttvar4 = rng.randrange(2 ** SRTT8_BITS), rng.randrange(2 ** RTTVAR4_BITS)
        before = {"sampled": int(tcb.rtt_sampled), "srtt8": tcb.srtt8, "rttvar4": tcb.rttvar4}
        sample, r, expiries = rng.random() < 0.7, rng.randrange(R_MAX + 1), rng.randrange(16)
        if sample:
            tcb.rtt_seq, tcb.rtt_start = 1, 0
            tcb._rtt_ack(1, r)
        cases.append((before, int(sample), r, expiries,
                      (int(tcb.rtt_sampled), tcb.srtt8, tcb.rttvar4), tcb.rto_after(expiries)))
    dut = RttEstimator(POLICY)

    async def testbench(ctx):
        for i in range(len(cases) + RttEstimator.LATENCY - 1):
            if i < len(cases):
                before, sample, r, expiries, _, _ = cases[i]
                ctx.set(dut.state, before)
                ctx.set(dut.sample, sample)
                ctx.set(dut.r, r)
                ctx.set(dut.expiries, expiries)
            await ctx.tick()
            done = i + 1 - RttEstimator.LATENCY
            if done >= 0:
                after = ctx.get(dut.after)
                assert (after.sampled, after.srtt8, after.rttvar4) == cases[done][4], done
                assert ctx.get(dut.rto) == cases[done][5], done

    _run(dut, testbench)
