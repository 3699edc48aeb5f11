"""`python -m experiments`: run the comparison and write results/results.json and results/REPORT.md.

Exit status: 0 when the comparison ran (strategies failing checks is a finding,
not an error), 2 for bad input, 130 when interrupted (the partial results and
a report marked incomplete are still written), 1 when the harness itself broke.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from contextlib import ExitStack, closing
from pathlib import Path

from experiments import checks
from experiments.harness import discovery, postgres, preflight
from experiments.harness.processes import Interrupted, finishing_on_interrupt
from experiments.harness.runner import Busy, Run, lock, matrix, run
from experiments.harness.serving import describe_backend
from experiments.throughput import instructions, sweep
from report import plots, render
from report.results import ResultsFile, environment


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nox -s compare --", description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", action="append", default=[], help="only this strategy (repeatable)")
    parser.add_argument("--check", action="append", default=[], help="only this check id (repeatable)")
    parser.add_argument(
        "--strategies-dir", type=Path, default=discovery.DEFAULT_DIR, help="where strategy modules live"
    )
    parser.add_argument(
        "--db", default="sqlite",
        help="sqlite (default: a fresh file per strategy × check), postgresql (a throwaway cluster the run "
        "starts and removes), or postgresql://… (a server of yours; each check gets a fresh database on it)",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=discovery.ROOT / "results", help="output directory (default: results/)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per strategy × check before it is killed (default: each check's own)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=4,
        help="strategy × check pairs measured at once (default 4: most wait on sleeps and I/O; checks that time things always run alone)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    sweep.add_arguments(parser)
    instructions.add_arguments(parser)
    return parser.parse_args(argv)


def _server(db: str, stack: ExitStack) -> postgres.Cluster | None:
    """None for SQLite; a throwaway cluster (stopped when the stack closes) or the user's server."""
    if db == "sqlite":
        return None
    if db == "postgresql":
        return stack.enter_context(postgres.throwaway_cluster())
    return postgres.existing_server(db)


class _Counter:
    """Starts the instruction count, once, and hands it out (None when not counting). Started as soon as the checks
    leave a core to spare (instruction counts do not depend on load), or by the cost side."""

    def __init__(self, args, preflights: list[preflight.Preflight], server, say, stack: ExitStack):
        self.args, self.preflights, self.server, self.say, self.stack = args, preflights, server, say, stack
        self.plan, self.count = instructions.plan(args), None

    def __call__(self) -> instructions.Count | None:
        if self.plan is not None and self.count is None:
            apps = sweep.apps([p.strategy for p in self.preflights if p.ready])
            self.count = self.stack.enter_context(
                closing(instructions.Count(apps, self.plan, self.server, self.args.out, self.say))
            )
            self.count.start()
        return self.count


def _shares_the_machine(args) -> bool:
    """Whether the count may run beside other work: its plan says so, and no server-mode sweep needs both cores."""
    throughput, counting = sweep.plan(args), instructions.plan(args)
    return (
        counting is not None
        and counting.beside_throughput
        and (throughput is None or throughput.modes == ("inprocess",))
    )


def _cost(args, preflights: list[preflight.Preflight], server, say, results, count) -> bool:
    """The cost side, after the checks: throughput, and instructions per request (False when interrupted).

    A count that may share the machine has been started by the checks (`count`), or starts now, one process at
    a time on the core the in-process throughput pass leaves idle; a bigger one, or one next to a server-mode
    sweep (which needs both cores), runs after the sweep, so as not to disturb the wall clock.
    """
    throughput, counting = sweep.plan(args), instructions.plan(args)
    beside = _shares_the_machine(args)
    # The parts handle their own interruptions; this covers the moments between them.
    with finishing_on_interrupt(
        results, lambda exc: f"interrupted by {exc} during the cost measurements (throughput, instructions)"
    ) as stop:
        started = count() if beside else None
        if throughput and not sweep.attach(results, throughput, preflights, server, args.out, say, args.loadgen):
            return False
        if counting:
            alongside = "counted beside the correctness checks and the throughput pass" if beside else None
            return instructions.attach(results, started or count(), alongside, preflight.failed(preflights))
    return stop.complete


def _measure(
    args, settings: Run, preflights: list[preflight.Preflight], chosen: list, server, results, stack: ExitStack
) -> bool:
    """The checks, then the cost side; False when interrupted (every row so far is kept, the note says when)."""
    count = _Counter(args, preflights, server, settings.say, stack)

    def between(exc) -> str:
        counting = " while instructions were being counted" if count.count is not None else ""
        return f"interrupted by {exc} between two parts of the run{counting}"

    with finishing_on_interrupt(results, between) as stop:  # the parts handle their own; this covers between them
        complete = run(settings, preflights, chosen, results, count if _shares_the_machine(args) else None)
        if complete and any(p.ready for p in preflights):
            complete = _cost(args, preflights, server, settings.say, results, count)
        return complete
    return stop.complete


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
            settings = Run(
                args.out,
                args.strategies_dir,
                server.admin_url if server else "sqlite",
                args.timeout,
                args.quiet,
                max(1, args.jobs),
            )
            preflights = preflight.run(strategies, args.out / "logs", settings.jobs, settings.say)
            results = ResultsFile(
                args.out / "results.json",
                environment=environment(
                    " ".join(["python -m experiments", *map(shlex.quote, argv)]), describe_backend(server)
                ),
                strategies=[p.describe() for p in preflights],
                checks=[c.describe() for c in chosen],
            )
            where = f"PostgreSQL {server.version}" if server else "SQLite"
            print(
                f"{len(strategies)} strategies × {len(chosen)} checks on {where}, each in its own process", flush=True
            )
            complete = _measure(args, settings, preflights, chosen, server, results, stack)
            plots.write(results.doc, args.out)
            report = args.out / "REPORT.md"
            report.write_text(render.render(results.doc, matrix_link=(args.out / "MATRIX.md").exists()))
            print(matrix(results.doc), flush=True)
    except (Busy, postgres.DatabaseUnreachable, postgres.PostgresNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("interrupted before the first measurement; nothing to keep", file=sys.stderr)
        return 130
    print(("" if complete else "INCOMPLETE (interrupted): ") + f"{report}\n{results.path}", flush=True)
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
