"""``make bench``: the NIC's benchmarks on the RTL, into ``build/bench/bench.json`` and ``bench.md``.

    python -m tb.bench_run [--sim verilator|icarus] [--width 64|8] [--quick] [--no-speed]

1. The benchmarks of ``tb/bench.py`` (receive and transmit rates, latencies) on two NICs
   (:data:`FULL`): the reference (64 connections, 2 KiB rings) for receive over 64
   connections and the latencies, and 8 connections with 32 KiB rings (the largest without
   window scaling) for receive on one connection and transmit, so that a burst of full-size frames
   fits one window; Verilator by default.
2. Simulation speed: the ``lossy_wire`` scenario (``tb/nic_cocotb.py``, the NIC of the test
   suite) on Icarus and on Verilator, clocks per wall second.
3. The golden model's throughput: 1 MiB from one model host to another on a clean wire.

The reference NIC's simulator build is the test suite's (``build/cocotb/``, the same Verilog
and stamp, see ``tb/nic_run.py``), so after ``make test`` it is not built again; every other
build lives in ``build/bench/``; each is made again only when its Verilog changes. Each phase
prints a progress line with the elapsed time and is counted in the report's ``phases``;
``host`` records the machine (CPU, cores, load). Rates are also given in Gb/s at the 156.25
MHz target clock. ``bench.png`` (matplotlib) plots line rate and latency against frame size.
``python -m tb.readme_tables bench-table`` puts :func:`report_tables` in the README and the
plot in ``docs/bench.png``.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from flow.build import to_verilog
from tb.bench import EAGAIN_BACKOFF, Plan
from tb import nic_run
from tb.nic_run import SIMULATORS, NicConfig, build_verilog, run_module
from tb.scenarios import NIC_POLICY
from flow.tools import BUILD, simulator_env
from hdl.engine.tcp_engine import RING_READ_QUEUE_DEPTH

__all__ = ["FULL", "QUICK", "CLOCK_HZ", "gbps", "build", "run_benchmarks", "sim_speed",
           "model_throughput", "host_facts", "shortfalls", "report_tables", "report_markdown",
           "plot", "main"]

# The clock the design targets (10GBASE-R's 156.25 MHz): rates in Gb/s are bytes per clock
# at this clock.
CLOCK_HZ = 156.25e6


def gbps(bytes_per_clock: float) -> float:
    """`bytes_per_clock` in Gb/s at :data:`CLOCK_HZ`."""
    return bytes_per_clock * 8 * CLOCK_HZ / 1e9


class Progress:
    """Progress lines with the elapsed time, and the seconds each phase took (``phases``)."""

    def __init__(self, what: str = "bench"):
        self.what, self.started, self.phases = what, time.monotonic(), {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @contextlib.contextmanager
    def phase(self, name: str):
        print(f"[{self.what} {self.elapsed():7.1f} s] {name} ...", flush=True)
        begun = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - begun
            self.phases[name] = round(self.phases.get(name, 0) + took, 1)
            print(f"[{self.what} {self.elapsed():7.1f} s] {name}: {took:.1f} s", flush=True)

BENCH = BUILD / "bench"
SIZES = (64, 128, 256, 512, 1024, 1518)
# The reference NIC (64 connections, 2 KiB rings, as `make synth` and the test suite build it):
# receive spread over its 64 connections, and the latencies.
# Then transmit from 4 processes over 16 connections (one WRITE in flight per process), and
# the mixed load: receive round robin over 60 connections while 4 processes write on the
# other 4 (one each) and read the 60.
REFERENCE = Plan(connections=64, processes=16, ring_bytes=2048, rx_sizes=SIZES,
                 rx_connections=(64,), latency_sizes=SIZES, tx_loads=((64, 4, 16), (1518, 4, 16)),
                 mixed_sizes=(64, 1518))
# Eight connections with 32 KiB rings (the largest without window scaling): one connection's window holds
# a burst of 22 full-size frames, and a host write up to 16 KiB. Receive on one connection and
# transmit, from one process and from 4 processes on one connection. (64 connections with 32 KiB rings cost minutes of Verilog generation per run and a
# multi-gigabyte Verilator build, for the same engine.)
DEEP = Plan(connections=8, processes=16, ring_bytes=32768, rx_sizes=SIZES, rx_connections=(1,),
            tx_sizes=SIZES, tx_loads=((64, 4, 1), (1518, 4, 1)))
FULL = (REFERENCE, DEEP)
# one frame size, a few frames and four connections: a smoke test of the whole flow
QUICK = (Plan(connections=4, processes=8, ring_bytes=4096, rx_sizes=(256,), rx_connections=(1, 4),
              rx_frames=8, tx_sizes=(256,), tx_segments=8, latency_sizes=(256,),
              tx_loads=((256, 4, 1), (256, 2, 2)), tx_load_segments=16, mixed_sizes=(256,),
              mixed_processes=2, mixed_frames=16),)
# issue 9's transmit targets: of line rate overall at MSS 1460, and at 64-byte frames
TX_TARGET, TX_TARGET_64 = 0.95, 0.90
SPEED_SCENARIO = "lossy_wire"
MODEL_BYTES = 1 << 20


def _nic(plan: Plan):
    from hdl.nic import NIC
    return NIC(data_width=plan.width, connections=plan.connections, processes=plan.processes,
               policy=plan.policy(), debug=True)


def _plan_name(plan: Plan) -> str:
    return f"nic_w{plan.width}_c{plan.connections}_p{plan.processes}_r{plan.ring_bytes}"


def build(sim: str, component, name: str) -> Path:
    """Verilog of `component` (top ``nic``) built for `sim` in ``build/bench/name/sim``."""
    folder = BENCH / name / sim
    return build_verilog(sim, to_verilog(component, "nic"), folder, folder / "nic.v")


def _suite_config(plan: Plan) -> NicConfig | None:
    """The test suite's NicConfig when `plan`'s NIC is the one the suite builds, else None."""
    config = NicConfig(data_width=plan.width, connections=plan.connections, processes=plan.processes)
    return config if plan.policy() == NIC_POLICY else None


def build_plan(sim: str, plan: Plan) -> Path:
    """The simulator build for `plan`'s NIC: the test suite's own when it is the same NIC
    (same Verilog, same stamp: not built again after ``make test``), else one of its own."""
    config = _suite_config(plan)
    if config is not None:
        return nic_run.build(sim, config)
    return build(sim, _nic(plan), _plan_name(plan))


def _run(sim: str, folder: Path, module: str, env: dict, what: str):
    """Run the cocotb `module` on the build in `folder`; raise with its failures."""
    run_module(sim, folder, module, what, env, f"{what} failed on {sim}")


def run_benchmarks(sim: str, plan: Plan, progress: Progress | None = None) -> dict:
    """``tb/bench.py`` with `plan` on `sim`: the figures, with the build and run times."""
    progress = progress or Progress()
    started = time.monotonic()
    name = _plan_name(plan)
    with progress.phase(f"Verilog and {sim} build of {name}"):
        folder = build_plan(sim, plan)
    built = time.monotonic()
    out = BENCH / name / f"{sim}.json"
    out.unlink(missing_ok=True)
    with progress.phase(f"benchmarks on {name} ({sim})"):
        _run(sim, folder, "tb.bench", {"BENCH_PLAN": json.dumps(asdict(plan)), "BENCH_OUT": str(out)},
             "bench")
    figures = json.loads(out.read_text())
    figures["build_s"] = round(built - started, 1)
    figures["run_s"] = round(time.monotonic() - built, 1)
    return figures


def sim_speed(sims=SIMULATORS, scenario: str = SPEED_SCENARIO,
              progress: Progress | None = None) -> list[dict]:
    """`scenario` on the reference NIC (compared with the model, as in the test suite), on
    each simulator, in the test suite's own build of it."""
    progress = progress or Progress()
    config = NicConfig(data_width=64, connections=64, processes=16)
    if (config.connections, config.processes, NIC_POLICY) != (
            REFERENCE.connections, REFERENCE.processes, REFERENCE.policy()):
        raise AssertionError("the scenarios' NIC is no longer the reference plan's")
    rows = []
    for sim in sims:
        with progress.phase(f"Verilog and {sim} build of {config.name} (the test suite's)"):
            folder = nic_run.build(sim, config)
        out = BENCH / "speed" / sim
        with progress.phase(f"scenario {scenario} on {sim}"):
            _run(sim, folder, "tb.nic_cocotb",
                 {"NIC_SCENARIO": scenario, **config.environment(), "NIC_OUT": str(out)},
                 scenario)
        summary = json.loads((out / f"{scenario}.json").read_text())
        rows.append({"simulator": sim, "scenario": scenario, "nic": _plan_name(REFERENCE),
                     "cycles": summary["cycles"], "wall_s": summary["wall_s"],
                     "cycles_per_s": round(summary["cycles"] / summary["wall_s"])})
    return rows


