"""A seeded lossy wire between two endpoints, and the loop that runs them on one clock.

Each frame put on the wire arrives `latency` ticks later, unless the wire's random number
generator (seeded, so every run is the same) decides to drop it, duplicate it, reorder it
(deliver it 1..`reorder_extra` ticks late, behind frames sent after it) or corrupt it (flip
one byte, which the receiver's checksums must catch). `block` is a hook that drops frames on
purpose (a cable pull) and is consulted before any random fate.

The endpoints need only ``receive_frame(frame)``, ``transmit()``, ``advance(ticks)``,
``now``, ``ip`` and ``mac``; ``next_deadline()`` is used when present so idle time is skipped
in one step instead of tick by tick.
"""

import heapq
import random
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["Wire", "WireEvent"]


@dataclass
class WireEvent:
    """One frame as the wire saw it: when it was sent, from which side, and its fate.

    `fate` is the last random fate drawn (a frame both corrupted and reordered says
    "reorder"); `fates` lists all of them, `delivered` the ticks at which its copies reach
    the other side (none when dropped or blocked, two when duplicated), and `received` the
    bytes delivered when they differ from `frame` (corrupted: byte `flipped[0]`, bit
    `flipped[1]`).
    """
    time: int
    side: str                 # "a" (sent by a) or "b"
    frame: bytes              # as the sender transmitted it (before any corruption)
    fate: str                 # "ok", "drop", "dup", "reorder", "corrupt", "blocked"
    fates: tuple[str, ...] = ()
    delivered: tuple[int, ...] = ()
    received: bytes | None = None
    flipped: tuple[int, int] | None = None

    def describe(self, names: dict | None = None) -> str:
        """The frame's fate in words, with its ticks: a pcapng packet comment. `names` maps
        the sides "a" and "b" to what the reader calls them (e.g. "dut", "peer")."""
        sent = f"sent tick {self.time} by {(names or {}).get(self.side, self.side)}"
        if self.fate == "blocked":
            return f"blocked (never delivered), {sent}"
        if self.fate == "drop":
            return f"dropped by the wire, {sent}"
        words = []
        if "corrupt" in self.fates and self.flipped is not None:
            words.append(f"corrupted (byte {self.flipped[0]} bit {self.flipped[1]} flipped)")
        if "reorder" in self.fates:
            words.append("reordered")
        if "dup" in self.fates:
            words.append("duplicated")
        ticks = " and ".join(str(t) for t in self.delivered)
        return f"{', '.join(words) + ': ' if words else ''}delivered tick {ticks}, {sent}"


@dataclass
class Wire:
    a: object
    b: object
    seed: int = 0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    latency: int = 1
    reorder_extra: int = 3
    block: Callable[[str, bytes], bool] | None = None
    log: list[WireEvent] = field(default_factory=list)

    def __post_init__(self):
        if self.latency < 1:
            raise ValueError(f"Latency must be at least 1 tick, not {self.latency!r}")
        self.rng = random.Random(self.seed)
        self._queue: list[tuple[int, int, str, bytes]] = []   # (due, order, to side, frame)
        self._order = 0
        if hasattr(self.a, "add_neighbor"):
            self.a.add_neighbor(self.b.ip, self.b.mac)
        if hasattr(self.b, "add_neighbor"):
            self.b.add_neighbor(self.a.ip, self.a.mac)
        if self.a.now != self.b.now:
            raise ValueError("Both ends of a wire must start at the same time")

    @property
    def now(self) -> int:
        return self.a.now

    def in_flight(self) -> int:
        return len(self._queue)

    def _put(self, due: int, to: str, frame: bytes):
        heapq.heappush(self._queue, (due, self._order, to, frame))
        self._order += 1

    def collect(self) -> int:
        """Take what both ends transmitted and put it on the wire; return how many frames."""
        return self.put("a", self.a.transmit()) + self.put("b", self.b.transmit())

    def put(self, side: str, frames: list[bytes]) -> int:
        """Put `frames`, transmitted by `side` ("a" or "b"), on the wire; return how many."""
        to = "b" if side == "a" else "a"
        count = 0
        for sent in frames:
            count += 1
            frame = sent
            fate = "ok"
            fates, delivered, flipped = [], [], None
            due = self.now + self.latency
            if self.block is not None and self.block(side, frame):
                fate = "blocked"
            elif self.rng.random() < self.drop:
                fate = "drop"
            else:
                if self.rng.random() < self.corrupt:
                    fate = "corrupt"
                    i = self.rng.randrange(len(frame))
                    bit = self.rng.randrange(8)
                    frame = frame[:i] + bytes([frame[i] ^ (1 << bit)]) + frame[i + 1:]
                    fates.append(fate)
                    flipped = (i, bit)
                if self.rng.random() < self.reorder:
                    fate = "reorder"
                    due += self.rng.randint(1, self.reorder_extra)
                    fates.append(fate)
                if self.rng.random() < self.duplicate:
                    fate = "dup"
                    fates.append(fate)
                    extra = due + self.rng.randint(0, self.reorder_extra)
                    self._put(extra, to, frame)
                    delivered.append(extra)
                self._put(due, to, frame)
                delivered.append(due)
            self.log.append(WireEvent(self.now, side, sent, fate, tuple(fates),
                                      tuple(sorted(delivered)),
                                      frame if frame != sent else None, flipped))
        return count

    def deliver_due(self) -> int:
        """Hand every frame whose time has come to its receiver; return how many."""
        count = 0
        while self._queue and self._queue[0][0] <= self.now:
            _, _, to, frame = heapq.heappop(self._queue)
            (self.a if to == "a" else self.b).receive_frame(frame)
            count += 1
        return count

    def next_event(self) -> int | None:
        """The next time anything happens on the wire or in a timer, or None if nothing will."""
        times = [self._queue[0][0]] if self._queue else []
        for end in (self.a, self.b):
            deadline = end.next_deadline() if hasattr(end, "next_deadline") else end.now + 1
            if deadline is not None:
                times.append(deadline)
        return max(min(times), self.now + 1) if times else None

    def advance_to(self, time: int):
        for end in (self.a, self.b):
            if time > end.now:
                end.advance(time - end.now)

    def settle(self):
        """Move frames that are due now until nothing more happens at this tick."""
        while self.collect() + self.deliver_due():
            pass

    def step(self, limit: int | None = None) -> bool:
        """Settle this tick, then jump to the next event (but not past `limit`).

        Returns False when nothing is left to happen.
        """
        self.settle()
        time = self.next_event()
        if time is None:
            return False
        self.advance_to(time if limit is None else min(time, max(limit, self.now + 1)))
        self.settle()
        return True

    def run(self, until: Callable[[], bool] = lambda: False, max_ticks: int = 10**7) -> bool:
        """Step until `until()` is true (it is called after every step, and may issue calls).

        Returns whether `until()` became true; False when the world went quiet or
        `max_ticks` passed first.
        """
        end = self.now + max_ticks
        self.settle()
        while not until():
            if self.now >= end or not self.step(end):
                return bool(until())
        return True
