"""cocotb test module: one packetdrill script on the RTL NIC (see rtl.py).

The script, the runner's Config and where to write the Result come from the environment:
``PACKETDRILL_SCRIPT``, ``PACKETDRILL_CONFIG`` (JSON), ``PACKETDRILL_RESULT``.
"""

import dataclasses
import json
import os
from pathlib import Path

import cocotb
from cocotb.task import bridge

from tb.nic_bench import NicBench, NicPort
from hdl.config import NicConfig

from . import run_script
from .backends.rtl import RtlBackend
from .runner import Config


@cocotb.test()
async def packetdrill_script(dut):
    """One script on the NIC: the packetdrill runner against the RTL backend."""
    nic = NicConfig.from_environment()
    bench = NicBench(dut, data_width=nic.data_width, connections=nic.connections,
                     processes=nic.processes)
    await bench.start()
    port = NicPort(bench)
    fields = json.loads(os.environ["PACKETDRILL_CONFIG"])
    config = Config(**{**fields, "pcap_dir": Path(fields["pcap_dir"])})

    def run():
        return run_script(os.environ["PACKETDRILL_SCRIPT"],
                          lambda cfg: RtlBackend(cfg, port, nic.policy, nic.connections), config)
    result = await bridge(run)()
    fields = {**dataclasses.asdict(result), "path": str(result.path)}
    Path(os.environ["PACKETDRILL_RESULT"]).write_text(json.dumps(fields))
