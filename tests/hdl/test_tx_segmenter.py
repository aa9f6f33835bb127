"""hdl/engine/tx_segmenter.py against ``Tcb._next_segment`` and ``Tcb._sent``, in the Amaranth
simulator: random synchronized connections (SND.NXT anywhere from SND.UNA to past the FIN,
go-back-N below SND.MAX, windows open, closed and shrunk behind SND.NXT, queues empty to
full, the FIN queued or acknowledged, payload room from 1 byte to the MSS, the 2**32 wrap),
each output compared with what the model sends and records."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.config import NIC_POLICY
from hdl.engine.tx_segmenter import TxSegmenter
from model.protocol import TcpFlag
from model.tcp import State, Tcb, seq_add, seq_lt
from test_rx_fast_path import POLICIES      # the reference ring, and 128 KiB with scaling and SACK

CASES = 1500


def _connection(rng, policy):
    """A random synchronized TCB whose SYN is acknowledged."""
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000), rng.getrandbits(32), policy)
    tcb.state = State.ESTABLISHED
    tcb.snd_una = rng.choice([seq_add(tcb.iss, rng.randint(1, 100000)),
                              2 ** 32 - rng.randint(1, 3000)])
    queued = rng.choice([0, policy.snd_buffer, rng.randint(0, policy.snd_buffer),
                         rng.randint(0, 3000)])
    tcb.send_queue = bytearray(queued)
    tcb.fin_queued = rng.random() < 0.3
    tcb.fin_acked = tcb.fin_queued and rng.random() < 0.2
    offset = rng.choice([0, queued, queued + 1, rng.randint(0, queued + 1), rng.randint(0, 40)])
    tcb.snd_nxt = seq_add(tcb.snd_una, offset)
    tcb.snd_max = seq_add(tcb.snd_nxt, rng.choice([0, 0, rng.randint(0, 3000)]))
    scale = rng.randint(0, 14) if policy.window_scaling else 0
    tcb.snd_wnd = rng.choice([0, rng.randint(0, 100), rng.getrandbits(16), 0xFFFF]) << scale
    if policy.window_scaling and rng.random() < 0.25:
        # a large window with its low bits clear: the usable window beyond any room or queue
        # must not be judged by its low bits alone
        tcb.snd_wnd = 1 << rng.randint(16, 29)
    return tcb


def _inputs(tcb, room):
    return {"snd_una": tcb.snd_una, "snd_nxt": tcb.snd_nxt, "snd_max": tcb.snd_max,
            "snd_wnd": tcb.snd_wnd, "tx_head": tcb.snd_una,
            "tx_tail": seq_add(tcb.snd_una, len(tcb.send_queue)), "data_room": room,
            "fin_queued": tcb.fin_queued, "fin_acked": tcb.fin_acked}


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("policy_name", sorted(POLICIES))
def test_segmenter_equals_the_model(policy_name, seed):
    policy = POLICIES[policy_name]
    rng = random.Random(seed)
    dut = TxSegmenter(policy)
    counts = {"data": 0, "fin": 0, "none": 0}

    async def testbench(ctx):
        for case in range(CASES):
            tcb = _connection(rng, policy)
            room = rng.choice([policy.mss, rng.randint(1, policy.mss), 1])
            tcb.adv_mss = tcb.peer_mss = room          # so that Tcb._data_room() is `room`
            assert tcb._data_room() == room
            inputs = _inputs(tcb, room)
            ctx.set(dut.inputs, inputs)
            # valid again exactly LATENCY clocks after the inputs changed (in the clock they
            # change it speaks of the last ones)
            await ctx.tick()
            for _ in range(TxSegmenter.LATENCY - 1):
                assert not ctx.get(dut.valid) or inputs == counts.get("last"), case
                await ctx.tick()
            assert ctx.get(dut.valid), case
            counts["last"] = inputs
            got = {name: ctx.get(getattr(dut.decision, name))
                   for name in ("send", "length", "fin", "end", "extends", "resend")}
            nxt, snd_max = tcb.snd_nxt, tcb.snd_max
            seg = tcb._next_segment()
            assert got["send"] == (seg is not None), (case, tcb)
            if seg is None:
                counts["none"] += 1
                continue
            counts["fin" if seg.flags & TcpFlag.FIN else "data"] += 1
            assert seg.seq == nxt           # (its bytes: the send ring's from there)
            assert (got["length"], got["fin"]) == (len(seg.payload), bool(seg.flags & TcpFlag.FIN))
            assert got["end"] == tcb.snd_nxt == seq_add(nxt, seg.seg_len)
            assert got["extends"] == seq_lt(snd_max, tcb.snd_nxt)
            assert got["resend"] == seq_lt(nxt, snd_max)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    del counts["last"]
    assert min(counts.values()) > CASES // 20, counts


def test_latency_is_the_pipeline():
    """The decision is not ready a clock before LATENCY, and `valid` says when it is: low from
    reset for LATENCY clocks, and for LATENCY - 1 clocks after the clock in which the inputs
    change (in that clock it still speaks of the inputs before, as does the decision), then
    high while they hold."""
    policy = NIC_POLICY
    dut = TxSegmenter(policy)
    tcb = Tcb(("10.0.0.1", 80), ("10.0.0.2", 4000), 1000, policy)
    tcb.state, tcb.snd_una = State.ESTABLISHED, 1001
    tcb.snd_nxt = tcb.snd_max = 1001
    tcb.send_queue, tcb.snd_wnd = bytearray(100), 1000
    seen = []

    async def testbench(ctx):
        for _ in range(TxSegmenter.LATENCY):     # all-zero inputs from reset: not yet valid
            seen.append(ctx.get(dut.valid))
            await ctx.tick()
        ctx.set(dut.inputs, _inputs(tcb, 536))
        for _ in range(TxSegmenter.LATENCY):
            seen.append((ctx.get(dut.valid), ctx.get(dut.decision.send)))
            await ctx.tick()
        for _ in range(3):
            seen.append((ctx.get(dut.valid), ctx.get(dut.decision.send),
                         ctx.get(dut.decision.length)))
            await ctx.tick()
        ctx.set(dut.inputs.snd_wnd, 40)         # one input changes: 40 bytes go, not 100
        for _ in range(TxSegmenter.LATENCY):
            seen.append((ctx.get(dut.valid), ctx.get(dut.decision.length)))
            await ctx.tick()
        seen.append((ctx.get(dut.valid), ctx.get(dut.decision.length)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    # in the clock each change comes, `valid` and the decision are those of the inputs before:
    # the zero inputs from reset (nothing to send), then 100 bytes
    assert seen == ([0] * TxSegmenter.LATENCY
                    + [(1, 0)] + [(0, 0)] * (TxSegmenter.LATENCY - 1) + [(1, 1, 100)] * 3
                    + [(1, 100)] + [(0, 100)] * (TxSegmenter.LATENCY - 1) + [(1, 40)])
