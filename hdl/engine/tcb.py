"""What the NIC keeps per connection, and the codes its ports speak.

The connection record (:class:`ConnRecord`) is the hardware's transmission control block:
RFC 9293's variables for one connection plus its header template, one word of a block RAM
per connection. Its fields are named as ``model/tcp.py`` names them (``snd_una``, ``rcv``
state lives in the receive stream buffer, so RCV.NXT is derived there as in the model).

The enums the ports speak are built from the model's, so the numbers and names are written
once: :class:`TcpState` from ``model.tcp.State`` (its ``number``s), :class:`Errno` from
``model.errors.Errno`` (Linux's errno numbers, plus OK = 0), and the state sets the engine
tests (:data:`SYNCHRONIZED`, :data:`RECEIVING`) from ``model.tcp``'s.
"""

import types

from amaranth.lib import data, enum
from amaranth.hdl import C, Cat, Value

from hdl.engine.rtt import RTO_BITS, RttState
from model import errors, tcp
from model.protocol import WSCALE_MAX

__all__ = ["TcpState", "ConnKind", "Errno", "Template", "ConnRecord", "SYNCHRONIZED", "RECEIVING",
           "seq_lt", "seq_le", "sum3", "snd_wnd_bits", "ring_count_bits", "one_of"]


def one_of(view, *members):
    """The enum-typed `view` holds one of `members` (a state set such as :data:`SYNCHRONIZED`)."""
    return Cat(view == member for member in members).any()


def seq_lt(a, b):
    """``a < b`` in 32-bit sequence space (``model.tcp.seq_lt``; RFC 1982's serial number
    order, so also for the 32-bit clock): the sign of ``a - b``, one carry chain. `a` and `b`
    must be within 2**31 of each other."""
    return (Value.cast(a) - b)[31]


def sum3(a, b, c, plus=0):
    """``a + b + c + plus`` modulo 2**32 (`plus` 0 to 2) in one carry chain's time: a carry-save
    layer (each bit's sum and carry of three bits, a LUT), then one addition. Operands
    narrower than 32 bits are zero-extended, so a difference takes ``~x`` of a 32-bit `x`,
    and `plus` counts its 1: ``sum3(a, b, ~c, 1)`` is a + b - c."""
    assert plus in (0, 1, 2)
    a, b, c = (Value.cast(x)[:32] for x in (a, b, c))
    a, b, c = (Cat(x, C(0, 32 - len(x))) for x in (a, b, c))
    sums = a ^ b ^ c
    # the carries one bit up; bit 0, free, takes 1 of `plus`, the chain's carry-in the other
    carries = Cat(C(plus == 2, 1), ((a & b) | (a & c) | (b & c))[:31])
    carry_in = C(plus >= 1, 1)
    return (Cat(carry_in, sums) + Cat(carry_in, carries))[1:33]


def seq_le(a, b):
    """``a <= b`` in 32-bit sequence space (``model.tcp.seq_le``)."""
    return seq_lt(a, b) | (Value.cast(a)[:32] == Value.cast(b)[:32])


def snd_wnd_bits(window_scaling):
    """Bits of SND.WND: the peer's 16-bit window field, shifted left by its scale (at most
    ``WSCALE_MAX``) once window scaling is on."""
    return 16 + WSCALE_MAX if window_scaling else 16


def ring_count_bits(policy):
    """Bits of the record's counts of ring bytes (``rcv_reserve``, ``last_adv_wnd``, ...):
    16, or more for rings of 64 KiB and up."""
    return max(16, policy.rcv_buffer.bit_length(), policy.snd_buffer.bit_length())


def _enum_of(name, shape, members, doc):
    """An Amaranth enum `name` of `shape` bits with `members` ({name: value}, in that order)."""
    if not all(0 <= value < 2 ** shape for value in members.values()):
        raise ValueError(f"{name}'s values must fit in {shape} bits, not {members!r}")
    def body(namespace):
        namespace["__module__"] = __name__
        namespace["__doc__"] = doc
        for member, value in members.items():
            namespace[member] = value
    return types.new_class(name, (enum.Enum,), {"shape": shape}, body)


TcpState = _enum_of(
    "TcpState", 4,
    {state.name: state.number for state in tcp.State if state.number is not None},
    "Connection states (RFC 9293): ``model.tcp.State`` numbered; LISTEN lives in host software.")

