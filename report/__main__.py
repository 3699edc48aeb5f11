"""`python -m report [results/results.json]`: write REPORT.md (and its plots) next to the results file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report import plots
from report.render import render
from report.results import ResultsError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__)
    parser.add_argument("results", nargs="?", default="results/results.json", type=Path, help="the results file")
    args = parser.parse_args(argv)
    try:
        doc = load(args.results)
    except ResultsError as exc:
        print(exc, file=sys.stderr)
        return 2
    out = args.results.with_name("REPORT.md")
    out.write_text(render(doc))
    plots.write(doc, out.parent)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
