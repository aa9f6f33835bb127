"""Pump Ethernet frames between a TAP device and a simulated host, in wall-clock time.

The simulated host is a ``model.host.Host`` (the golden model) or a ``tb.nic_os.NicHost``
(the RTL NIC with its OS driver, inside a cocotb simulation): anything with ``now``,
``advance(ticks)``, ``receive_frame(frame)`` and ``transmit()``. Its clock is virtual; here it
follows the wall clock at one tick per millisecond (`tick_seconds`), so its timers (RTO,
persist) fire at the real times a Linux peer expects. Two mappings (`clock`):

- ``"wall"``: every millisecond of wall time is a tick (the model, which is fast);
- ``"waiting"``: only the wall time the bridge spends waiting for Linux is (the RTL: a
  simulator thousands of times slower than the hardware would otherwise see the kernel's
  ACKs come late and retransmit for nothing). The host's clock then jumps over each wait in
  one step (the NIC's idle skip), and the time the simulator spends working does not count,
  as it would take microseconds on the hardware. The kernel still sees a slow peer, and its
  RTT estimate absorbs that.

The bridge can impair the wire by seed (this machine's kernel has no netem): it drops,
duplicates or delays (reorders) TCP segments in either direction. Every frame either side
sent is kept with its wall time and its fate, so a run can write a pcapng of exactly what
crossed the wire and count each side's retransmissions by cause (:meth:`retransmissions`).
"""

import dataclasses
import os
import random
import time
from collections import Counter, deque
from decimal import Decimal
from typing import NamedTuple

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter

__all__ = ["LinuxBridge", "Impairment", "Crossing", "retransmissions", "resets", "TO_HOST", "TO_LINUX"]

TO_HOST, TO_LINUX = "to_host", "to_linux"
_SYN, _FIN, _RST = 0x02, 0x01, 0x04


class Crossing(NamedTuple):
    """One frame a side sent: ``fate`` is "delivered", "dropped", "duplicated" (delivered
    twice) or "reordered" (held back and delivered after a later frame)."""
    time: float
    direction: str
    frame: bytes
    fate: str = "delivered"


@dataclasses.dataclass(frozen=True)
class Impairment:
    """Seeded faults the bridge applies to TCP segments (not to SYNs, whose loss would only
    cost a second of the kernel's initial RTO): each a probability per segment.

    A reordered segment is held back until the next frame in its direction has gone, or for
    `hold_seconds` at most. `directions` are the directions impaired (both by default).
    """
    seed: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    hold_seconds: float = 0.005
    directions: tuple[str, ...] = (TO_HOST, TO_LINUX)

    def __post_init__(self):
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Impairment {name} must be a probability in [0, 1), not {value!r}")
        if self.loss + self.duplicate + self.reorder >= 1.0:
            raise ValueError("Impairment probabilities must add up to less than 1, not "
                             f"{self.loss + self.duplicate + self.reorder!r}")


def _tcp(frame: bytes):
    """(src, dst, seq, flags, payload length, ack, window) of a TCP/IPv4 frame, or None."""
    packet = Ether(frame)
    if IP not in packet or TCP not in packet:
        return None
    ip, tcp = packet[IP], packet[TCP]
    length = ip.len - ip.ihl * 4 - tcp.dataofs * 4
    return ((ip.src, tcp.sport), (ip.dst, tcp.dport), tcp.seq, int(tcp.flags), length,
            tcp.ack, tcp.window)