def model_throughput(nbytes: int = MODEL_BYTES) -> dict:
    """`nbytes` from one model host to another on a clean wire (default policy), timed."""
    from model.constants import MSG_DONTWAIT
    from model.errors import SocketError, WouldBlock
    from model.host import Host
    from model.wire import Wire
    from tb.scenarios import DUT_IP, DUT_MAC, PEER_IP, PEER_MAC

    a = Host(DUT_MAC, DUT_IP, name="a")
    b = Host(PEER_MAC, PEER_IP, name="b", iss_base=0x2000_0000)
    wire = Wire(a, b)
    pa, pb = a.spawn(), b.spawn()
    lfd = pb.socket("tcp")
    pb.bind(lfd, ("0.0.0.0", 5000))
    pb.listen(lfd, 1)
    cfd = pa.socket("tcp")

    def blocking(fn, *args):
        while True:
            try:
                return fn(*args)
            except WouldBlock:
                if not wire.step():
                    raise AssertionError(f"{fn.__name__} blocked for good") from None

    blocking(pa.connect, cfd, (PEER_IP, 5000))
    sfd, _ = blocking(pb.accept, lfd)
    payload = bytes(k % 251 for k in range(nbytes))
    sent, got = 0, bytearray()

    def pump():
        nonlocal sent
        while sent < nbytes:
            try:
                sent += pa.send(cfd, payload[sent:sent + 65536], MSG_DONTWAIT)
            except SocketError:
                break
        while True:
            try:
                got.extend(pb.recv(sfd, 65536, MSG_DONTWAIT))
            except SocketError:
                break
        return len(got) == nbytes

    ticks0, started = wire.now, time.perf_counter()
    done = wire.run(pump)
    wall = time.perf_counter() - started
    if not done or bytes(got) != payload:
        raise AssertionError("the model transfer did not complete byte-exact")
    return {"bytes": nbytes, "wall_s": round(wall, 3), "bytes_per_s": round(nbytes / wall),
            "ticks": wire.now - ticks0, "frames": len(wire.log)}


