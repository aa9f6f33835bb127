"""RxDispatch: each stored frame goes where its verdict, its socket and the engine say, whole."""

import pytest
from amaranth.sim import Simulator

from flow.build import lint_component
from hdl.rx.classifier import Verdict
from hdl.rx.frame_fifo import FrameStatus
from hdl.ports import RxRoute
from hdl.rx.dispatch import RESULT_DEPTH, RxDispatch
from model.classify import classify
from model.drops import DropCause
from model.protocol import IpProto, TcpFlag
from model.packet import TcpSegment, build_tcp_frame
from tb.amaranth_sim import recv_frame, send_frame
from flow.tools import BUILD
from test_classifier import header_key     # the classifier's key of a frame, from its bytes

OUR_MAC, OUR_IP = "02:00:00:00:00:01", "192.0.2.1"
PEER_MAC, PEER_IP = "02:00:00:00:00:02", "192.0.2.2"


def segment(dst_port, payload=b""):
    seg = TcpSegment(4242, dst_port, 100, 200, TcpFlag.ACK | TcpFlag.PSH, 512, payload)
    return build_tcp_frame(PEER_MAC, OUR_MAC, PEER_IP, OUR_IP, seg)


def record(frame, verdict=None):
    ref = classify(frame, int.from_bytes(bytes.fromhex(OUR_MAC.replace(":", "")), "big"),
                   int.from_bytes(bytes([192, 0, 2, 1]), "big"))
    return {"verdict": verdict if verdict is not None else Verdict(ref.verdict),
            "cause": DropCause(ref.cause), "fields": ref.fields.as_dict()}


