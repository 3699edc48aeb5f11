"""`python -m experiments`: run the comparison and write results/results.json and results/REPORT.md.

Exit status: 0 when the comparison ran (strategies failing checks is a finding,
not an error), 2 for bad input, 130 when interrupted (the partial results and
a report marked incomplete are still written), 1 when the harness itself broke.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import ExitStack
from pathlib import Path

from experiments import checks
from experiments.harness import discovery, postgres
from experiments.harness.runner import Busy, Run, lock, matrix, run
from experiments.harness.serving import describe_backend
from experiments.throughput import sweep
from report import plots, render
from report.results import ResultsFile, environment


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s compare --", description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", action="append", default=[], help="only this strategy (repeatable)")
    parser.add_argument("--check", action="append", default=[], help="only this check id (repeatable)")
    parser.add_argument("--strategies-dir", type=Path, default=discovery.DEFAULT_DIR, help="where strategy modules live")
    parser.add_argument(
        "--db", default="sqlite",
        help="sqlite (default: a fresh file per strategy × check), postgresql (a throwaway cluster the run "
        "starts and removes), or postgresql://… (a server of yours; each check gets a fresh database on it)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=discovery.ROOT / "results", help="output directory (default: results/)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per strategy × check before it is killed (default: each check's own)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="strategy × check pairs measured at once (default 2; checks that time things always run alone)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    sweep.add_arguments(parser)
    return parser.parse_args(argv)


def _server(db: str, stack: ExitStack) -> postgres.Cluster | None:
    """None for SQLite; a throwaway cluster (stopped when the stack closes) or the user's server."""
    if db == "sqlite":
        return None
    if db == "postgresql":
        return stack.enter_context(postgres.throwaway_cluster())
    return postgres.existing_server(db)


def main(argv: list[str]) -> int:
    args = _args(argv)
    try:
        strategies = discovery.select(discovery.discover(args.strategies_dir), args.strategy)
        chosen = [] if args.no_checks else checks.select(args.check)
    except (discovery.UnknownStrategy, checks.UnknownCheck) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not strategies:
        print(f"error: no strategy modules in {args.strategies_dir}", file=sys.stderr)
        return 2

    try:
        with lock(args.out), ExitStack() as stack:
            server = _server(args.db, stack)
            results = ResultsFile(
                args.out / "results.json",
                environment=environment(" ".join(["python -m experiments", *map(shlex.quote, argv)]), describe_backend(server)),
                strategies=[s.describe() for s in strategies],
                checks=[c.describe() for c in chosen],
            )
            settings = Run(args.out, args.strategies_dir, server.admin_url if server else "sqlite", args.timeout,
                           args.quiet, max(1, args.jobs))
            where = f"PostgreSQL {server.version}" if server else "SQLite"
            print(f"{len(strategies)} strategies × {len(chosen)} checks on {where}, each in its own process", flush=True)
            complete = run(settings, strategies, chosen, results)
            if complete and (plan := sweep.plan(args)):
                complete = sweep.attach(results, plan, strategies, server, args.out, settings.say, args.loadgen)
            plots.write(results.doc, args.out)
            report = args.out / "REPORT.md"
            report.write_text(render.render(results.doc, matrix_link=(args.out / "MATRIX.md").exists()))
            print(matrix(results.doc), flush=True)
    except (Busy, postgres.DatabaseUnreachable, postgres.PostgresNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before the first measurement; nothing to keep", file=sys.stderr)
        return 130
    print(("" if complete else "INCOMPLETE (interrupted): ") + f"{report}\n{results.path}", flush=True)
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
