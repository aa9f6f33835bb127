"""The RTO from RTT samples (RFC 6298 as Linux applies it), in shifts and adds.

The reference is ``model.tcp.Tcb._rtt_ack`` and ``Tcb.rto_after`` (model/policy.py's "RTO"):
Jacobson's scaled estimator, 8 SRTT (``srtt8``) and 4 RTTVAR (``rttvar4``), and the RTO
``srtt8 / 8 + max(rto_min, rttvar4)``, doubled per expiry up to ``rto_max``. A sample ``r``
has ``RTT_SAMPLE_BITS`` bits (the model counts a longer one as the largest), so the state
has fixed widths: if ``srtt8 < 2**(S + 3)`` then ``srtt8 + r - srtt8 // 8 <= ceil(7 srtt8 / 8)
+ 2**S - 1 < 2**(S + 3)``, and if ``rttvar4 < 2**(S + 2)`` then ``rttvar4 - rttvar4 // 4 +
|err| < 3 * 2**S + 1 + 2**S - 1 = 2**(S + 2)``, with ``|err| = |r - srtt8 // 8| < 2**S``.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from model.policy import RTT_SAMPLE_BITS, Policy

__all__ = ["RttState", "RttEstimator", "SRTT8_BITS", "RTTVAR4_BITS", "RTO_BITS"]

SRTT8_BITS = RTT_SAMPLE_BITS + 3
RTTVAR4_BITS = RTT_SAMPLE_BITS + 2
RTO_BITS = RTT_SAMPLE_BITS          # rto_max < 2**RTT_SAMPLE_BITS (Policy checks it)


class RttState(data.StructLayout):
    """A connection's RTT estimate: ``sampled`` once the first sample is in."""

    def __init__(self):
        super().__init__({"sampled": 1, "srtt8": SRTT8_BITS, "rttvar4": RTTVAR4_BITS})


class RttEstimator(wiring.Component):
    """One sample a clock into an estimate, and the RTO it gives, in :attr:`LATENCY` clocks.

    ``state`` and ``r`` in (``sample`` high: ``r`` is a sample; low: the state passes
    through) with ``expiries``; ``LATENCY`` clocks later ``after`` is the new state and
    ``rto`` the RTO after that many expiries. Samples of different connections may follow one
    a clock; a connection's next sample needs its ``after`` (a timer pipeline forwards it or
    holds the connection meanwhile). One carry chain per stage at most, for the NIC's clock:

    1. ``err = r - srtt8 // 8``;
    2. ``srtt8 + err`` (first sample ``8r``), ``|err|``, ``rttvar4 - rttvar4 // 4``;
    3. ``rttvar4`` (first sample ``2r``) and the state chosen (sample or not);
    4. ``srtt8 // 8 + max(rto_min, rttvar4)``;
    5. the RTO before backoff: ``rto_initial`` until the first sample, then that, at most
       ``rto_max``;
    6. ``min(that * 2**expiries, rto_max)``: ``rto_max`` when that exceeds ``rto_max >>
       expiries`` (looked up in stage 5), else the shifted value.
    """

    LATENCY = 6

    def __init__(self, policy: Policy):
        if not policy.rtt_estimation:
            raise ValueError("the policy does not estimate the RTT (Policy.rtt_estimation)")
        if policy.rto_backoff != 2:
            raise ValueError("the hardware doubles the RTO per expiry (Policy.rto_backoff 2)")
        self._policy = policy
        super().__init__({
            "state": In(RttState()), "sample": In(1), "r": In(RTT_SAMPLE_BITS),
            "expiries": In(4),
            "after": Out(RttState()), "rto": Out(RTO_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        P = self._policy
        S = RTT_SAMPLE_BITS

        # 1
        s1_state, s1_sample, s1_r = Signal(RttState()), Signal(), Signal(S)
        s1_expiries, s1_err = Signal(4), Signal(signed(S + 1))
        m.d.sync += [s1_state.eq(self.state), s1_sample.eq(self.sample), s1_r.eq(self.r),
                     s1_expiries.eq(self.expiries), s1_err.eq(self.r - self.state.srtt8[3:])]
        # 2 (srtt8 + err fits: the module docstring's bound)
        s2_state, s2_sample, s2_r, s2_expiries = Signal(RttState()), Signal(), Signal(S), Signal(4)
        s2_srtt8, s2_magnitude, s2_kept = Signal(SRTT8_BITS), Signal(S), Signal(RTTVAR4_BITS)
        m.d.sync += [s2_state.eq(s1_state), s2_sample.eq(s1_sample), s2_r.eq(s1_r),
                     s2_expiries.eq(s1_expiries),
                     s2_srtt8.eq(Mux(s1_state.sampled, s1_state.srtt8 + s1_err, s1_r << 3)),
                     s2_magnitude.eq(Mux(s1_err < 0, -s1_err, s1_err)),
                     s2_kept.eq(s1_state.rttvar4 - s1_state.rttvar4[2:])]
        # 3
        updated = Signal(RttState())
        m.d.comb += [updated.sampled.eq(1), updated.srtt8.eq(s2_srtt8),
                     updated.rttvar4.eq(Mux(s2_state.sampled, s2_kept + s2_magnitude, s2_r << 1))]
        s3_after, s3_expiries = Signal(RttState()), Signal(4)
        m.d.sync += [s3_after.eq(Mux(s2_sample, updated, s2_state)), s3_expiries.eq(s2_expiries)]
        # 4
        s4_after, s4_expiries, s4_estimate = Signal(RttState()), Signal(4), Signal(S + 3)
        m.d.sync += [s4_after.eq(s3_after), s4_expiries.eq(s3_expiries),
                     s4_estimate.eq(s3_after.srtt8[3:] + Mux(s3_after.rttvar4 > P.rto_min,
                                                             s3_after.rttvar4, P.rto_min))]
        # 5
        s5_after, s5_expiries, s5_base = Signal(RttState()), Signal(4), Signal(RTO_BITS)
        s5_limit = Signal(RTO_BITS)         # base * 2**k > rto_max exactly when base > this
        limits = Array(Const(P.rto_max >> k, RTO_BITS) for k in range(16))
        m.d.sync += [s5_after.eq(s4_after), s5_expiries.eq(s4_expiries),
                     s5_limit.eq(limits[s4_expiries]),
                     s5_base.eq(Mux(~s4_after.sampled, P.rto_initial,
                                    Mux(s4_estimate > P.rto_max, P.rto_max, s4_estimate)))]
        # 6
        shifted = Signal(RTO_BITS + 15)
        m.d.comb += shifted.eq(s5_base << s5_expiries)
        m.d.sync += [self.after.eq(s5_after),
                     self.rto.eq(Mux(s5_base > s5_limit, P.rto_max, shifted))]
        return m
