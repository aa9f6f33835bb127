"""``make sim``: run a scenario on the RTL and print its trace.

The integrated NIC (issue "integrated NIC") is not built yet, so there is no scenario to run
on the RTL; this entry point says so instead of pretending.
"""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", default="icarus", choices=("icarus", "verilator"))
    parser.add_argument("--width", type=int, default=64, choices=(8, 64))
    parser.add_argument("--scenario", default="seed")
    args = parser.parse_args(argv)
    print(f"make sim: nothing to simulate yet: the integrated NIC top (hdl/nic.py) does not exist, "
          f"so scenario {args.scenario!r} cannot run on {args.sim} at {args.width} bits. "
          f"Run `make test` for the golden model and the per-block RTL tests.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