def run_dispatch(data_width, cases, verdicts_after=0, engine_taking=True):
    """Run the dispatcher on `cases` (frame, stored by the FIFO, verdict override, socket hit,
    engine route): every key at once, the verdicts from clock `verdicts_after` on; the engine
    says it takes an event as it is offered (`engine_taking`: frames go to it straight from
    the verdicts) or not (they go through the queue). Returns what came out, and the lookups
    asked before the first verdict was taken."""
    status_layout = FrameStatus(1024)
    dut = RxDispatch(data_width, 3, status_layout)
    out = {"slow": [], "sliced": [], "commands": [], "events": [], "keys": [],
           "asked_before_verdicts": None, "direct": 0}
    routes = iter(c[4] for c in cases if c[3])
    hits = iter(bool(c[3]) for c in cases)

    async def frames_in(ctx):
        for frame, stored, *_ in cases:
            if stored:
                await send_frame(ctx, dut.frames, frame, data_width)

    async def keys_in(ctx):
        for frame, *_ in cases:
            ctx.set(dut.key.payload, header_key(frame))
            ctx.set(dut.key.valid, 1)
            await ctx.tick().until(dut.key.ready)
        ctx.set(dut.key.valid, 0)

    async def verdicts_in(ctx):
        if verdicts_after:
            await ctx.tick().repeat(verdicts_after)
        out["asked_before_verdicts"] = len(out["keys"])
        for frame, stored, verdict, *_ in cases:
            ctx.set(dut.verdict.payload, record(frame, verdict))
            ctx.set(dut.status.payload, {"stored": stored, "beats": 0})
            ctx.set(dut.verdict.valid, 1)
            ctx.set(dut.status.valid, 1)
            await ctx.tick().until(dut.verdict.ready)
        ctx.set(dut.verdict.valid, 0)
        ctx.set(dut.status.valid, 0)

    async def table(ctx):
        # a socket table that answers every lookup, in order, a few clocks later
        ctx.set(dut.lookup.ready, 1)
        answers = []
        async for _, _, lv, lp, rv, rr in ctx.tick().sample(
                dut.lookup.valid, dut.lookup.payload, dut.result.valid, dut.result.ready):
            if rv and rr:
                answers.pop(0)
            if lv:
                out["keys"].append(lp)
                answers.append(next(hits))
            ctx.set(dut.result.valid, bool(answers))
            if answers:
                ctx.set(dut.result.payload, {"hit": answers[0], "id": 5})

    async def engine(ctx):
        # takes each event in the clock it is offered, answers 4 clocks later (time for the
        # next frames' verdicts to queue behind it)
        ctx.set(dut.event.ready, 1)
        ctx.set(dut.engine_taking, engine_taking)
        while True:
            _, _, valid, payload, verdict_taken, verdict = await ctx.tick().sample(
                dut.event.valid, dut.event.payload, dut.verdict.ready, dut.verdict.payload)
            if valid:
                out["events"].append(payload)
                # offered as its own verdict was taken (the cases' lengths tell the frames apart)
                out["direct"] += verdict_taken and \
                    verdict.fields.payload_length == payload.payload_length
                await ctx.tick().repeat(3)
                ctx.set(dut.action.payload, {"route": next(routes)})
                ctx.set(dut.action.valid, 1)
                await ctx.tick().until(dut.action.ready)
                ctx.set(dut.action.valid, 0)

    async def slicer(ctx):
        ctx.set(dut.slice_cmd.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(dut.slice_cmd.valid, dut.slice_cmd.payload)
            if valid:
                out["commands"].append((payload.skip, payload.length))

    def sink(port, frames, count):
        async def bench(ctx):
            while len(frames) < count:
                frames.append(await recv_frame(ctx, port, data_width, timeout=5000))
        return bench

    want_slow = sum(1 for c in cases if c[1] and (c[2] == Verdict.SLOW or c[3] is False
                                                  or c[4] == RxRoute.SLOW))
    want_sliced = sum(1 for c in cases if c[4] == RxRoute.STORE)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(frames_in)
    sim.add_testbench(keys_in)
    sim.add_testbench(verdicts_in)
    sim.add_testbench(table, background=True)
    sim.add_testbench(engine, background=True)
    sim.add_process(slicer)
    sim.add_testbench(sink(dut.slow, out["slow"], want_slow))
    sim.add_testbench(sink(dut.slice_data, out["sliced"], want_sliced))

    async def counts(ctx):
        await ctx.tick().repeat(verdicts_after + 3000)
        out.update({name: ctx.get(getattr(dut, name))
                    for name in ("fifo_full", "slow_frames", "engine_frames", "idle")})

    sim.add_testbench(counts)
    sim.run()
    return out


@pytest.mark.parametrize("engine_taking", [True, False])
@pytest.mark.parametrize("data_width", [64, 8])
def test_routes(data_width, engine_taking):
    # (frame, stored by the FIFO, verdict override, socket hit, engine route)
    cases = [
        (segment(80, b"payload one"), 1, None, True, RxRoute.STORE),    # to the ring
        (segment(81, b"x" * 40), 1, None, False, None),                # unknown flow: slow
        (segment(80, b"dropped"), 1, Verdict.DROP, None, None),        # classifier drop
        (segment(80, b"not stored"), 0, None, None, None),             # FIFO had no room
        (segment(80, b"x" * 60), 0, Verdict.DROP, None, None),         # both: the classifier's
        (segment(80, b"arp-ish"), 1, Verdict.SLOW, None, None),        # slow verdict
        (segment(80, b"closed"), 1, None, True, RxRoute.SLOW),         # engine: closed conn
        (segment(80, b"stale"), 1, None, True, RxRoute.DISCARD),       # engine: keep nothing
        (segment(80, b"payload two, longer than one beat"), 1, None, True, RxRoute.STORE),
    ]
    out = run_dispatch(data_width, cases, engine_taking=engine_taking)
    # every frame's key is looked up, as the keys come (the verdict picks the results it uses)
    assert [k.local_port for k in out["keys"]] == [80, 81, 80, 80, 80, 80, 80, 80, 80]
    assert all(k.remote_port == 4242 and k.protocol == IpProto.TCP for k in out["keys"])
    assert [e.payload_length for e in out["events"]] == [11, 6, 5, 33]   # FAST frames with a socket
    assert all(e.seq == 100 and e.ack == 200 and e.conn == 5 and e.payload_offset == 54
               for e in out["events"])
    assert out["slow"] == [cases[1][0], cases[5][0], cases[6][0]]          # whole frames, in order
    assert out["sliced"] == [cases[0][0], cases[8][0]]                     # the frames, to slice
    assert out["commands"] == [(54, 11), (54, 33)]
    assert {name: out[name] for name in ("fifo_full", "slow_frames", "engine_frames", "idle")} == {
        "fifo_full": 1, "slow_frames": 3, "engine_frames": 4, "idle": 1}
    # with the engine taking, a frame with nothing queued before it goes straight to it
    assert (out["direct"] > 0) == engine_taking, out["direct"]


def test_lookups_run_ahead_of_verdicts():
    """Keys come long before their verdicts: the dispatcher asks for RESULT_DEPTH lookups and
    no more until verdicts take their results, then pairs every verdict with its own result
    (hits and misses alternating, so a result paired with the wrong frame shows)."""
    cases = [(segment(80 + n % 3, bytes([n]) * (n + 6)), 1, None, n % 3 != 1,
              RxRoute.STORE if n % 3 != 1 else None) for n in range(RESULT_DEPTH + 8)]
    out = run_dispatch(64, cases, verdicts_after=200)
    assert out["asked_before_verdicts"] == RESULT_DEPTH
    assert [k.local_port for k in out["keys"]] == [80 + n % 3 for n in range(len(cases))]
    assert [e.payload_length for e in out["events"]] == [n + 6 for n in range(len(cases)) if n % 3 != 1]
    assert out["slow"] == [c[0] for c in cases if not c[3]]
    assert out["sliced"] == [c[0] for c in cases if c[3]]
    assert out["idle"] == 1


@pytest.mark.parametrize("data_width", [8, 64])
def test_lint(data_width):
    lint_component(RxDispatch(data_width, 6, FrameStatus(1024)), f"rx_dispatch_{data_width}",
                   BUILD / "test" / "rx_dispatch")