# the model's state sets, in TcpState's order
SYNCHRONIZED = tuple(s for s in TcpState if tcp.State[s.name] in tcp.SYNCHRONIZED)
# states in which received data is accepted (RFC 9293 3.10.7.4, seventh step)
RECEIVING = tuple(s for s in TcpState if tcp.State[s.name] in tcp.RECEIVING)

Errno = _enum_of(
    "Errno", 7, {"OK": 0} | {errno.name: errno.number for errno in errors.Errno},
    "Status of a host or control command: OK or an errno, numbered as Linux numbers it "
    "(``model.errors.Errno``; ``Errno.from_number`` turns it back into the model's).")


class ConnKind(enum.Enum, shape=2):
    """What a connection slot holds."""
    FREE = 0
    TCP = 1
    UDP = 2


class Template(data.StructLayout):
    """The header template of a connection: every header field that does not change.

    Our own MAC and IP are global (set once on the control port). For a UDP socket the
    remote fields are the connected peer (``peer_valid``), if any.
    """

    def __init__(self):
        super().__init__({"remote_mac": 48, "remote_ip": 32, "local_port": 16,
                          "remote_port": 16, "peer_valid": 1})


class ConnRecord(data.StructLayout):
    """One connection: state, RFC 9293 send variables, timers, socket flags and template.

    Receive-side sequence state (RCV.NXT, the window) is the receive stream buffer's tail
    and free space, and the send queue is the transmit stream buffer ([SND.UNA, tail)), so
    neither is duplicated here.

    With ``rtt`` (``Policy.rtt_estimation``) the record also keeps the RTT estimate and the
    timed segment (``model.tcp.Tcb``'s ``srtt8``, ``rttvar4``, ``rtt_seq``, ``rtt_start``) and
    the RTO: ``rto_base`` after no expiry, ``rto`` after ``retries`` expiries (``Tcb.rto``).

    With ``wscale`` (``Policy.window_scaling``) it keeps whether both SYNs offered window
    scaling (``wscale_ok``) and the peer's shift count (``snd_wscale``; ours is the policy's),
    and SND.WND is wide enough for a scaled window (16 + 14 bits).

    With ``sack`` (``Policy.sack``) it keeps whether both SYNs offered SACK (``sack_ok``);
    the blocks themselves are the receive ring's held ranges, kept there in recency order.

    Counts of ring bytes (the caps' withheld bytes, the last window advertised) are
    ``ring_bits`` wide: 16, or more for rings of 64 KiB and up.
    """

    def __init__(self, rtt=False, wscale=False, sack=False, ring_bits=16):
        timing = {"rtt": RttState(), "rtt_timing": 1, "rtt_seq": 32, "rtt_start": 32,
                  "rto": RTO_BITS, "rto_base": RTO_BITS} if rtt else {}
        scaling = {"wscale_ok": 1, "snd_wscale": 4} if wscale else {}
        sacking = {"sack_ok": 1} if sack else {}
        super().__init__({
            "kind": ConnKind,
            "state": TcpState,
            "passive": 1,           # created by a listener (RST in SYN-RECEIVED is silent)
            "orphan": 1,            # no socket refers to it any more
            "reset": 1,             # ended by RST or timeout
            "error": Errno,         # pending error (Linux sk_err), consumed by the socket
            "shut_rd": 1,
            "shut_wr": 1,
            "was_connected": 1,
            "iss": 32,
            "irs": 32,
            "snd_una": 32,
            "snd_nxt": 32,
            "snd_max": 32,
            "snd_wnd": snd_wnd_bits(wscale),
            "snd_wl1": 32,
            "snd_wl2": 32,
            "fin_queued": 1,
            "fin_acked": 1,
            "eff_mss": 16,
            # socket options, fixed at install (INSTALL_TCP): ring bytes withheld from the
            # receive window (ring - SO_RCVBUF cap) and from the send queue (ring - SO_SNDBUF
            # cap), and the MSS we offer and never exceed (TCP_MAXSEG)
            "rcv_reserve": ring_bits,
            "snd_reserve": ring_bits,
            "adv_mss": 16,
            "fin_received": 1,
            "fin_seq_valid": 1,     # a FIN that arrived beyond a hole, kept by sequence number
            "fin_seq": 32,
            "last_adv_wnd": ring_bits,
            "ack_needed": 1,
            "retries": 4,
            "rto_armed": 1,
            "rto_deadline": 32,
            "persist_armed": 1,
            "persist_deadline": 32,
            "persist_probes": 4,
            "close_armed": 1,
            "close_deadline": 32,
            "dupacks": 3,
            **timing,
            **scaling,
            **sacking,
            "template": Template(),
        })
