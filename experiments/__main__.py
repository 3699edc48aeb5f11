"""`python -m experiments`: run the comparison and write results/results.json and results/REPORT.md.

Exit status: 0 when the comparison ran (strategies failing checks is a finding,
not an error), 2 for bad input, 130 when interrupted (the partial results and
a report marked incomplete are still written), 1 when the harness itself broke.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from experiments import discovery
from experiments.checks import registry
from experiments.runner import Busy, Run, lock, matrix, run
from experiments.serving import Database
from report import render
from report.results import ResultsFile, environment


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s compare --", description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", action="append", default=[], help="only this strategy (repeatable)")
    parser.add_argument("--check", action="append", default=[], help="only this check id (repeatable)")
    parser.add_argument("--strategies-dir", type=Path, default=discovery.DEFAULT_DIR, help="where strategy modules live")
    parser.add_argument("--db", default="sqlite", choices=["sqlite"], help="database backend (default: sqlite)")
    parser.add_argument("--out", type=Path, default=discovery.ROOT / "results", help="output directory (default: results/)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per strategy × check before it is killed (default: each check's own)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = _args(argv)
    checks = registry()
    try:
        strategies = discovery.select(discovery.discover(args.strategies_dir), args.strategy)
    except discovery.UnknownStrategy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    unknown = [c for c in args.check if c not in checks]
    if unknown:
        print(f"error: unknown check {', '.join(unknown)}; known: {', '.join(checks)}", file=sys.stderr)
        return 2
    chosen = [checks[c] for c in dict.fromkeys(args.check)] or list(checks.values())
    if not strategies:
        print(f"error: no strategy modules in {args.strategies_dir}", file=sys.stderr)
        return 2

    try:
        with lock(args.out):
            results = ResultsFile(
                args.out / "results.json",
                environment=environment(" ".join(["python -m experiments", *map(shlex.quote, argv)]), Database.version()),
                strategies=[s.describe() for s in strategies],
                checks=[c.describe() for c in chosen],
            )
            settings = Run(args.out, args.strategies_dir, args.db, args.timeout, args.quiet)
            print(f"{len(strategies)} strategies × {len(chosen)} checks on {args.db}, each in its own process", flush=True)
            complete = run(settings, strategies, chosen, results)
            report = args.out / "REPORT.md"
            report.write_text(render.render(results.doc))
            print(matrix(results.doc), flush=True)
    except Busy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(("" if complete else "INCOMPLETE (interrupted): ") + f"{report}\n{results.path}", flush=True)
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
