"""A connection's receive buffer: a ring of bytes with out-of-order ranges.

This is the reference for ``hdl/buffers/stream_buffer.py`` and the buffer the TCP model uses, so the
policy for what is kept is written here once:

- Offsets are absolute stream offsets (unbounded ints); TCP maps sequence numbers onto them.
- Bytes ``[head, tail)`` are in order and readable; ``capacity - (tail - head)`` is free and
  is what the receiver advertises as its window.
- A write is first clipped to ``[tail, head + capacity)``: bytes already in order and bytes
  beyond the window are dropped (the sender retransmits them).
- Bytes that land beyond ``tail`` are held in up to ``max_ranges`` disjoint out-of-order
  ranges. Ranges that overlap or touch are merged. A write that would need more ranges than
  that is refused whole (nothing stored) and counted; the sender retransmits it later.
- When in-order data reaches a held range, the range joins the in-order data.
- Overlapping bytes overwrite what is held (a retransmission carries the same bytes).
- A read may start ``skip`` bytes past ``head`` (a send buffer retransmits from an offset);
  unless it peeks, it consumes the skipped bytes too. A read whose bytes the caller ignores
  releases them without looking (acknowledged send data).
"""

from dataclasses import dataclass, field

__all__ = ["StreamBuffer"]


@dataclass
class StreamBuffer:
    capacity: int
    max_ranges: int = 1
    head: int = 0
    tail: int = 0
    ranges: list[tuple[int, int]] = field(default_factory=list)
    refused: int = 0

    def __post_init__(self):
        if self.capacity <= 0:
            raise ValueError(f"Capacity must be positive, not {self.capacity!r}")
        if self.max_ranges < 0:
            raise ValueError(f"Out-of-order range count must be non-negative, not {self.max_ranges!r}")
        self._ring = bytearray(self.capacity)

    @property
    def readable(self) -> int:
        """Bytes that a read may return now."""
        return self.tail - self.head

    @property
    def free(self) -> int:
        """Bytes of window: capacity less the in-order bytes not yet read."""
        return self.capacity - (self.tail - self.head)

    def _store(self, offset: int, data: bytes):
        for i, byte in enumerate(data):
            self._ring[(offset + i) % self.capacity] = byte

    def write(self, offset: int, data: bytes) -> int:
        """Place `data` at stream `offset`; return how far ``tail`` advanced.

        Returns -1 when the write is refused because it would need too many ranges.
        """
        start, end = max(offset, self.tail), min(offset + len(data), self.head + self.capacity)
        if start >= end:
            return 0
        if start > self.tail:
            merged = [(start, end)]
            others = []
            for lo, hi in self.ranges:
                if lo <= merged[0][1] and hi >= merged[0][0]:
                    merged[0] = (min(lo, merged[0][0]), max(hi, merged[0][1]))
                else:
                    others.append((lo, hi))
            new_ranges = sorted(others + merged)
            if len(new_ranges) > self.max_ranges:
                self.refused += 1
                return -1
            self._store(start, data[start - offset:end - offset])
            self.ranges = new_ranges
            return 0
        self._store(start, data[start - offset:end - offset])
        old_tail, self.tail = self.tail, end
        while self.ranges and self.ranges[0][0] <= self.tail:
            self.tail = max(self.tail, self.ranges.pop(0)[1])
        # in-order data may have swallowed ranges entirely beyond the old tail
        self.ranges = [(lo, hi) for lo, hi in self.ranges if hi > self.tail]
        return self.tail - old_tail

    def read(self, n: int, peek: bool = False, skip: int = 0) -> bytes:
        """Up to `n` in-order bytes from ``head + skip``; consumed unless `peek`.

        The bytes returned are ``[head + skip, head + skip + count)`` with
        ``count = min(n, max(0, readable - skip))``. Unless `peek`, ``head`` moves past the
        skipped bytes and the returned ones, ``min(skip, readable) + count`` in all: a `skip`
        of ``readable`` or more moves ``head`` to ``tail`` and returns nothing.
        """
        if skip < 0:
            raise ValueError(f"Skip must be non-negative, not {skip!r}")
        skipped = min(skip, self.readable)
        start = self.head + skipped
        n = max(0, min(n, self.tail - start))
        data = bytes(self._ring[(start + i) % self.capacity] for i in range(n))
        if not peek:
            self.head = start + n
        return data