class LinuxBridge:
    """Connect `host` (a simulated host, see the module) to `device` (a TAP
    ``tb.netns.TunTapDevice``).

    Parameters
    ----------
    device : TunTapDevice
    host : model.host.Host or tb.nic_os.NicHost
    tick_seconds : float
        Wall time per tick of the host's clock.
    impairment : Impairment, optional
        Seeded loss, duplication and reordering of TCP segments, both directions.
    clock : "wall" or "waiting"
        Which wall time becomes the host's ticks (see the module).

    Members
    -------
    trace : list of Crossing
        Every frame either side sent, in the order sent.
    host_inputs : int
        Frames delivered to the host so far (a blocked socket call can only succeed after
        one; callers use it to retry no sooner).
    waited : float
        Wall seconds the bridge spent waiting for Linux.
    """

    def __init__(self, device, host, tick_seconds: float = 0.001,
                 impairment: Impairment | None = None, clock: str = "wall"):
        if device.mode != "tap":
            raise ValueError(f"The host speaks Ethernet: device mode must be 'tap', not {device.mode!r}")
        if clock not in ("wall", "waiting"):
            raise ValueError(f"Clock must be 'wall' or 'waiting', not {clock!r}")
        self.clock = clock
        # how long to wait for Linux when nothing moved: short on the wall clock; on the
        # waiting clock each wait is one advance of the host's clock, which costs clocks
        self.idle_wait = 0.001 if clock == "wall" else 0.02
        self.host_inputs = 0
        self.waited = 0.0
        self.device, self.host, self.tick_seconds = device, host, tick_seconds
        self.impairment = impairment
        self._rng = random.Random(impairment.seed if impairment else 0)
        self._held: dict[str, deque] = {TO_HOST: deque(), TO_LINUX: deque()}
        self._t0 = time.monotonic()
        self._tick0 = host.now
        self.trace: list[Crossing] = []

    def _advance_clock(self):
        elapsed = time.monotonic() - self._t0 if self.clock == "wall" else self.waited
        target = self._tick0 + int(elapsed / self.tick_seconds)
        if target > self.host.now:
            self.host.advance(target - self.host.now)

    def _deliver(self, direction: str, frame: bytes):
        if direction == TO_HOST:
            self._advance_clock()
            self.host_inputs += 1
            self.host.receive_frame(frame)
        else:
            self.device.write(frame)

    def _send(self, direction: str, frame: bytes):
        """Record `frame` and deliver it (or not) as the impairment decides."""
        fate = "delivered"
        impair = self.impairment
        if impair is not None and direction in impair.directions and (segment := _tcp(frame)) is not None \
                and not segment[3] & _SYN:
            draw = self._rng.random()
            if draw < impair.loss:
                fate = "dropped"
            elif draw < impair.loss + impair.duplicate:
                fate = "duplicated"
            elif draw < impair.loss + impair.duplicate + impair.reorder:
                fate = "reordered"
        self.trace.append(Crossing(time.time(), direction, frame, fate))
        held = self._held[direction]
        if fate == "reordered":
            held.append((time.monotonic() + impair.hold_seconds, frame))
            return
        if fate != "dropped":
            self._deliver(direction, frame)
            if fate == "duplicated":
                self._deliver(direction, frame)
        while held:                         # a later frame has gone: release what was held
            self._deliver(direction, held.popleft()[1])

    def _release_held(self):
        now = time.monotonic()
        for direction, held in self._held.items():
            while held and held[0][0] <= now:
                self._deliver(direction, held.popleft()[1])

    def pump(self, wait: float = 0.0) -> int:
        """Move frames both ways once; wait up to `wait` seconds for the first from Linux.

        Returns how many frames crossed (either way).
        """
        moved = 0
        self._release_held()
        started = time.monotonic()
        frame = self.device.read(timeout=wait)
        self.waited += time.monotonic() - started
        self._advance_clock()
        while frame is not None:
            self._send(TO_HOST, frame)
            moved += 1
            frame = self.device.read()
        moved += self.flush()
        return moved

    def flush(self) -> int:
        """Send what the host transmitted since the last call to Linux."""
        frames = self.host.transmit()
        for frame in frames:
            self._send(TO_LINUX, frame)
        return len(frames)

    def run_until(self, step, timeout: float, what: str = "the simulated host's side"):
        """Call ``step()`` between pumps until it returns a value other than None.

        `step` should try to make progress with non-blocking host calls and return None
        while it must wait for the wire or the clock. Raises TimeoutError after `timeout`
        seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = step()
            moved = self.flush()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not finish in {timeout} s")
            moved += self.pump(wait=0 if moved else self.idle_wait)

    def write_pcap(self, path: str) -> str:
        """Write the trace as a pcapng at `path` (directories created) and return it; each
        frame is commented with its direction and fate (a duplicated frame is written once)."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        writer = PcapNgWriter(path)
        try:
            for crossing in self.trace:
                packet = Ether(crossing.frame)
                packet.time = Decimal(repr(crossing.time))
                packet.comments = [f"{crossing.direction} {crossing.fate}".encode()]
                writer.write(packet)
        finally:
            writer.close()
        return path

    def fates(self) -> dict[str, int]:
        """How many frames met each fate (all "delivered" without an impairment)."""
        return dict(Counter(crossing.fate for crossing in self.trace))

    def retransmissions(self) -> dict[str, dict[str, int]]:
        """Each side's retransmitted segments, by cause (`retransmissions`)."""
        return retransmissions(self.trace)


