"""cocotb test module: one scenario on the RTL NIC, compared with the same scenario on the model.

Run by ``tests/test_nic_rtl.py`` (and ``make sim``) through ``cocotb_tools.runner``. The
scenario, the NIC's parameters and the output folder come from the environment:
``NIC_SCENARIO`` (a name in ``tb.scenarios.SCENARIOS``, or ``random:SEED``), ``NIC_CONFIG``
(``hdl.config.NicConfig.environment``; the model runs on its policy), ``NIC_OUT``, and
optionally ``NIC_SETTLE_LIMIT`` (``NicBench.settle_limit``).
On a mismatch both traces are printed side by side and a pcap of each wire is written.
The run's functional coverage (``tb/coverage.py``) goes to ``NIC_COVERAGE``/<scenario>.json.
"""

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.task import bridge

from model.scenario import compare_traces, write_pcap
from tb.coverage import Coverage
from tb.nic_bench import NicBench, NicPort
from tb.nic_os import NicHost
from hdl.config import NicConfig
from tb.scenarios import DUT_IP, DUT_MAC, get_scenario, model_runner


class Diverged(Exception):
    """The RTL's trace left the model's: the run stops here instead of running on (a broken
    ACK number, say, makes the peer answer every segment until the scenario's end)."""


class _TraceOnModel(list):
    """The RTL run's trace, checked against the model's as it grows: `append` raises
    `Diverged` once the trace has run `context` entries past its first difference (the
    report shows that many), or past the model's end."""

    def __init__(self, expected: list, context: int = 8):
        super().__init__()
        self.expected, self.context, self.first_difference = expected, context, None

    def append(self, entry):
        i = len(self)
        super().append(entry)
        if self.first_difference is None and (i >= len(self.expected) or entry != self.expected[i]):
            self.first_difference = i
        if self.first_difference is not None and i >= self.first_difference + self.context:
            raise Diverged(f"the RTL's trace differs from the model's at entry {self.first_difference}")


def _run(port, name, config: NicConfig, out: Path):
    spec = get_scenario(name)
    fn = spec.fn
    model = model_runner(name, port.processes, config.policy)
    fn(model)
    dut = NicHost(port, DUT_MAC, DUT_IP, policy=config.policy, connections=config.connections,
                  iss_base=spec.dut_iss, name="dut")
    rtl = spec.runner(dut)
    rtl.trace = _TraceOnModel(model.trace)
    started, cycles0 = time.monotonic(), port.cycles
    out.mkdir(parents=True, exist_ok=True)
    stopped = None
    try:
        fn(rtl)
    except Exception as err:                # the trace up to here is still compared
        stopped = err
    (out / f"{name}.trace").write_text("\n".join(map(str, rtl.trace)) + "\n")
    write_pcap(str(out / f"{name}.rtl.pcapng"), rtl.wire.log)
    wall, cycles = time.monotonic() - started, port.cycles - cycles0
    coverage = port.bench.coverage        # the drop counters read after the run's clocks
    if coverage is not None:
        try:
            coverage.sample_drops(dut.drop_counts())
        except Exception as err:            # the run's failure is reported below
            stopped = stopped or err
        coverage.write(Path(os.environ["NIC_COVERAGE"]) / f"{name}.json", name)
    report = compare_traces(model.trace, rtl.trace)
    summary = {"scenario": name, "cycles": cycles, "wall_s": round(wall, 3),
               "ticks": rtl.now, "trace_entries": len(rtl.trace), "equal": report is None,
               "segments": sum(1 for e in rtl.trace if e[0] == "tx" and e[2] == "dut")}
    (out / f"{name}.json").write_text(json.dumps(summary) + "\n")
    if report is not None:
        write_pcap(str(out / f"{name}.model.pcapng"), model.wire.log)
        raise AssertionError(f"scenario {name}: RTL differs from the model (pcapngs and trace in "
                             f"{out})"
                             f"{f'; the RTL run stopped with {stopped!r}' if stopped else ''}\n{report}")
    if stopped is not None:
        raise stopped
    return summary


@cocotb.test()
async def scenario(dut):
    """Run NIC_SCENARIO on the RTL and on the model; their traces must be equal."""
    config = NicConfig.from_environment()
    name = os.environ["NIC_SCENARIO"]
    out = Path(os.environ["NIC_OUT"])
    coverage = (Coverage(rcv_bytes=config.policy.rcv_buffer, snd_bytes=config.policy.snd_buffer)
                if os.environ.get("NIC_COVERAGE") else None)
    bench = NicBench(dut, data_width=config.data_width, connections=config.connections,
                     processes=config.processes, coverage=coverage)
    if "NIC_SETTLE_LIMIT" in os.environ:
        bench.settle_limit = int(os.environ["NIC_SETTLE_LIMIT"])
    await bench.start()
    summary = await bridge(_run)(NicPort(bench), name, config, out)
    dut._log.info("%s", summary)
