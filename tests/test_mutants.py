"""Injected bugs the comparison with the model must catch (issue 16).

Each mutant is a source-level change of one block (a regular expression applied to its
module's source, exec'd into a module of its own and monkeypatched into the NIC), built for
the simulator and run on one short named scenario, which must FAIL with the scoreboard's
"RTL differs from the model" (the run stops a few trace entries after the first difference,
``tb/nic_cocotb.py``):

- ``ack_off_by_one``: every ACK number the engine sends is one too high. Caught by
  ``handshake`` at its first ACK: the scoreboard is not a rubber stamp. (Before the run stopped
  at the difference, the peer answered every wrong ACK until the scenario's end: 385 s.)
- ``length_one_bit_short``: the bytes a WRITE gives the send ring (the host call's ``count``,
  ``hdl/engine/host_call.py``) lose their top bit (11 bits for a value up to 2048), so a send
  that takes the whole empty 2 KiB ring
  stores nothing and returns 0. Caught by ``host_limits`` (its 64 KiB write) and by campaign
  seeds that send 2048 bytes or more on an empty ring (seed 0 does).
- ``shutdown_unchecked``: the host gate lets every SHUTDOWN through whatever the access table
  says, so a process never given the fd can send the connection's FIN. Caught by ``access_denied`` (the stranger's forged
  shutdown; ``tb/nic_os.py`` forges READ, WRITE and SHUTDOWN doorbell writes, not POLL).
- ``ring_wraps_to_one``: the stream buffer's write pointer wraps to word 1 instead of word 0,
  so a write across the end of a ring puts its bytes one word too far. Caught by ``n_to_m``
  (its writes wrap the send ring).

Measured 2026-12-02 on this 2-core machine (other work running): on Icarus each mutant takes
18 to 22 s (Verilog, its build, the scenario), on Verilator 92 to 98 s (nearly all of it its
own build), so all four run in CI on Icarus, about a minute together. The shrinker shown on a
mutant runs with ``--campaign``, on Verilator as the campaign does: campaign seed 0 fails on
``length_one_bit_short`` (a send of 3000 bytes on an empty ring returns 0) and shrinks in 6
runs (25 s) from its 66 random steps to a prefix of K = 28 (``random:0:28``), recorded in
``build/sim/campaign/mutant_shrink.json``.
"""

import importlib
import json
import re
from pathlib import Path

import pytest

from hdl.ports import HostOp
from tb.campaign import OUT, describe_failure, investigate
from tb.nic_run import NicConfig, run_scenario
from tb.scenarios import random_scenario

pytestmark = pytest.mark.cocotb

SIM = "icarus"                  # builds in seconds; these scenarios are short
SHRINK_SIM = "verilator"        # the campaign's simulator: a random seed runs several times
# 16 processes: host_limits and the random programs fork up to pid 15
CONFIG = NicConfig(data_width=64, connections=8, processes=16)

# name: (module, class, where the NIC imports it, pattern, replacement, scenario)
MUTANTS = {
    "ack_off_by_one": (
        "hdl.engine.tcp_engine", "TcpEngine", "hdl.nic",
        r"hdr\.ack\.eq\(e_ack\)", "hdr.ack.eq(e_ack + 1)", "handshake"),
    # the bytes a WRITE's send ring takes, one bit short of the 2 KiB ring's 12
    "length_one_bit_short": (
        "hdl.engine.host_call", "HostCall", "hdl.engine.tcp_engine",
        r"v\.count\.eq\(min_of\(hc\.length, i\.snd_space\)\)",
        "v.count.eq(min_of(hc.length, i.snd_space)[:11])", "host_limits"),
    "shutdown_unchecked": (
        "hdl.engine.host_gate", "HostGate", "hdl.engine.tcp_engine",
        r"self\.checked\.payload\.allowed\.eq\(access\.result\.payload\.allowed\)",
        "self.checked.payload.allowed.eq(access.result.payload.allowed | "
        f"(self.checked.payload.command.op.as_value() == {HostOp.SHUTDOWN.value}))", "access_denied"),
    "ring_wraps_to_one": (
        "hdl.buffers.stream_buffer", "StreamBuffer", "hdl.engine.tcp_engine",
        r"w_prev\.eq\(self\.write_data\.payload\.data\), w_word\.eq\(w_word \+ 1\)",
        "w_prev.eq(self.write_data.payload.data), "
        "w_word.eq(Mux(w_word == 2 ** word_bits - 1, 1, w_word + 1))", "n_to_m"),
}


def inject(monkeypatch, name: str):
    """Put mutant `name` in place of its block (for this test); returns its scenario."""
    module_name, cls, user, pattern, replacement, scenario = MUTANTS[name]
    module = importlib.import_module(module_name)
    source = Path(module.__file__).read_text()
    mutated, count = re.subn(pattern, replacement, source)
    assert count == 1, f"mutant {name} no longer applies to {module_name}: update this test"
    package = module_name.rpartition(".")[0]
    namespace = {"__name__": f"{module_name}_{name}", "__package__": package}
    exec(compile(mutated, f"{module_name}_{name}.py", "exec"), namespace)
    monkeypatch.setattr(importlib.import_module(user), cls, namespace[cls])
    return scenario


@pytest.mark.parametrize("name", MUTANTS)
def test_mutant_is_caught(monkeypatch, name):
    scenario = inject(monkeypatch, name)
    with pytest.raises(AssertionError, match="RTL differs from the model") as failure:
        run_scenario(SIM, CONFIG, scenario, variant=name)
    print(f"mutant {name} caught by {scenario}:\n{failure.value}")
    if name == "ack_off_by_one":    # the first difference is the dut's first ACK (a SYN has none)
        assert re.search(r"!\('tx', \d+, 'dut', 'tcp', \d+, 8, 'ACK'.*\| \('tx', \d+, 'dut', 'tcp', \d+, 9, 'ACK'",
                         str(failure.value)), str(failure.value)


# a campaign seed that fails on the length mutant (a send of 2 KiB or more on an empty ring);
# seed 0 does, and shrinks from 66 random steps to 28
SHRINK_SEED = 0


@pytest.mark.campaign
def test_a_failing_seed_shrinks_to_a_short_prefix(monkeypatch):
    """The shrinker on a mutant: campaign seed SHRINK_SEED fails on ``length_one_bit_short``
    and shrinks (bisection, at most 8 runs) to a prefix of K random steps that still fails."""
    name = "length_one_bit_short"
    inject(monkeypatch, name)
    for seed in range(SHRINK_SEED, SHRINK_SEED + 4):     # the first one fails, as measured
        try:
            run_scenario(SHRINK_SIM, CONFIG, f"random:{seed}", variant=name)
        except AssertionError as err:
            failure = err
            break
    else:
        raise AssertionError(f"no seed from {SHRINK_SEED} to {seed} fails on mutant {name}")
    assert "RTL differs from the model" in str(failure), str(failure)
    found = investigate(SHRINK_SIM, CONFIG, seed, str(failure), variant=name, waves=False)
    steps = random_scenario(seed).steps
    assert found["shrink_runs"] <= 8 and 0 <= found["shortest_prefix"] <= steps
    with pytest.raises(AssertionError, match="RTL differs from the model"):
        run_scenario(SHRINK_SIM, CONFIG, found["shortest"], variant=name)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mutant_shrink.json").write_text(json.dumps({"mutant": name, **found}, indent=1) + "\n")
    print(describe_failure(found))
