"""The RTO from RTT samples (policy.rtt_estimation, RFC 6298 as Linux applies it): the scaled
estimator against the RFC's own arithmetic, Karn's rule, and a long-RTT path without a
spurious retransmission."""

import random
from dataclasses import replace
from fractions import Fraction

import pytest

from conftest import blocking, make_pair

from model.policy import DEFAULT_POLICY, LINUX_RTO
from model.tcp import Tcb

from test_loss import drop_first_data, transfer_both_ways

ESTIMATING = replace(DEFAULT_POLICY, **LINUX_RTO)


def sampled(samples, policy=ESTIMATING):
    """A Tcb given RTT samples `samples` in turn (each a timed segment acknowledged)."""
    tcb = Tcb(("10.0.0.1", 1), ("10.0.0.2", 2), 0, policy)
    now = 0
    for r in samples:
        tcb.rtt_seq, tcb.rtt_start = 1000, now
        now += r
        tcb._rtt_ack(1000, now)
    return tcb


def test_known_samples():
    """RFC 6298 2.2-2.3 worked by hand: R = 300, 300, 100 ticks."""
    tcb = sampled([300])
    assert (tcb.srtt8, tcb.rttvar4, tcb.rto_after(0)) == (2400, 600, 300 + 600)
    tcb = sampled([300, 300])                       # RTTVAR 3/4 x 150 = 112.5
    assert (tcb.srtt8, tcb.rttvar4, tcb.rto_after(0)) == (2400, 450, 300 + 450)
    tcb = sampled([300, 300, 100])                  # SRTT 275, RTTVAR 134.375
    assert (tcb.srtt8 >> 3, tcb.rttvar4, tcb.rto_after(0)) == (275, 538, 275 + 538)
    tcb = sampled([10] * 20)                        # 4 RTTVAR below G: rto_min counts
    assert tcb.rto_after(0) == 10 + 200
    assert tcb.rto_after(1) == 2 * 210 and tcb.rto_after(20) == ESTIMATING.rto_max
    assert Tcb(("10.0.0.1", 1), ("10.0.0.2", 2), 0, ESTIMATING).rto_after(0) == 1000


def test_the_scaled_estimator_stays_within_its_rounding_of_the_rfc():
    """Against RFC 6298's arithmetic in exact fractions, 500 random samples: the shifts round
    down, so 8 SRTT is at most 8 high (SRTT - SRTT/8 loses less than 1 a step, and the error
    decays by 7/8) and 4 RTTVAR at most 12 off (less than 3 a step, decaying by 3/4): the RTO
    is within 14 ticks."""
    rng = random.Random(6298)
    samples = [rng.choice([rng.randrange(1, 50), rng.randrange(50, 2000)]) for _ in range(500)]
    srtt = rttvar = None
    for n in range(1, len(samples) + 1):
        r = samples[n - 1]
        if srtt is None:
            srtt, rttvar = Fraction(r), Fraction(r, 2)
        else:
            rttvar = Fraction(3, 4) * rttvar + Fraction(1, 4) * abs(srtt - r)
            srtt = Fraction(7, 8) * srtt + Fraction(1, 8) * r
        if n % 50 == 0 or n < 5:
            tcb = sampled(samples[:n])
            assert 0 <= Fraction(tcb.srtt8, 8) - srtt < 1
            assert abs(4 * rttvar - tcb.rttvar4) <= 12
            exact = srtt + max(ESTIMATING.rto_min, 4 * rttvar)
            assert abs(tcb.rto_after(0) - exact) <= 14, (n, tcb.rto_after(0), float(exact))


def test_no_sample_from_a_retransmitted_segment():
    """Karn's rule: the first data segment is lost once; its retransmission's ACK, an RTO
    (1,000 ticks) and more after it was first sent, gives no sample, so the estimate is the
    handshake's (the SYN timed over a 2 x 40 tick round trip)."""
    pair = make_pair(policy=ESTIMATING, latency=40)
    drop_first_data(pair.wire)
    tcb = pair.tcb_a()
    assert tcb.rtt_sampled and tcb.srtt8 == 80 << 3
    pair.pa.send(pair.ca, b"x" * 100)
    assert blocking(pair.wire, pair.pb.recv, pair.sb, 1000) == b"x" * 100
    pair.settle(200)
    assert [kind for _, kind, _ in tcb.events] == ["rto", "retx"]
    assert tcb.srtt8 == 80 << 3 and tcb.rttvar4 == 80 << 1 and tcb.rtt_seq is None


def test_a_300_tick_path_without_spurious_retransmissions():
    """1 MiB each way over a wire of 150 ticks each way (300 ms RTT at 1 tick per ms): with
    the estimate no segment is sent twice; with the fixed 200-tick RTO every window is."""
    for policy, spurious in ((ESTIMATING, False), (DEFAULT_POLICY, True)):
        pair = make_pair(policy=policy, latency=150)
        done, data, got = transfer_both_ways(pair, 1 << 20, max_ticks=10**6)
        assert done and bytes(got["b"]) == data["a"] and bytes(got["a"]) == data["b"]
        resent = {side: [kind for _, kind, _ in tcb.events if kind in ("rto", "fast", "retx")]
                  for side, tcb in (("a", pair.tcb_a()), ("b", pair.tcb_b()))}
        if spurious:
            assert all(len(kinds) > 10 for kinds in resent.values()), resent
        else:
            assert resent == {"a": [], "b": []}
            assert 300 <= pair.tcb_a().srtt8 >> 3 <= 310


def _sent_twice(policy, name="long_path"):
    """Scenario `name` (tb/scenarios.py's long_path) on the model NIC with `policy`: the NIC's
    data segments as (tick, seq, payload), and those that went out again. The RTL runs the
    same scenario against this model trace (tests/test_nic_rtl.py), segment by segment."""
    from model.packet import parse_frame
    from tb.scenarios import get_scenario, model_runner
    r = model_runner(name, 16, policy)
    get_scenario(name).fn(r)
    sent = [(e.time, seg.seq, seg.payload) for e in r.wire.log if e.side == "a"
            for seg in [parse_frame(e.frame).tcp] if seg is not None and seg.payload]
    first = {}
    again = [s for s in sent if first.setdefault(s[1], s) is not s]
    return sent, again


@pytest.mark.parametrize("name", ["long_path", "long_path:1048576"])
def test_long_path_scenario_resends_only_what_the_silent_peer_lost(name):
    """The scenario the NIC with Linux's RTO runs (300-tick round trip; 6,000 bytes each way,
    and 1 MiB): with RTT estimation only the segment sent while the peer is silent goes again,
    three times (its ACKs are lost until the wire opens), at the RTO from the samples, then
    doubled per expiry; with the fixed 200-tick RTO the transfer's own data goes twice."""
    from hdl.config import NicConfig
    silent = b"anyone? " * 50
    sent, again = _sent_twice(NicConfig(linux_rto=True).policy, name)
    assert {payload for _, _, payload in again} == {silent} and len(again) == 3
    times = [t for t, _, payload in sent if payload == silent]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # the first expiry is an RTO after the last ACK that restarted the timer (ACKs already on
    # the wire still arrive), longer than the round trip; then each expiry doubles it
    assert gaps[0] > 300 and gaps[1] >= gaps[0] and gaps[2] == 2 * gaps[1]
    _, again = _sent_twice(NicConfig().policy, "long_path")
    assert any(payload != silent for _, _, payload in again)
