"""Driving frame streams in the Amaranth simulator (async testbench API of Amaranth 0.5).

Frames are ``bytes``; beats follow ``hdl.layouts.FrameBeat``. ``pauses`` are iterables of
booleans (e.g. ``itertools.cycle([0, 0, 1])``): a true value inserts an idle cycle (source) or
holds ``ready`` low for a cycle (sink), to exercise backpressure.
"""

import itertools

__all__ = ["frame_to_beats", "beats_to_frame", "put", "take", "send_frame", "recv_frame"]


def frame_to_beats(frame: bytes, data_width: int):
    """Split `frame` into (data, keep, last) tuples of `data_width`-bit beats."""
    lanes = data_width // 8
    if not frame:
        raise ValueError("Frames must be at least one byte long")
    beats = []
    for start in range(0, len(frame), lanes):
        chunk = frame[start:start + lanes]
        beats.append((int.from_bytes(chunk, "little"), (1 << len(chunk)) - 1,
                      int(start + lanes >= len(frame))))
    return beats


def beats_to_frame(beats, data_width: int) -> bytes:
    """Join (data, keep) beats back into bytes, honouring keep."""
    lanes = data_width // 8
    out = bytearray()
    for data, keep in beats:
        word = data.to_bytes(lanes, "little")
        out += bytes(word[i] for i in range(lanes) if keep >> i & 1)
    return bytes(out)


async def put(ctx, port, payload):
    """Offer `payload` on the stream `port` until it is taken (the clock edge that takes it has
    passed when this returns)."""
    ctx.set(port.valid, 1)
    ctx.set(port.payload, payload)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def take(ctx, port, out: list, count: int, rng, pause=0.0):
    """Append the payloads taken from the stream `port` to `out` until it holds `count`,
    holding ``ready`` low in a clock with probability `pause` (`rng`: a ``random.Random``)."""
    while len(out) < count:
        ready = rng.random() >= pause
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if valid and ready:
            out.append(payload)


async def send_frame(ctx, port, frame: bytes, data_width: int, pauses=None):
    """Drive `frame` into stream `port` (a stream.Interface whose payload is a FrameBeat)."""
    pauses = iter(pauses) if pauses is not None else itertools.repeat(False)
    for data, keep, last in frame_to_beats(frame, data_width):
        while next(pauses):
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.valid, 1)
        ctx.set(port.payload, {"data": data, "keep": keep, "last": last})
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def recv_frame(ctx, port, data_width: int, pauses=None, timeout=100_000) -> bytes:
    """Collect one frame from stream `port`, holding ready low on `pauses`."""
    pauses = iter(pauses) if pauses is not None else itertools.repeat(False)
    beats = []
    for _ in range(timeout):
        ready = not next(pauses)
        ctx.set(port.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
        if ready and valid:
            beats.append((payload.data, payload.keep))
            if payload.last:
                ctx.set(port.ready, 0)
                return beats_to_frame(beats, data_width)
    raise TimeoutError(f"no complete frame within {timeout} cycles ({len(beats)} beats seen)")
