"""Functional coverage of the RTL NIC: what the scenarios tried, and what they never tried.

Every RTL scenario run (``tb/nic_cocotb.py``) fills one :class:`Coverage` from the NIC's
documented ports only: the ``debug`` port's engine events (``hdl.engine.observe``: each
event's connection, source, state before, received segment kind and ring fill; each timer
that fires), the host port's responses (``tb/nic_bench.py``), and the drop counters (the OS
driver's ``drop_counts``). It writes ``build/sim/coverage/<build>/<sim>/<scenario>.json``.

``python -m tb.coverage report [FILES]`` merges runs (default: every file under
``build/sim/coverage``) and prints, per group, bins hit / bins possible, the bins never hit,
and the bins that are impossible by construction with the reason.

Groups (:data:`GROUPS`):

- ``state_segment``: every TCP state x every received segment kind (``SegmentKind``);
- ``races``: a segment that reaches a connection the OS has not yet removed;
- ``ring``: receive and send rings seen empty, full, and holding bytes across the ring's end;
- ``timer``: every timer kind fired, and the retransmission timer in every state it runs in;
- ``drop``: every drop cause (``model.drops.DropCause``) counted at least once;
- ``host``: every host op x every status it can return; ``pending_error``: GETERR's answers;
- ``concurrent``: an event for a connection taken while another for it waits.
"""

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from hdl.engine.observe import EventSource, SegmentKind, TimerKind
from hdl.engine.tcb import TcpState
from hdl.ports import HostOp
from model.drops import DropCause

__all__ = ["GROUPS", "IMPOSSIBLE", "HOST_STATUS", "Coverage", "merge", "report", "main"]

STATES = [s.name for s in TcpState if s != TcpState.CLOSED]
KINDS = [k.name for k in SegmentKind if k != SegmentKind.NONE]
# the states the retransmission timer runs in (something of ours is unacknowledged)
RTO_STATES = ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1", "CLOSE_WAIT", "CLOSING",
              "LAST_ACK"]

#: What each host op can answer (hdl/engine/tcp_engine.py, HOST_*): EBADF for every op (no
#: access, no such slot); a pending error (ECONNRESET, ECONNREFUSED, ETIMEDOUT) for READ and
#: WRITE; UDP's destination checks for WRITE.
_PENDING = ["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT"]
HOST_STATUS = {
    "READ": ["OK", "EBADF", "EAGAIN", "ENOTCONN", *_PENDING],
    "WRITE": ["OK", "EBADF", "EAGAIN", "EPIPE", *_PENDING, "EDESTADDRREQ", "EMSGSIZE",
              "EHOSTUNREACH"],
    "POLL": ["OK", "EBADF"],
    "SHUTDOWN": ["OK", "EBADF", "EINVAL", "ENOTCONN"],
    "CLOSE": ["OK", "EBADF"],
    "GETERR": ["OK", "EBADF"],
}
assert set(HOST_STATUS) == {op.name for op in HostOp}

CONCURRENT_SOURCES = [s.name for s in EventSource]
CONCURRENT_WAITING = ["RX", "HOST"]

#: Every group's bins, in report order.
GROUPS = {
    "state_segment": [f"{s} x {k}" for s in STATES for k in KINDS],
    "races": ["TCP segment for a CLOSED connection"],
    "ring": [f"{ring} {what}" for ring in ("rx", "tx") for what in ("empty", "full", "wrapped")],
    "timer": [k.name for k in TimerKind if k != TimerKind.NONE] + [f"RTO in {s}" for s in RTO_STATES],
    "drop": [c.name for c in DropCause if c != DropCause.NONE],
    "host": [f"{op} -> {status}" for op, statuses in HOST_STATUS.items() for status in statuses],
    "pending_error": ["OK", *_PENDING],
    "concurrent": [f"{s} taken with {w} waiting" for s in CONCURRENT_SOURCES for w in CONCURRENT_WAITING],
}

_NO_WINDOW = ("in SYN-SENT there is no receive window yet (RCV.NXT comes with the peer's SYN): "
              "hdl/engine/observe.py sorts segments there by flags and ACK only")
