"""Verilog generation and lint for every block and the NIC top.

``python -m flow.build --out build/verilog [--lint]`` writes one ``<name>.v`` per entry of
``BLOCKS`` (the NIC top is ``nic.v``, top module ``nic``) and, with ``--lint``, runs
``verilator --lint-only -Wall`` on each. A file whose sources (hdl/, model/) have not changed
since it was written is kept, so ``make verilog`` then ``make lint`` converts once.
"""

import argparse
import hashlib
import importlib
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from amaranth.back import verilog

from hdl.config import LINUX_LIKE_CONFIG, NIC_POLICY
from model.policy import LINUX_RTO
from hdl.engine.tcp_engine import RING_READ_QUEUE_DEPTH

__all__ = ["LINT_WAIVERS", "BLOCKS", "instantiate", "to_verilog", "lint"]

# Warnings that Amaranth's generated Verilog always raises, waived by name and no others:
# PROCASSINIT: Amaranth initialises registers with an `initial` block and also assigns them
#              in processes; that is how it expresses reset values.
# UNUSEDSIGNAL: Amaranth emits every signal of a port or view, used or not (e.g. unused
#              payload bits of a stream, or the upper half of a memory read port).
# CASEINCOMPLETE: Amaranth lowers m.Switch/m.FSM to `casez` listing only the arms that assign,
#              after a default assignment, so the missing arms are intentional.
# WIDTHTRUNC:  Amaranth lowers `bit_select`/`word_select` to a wide shift assigned to a narrow
#              wire; Amaranth's own IR has exact widths and no implicit truncation.
# WIDTHEXPAND: Amaranth compares values with constants printed at their own minimal width
#              (`x > 1'h0` for a 13-bit `x`).
# DECLFILENAME: Amaranth writes a design and all its submodules as modules of one file.
LINT_WAIVERS = ("PROCASSINIT", "UNUSEDSIGNAL", "CASEINCOMPLETE", "WIDTHTRUNC", "WIDTHEXPAND",
                "DECLFILENAME")

# name -> (module, class, constructor keyword arguments): what `make verilog` emits.
BLOCKS = {
    "access_table": ("hdl.tables.access_table", "AccessTable", {"connections": 64, "processes": 64}),
    "socket_table": ("hdl.tables.socket_table", "SocketTable", {"entries": 1024}),
    # as the reference NIC's (64 connections: entries = 2 * connections, id_width 6)
    "socket_table_128": ("hdl.tables.socket_table", "SocketTable", {"entries": 128, "id_width": 6}),
    # as the reference NIC's receive ring
    "stream_buffer": ("hdl.buffers.stream_buffer", "StreamBuffer",
                      {"data_width": 64, "connections": 64, "ring_bytes": 2048,
                       "read_queue": RING_READ_QUEUE_DEPTH}),
    # as the reference NIC's send ring: writes at the tail, each read's sum from its prefix
    # sums, segments read where they are (positioned reads)
    "send_ring": ("hdl.buffers.stream_buffer", "StreamBuffer",
                  {"data_width": 64, "connections": 64, "ring_bytes": 2048, "max_ooo_ranges": 0,
                   "read_queue": RING_READ_QUEUE_DEPTH, "range_sums": True, "tail_writes": True,
                   "positioned_reads": True}),
    # the prefix sums inside it (its transmit checksum)
    "prefix_sums": ("hdl.buffers.prefix_sums", "PrefixSums",
                    {"connections": 64, "ring_bytes": 2048}),
    "checksum": ("hdl.checksum", "Checksum", {"data_width": 64}),
    "classifier": ("hdl.rx.classifier", "Classifier", {"data_width": 64}),
    "frame_slicer": ("hdl.rx.frame_slicer", "FrameSlicer", {"data_width": 64}),
    # as the reference NIC's: TCP payload sums from the send ring
    "tx_framer": ("hdl.tx.framer", "TxFramer", {"data_width": 64, "given_sums": True}),
    "frame_fifo": ("hdl.rx.frame_fifo", "FrameFifo", {"data_width": 64, "depth": 1024}),
    "tx_arbiter": ("hdl.tx.arbiter", "TxArbiter", {"data_width": 64}),
    # the RTO from RTT samples, with Linux's bounds in 1 ms ticks
    "rtt_estimator": ("hdl.engine.rtt", "RttEstimator",
                      {"policy": replace(NIC_POLICY, **LINUX_RTO)}),
    # the reference NIC's timers (64 connections)
    "timers": ("hdl.engine.timers", "Timers", {"connections": 64}),
    # the reference NIC's receive fast path (2 KiB rings: 16-bit ring counts)
    "rx_fast_path": ("hdl.engine.rx_fast_path", "RxFastPath", {"policy": NIC_POLICY,
                                                                "ring_bits": 16}),
    # the reference NIC's host gate (its access table: 64 connections x 16 processes)
    "host_gate": ("hdl.engine.host_gate", "HostGate", {"connections": 64, "processes": 16}),
    # the reference NIC's host calls (16 processes: 4-bit pids; 2 KiB rings: 16-bit counts)
    "host_call": ("hdl.engine.host_call", "HostCall", {"pid_bits": 4, "ring_bits": 16}),
    # the reference NIC's ACK verdict (2 KiB rings: 16-bit ring counts)
    "rx_ack": ("hdl.engine.rx_ack", "RxAck", {"policy": NIC_POLICY, "ring_bits": 16}),
    # the reference NIC's segment check (what comes before the ACK field)
    "rx_check": ("hdl.engine.rx_check", "RxCheck", {"policy": NIC_POLICY, "ring_bits": 16}),
    # a tick's verdict for a due connection, with Linux's RTO (the estimated RTO doubled)
    "timer_fire": ("hdl.engine.timer_fire", "TimerFire",
                   {"policy": replace(NIC_POLICY, **LINUX_RTO)}),
    # the reference NIC's transmit segmenter
    "tx_segmenter": ("hdl.engine.tx_segmenter", "TxSegmenter", {"policy": NIC_POLICY}),
    "tcp_engine": ("hdl.engine.tcp_engine", "TcpEngine",
                   {"data_width": 64, "connections": 64, "processes": 16,
                    "policy": NIC_POLICY}),
    # the same engine with Linux's RTO (NicConfig(linux_rto=True)): the estimator inside
    "tcp_engine_rtt": ("hdl.engine.tcp_engine", "TcpEngine",
                       {"data_width": 64, "connections": 64, "processes": 16,
                        "policy": replace(NIC_POLICY, **LINUX_RTO)}),
    # the same engine with window scaling (NicConfig(window_scaling=True): shift 0 for its
    # 2 KiB rings; the peer's shift scales SND.WND)
    "tcp_engine_ws": ("hdl.engine.tcp_engine", "TcpEngine",
                      {"data_width": 64, "connections": 64, "processes": 16,
                       "policy": replace(NIC_POLICY, window_scaling=True)}),
    # the engine of the Linux-like NIC (hdl.config.LINUX_LIKE_CONFIG: Linux's RTO, window
    # scaling, four out-of-order ranges, SACK blocks chosen from them)
    "tcp_engine_linux": ("hdl.engine.tcp_engine", "TcpEngine",
                         {"data_width": 64, "connections": 64, "processes": 16,
                          "policy": LINUX_LIKE_CONFIG.policy}),
    # the NIC top: 64-bit path, 64 connections, 2 KiB receive and send rings each (NIC_POLICY)
    "nic": ("hdl.nic", "NIC", {"data_width": 64, "connections": 64, "processes": 16,
                               "policy": NIC_POLICY}),
    # the same NIC with AXI4-Stream ports towards the MAC (hdl/nic_axis.py)
    "nic_axis": ("hdl.nic_axis", "NicAxis", {"data_width": 64, "connections": 64, "processes": 16,
                                             "policy": NIC_POLICY}),
}


