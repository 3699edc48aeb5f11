"""`python -m report [results/results.json] [--against OTHER]`: write REPORT.md (and its plots) next to the results file.

With `--against` another run's results file, the report gains a run-to-run
agreement section (report/agreement.py; instruction counts: report/instructions.py)
and its counts are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from report import agreement, files, instructions
from report.results import ResultsError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__)
    parser.add_argument("results", nargs="?", default="results/results.json", type=Path, help="the results file")
    parser.add_argument("--against", type=Path, help="another run's results file, to say which ratios the two agree on")
    args = parser.parse_args(argv)
    try:
        doc = load(args.results)
        other = load(args.against) if args.against else None
    except ResultsError as exc:
        print(exc, file=sys.stderr)
        return 2
    rows = agreement.compare(doc, other) if other else []
    counted = instructions.agreement(doc, other) if other else []
    extra = (
        agreement.section(doc, other, str(args.against), rows) + instructions.agreement_section(counted)
        if other
        else []
    )
    print(files.write(doc, args.results.parent, extra))
    if other:  # a summary per kind of figure the two runs share (throughput ratios, instruction counts)
        summaries = [agreement.summary(rows)] * bool(rows) + [instructions.agreement_summary(counted)] * bool(counted)
        for line in [
            *(summaries or [agreement.summary(rows)]),
            agreement.verdict_summary(agreement.verdicts(doc, other)),
        ]:
            print(f"run-to-run: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
