"""cocotb test module: the RTL NIC against the Linux kernel over a TAP device (see linux_rtl.py).

The simulator process itself creates the network namespace and its TAP device (it holds the
device's descriptor), runs the program named by ``LINUX_PROGRAM`` (``tb.linux_programs``)
with the NIC's OS driver (``tb.nic_os.NicHost``) in a ``bridge`` thread, and writes the
report (``LINUX_OUT``/<program>.json) and a pcapng of the wire, passed or failed.
"""

import json
import os
import traceback
from pathlib import Path

import cocotb
from cocotb.task import bridge

from tb.linux_programs import HOST_IP, HOST_MAC, LINUX_IP, LINUX_MAC, PROGRAMS, run_program
from tb.netns import NamespacedDevice
from tb.nic_bench import NicBench, NicPort
from tb.nic_os import NicHost
from hdl.config import NicConfig


def _run(port, name: str, config: NicConfig, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    pcap = out / f"{name}.pcapng"
    with NamespacedDevice(address=f"{LINUX_IP}/24", mac=LINUX_MAC, peer_ip=HOST_IP,
                          peer_mac=HOST_MAC) as device:
        host = NicHost(port, HOST_MAC, HOST_IP, policy=config.policy, connections=config.connections,
                       name="nic")
        host.add_neighbor(LINUX_IP, LINUX_MAC)
        try:
            report = run_program(PROGRAMS[name], host, device)
        except BaseException as exc:
            if getattr(exc, "bridge", None) is not None:
                exc.bridge.write_pcap(str(pcap))
            (out / f"{name}.json").write_text(json.dumps({
                "error": "".join(traceback.format_exception_only(exc)).strip(),
                "pcapng": str(pcap), "drops": host.drop_counts()}) + "\n")
            raise
    report.pop("bridge").write_pcap(str(pcap))
    report["pcapng"] = str(pcap)
    (out / f"{name}.json").write_text(json.dumps(report) + "\n")
    return report


@cocotb.test()
async def linux_peer(dut):
    """LINUX_PROGRAM between the NIC and the Linux kernel."""
    config = NicConfig.from_environment()
    bench = NicBench(dut, data_width=config.data_width, connections=config.connections,
                     processes=config.processes)
    await bench.start()
    report = await bridge(_run)(NicPort(bench), os.environ["LINUX_PROGRAM"], config,
                                Path(os.environ["LINUX_OUT"]))
    dut._log.info("%s", {k: v for k, v in report.items() if k not in ("linux", "host")})
