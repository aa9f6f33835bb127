"""Pump Ethernet frames between a TAP device and a model Host, in wall-clock time.

The model's clock is virtual; here it follows the wall clock at one tick per millisecond
(`tick_seconds`), so its timers (RTO, persist) fire at the real times a Linux peer expects.
Every frame in either direction is kept with its wall time so a failing test can write a
pcap of exactly what crossed the wire.
"""

import os
import time

from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter

__all__ = ["LinuxBridge"]


class LinuxBridge:
    """Connect `host` (a ``model.host.Host``) to `device` (a TAP ``tb.netns.TunTapDevice``).

    Members
    -------
    trace : list of (float, str, bytes)
        ``(wall time, "to_model" | "to_linux", frame)`` for every frame that crossed.
    """

    def __init__(self, device, host, tick_seconds: float = 0.001):
        if device.mode != "tap":
            raise ValueError(f"The model speaks Ethernet: device mode must be 'tap', not {device.mode!r}")
        self.device, self.host, self.tick_seconds = device, host, tick_seconds
        self._t0 = time.monotonic()
        self._tick0 = host.now
        self.trace: list[tuple[float, str, bytes]] = []

    def _advance_clock(self):
        target = self._tick0 + int((time.monotonic() - self._t0) / self.tick_seconds)
        if target > self.host.now:
            self.host.advance(target - self.host.now)

    def pump(self, wait: float = 0.0) -> int:
        """Move frames both ways once; wait up to `wait` seconds for the first from Linux.

        Returns how many frames crossed (either way).
        """
        moved = 0
        self._advance_clock()
        frame = self.device.read(timeout=wait)
        while frame is not None:
            self.trace.append((time.time(), "to_model", frame))
            self._advance_clock()
            self.host.receive_frame(frame)
            moved += 1
            frame = self.device.read()
        moved += self.flush()
        return moved

    def flush(self) -> int:
        """Send what the model transmitted since the last call to Linux."""
        frames = self.host.transmit()
        for frame in frames:
            self.trace.append((time.time(), "to_linux", frame))
            self.device.write(frame)
        return len(frames)

    def run_until(self, step, timeout: float, what: str = "the model side"):
        """Call ``step()`` between pumps until it returns a value other than None.

        `step` should try to make progress with non-blocking model calls and return None
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
            moved += self.pump(wait=0 if moved else 0.001)

    def write_pcap(self, path: str) -> str:
        """Write the trace as an Ethernet pcap at `path` (directories created); return it."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with PcapWriter(path, linktype=1, sync=False) as writer:
            for stamp, _direction, frame in self.trace:
                packet = Ether(frame)
                packet.time = stamp
                writer.write(packet)
        return path