def retransmissions(trace: list) -> dict[str, dict[str, int]]:
    """Each side's retransmitted segments in `trace` (Crossings), by cause:
    ``{"linux": {...}, "host": {...}}``.

    A segment is a retransmission when it carries sequence space (data, SYN or FIN) its
    sender had already sent. Its cause, from the trace since the oldest segment then
    unacknowledged was first sent:

    - ``loss``: the bridge dropped a frame of that connection (a segment, or the ACK
      that would have covered it; go-back-N resends what followed a lost segment too);
    - ``reorder``: nothing dropped, but the bridge reordered or duplicated a frame of
      that connection (duplicate ACKs, a fast retransmit);
    - ``window_probe``: the original went into a zero window (a persist probe, resent);
    - ``slow_simulator``: nothing was lost or reordered: the ACK came late, because the
      simulator is slower than the wire it models.
    """
    counts = {"linux": Counter(), "host": Counter()}
    sent: dict[tuple, list] = {}        # flow -> [(seq, end, index, window)]
    high: dict[tuple, int] = {}         # flow -> highest end of sequence space sent
    acked: dict[tuple, int] = {}        # flow -> highest ACK its receiver got through
    window: dict[tuple, int] = {}       # flow -> last window its receiver advertised
    faults: dict[frozenset, list] = {}  # connection -> [(index, fate)] not delivered once
    for index, crossing in enumerate(trace):
        segment = _tcp(crossing.frame)
        if segment is None:
            continue
        src, dst, seq, flags, length, ack, win = segment
        flow, reverse = (src, dst), (dst, src)
        connection = frozenset(flow)
        if flags & _SYN and not flags & 0x10:       # a new incarnation of the connection
            for key in (flow, reverse):
                for table in (sent, high, acked, window):
                    table.pop(key, None)
            faults.pop(connection, None)
        if crossing.fate != "delivered":
            faults.setdefault(connection, []).append((index, crossing.fate))
        if flags & 0x10 and crossing.fate != "dropped":
            if reverse not in acked or _before(acked[reverse], ack):
                acked[reverse] = ack
            window[reverse] = win
        end = seq + length + bool(flags & _SYN) + bool(flags & _FIN)
        if end == seq or flags & _RST:
            continue
        side = "linux" if crossing.direction == TO_HOST else "host"
        if flow in high and _before(seq, high[flow]):
            counts[side][_cause(sent.get(flow, []), acked.get(flow, seq), seq,
                                faults.get(connection, []))] += 1
        sent.setdefault(flow, []).append((seq, end, index, window.get(flow)))
        if flow not in high or _before(high[flow], end):
            high[flow] = end
    return {side: dict(c) for side, c in counts.items()}


def resets(trace: list) -> tuple[dict[str, int], dict[str, int]]:
    """The RSTs each side sent in `trace`, as ``(aborts, late)``, each ``{"linux": n,
    "host": n}``. An abort is an RST to a connection its sender had not finished; a late one
    came after its sender had (its FIN acknowledged, the other side's FIN received): the
    answer RFC 9293 (3.10.7.1) gives a segment for no connection, here a duplicate or late
    one that a lossy, reordering wire delivered after the close. A late RST aborts nothing;
    whether one happens depends on which segments the seeded faults fall on, that is on
    timing."""
    aborts, late = {"linux": 0, "host": 0}, {"linux": 0, "host": 0}
    fin: dict[tuple, int] = {}              # flow -> sequence number after its FIN
    fin_acked: set = set()                  # flows whose FIN reached and was acknowledged
    fin_received: set = set()               # flows whose FIN was delivered
    for crossing in trace:
        segment = _tcp(crossing.frame)
        if segment is None:
            continue
        src, dst, seq, flags, length, ack, _win = segment
        flow, reverse = (src, dst), (dst, src)
        side = "linux" if crossing.direction == TO_HOST else "host"
        if flags & _RST:
            finished = flow in fin_acked and reverse in fin_received
            (late if finished else aborts)[side] += 1
            continue
        if flags & _SYN and not flags & 0x10:       # a new incarnation of the connection
            for key in (flow, reverse):
                fin.pop(key, None)
                fin_acked.discard(key)
                fin_received.discard(key)
        if crossing.fate == "dropped":
            continue
        if flags & _FIN:
            fin[flow] = seq + length + bool(flags & _SYN) + 1
            fin_received.add(flow)
        if flags & 0x10 and reverse in fin and not _before(ack, fin[reverse]):
            fin_acked.add(reverse)
    return aborts, late


def _before(a: int, b: int) -> bool:
    """a < b in sequence space (RFC 9293's modular comparison)."""
    return 0 < (b - a) % (1 << 32) < 1 << 31


def _cause(sent: list, snd_una: int, seq: int, faults: list) -> str:
    """Why `seq` was sent again (see LinuxBridge.retransmissions)."""
    outstanding = [o for o in sent if _before(snd_una, o[1])]
    start = outstanding[0][2] if outstanding else (sent[-1][2] if sent else 0)
    fates = {fate for index, fate in faults if index >= start}
    if "dropped" in fates:
        return "loss"
    if fates:
        return "reorder"
    original = next((o for o in reversed(sent) if not _before(seq, o[0]) and _before(seq, o[1])),
                    None)
    if original is not None and original[3] == 0:
        return "window_probe"
    return "slow_simulator"
