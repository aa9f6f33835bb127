"""The README's measured tables, regenerated from the reports, never typed by hand.

``python -m tb.readme_tables [NAME ...]`` replaces each section of ``README.md`` between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` with what :data:`SECTIONS` makes of its
report; the markers and everything outside them are kept as they are. A section whose report
is missing is left alone (an error if it was asked for by name).

Regenerating the bench table also copies ``build/bench/bench.png`` (the plot ``make bench``
writes beside bench.json) to ``docs/bench.png``, which the README shows.

To add a section: write a function from the report (parsed JSON) to markdown, add it to
:data:`SECTIONS` with the report's path, and put its two markers in the README.
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

from flow.synth import provenance, report_table
from flow.tools import REPO

__all__ = ["SECTIONS", "synth_table", "replace_section", "section_body", "regenerate"]


def synth_table(report):
    """``make synth``'s table and the line that says when, with what and how it was made."""
    return f"{report_table(report)}\n{provenance(report)}\n"


def bench_table(report):
    """``make bench``'s tables (receive, transmit, latency, speed), its shortfalls, and the
    line that says when, on which simulator and by which command."""
    from tb.bench_run import report_tables
    return report_tables(report)


# name -> (report, relative to the repository; function from the parsed report to markdown)
SECTIONS = {
    "synth-table": (Path("build/synth/report.json"), synth_table),
    "bench-table": (Path("build/bench/bench.json"), bench_table),
}


def _markers(name):
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def _span(text, name):
    """(start, end) of what lies between the markers of `name` in `text`."""
    begin, end = _markers(name)
    matches = [(m.end(), text.find(end, m.end())) for m in re.finditer(re.escape(begin), text)]
    if len(matches) != 1 or matches[0][1] < 0:
        raise ValueError(f"README must hold exactly one {begin} ... {end} pair "
                         f"({len(matches)} begin markers found)")
    return matches[0]


def section_body(text, name):
    """What stands between the markers of `name` now, without the newlines beside them."""
    start, stop = _span(text, name)
    return text[start:stop].strip("\n")


def replace_section(text, name, body):
    """`text` with the section `name` holding `body`; the markers and the rest unchanged."""
    start, stop = _span(text, name)
    return f"{text[:start]}\n{body.strip(chr(10))}\n{text[stop:]}"


def regenerate(readme_text, root=REPO, names=None, log=print):
    """`readme_text` with every section of `names` (default all of SECTIONS) regenerated."""
    for name in names or SECTIONS:
        if name not in SECTIONS:
            raise KeyError(f"no README section {name!r}; known: {', '.join(SECTIONS)}")
        path, make = SECTIONS[name]
        source = Path(root) / path
        if not source.exists():
            if names:
                raise FileNotFoundError(f"{name}: {source} is missing; run the measurement first")
            log(f"{name}: {path} is missing; section left as it is")
            continue
        readme_text = replace_section(readme_text, name, make(json.loads(source.read_text())))
        log(f"{name}: regenerated from {path}")
    return readme_text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"sections (default all: {', '.join(SECTIONS)})")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = regenerate(text, names=args.names)
    plot = REPO / "build" / "bench" / "bench.png"
    if "bench-table" in (args.names or SECTIONS) and plot.exists():
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copy(plot, REPO / "docs" / "bench.png")
        print(f"copied {plot} to docs/bench.png")
    if new != text:
        args.readme.write_text(new)
        print(f"updated {args.readme}")
    else:
        print(f"{args.readme} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
