"""A packetdrill-compatible script runner: ``python -m tb.packetdrill SCRIPT... --backend B``.

grammar.py parses a script into events, runner.py runs them against a backend
(backends/linux.py: the Linux kernel in a private namespace; backends/model.py: the golden
model; backends/rtl.py: the RTL NIC in a cocotb simulation, run through rtl.py) and judges
every packet and syscall; packets.py is the packet codec.
"""

from .grammar import ScriptError, parse, parse_file
from .runner import Config, Result, Runner, LENIENT_FIELDS

__all__ = ["ScriptError", "parse", "parse_file", "Config", "Result", "Runner", "LENIENT_FIELDS",
           "run_script"]


def run_script(path, backend, config: Config | None = None) -> Result:
    """Parse and run one script on a fresh backend; raise ScriptError or BackendUnavailable.

    `backend` is a backend's name, or a function of the Config that makes the backend (the
    RTL backend is made inside its simulator: see rtl.py)."""
    from .backends import make_backend
    config = config or Config()
    script = parse_file(path, config.defines)
    for key in ("mss", "mtu", "tolerance_usecs"):
        if key in script.options:
            try:
                setattr(config, key, int(script.options[key]))
            except ValueError:
                raise ScriptError(str(path), 1, f"--{key} needs a number, not {script.options[key]!r}") from None
    if "outbound" in script.options:
        if script.options["outbound"] not in ("strict", "packetdrill"):
            raise ScriptError(str(path), 1, "--outbound is strict or packetdrill")
        config.outbound = script.options["outbound"]
    stack = backend(config) if callable(backend) else make_backend(backend, config)
    try:
        return Runner(script, stack, config).run()
    finally:
        stack.close()