def host_facts() -> dict:
    """The machine the figures were measured on: CPU model, cores, load average."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "system": platform.platform(), "load_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def _tool_versions(sims) -> dict:
    env = simulator_env()
    versions = {}
    for sim, args in (("verilator", ["verilator", "--version"]), ("icarus", ["iverilog", "-V"])):
        if sim in sims:
            try:
                out = subprocess.run(args, capture_output=True, text=True, env=env).stdout
                versions[sim] = out.splitlines()[0].replace("()", "").strip() if out else "unknown"
            except OSError:
                versions[sim] = "unknown"
    return versions


# ----- what the figures say --------------------------------------------------------------

def _steps(steps: dict, count: int = 4, skip=()) -> str:
    items = [(k, v) for k, v in steps.items() if k not in skip][:count]
    return ", ".join(f"{k} {v:g}" for k, v in items)


def _ack_cost(steps: dict, segments: int, acks: int) -> str:
    """What the peer's ACKs cost the engine, if it spends clocks releasing acknowledged data."""
    release = steps.get("TCP_ACK_RELEASE", 0) * segments
    if not acks or release < 8 * acks:
        return ""
    return (f"; each of the peer's {acks} ACKs holds the engine {release / acks:.0f} clocks in "
            f"TCP_ACK_RELEASE (freeing send-ring space)")


#: Clocks from a received frame's last beat into the frame FIFO to its last byte in its ring
#: beyond the frame's own beats, at most, when nothing waits (the verdict, the lookup, the
#: engine's decision, the slicer): a burst that took only this and one frame's store and
#: forward beyond its frames' beats lost no clock between its frames.
RX_PIPELINE_CLOCKS = 40


