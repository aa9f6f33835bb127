"""The stream map of ``nic_axis``'s host and control ports, as the README shows it.

``python -m flow.port_map`` prints, for the reference configuration (64-bit path, 64
connections, 16 doorbell pages), every port of the Verilog top ``nic_axis`` with its
direction, and the bit fields of each stream's payload (``<port>__payload[hi:lo]``), then the
values of the enumerations those fields carry. The README's map is this output
(``python -m flow.port_map --readme`` rewrites it there).
"""

import argparse
import sys
from pathlib import Path

from amaranth.hdl import Shape
from amaranth.lib import data, enum
from amaranth.lib.wiring import In

__all__ = ["port_map"]

_MARKERS = ("<!-- port-map:begin -->", "<!-- port-map:end -->")

# What each port of nic_axis is for (the payload tables below say what each bit is).
_PORTS = {
    "s_axis_rx": "frames from the MAC, without FCS; `tuser` on any beat: the MAC found the frame bad",
    "m_axis_tx": "frames to the MAC, without FCS; `tuser` always 0",
    "rx_bad_frames": "frames dropped before the NIC: `tuser` set (saturating)",
    "rx_overflow_frames": "frames dropped before the NIC: no room to store them whole (saturating)",
    "host_cmd": "a process's socket call; `pid` comes from its doorbell page, never from the process",
    "host_wdata": "a WRITE's `length` bytes, one frame (`last` on its final beat)",
    "host_rsp": "one answer per `host_cmd`, in order",
    "host_rdata": "a READ's `count` bytes, one frame after its answer (none when `count` is 0)",
    "ctl_cmd": "the OS's privileged operations (`CtlOp`)",
    "ctl_rsp": "one answer per `ctl_cmd`, in order",
    "slow_rx": "whole frames for host software (the slow path)",
    "slow_tx": "raw frames from host software, sent as they are",
    "events": "a connection completed its handshake or reached CLOSED",
    "tick": "one pulse per timer tick (1 tick = 1 ms of the policy's timers)",
    "idle": "nothing waiting or in progress anywhere in the NIC",
}


def _fields(layout, prefix=""):
    """(name, lo, hi, shape) of every leaf field of `layout`, bit offsets from bit 0."""
    for name, field in layout:
        shape = field.shape
        full = f"{prefix}{name}"
        if isinstance(shape, data.Layout):
            for sub, lo, hi, leaf in _fields(shape, f"{full}."):
                yield sub, field.offset + lo, field.offset + hi, leaf
        else:
            yield full, field.offset, field.offset + field.width - 1, shape


def _enum_name(shape):
    return shape.__name__ if isinstance(shape, type) and issubclass(shape, enum.Enum) else None


def port_map(component=None) -> str:
    """The markdown map of `component`'s ports (default: the reference ``nic_axis``)."""
    if component is None:
        from flow.build import instantiate
        component = instantiate("nic_axis")
    lines, enums = [], {}
    lines.append("| port (Verilog) | dir | width | carries |")
    lines.append("|---|---|---|---|")
    streams = []
    from hdl.nic_axis import AXIS_PORTS
    members = component.signature.members
    for prefix in AXIS_PORTS.values():
        if f"{prefix}_tdata" not in members:
            continue
        names = [n for n in members if n.startswith(prefix + "_t")]
        inward = members[f"{prefix}_tdata"].flow == In
        signals = ", ".join(f"`{n}`" for n in names)
        lines.append(f"| {signals} | {'in' if inward else 'out'} (tready {'out' if inward else 'in'}) | "
                     f"{Shape.cast(members[f'{prefix}_tdata'].shape).width} | AXI4-Stream: "
                     f"{_PORTS[prefix]} |")
    for name, member in members.items():
        if any(name.startswith(prefix + "_t") for prefix in AXIS_PORTS.values()):
            continue
        if member.is_port:
            width = Shape.cast(member.shape).width
            direction = "in" if member.flow == In else "out"
            lines.append(f"| `{name}` | {direction} | {width} | {_PORTS.get(name, '')} |")
            continue
        sig = member.signature
        if "payload" not in sig.members:
            continue
        inward = member.flow == In
        shape = sig.members["payload"].shape
        layout = data.Layout.cast(shape)
        lines.append(f"| `{name}__valid`, `{name}__payload`, `{name}__ready` | "
                     f"{'in' if inward else 'out'} (ready {'out' if inward else 'in'}) | "
                     f"{layout.size} | `{type(shape).__name__}`: {_PORTS.get(name, '')} |")
        streams.append((name, layout, type(shape).__name__))
    seen = set()
    for name, layout, kind in streams:
        if kind in seen:
            lines.append(f"\n`{name}__payload`: `{kind}`, as above.")
            continue
        seen.add(kind)
        lines.append(f"\n`{name}__payload` (`{kind}`, {layout.size} bits):\n")
        lines.append("| bits | field | values |")
        lines.append("|---|---|---|")
        for field, lo, hi, shape in _fields(layout):
            bits = f"[{hi}:{lo}]" if hi != lo else f"[{lo}]"
            label = _enum_name(shape)
            if label:
                enums[label] = shape
            lines.append(f"| {bits} | `{field}` | {f'`{label}`' if label else ''} |")
    if enums:
        lines.append("\nEnumerations:\n")
        for label, shape in enums.items():
            values = ", ".join(f"{m.name} {m.value}" for m in shape)
            lines.append(f"- `{label}`: {values}")
    from hdl.nic import COUNTERS
    lines.append("\nCounters (`READ_COUNTER`, `index` = the number here; 32 bits, saturating):\n")
    lines.append(", ".join(f"{i} `{name}`" for i, (name, _) in enumerate(COUNTERS)))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="rewrite the map in README.md")
    args = parser.parse_args(argv)
    text = port_map()
    if not args.readme:
        print(text, end="")
        return 0
    readme = Path(__file__).resolve().parent.parent / "README.md"
    content = readme.read_text()
    begin, end = content.index(_MARKERS[0]), content.index(_MARKERS[1])
    readme.write_text(content[:begin + len(_MARKERS[0])] + "\n" + text + content[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
