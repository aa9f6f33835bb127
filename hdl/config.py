"""The NIC's build parameters, one definition for the RTL, the tool flow and the testbench.

Importable without Amaranth (the cocotb testbench reads :data:`NIC_POLICY` inside the
simulator); :meth:`NicConfig.build` imports the NIC only when it is called.
"""

import json
import os
from dataclasses import asdict, dataclass, replace

from model.policy import LINUX_LIKE_OOO_RANGES, LINUX_RTO, LINUX_SACK, Policy, wscale_for

__all__ = ["ring_policy", "NIC_OOO_RANGES", "NIC_WINDOW", "NIC_POLICY", "NicConfig", "LINUX_LIKE_CONFIG"]


#: Out-of-order ranges the NIC's receive rings keep per connection unless a build says
#: otherwise (the model's own default is 1; Linux keeps every out-of-order segment).
NIC_OOO_RANGES = 4


def ring_policy(ring_bytes, ooo_ranges=NIC_OOO_RANGES, **choices):
    """The model's policy with ``ring_bytes`` receive and send rings per connection (the
    hardware rings are powers of two; the model's default 65535-byte window is not one),
    ``ooo_ranges`` out-of-order ranges and the other `choices` (Policy fields)."""
    return Policy(rcv_buffer=ring_bytes, snd_buffer=ring_bytes, udp_rcv_buffer=ring_bytes,
                  max_ooo_ranges=ooo_ranges, **choices)


#: The reference configuration's rings: 2 KiB receive and send per connection.
NIC_WINDOW = 2048
#: The NIC's default policy: what ``NIC()``, ``make verilog``, the scenarios and the
#: engine's tests use.
NIC_POLICY = ring_policy(NIC_WINDOW)


@dataclass(frozen=True, kw_only=True)
class NicConfig:
    """One NIC build: ``NIC(data_width, connections, processes, policy=ring_policy(window),
    rx_fifo_beats=fifo_beats, slow_fifo_beats=fifo_beats)``; ``fifo_beats`` None is the NIC's
    default (room for two maximum frames); ``linux_rto`` adds ``model.policy.LINUX_RTO`` to
    the policy (the RTO from RTT samples, in ticks of 1 ms); ``window_scaling`` turns on the
    window scale option (RFC 7323) with the smallest shift count that says the ring
    (``model.policy.wscale_for``: 0 up to 32 KiB); ``ooo_ranges`` is the number of
    out-of-order ranges the receive ring keeps per connection (``Policy.max_ooo_ranges``,
    :data:`NIC_OOO_RANGES` unless given);
    ``sack`` offers SACK-permitted and reports the held ranges in SACK blocks
    (``model.policy.LINUX_SACK``, RFC 2018)."""

    data_width: int = 64
    connections: int = 64
    processes: int = 16
    window: int = NIC_WINDOW
    fifo_beats: int | None = None
    linux_rto: bool = False
    window_scaling: bool = False
    ooo_ranges: int = NIC_OOO_RANGES
    sack: bool = False

    @property
    def name(self):
        """The build's name (build folders); the default window and FIFOs are left out."""
        window = f"_b{self.window}" if self.window != NIC_WINDOW else ""
        fifo = f"_f{self.fifo_beats}" if self.fifo_beats else ""
        rto = "_rtt" if self.linux_rto else ""
        ws = "_ws" if self.window_scaling else ""
        ranges = f"_r{self.ooo_ranges}" if self.ooo_ranges != NIC_OOO_RANGES else ""
        sack = "_sack" if self.sack else ""
        return (f"nic_w{self.data_width}_c{self.connections}_p{self.processes}{window}{fifo}{rto}"
                f"{ws}{ranges}{sack}")

    @property
    def policy(self):
        choices = {**(LINUX_RTO if self.linux_rto else {}), **(LINUX_SACK if self.sack else {})}
        if self.window_scaling:
            choices.update(window_scaling=True, wscale=wscale_for(self.window))
        return ring_policy(self.window, self.ooo_ranges, **choices)

    def environment(self):
        """The build for a cocotb module, as its environment (``from_environment``)."""
        return {"NIC_CONFIG": json.dumps(asdict(self))}

    @classmethod
    def from_environment(cls):
        """The build a cocotb module runs on (``environment``)."""
        return cls(**json.loads(os.environ["NIC_CONFIG"]))

    def build(self, debug=False):
        """The NIC; ``debug`` adds its ``debug`` port (simulation builds: the bench profiles
        the engine's steps through it)."""
        from hdl.nic import NIC
        return NIC(data_width=self.data_width, connections=self.connections,
                   processes=self.processes, policy=self.policy,
                   rx_fifo_beats=self.fifo_beats, slow_fifo_beats=self.fifo_beats, debug=debug)


#: The reference NIC made closer to Linux (model.policy's Linux choices): its RTO from RTT
#: samples, window scaling (shift 0 for the 2 KiB rings) and SACK (with its four ranges).
#: The differential suite runs the scenarios these change on it, and packetdrill's RTL runs
#: use it (the model backend has the same choices).
LINUX_LIKE_CONFIG = NicConfig(data_width=64, connections=64, processes=16, linux_rto=True,
                              window_scaling=True, ooo_ranges=LINUX_LIKE_OOO_RANGES, sack=True)