def to_verilog(component, name: str, path: Path | None = None) -> str:
    """Verilog text of `component` with top module `name`; written to `path` if given."""
    text = verilog.convert(component, name=name, emit_src=False)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return text


def lint(path: Path) -> str:
    """Run ``verilator --lint-only -Wall`` with LINT_WAIVERS; raise with its output on failure."""
    from flow.tools import simulator_env
    args = ["verilator", "--lint-only", "-Wall", *(f"-Wno-{w}" for w in LINT_WAIVERS), str(path)]
    result = subprocess.run(args, capture_output=True, text=True, env=simulator_env())
    output = result.stdout + result.stderr
    if result.returncode != 0 or "%Warning" in output or "%Error" in output:
        raise AssertionError(f"lint of {path} failed:\n{' '.join(args)}\n{output}")
    return output


def lint_component(component, name: str, out_dir: Path) -> Path:
    """Convert `component` into `out_dir/name.v`, lint it and return the path."""
    path = Path(out_dir) / f"{name}.v"
    to_verilog(component, name, path)
    lint(path)
    return path


def _sources_digest(name: str) -> str:
    """SHA-256 of everything a block's Verilog depends on: the sources of hdl/ and model/,
    Amaranth's version and the block's BLOCKS entry."""
    import amaranth
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(f"{amaranth.__version__} {name} {BLOCKS[name]!r}".encode())
    for path in sorted([*root.glob("hdl/**/*.py"), *root.glob("model/**/*.py")]):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def instantiate(name: str):
    """A new instance of the BLOCKS entry `name`."""
    module, cls, kwargs = BLOCKS[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)


def build(out_dir: Path, names=None, run_lint=False, force=False):
    """Write ``out_dir/<name>.v`` for each entry of BLOCKS (all, or those in `names`), then
    lint each if `run_lint`. A file written from the same sources is not converted again
    (its ``.sha256`` stamp says so) unless `force`."""
    unknown = set(names or ()) - set(BLOCKS)
    if unknown:
        raise SystemExit(f"unknown block(s) {', '.join(sorted(unknown))}; the blocks are: "
                         f"{', '.join(BLOCKS)}")
    selected = [name for name in BLOCKS if not names or name in names]
    for i, name in enumerate(selected, 1):
        path = Path(out_dir) / f"{name}.v"
        stamp = path.with_suffix(".v.sha256")
        digest = _sources_digest(name)
        start = time.monotonic()
        if not force and path.exists() and stamp.exists() and stamp.read_text() == digest:
            note = "up to date"
        else:
            to_verilog(instantiate(name), name, path)
            stamp.write_text(digest)
            note = "written"
        if run_lint:
            lint(path)
            note += ", lint clean"
        print(f"[{i}/{len(selected)}] {path}  ({note}, {time.monotonic() - start:.1f} s)",
              flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/verilog"))
    parser.add_argument("--lint", action="store_true", help="run verilator --lint-only -Wall")
    parser.add_argument("--force", action="store_true",
                        help="convert again even if the sources have not changed")
    parser.add_argument("names", nargs="*", help=f"blocks to build (default all: {', '.join(BLOCKS)})")
    args = parser.parse_args(argv)
    build(args.out, args.names, args.lint, args.force)


if __name__ == "__main__":
    sys.exit(main())