_SERIAL = ("this bench runs each control command and each tick alone (NicBench.control and "
           "NicBench.tick settle with no frame or host command queued)")
#: Bins that cannot be hit, and why: {(group, bin): reason}.
IMPOSSIBLE = {
    **{("state_segment", f"SYN_SENT x {k}"): _NO_WINDOW
       for k in ("DATA_IN_WINDOW", "RST_IN_WINDOW", "OLD_DUPLICATE")},
    ("host", "SHUTDOWN -> EINVAL"): ("the OS driver (tb/nic_os.py Process._shutdown) never "
                                     "sends a `how` above SHUT_RDWR: it answers EINVAL itself"),
    **{("concurrent", f"{s} taken with {w} waiting"): _SERIAL
       for s in ("CONTROL", "TICK") for w in CONCURRENT_WAITING},
    **{("host", f"WRITE -> {errno}"): (
        "the socket library (model/host.py Process._send_udp, which the RTL's OS driver "
        "inherits) answers it before a WRITE reaches the NIC; the engine's own check is for a "
        "process that writes its doorbell page directly")
       for errno in ("EDESTADDRREQ", "EMSGSIZE", "EHOSTUNREACH")},
    ("concurrent", "RX taken with RX waiting"): (
        "the receive dispatcher (hdl/rx/dispatch.py) offers its next segment only after the "
        "engine has answered this one's rx_action, which comes after the event is taken"),
}
for _group, _bin in IMPOSSIBLE:
    assert _bin in GROUPS[_group], (_group, _bin)


class Coverage:
    """Bin counts of one run or of merged runs. The ``sample_*`` methods take plain values
    (names or enum members), so the collector runs without a simulator."""

    def __init__(self, rcv_bytes=None, snd_bytes=None):
        self.rcv_bytes = rcv_bytes
        self.snd_bytes = snd_bytes
        self.hits = {group: Counter() for group in GROUPS}
        self.unexpected = Counter()         # observed values outside every bin (a finding)
        self.runs = []
        self._state = None                  # the state of the connection last loaded

    def _hit(self, group, name):
        if name in GROUPS[group]:
            self.hits[group][name] += 1
        else:
            self.unexpected[f"{group}: {name}"] += 1

    def sample_event(self, *, source, state, rx_used=0, rx_start=0, tx_used=0, tx_start=0,
                     waiting=()):
        """One event the engine takes (the ``debug`` port at step LATCH): `source`
        (``EventSource``), the connection's `state` before it, the rings' fill, and what else
        waits for the same connection (``"RX"``, ``"HOST"``)."""
        source = _name(source)
        self._state = _name(state)
        for ring, used, start, size in (("rx", rx_used, rx_start, self.rcv_bytes),
                                        ("tx", tx_used, tx_start, self.snd_bytes)):
            if size is None:
                continue
            if used == 0:
                self._hit("ring", f"{ring} empty")
            elif used == size:
                self._hit("ring", f"{ring} full")
            if start + used > size:
                self._hit("ring", f"{ring} wrapped")
        for what in waiting:
            self._hit("concurrent", f"{source} taken with {what} waiting")

    def sample_segment(self, state, segment):
        """A TCP segment the engine processes (step TCP_START; from the wire or injected by
        the slow path): the connection's `state` and the segment's kind."""
        state, segment = _name(state), _name(segment)
        if segment == "NONE":
            return
        if state == "CLOSED":
            self._hit("races", "TCP segment for a CLOSED connection")
        else:
            self._hit("state_segment", f"{state} x {segment}")

    def sample_timer(self, kind):
        """A timer fires (the ``debug`` port at step TIMER) on the connection last loaded."""
        kind = _name(kind)
        if kind == "NONE":
            return
        self._hit("timer", kind)
        if kind in ("RTO", "RTO_GIVE_UP"):
            self._hit("timer", f"RTO in {self._state}")

    def sample_host(self, op, status, error=None):
        """One host command's response: its op, status and (GETERR) error field."""
        op, status = _name(op), _name(status)
        self._hit("host", f"{op} -> {status}")
        if op == "GETERR" and status == "OK" and error is not None:
            self._hit("pending_error", _name(error))

    def sample_drops(self, counts: dict):
        """The run's drop counts by cause name (``drop_counts()``)."""
        for cause, count in counts.items():
            if count:
                self.hits["drop"][_name(cause)] += count

    # ----- files -------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"runs": self.runs, "hits": {g: dict(c) for g, c in self.hits.items() if c},
                "unexpected": dict(self.unexpected)}

    def write(self, path: Path, run: str):
        self.runs = [run]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, obj: dict) -> "Coverage":
        cov = cls()
        cov.runs = list(obj.get("runs", []))
        for group, bins in obj.get("hits", {}).items():
            for name, count in bins.items():
                if group in GROUPS and name in GROUPS[group]:
                    cov.hits[group][name] += count
                else:
                    cov.unexpected[f"{group}: {name}"] += count
        cov.unexpected.update(obj.get("unexpected", {}))
        return cov


