"""Command line: ``python -m tb.packetdrill SCRIPT... --backend linux|model|rtl [--lenient]``.

Prints one report per script (pass/fail, the first mismatch side by side, skipped lines, the
pcap) and ends with the line ``N passed, N failed``; exits 1 if any script failed, 2 if the
backend cannot run here.
"""

import argparse
import dataclasses
import sys
from pathlib import Path

from . import run_script
from .backends import BACKENDS, BackendUnavailable
from .grammar import ScriptError
from .runner import PCAP_DIR, Config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tb.packetdrill", description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="+", type=Path)
    parser.add_argument("--backend", choices=BACKENDS, default="linux")
    parser.add_argument("--lenient", action="store_true",
                        help="do not compare what the model's policy sets differently from Linux")
    parser.add_argument("--tolerance_usecs", "--tolerance-usecs", type=int, default=4000)
    parser.add_argument("--mss", type=int, default=None,
                        help="as packetdrill: inject TCP packets longer than MSS as GSO packets "
                             "of MSS-byte segments (split into segments on model and rtl)")
    parser.add_argument("--mtu", type=int, default=1500, help="MTU of the path (the model's MSS is MTU - 40)")
    parser.add_argument("-D", "--define", action="append", default=[], metavar="NAME[=VALUE]",
                        help="define NAME for #ifdef and as a constant (packetdrill's -D)")
    parser.add_argument("--outbound", choices=("strict", "packetdrill"), default="strict",
                        help="strict: an unscripted outbound packet fails the script at the next "
                             "inbound packet, syscall or the end; packetdrill: only a > line that "
                             "takes it can fail")
    parser.add_argument("--local-ip", default="192.0.2.1")
    parser.add_argument("--remote-ip", default="192.0.2.2")
    parser.add_argument("--pcap-dir", type=Path, default=PCAP_DIR)
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                        help="simulator for the rtl backend")
    args = parser.parse_args(argv)
    defines = dict((d.split("=", 1) + [""])[:2] for d in args.define)
    common = dict(local_ip=args.local_ip, remote_ip=args.remote_ip, mss=args.mss, mtu=args.mtu,
                  tolerance_usecs=args.tolerance_usecs, lenient=args.lenient,
                  pcap_dir=args.pcap_dir, defines=defines, outbound=args.outbound)
    passed = failed = 0
    if args.backend == "rtl":
        from .rtl import run_on_rtl
        config = Config(**common)
        for result in run_on_rtl(args.scripts, config, args.sim):
            print(result.report(), flush=True)
            passed += result.passed
            failed += not result.passed
        print(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    for path in args.scripts:
        config = Config(**common)
        try:
            result = run_script(path, args.backend, dataclasses.replace(config))
        except BackendUnavailable as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except (ScriptError, OSError) as err:
            print(f"FAIL {path}\n  {err}")
            failed += 1
            continue
        print(result.report(), flush=True)
        passed += result.passed
        failed += not result.passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