def shortfalls(report) -> list[str]:
    """One line per measured shortfall: where the clocks go, by block and engine step."""
    lanes = report["data_width"] // 8
    lines = []
    by_size = {}
    for row in report["receive"]:
        by_size.setdefault(row["frame_bytes"], []).append(row)
    for size, rows in by_size.items():
        worst = min(rows, key=lambda r: r["line_rate_ratio"])
        if worst["line_rate_ratio"] >= 0.99:
            continue
        ratios = ", ".join(f"{r['line_rate_ratio']:.0%} on {r['connections']}" for r in rows)
        engine, beats = worst["engine_cycles_per_segment"], worst["beats_per_frame"]
        # the clocks beyond the frames' own beats, per burst
        extra = worst["cycles"] - worst["frames_offered"] * beats
        per_burst = extra / worst["bursts"]
        if not worst["frames_dropped"] and 0 <= per_burst - beats <= RX_PIPELINE_CLOCKS:
            cap = worst["port_bytes"] / (beats * lanes)
            line = (f"receive, {size}-byte frames ({ratios} connection(s)): each burst of "
                    f"{worst['frames_per_burst']} frames takes its frames' beats plus "
                    f"{per_burst:.0f} clocks, the last frame's latency: its {beats:.0f} beats "
                    f"stored in the frame FIFO before the checksum verdict (store and forward), "
                    f"then {per_burst - beats:.0f} clocks until its last byte is in its ring; between the "
                    f"frames of a burst no clock is lost (`tcp_engine` busy {engine:.0f} clocks "
                    f"per segment against {beats:.0f} beats)")
            if cap < 1:
                line += (f"; a {worst['port_bytes']}-byte frame fills {beats:.0f} beats of "
                         f"{lanes} bytes, so {cap:.2%} of line rate is this port's most")
            lines.append(line + ".")
            continue
        bound = ("so the engine is the bottleneck" if engine > beats else
                 "so the engine keeps up and the clocks are lost between the blocks")
        line = (f"receive, {size}-byte frames ({ratios} connection(s)): `tcp_engine` is busy "
                f"{engine:.0f} clocks per segment against {beats:.0f} beats on the wire, "
                f"{bound} (one event at a time: {_steps(worst['engine_steps'], 6)}); the "
                f"dispatcher waits for it: {_steps(worst['dispatch_steps'], 3)}")
        dropped = sum(r["frames_dropped"] for r in rows)
        stalls = sum(r["backpressure_cycles"] for r in rows)
        if dropped:
            line += (f"; the receive `frame_fifo` fills and drops {dropped} of "
                     f"{sum(r['frames_offered'] for r in rows)} frames whole")
        if stalls:
            line += (f"; its status queue fills and holds `rx.ready` low for {stalls} clocks "
                     f"(backpressure, nothing lost)")
        lines.append(line + ".")
    for row in report["transmit"]:
        if row["line_rate_ratio"] >= 0.95:
            continue
        line = (f"transmit, {row['frame_bytes']}-byte frames (MSS {row['mss']}): "
                f"{row['line_rate_ratio']:.0%} of line rate overall, "
                f"{row['burst_line_rate_ratio']:.0%} while a write's segments flow; `tcp_engine` "
                f"{row['engine_cycles_per_segment']:.0f} clocks per segment "
                f"({_steps(row['engine_steps'], 5)})")
        emit = row["engine_steps"].get("EMIT", 0)
        if emit:
            line += (f"; the engine waits in EMIT {emit:g} clocks per segment for the send ring's "
                     f"read side (one segment's read streaming, {RING_READ_QUEUE_DEPTH} decided ahead) or the "
                     f"framer's header queue, and holds every other event meanwhile")
        if row["min_gap_cycles"]:
            line += f"; at least {row['min_gap_cycles']} idle clocks between frames"
        lines.append(line + ".")
    for row in report.get("transmit_load", []):
        target = TX_TARGET_64 if row["frame_bytes"] == 64 else TX_TARGET
        if row["line_rate_ratio"] >= target:
            continue
        engine = row["engine_cycles_per_segment"]
        beats = -(-(row["mean_frame_bytes"] - 4) // lanes)
        bound = ("so the engine is the bottleneck" if engine > beats else
                 "so the engine keeps up and the clocks are lost between the blocks")
        line = (f"transmit from {row['processes']} processes on {row['connections']} "
                f"connection(s), {row['frame_bytes']}-byte frames (MSS {row['mss']}): "
                f"{row['line_rate_ratio']:.0%} of line rate overall (target {target:.0%}); "
                f"`tcp_engine` is busy {engine:.0f} clocks per segment against {beats:.0f} beats "
                f"on the wire, {bound} ({_steps(row['engine_steps'], 5)})")
        line += _ack_cost(row["engine_steps"], row["segments"], row["peer_acks"])
        if row["write_retries"] or row["partial_writes"]:
            line += (f"; {row['partial_writes']} of {row['writes']} writes taken in part and "
                     f"{row['write_retries']} answered EAGAIN (send ring full until the peer's ACK)")
        if row["mean_frame_bytes"] < row["frame_bytes"] - 0.5:
            line += (f"; the frames average {row['mean_frame_bytes']:.0f} bytes (a write's tail "
                     f"goes out short)")
        if row["min_gap_cycles"]:
            line += f"; at least {row['min_gap_cycles']} idle clocks between frames"
        lines.append(line + ".")
    for row in report.get("mixed", []):
        if (row["rx_line_rate_ratio"] >= 0.95 and row["tx_line_rate_ratio"] >= TX_TARGET
                and not row["rx_frames_dropped"]):
            continue
        line = (f"mixed load, {row['frame_bytes']}-byte frames in on {row['rx_connections']} "
                f"connections while {row['processes']} processes write (MSS {row['tx_mss']}) and "
                f"read: receive {row['rx_line_rate_ratio']:.0%} and transmit "
                f"{row['tx_line_rate_ratio']:.0%} of line rate (the writes offered would fill the "
                f"wire for as long as the frames take to come in); one engine takes both "
                f"directions' events ({_steps(row['engine_steps'], 5)} clocks per segment in or "
                f"out)")
        line += _ack_cost(row["engine_steps"], row["rx_frames_offered"] + row["tx_segments"],
                          row["peer_acks"])
        line += (f"; {row['tx_writes']} WRITEs and {row['reads']} READs got through the host port, "
                 f"{row['bytes_read_during']} of {row['rx_payload_bytes_delivered']} bytes read "
                 f"while the load ran")
        if row["rx_backpressure_cycles"]:
            line += f"; `rx.ready` low for {row['rx_backpressure_cycles']} clocks"
        if row["rx_frames_dropped"]:
            line += f"; {row['rx_frames_dropped']} of {row['rx_frames_offered']} frames dropped"
        lines.append(line + ".")
    # cut-through transmit: a frame starts before its payload is all read from the send ring
    underruns = [(name, row["frame_bytes"], row.get(key, 0))
                 for name, key in (("transmit", "tx_underrun_cycles"),
                                   ("transmit_load", "tx_underrun_cycles"),
                                   ("mixed", "tx_underrun_cycles"),
                                   ("latency", "write_underrun_cycles"))
                 for row in report.get(name, []) if row.get(key, 0)]
    if underruns:
        where = ", ".join(f"{clocks} in {name} at {size} B" for name, size, clocks in underruns)
        lines.append(f"transmit underruns: clocks inside a frame on `tx` without a beat ({where}): "
                     f"the framer sends a frame once its sums are final and its payload follows "
                     f"from the send ring; a MAC would have run dry.")
    return lines


def _nic_label(row) -> str:
    ring = row["ring_bytes"]
    return f"{row['nic_connections']} x {ring // 1024 if ring >= 1024 else ring} {'KiB' if ring >= 1024 else 'B'}"


def report_tables(report) -> str:
    """The tables (receive, transmit, transmit from several processes, mixed load, latency,
    speed), the shortfalls and the provenance."""
    lanes = report["data_width"] // 8
    out = [f"Measured {report['date'][:10]} on {report['simulator']} "
           f"({report['tools'].get(report['simulator'], 'version unknown')}) by "
           f"`{report['command']}`, {report['data_width']}-bit path: the physical limit is "
           f"{lanes} bytes per clock on each port. Frame sizes include the FCS; the ports carry "
           f"frames without it (64 -> 60 bytes) and bytes per clock count port bytes. *NIC* is "
           f"connections x ring bytes (receive and send, each); 64 x 2 KiB is the reference "
           f"configuration. *Gb/s* is frame bytes per clock at the {CLOCK_HZ / 1e6:g} MHz target "
           f"clock (the limit: {gbps(lanes):g} Gb/s).", ""]
    conns = sorted({r["connections"] for r in report["receive"]})
    spread = " or ".join("one connection" if c == 1 else f"round robin over {c}" for c in conns)
    out += [f"**Receive**: in-order data, frames back to back on `rx` (no idle beats), on "
            f"{spread or 'one connection'}; from the first beat accepted to the last payload "
            "beat written into a receive ring. Each burst fits the receive windows: the rings are "
            "read empty between bursts (not measured). *in order*: frames readable when their "
            "burst is over; a dropped frame is sent again after its burst (not measured).", "",
            "| frame | NIC | conns | stored / offered | `rx.ready` low | in order | "
            "payload B/clk | frame B/clk | Gb/s | of line rate | engine clk/segment |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["receive"]:
        out.append(f"| {r['frame_bytes']} | {_nic_label(r)} | {r['connections']} | "
                   f"{r['frames_stored']} / {r['frames_offered']} | {r['backpressure_cycles']} clk | "
                   f"{r['frames_in_order']} | {r['payload_bytes_per_clock']:.2f} | "
                   f"{r['frame_bytes_per_clock']:.2f} | {gbps(r['frame_bytes_per_clock']):.2f} | "
                   f"{r['line_rate_ratio']:.0%} | "
                   f"{r['engine_cycles_per_segment']:.1f} |")
    out += ["", "**Transmit**: host WRITEs of up to half the send ring on a connection whose MSS "
            "(the peer's SYN option) gives the frame size; the peer's window is 65535 and it ACKs "
            "each write once the write is on the wire. From the first WRITE accepted to the last "
            "beat out; *while sending*: from each write's first segment out to its last.", "",
            "| frame | NIC | MSS | segments | payload B/clk | frame B/clk | Gb/s | of line rate | "
            "while sending | engine clk/segment |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["transmit"]:
        out.append(f"| {r['frame_bytes']} | {_nic_label(r)} | {r['mss']} | {r['segments']} | "
                   f"{r['payload_bytes_per_clock']:.2f} | {r['frame_bytes_per_clock']:.2f} | "
                   f"{gbps(r['frame_bytes_per_clock']):.2f} | "
                   f"{r['line_rate_ratio']:.0%} | {r['burst_line_rate_ratio']:.0%} | "
                   f"{r['engine_cycles_per_segment']:.1f} |")
    if report.get("transmit_load"):
        out += ["", "**Transmit from several processes**: each process keeps one large WRITE in "
                "flight (half the send ring, whole segments); with one connection every process "
                "writes on it (the NIC orders the writes: the bytes on the wire are checked to be "
                "the writes in the order it accepted them), else each writes on its own share of "
                "the connections. A write is ACKed by the peer once its last byte is on the wire; "
                f"a process answered EAGAIN tries again {EAGAIN_BACKOFF} clocks later. From the "
                "first WRITE accepted to the last beat out. *writes*: accepted (taken in part); "
                "*frame*: the MSS's size / the mean sent.", "",
                "| frame | NIC | MSS | processes | conns | writes (part) | EAGAIN | segments | "
                "payload B/clk | frame B/clk | Gb/s | of line rate | engine clk/segment |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["transmit_load"]:
            out.append(f"| {r['frame_bytes']} / {r['mean_frame_bytes']:.0f} | {_nic_label(r)} | "
                       f"{r['mss']} | {r['processes']} | {r['connections']} | {r['writes']} "
                       f"({r['partial_writes']}) | {r['write_retries']} | {r['segments']} | "
                       f"{r['payload_bytes_per_clock']:.2f} | {r['frame_bytes_per_clock']:.2f} | "
                       f"{gbps(r['frame_bytes_per_clock']):.2f} | {r['line_rate_ratio']:.0%} | "
                       f"{r['engine_cycles_per_segment']:.1f} |")
    if report.get("mixed"):
        out += ["", "**Mixed load**: in-order data frames back to back round robin over the *in* "
                "connections (the burst fits their windows) while each process writes on its own "
                f"*out* connection (MSS {report['mixed'][0]['tx_mss']}, large WRITEs as above) and "
                "reads its share of the *in* connections (a READ only where data has been sent); "
                "the peer's ACKs go in on `rx` between data frames. Each direction from the first "
                "frame or command to its last beat (into a ring; out on the wire); *both ports*: "
                "all frame bytes over both ports' capacity for the whole run.", "",
                "| frame in | NIC | in conns | stored / offered | `rx.ready` low | in B/clk | in, of "
                "line rate | out conns | segments out (mean frame) | EAGAIN | out B/clk | out, of "
                "line rate | ACKs out | READs (EAGAIN) | both ports |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["mixed"]:
            stored = r["rx_frames_offered"] - r["rx_frames_dropped"]
            out.append(f"| {r['frame_bytes']} | {_nic_label(r)} | {r['rx_connections']} | "
                       f"{stored} / {r['rx_frames_offered']} | {r['rx_backpressure_cycles']} clk | "
                       f"{r['rx_frame_bytes_per_clock']:.2f} | {r['rx_line_rate_ratio']:.0%} | "
                       f"{r['tx_connections']} | {r['tx_segments']} ({r['tx_mean_frame_bytes']:.0f}) | "
                       f"{r['tx_write_retries']} | {r['tx_frame_bytes_per_clock']:.2f} | "
                       f"{r['tx_line_rate_ratio']:.0%} | {r['tx_ack_frames']} | {r['reads']} "
                       f"({r['read_eagain']}) | {r['line_rate_ratio']:.0%} |")
    out += ["", "**Latency** in clocks, idle NIC: from a data segment's last beat accepted to the "
            "response of the first READ that returns its data (a READ is always waiting), to its "
            "last payload beat in the ring, and to the first beat of its ACK out; from a WRITE "
            "accepted to the first beat of its segment out. A READ is answered once the ring has "
            "decided the segment's write, and its beats follow the bytes into the ring, so "
            "*readable* may come before the last byte is *in* the ring. The waiting READ keeps "
            "the engine busy (it takes one event at a time), so *readable* and *in the ring* "
            "also count the rest of the READ the frame's event meets, a few clocks that vary "
            "with where the polling is.", "",
            "| frame | NIC | in -> readable | in -> ring | in -> ACK out | WRITE -> wire |",
            "|---|---|---|---|---|---|"]
    for r in report["latency"]:
        out.append(f"| {r['frame_bytes']} | {_nic_label(r)} | {r['rx_to_readable']} | "
                   f"{r['rx_to_ring']} | {r['rx_to_ack_out']} | {r['write_to_wire']} |")
    out += ["", "**Simulation speed** (cocotb, one Python pass per clock) and the golden model:", "",
            "| run | NIC | simulator | clocks | wall s | clocks/s |", "|---|---|---|---|---|---|"]
    for r in report["sim_speed"]:
        out.append(f"| scenario `{r['scenario']}` | {r['nic']} | {r['simulator']} | "
                   f"{r['cycles']:,} | {r['wall_s']:g} | {r['cycles_per_s']:,} |")
    for r in report["bench_sim"]:
        out.append(f"| these benchmarks | {r['nic']} | {report['simulator']} | {r['cycles']:,} | "
                   f"{r['wall_s']:g} | {r['cycles_per_s']:,} |")
    model = report["model"]
    out += ["", f"Golden model (`model/`, pure Python): {model['bytes'] // 1024} KiB from one "
            f"host to another over a clean `model.wire.Wire` in {model['wall_s']:g} s "
            f"({model['bytes_per_s'] / 1e6:.2f} MB/s; {model['frames']:,} frames, "
            f"{model['ticks']:,} ticks of virtual time)."]
    if report["shortfalls"]:
        out += ["", "**Shortfalls** (where the clocks go):", ""]
        out += [f"- {line}" for line in report["shortfalls"]]
    return "\n".join(out) + "\n"


def report_markdown(report) -> str:
    phases = report.get("phases", {})
    counted = sum(phases.values())
    lines = [f"# NIC benchmarks\n\n{report_tables(report)}",
             f"![line rate and latency against frame size](bench.png)\n",
             f"`{report['command']}` took {report['wall_s']:.1f} s:\n"]
    lines += [f"- {name}: {secs:g} s" for name, secs in phases.items()]
    lines.append(f"- the rest (start-up, writing the reports): {max(0.0, report['wall_s'] - counted):.1f} s")
    host = report.get("host")
    if host:
        lines.append(f"\nOn {host['cpu']} ({host['cpus']} CPUs), load average "
                     f"{' / '.join(map(str, host['load_1_5_15']))} at the start and "
                     f"{' / '.join(map(str, host.get('load_after', [])))} at the end "
                     f"(1 / 5 / 15 min); Python {host['python']}, {host['system']}.")
    return "\n".join(lines) + "\n"


def plot(report, path: Path) -> Path:
    """Line rate against frame size (receive, transmit) and latency against frame size, as a
    PNG at `path` (matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (rate_ax, lat_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = {}
    for r in report["receive"]:
        series.setdefault(f"receive, {_nic_label(r)}, {r['connections']} conn.", []).append(
            (r["frame_bytes"], r["line_rate_ratio"]))
    for r in report["transmit"]:
        series.setdefault(f"transmit, {_nic_label(r)}", []).append(
            (r["frame_bytes"], r["line_rate_ratio"]))
        series.setdefault(f"transmit while sending, {_nic_label(r)}", []).append(
            (r["frame_bytes"], r["burst_line_rate_ratio"]))
    for r in report.get("transmit_load", []):
        series.setdefault(f"transmit, {r['processes']} proc. on {r['connections']} conn., "
                          f"{_nic_label(r)}", []).append((r["frame_bytes"], r["line_rate_ratio"]))
    for r in report.get("mixed", []):
        series.setdefault(f"mixed: receive on {r['rx_connections']}, {_nic_label(r)}", []).append(
            (r["frame_bytes"], r["rx_line_rate_ratio"]))
        series.setdefault(f"mixed: transmit (MSS {r['tx_mss']}) against the frame in", []).append(
            (r["frame_bytes"], r["tx_line_rate_ratio"]))
    for label, points in series.items():
        xs, ys = zip(*sorted(points))
        rate_ax.plot(xs, [100 * y for y in ys], marker="o",
                     linestyle="--" if "while" in label else "-", label=label)
    rate_ax.axhline(100, color="grey", linewidth=0.8)
    rate_ax.set(xscale="log", xlabel="frame bytes (with FCS)", ylabel="% of line rate",
                title=f"line rate ({report['data_width']}-bit path, "
                      f"100% = {gbps(report['data_width'] // 8):g} Gb/s at {CLOCK_HZ / 1e6:g} MHz)",
                ylim=(0, 105))
    for key, label in (("rx_to_readable", "segment in -> readable"), ("rx_to_ring", "segment in -> ring"),
                       ("rx_to_ack_out", "segment in -> ACK out"), ("write_to_wire", "WRITE -> wire")):
        points = sorted((r["frame_bytes"], r[key]) for r in report["latency"])
        if points:
            xs, ys = zip(*points)
            lat_ax.plot(xs, ys, marker="o", label=label)
    lat_ax.set(xscale="log", xlabel="frame bytes (with FCS)", ylabel="clocks",
               title=f"latency (idle NIC; 1 clock = {1e9 / CLOCK_HZ:g} ns)")
    for ax in (rate_ax, lat_ax):
        ax.set_xticks(sorted({r["frame_bytes"] for r in report["receive"] + report["transmit"]
                              + report["latency"] + report.get("transmit_load", [])
                              + report.get("mixed", [])}) or [64])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"tcpnic on {report['simulator']}, {report['date'][:10]}, `{report['command']}`",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", default="verilator", choices=SIMULATORS)
    parser.add_argument("--width", type=int, default=64, choices=(8, 64))
    parser.add_argument("--quick", action="store_true",
                        help="the smoke plan: one frame size, a few frames, four connections")
    parser.add_argument("--no-speed", action="store_true",
                        help="skip the lossy_wire speed runs (the bench's own speed is kept)")
    parser.add_argument("--out", type=Path, default=BENCH)
    parser.add_argument("--command", default=None, help="the command recorded in the report")
    args = parser.parse_args(argv)
    progress = Progress()
    started = progress.started
    plans = [Plan(**{**asdict(plan), "width": args.width}) for plan in (QUICK if args.quick else FULL)]
    command = args.command or shlex.join(["python", "-m", "tb.bench_run", *(argv or sys.argv[1:])])
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "simulator": args.sim, "data_width": args.width,
        "plans": [asdict(plan) for plan in plans],
        "receive": [], "transmit": [], "latency": [], "transmit_load": [], "mixed": [],
        "bench_sim": [],
        "build_s": 0.0, "run_s": 0.0, "host": host_facts(),
    }
    for plan in plans:
        figures = run_benchmarks(args.sim, plan, progress)
        for part in ("receive", "transmit", "latency", "transmit_load", "mixed"):
            report[part] += figures[part]
        sim = figures["sim"]
        report["bench_sim"].append({"nic": _plan_name(plan), **sim,
                                    "cycles_per_s": round(sim["cycles"] / sim["wall_s"])})
        report["build_s"] += figures["build_s"]
        report["run_s"] += figures["run_s"]
    sims = (args.sim,) if args.quick else SIMULATORS
    report["sim_speed"] = [] if args.no_speed else sim_speed(sims, progress=progress)
    with progress.phase("simulator versions"):
        report["tools"] = _tool_versions({args.sim, *sims})
    with progress.phase("golden model throughput"):
        report["model"] = model_throughput(64 * 1024 if args.quick else MODEL_BYTES)
    for row in report["receive"] + report["transmit"] + report["transmit_load"]:
        row["frame_gbps"] = round(gbps(row["frame_bytes_per_clock"]), 3)
        row["payload_gbps"] = round(gbps(row["payload_bytes_per_clock"]), 3)
    for row in report["mixed"]:
        row["rx_frame_gbps"] = round(gbps(row["rx_frame_bytes_per_clock"]), 3)
        row["tx_frame_gbps"] = round(gbps(row["tx_frame_bytes_per_clock"]), 3)
    report["clock_hz"] = CLOCK_HZ
    report["shortfalls"] = shortfalls(report)
    args.out.mkdir(parents=True, exist_ok=True)
    with progress.phase("plot"):
        plot(report, args.out / "bench.png")
    report["phases"] = progress.phases
    report["host"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.monotonic() - started, 1)
    (args.out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "bench.md").write_text(report_markdown(report))
    print(report_markdown(report))
    print(f"wrote {args.out / 'bench.json'}, {args.out / 'bench.md'} and {args.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