def _name(value) -> str:
    return value if isinstance(value, str) else value.name


def merge(coverages) -> Coverage:
    """The sum of several runs' coverage."""
    total = Coverage()
    for cov in coverages:
        total.runs += cov.runs
        for group, counts in cov.hits.items():
            total.hits[group].update(counts)
        total.unexpected.update(cov.unexpected)
    return total


def summary(cov: Coverage) -> dict:
    """{group: (hit, possible, unhit bins)} and the overall (hit, possible)."""
    groups = {}
    for group, bins in GROUPS.items():
        possible = [b for b in bins if (group, b) not in IMPOSSIBLE]
        unhit = [b for b in possible if not cov.hits[group][b]]
        groups[group] = (len(possible) - len(unhit), len(possible), unhit)
    hit = sum(h for h, _, _ in groups.values())
    return {"groups": groups, "hit": hit, "possible": sum(p for _, p, _ in groups.values())}


def report(cov: Coverage) -> str:
    """Hit/possible per group, the unhit bins, the impossible ones with their reasons."""
    s = summary(cov)
    lines = [f"functional coverage of {len(cov.runs)} run(s): {s['hit']}/{s['possible']} bins hit"]
    for group, (hit, possible, unhit) in s["groups"].items():
        lines.append(f"  {group:14} {hit:4}/{possible:<4}" + ("  unhit:" if unhit else ""))
        if unhit and all(" x " in b for b in unhit):        # a cross: one line per row
            rows = {}
            for b in unhit:
                row, column = b.split(" x ")
                rows.setdefault(row, []).append(column)
            lines += [f"      {row} x {', '.join(columns)}" for row, columns in rows.items()]
        elif unhit:
            lines.append(f"      {', '.join(unhit)}")
    lines.append("impossible by construction (not counted):")
    reasons = {}
    for key, reason in IMPOSSIBLE.items():
        reasons.setdefault(reason, []).append(key)
    for reason, bins in reasons.items():
        lines.append(f"  {'; '.join(f'{g}: {b}' for g, b in bins)}\n    {reason}")
        hit = [f"{g}: {b}" for g, b in bins if cov.hits[g][b]]
        if hit:
            lines.append(f"    BUT HIT: {', '.join(hit)}")
    if cov.unexpected:
        lines.append("unexpected (outside every bin): "
                     + ", ".join(f"{k} ({n})" for k, n in sorted(cov.unexpected.items())))
    return "\n".join(lines)


def main(argv=None):
    from flow.tools import BUILD
    parser = argparse.ArgumentParser(prog="python -m tb.coverage", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="merge coverage files and list the bins never hit")
    rep.add_argument("files", nargs="*", type=Path,
                     help="coverage JSON files (default: build/sim/coverage/**/*.json)")
    args = parser.parse_args(argv)
    files = args.files or sorted((BUILD / "sim" / "coverage").rglob("*.json"))
    if not files:
        print("no coverage files (run RTL scenarios first)", file=sys.stderr)
        return 1
    print(report(merge(Coverage.from_json(json.loads(f.read_text())) for f in files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
