"""Stream payload layouts shared by every block, so ports connect without adapters."""

from amaranth.lib import data

__all__ = ["DATA_WIDTHS", "check_data_width", "check_power_of_two", "FrameBeat"]

DATA_WIDTHS = (8, 64)


def check_data_width(data_width):
    """Data path width in bits; the NIC is built and tested at 8 and 64."""
    if data_width not in DATA_WIDTHS:
        raise TypeError(f"Data width must be 8 or 64, not {data_width!r}")
    return data_width


def check_power_of_two(what, value, least=2):
    """`value` if it is a power of two of at least `least` (a RAM depth, a slot count)."""
    if not isinstance(value, int) or value < least or value & (value - 1):
        raise TypeError(f"{what} must be a power of two and at least {least}, not {value!r}")
    return value


class FrameBeat(data.StructLayout):
    """One beat of a frame stream.

    Byte ``i`` of the beat is ``data[8*i:8*i+8]``; the frame's first byte is in lane 0 of its
    first beat (AXI-Stream order). ``keep`` has one bit per lane; every beat but the last is
    full, and the last beat's lanes are packed from lane 0. ``last`` marks the frame's final beat.
    """

    def __init__(self, data_width):
        check_data_width(data_width)
        super().__init__({"data": data_width, "keep": data_width // 8, "last": 1})
