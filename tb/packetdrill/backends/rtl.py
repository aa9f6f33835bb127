"""The RTL NIC as the stack under test: the model backend's clock and syscalls, on the NIC.

The script's calls go to processes of `tb.nic_os.NicHost` (the OS for the NIC, with the same
API as the model's Host), whose data-path calls are host commands on the simulated NIC;
injected packets go in on its receive port, and what it transmits is what the script
expects. Time moves as on the model backend (1 tick = 1 ms), so everything but the host
object is `ModelBackend`'s. It runs inside a cocotb simulation: `tb.packetdrill.rtl` starts
one simulator process per script and hands this backend the bench's `NicPort`.
"""

from model.policy import Policy

from ..runner import Config
from .model import LOCAL_MAC, REMOTE_MAC, ModelBackend

__all__ = ["RtlBackend"]


class RtlBackend(ModelBackend):
    name = "rtl"

    def __init__(self, config: Config, port, policy: Policy, connections: int):
        from tb.nic_os import NicHost
        if config.mtu - 40 != policy.mss:
            raise ValueError(f"the NIC was built with MSS {policy.mss}, the script asks for MTU {config.mtu}")
        self.cfg = config
        self.host = NicHost(port, LOCAL_MAC, config.local_ip, policy=policy,
                            connections=connections, name="rtl")
        self.host.add_neighbor(config.remote_ip, REMOTE_MAC)
        self.proc = self.host.processes[self.host.spawn()]
        self.queue = []
        self.blocked = []
        self.epolls = {}
        self.next_epoll_fd = 1000

    def tcp_info(self, fd: int):
        """Not supported: the NIC's connection record is not read back (the block is reported
        as skipped)."""
        return None
