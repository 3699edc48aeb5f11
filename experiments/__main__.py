"""`python -m experiments`: run the comparison and write results/results.json and results/REPORT.md.

Exit status: 0 when the comparison ran (strategies failing checks is a finding,
not an error), 2 for bad input, 130 when interrupted (the partial results and
a report marked incomplete are still written), 1 when the harness itself broke.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

from experiments import checks
from experiments.harness import ablation, audit, discovery, postgres, preflight
from experiments.harness.discovery import ContractError
from experiments.harness.processes import Interrupted, finishing_on_interrupt, stop_forks
from experiments.harness.runner import Busy, Run, lock, run, terminal_table
from experiments.harness.serving import describe_backend
from experiments.throughput import instruction_count, sweep
from report import files
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
    parser.add_argument(
        "--ablation", choices=("on", "off"), default="on",
        help="also measure each strategy that declares INGREDIENTS with each one switched off (default on)",
    )  # fmt: skip
    audit = parser.add_argument_group(
        "auditing an app of yours (nox -s audit -- APP ...): its row beside the strategies chosen above"
    )
    audit.add_argument("--audit", metavar="MODULE:APP", help="the FastAPI app to measure, e.g. myapp.main:app")
    audit.add_argument(
        "--session", action="append", default=[], metavar="MODULE:DEPENDENCY",
        help="the dependency its endpoints take the session from (a callable, an Annotated alias or Depends(...)); "
        "one giving a Session and one giving an AsyncSession where the app has both",
    )  # fmt: skip
    audit.add_argument(
        "--session-from", action="append", default=[], metavar="MODULE:GETTER",
        help="instead, a callable returning the request's session, given the Request or nothing "
        "(for a session kept by middleware, in request.state or a registry)",
    )  # fmt: skip
    audit.add_argument(
        "--env", action="append", default=[], metavar="NAME=TEMPLATE",
        help="a setting of the app pointed at the harness's database, e.g. MYAPP_DATABASE_URL={DATABASE_URL} "
        "(fields: {DATABASE_URL}, {ASYNC_DATABASE_URL}, and the parts {DATABASE_HOST}, {DATABASE_PORT}, "
        "{DATABASE_USER}, {DATABASE_PASSWORD}, {DATABASE_NAME})",
    )  # fmt: skip
    audit.add_argument(
        "--scope", choices=("request", "function"),
        help="the Depends(scope=...) the app's routes give --session dependencies (FastAPI 0.121+; default: FastAPI's)",
    )  # fmt: skip
    audit.add_argument("--app-dir", type=Path, help="the folder the app imports from (default: the current one)")
    audit.add_argument(
        "--route-class", metavar="MODULE:CLASS",
        help="its endpoints' route class, where none of its routes shows it (default: the one its routes use)",
    )  # fmt: skip
    audit.add_argument(
        "--sub-app", metavar="MODULE:APP", help="the mounted sub-application its endpoints are served by"
    )  # fmt: skip
    audit.add_argument(
        "--background-session", metavar="MODULE:FACTORY",
        help="the context manager its background tasks open their own session from (default: the request's)",
    )  # fmt: skip
    sweep.add_arguments(parser)
    instruction_count.add_arguments(parser)
    return parser.parse_args(argv)


def _server(db: str, stack: ExitStack) -> postgres.Cluster | None:
    """None for SQLite; a throwaway cluster (stopped when the stack closes) or the user's server."""
    if db == "sqlite":
        return None
    if db == "postgresql":
        return stack.enter_context(postgres.throwaway_cluster())
    return postgres.existing_server(db)


@dataclass(frozen=True)
class Plan:
    """The run's shape, read once from the command line and passed on: the checks, the throughput pass, the
    instruction count, and whether the count shares the machine with the other parts."""

    checks: list
    throughput: sweep.Plan | None
    counting: instruction_count.Plan | None

    @classmethod
    def of(cls, args) -> Plan:
        return cls([] if args.no_checks else checks.select(args.check), sweep.plan(args), instruction_count.plan(args))

    @property
    def count_beside(self) -> bool:
        """Whether the count may run beside other work: its plan says so, and no server-mode sweep needs both
        cores."""
        return (
            self.counting is not None
            and self.counting.beside_throughput
            and (self.throughput is None or self.throughput.modes == ("inprocess",))
        )


class _Counter:
    """Starts the instruction count, once, and hands it out (None when not counting). Started as soon as the checks
    leave a core to spare (instruction counts do not depend on load), or by the cost side."""

    def __init__(self, plan: Plan, preflights: list[preflight.Preflight], server, out: Path, say, stack: ExitStack):
        self.plan, self.preflights, self.server, self.out, self.say, self.stack = (
            plan.counting, preflights, server, out, say, stack
        )  # fmt: skip
        self.count = None

    def __call__(self) -> instruction_count.Count | None:
        if self.plan is not None and self.count is None:
            apps = sweep.apps([p.strategy for p in self.preflights if p.ready and not p.strategy.ablation_of])
            self.count = self.stack.enter_context(
                closing(instruction_count.Count(apps, self.plan, self.server, self.out, self.say))
            )
            self.count.start()
        return self.count


def _cost(plan: Plan, args, preflights: list[preflight.Preflight], server, say, results, count) -> bool:
    """The cost side, after the checks: throughput, and instructions per request (False when interrupted).

    A count that may share the machine has been started by the checks (`count`), or starts now, one process at
    a time on the core the in-process throughput pass leaves idle; a bigger one, or one next to a server-mode
    sweep (which needs both cores), runs after the sweep, so as not to disturb the wall clock.
    """
    # The parts handle their own interruptions; this covers the moments between them.
    with finishing_on_interrupt(
        results, lambda exc: f"interrupted by {exc} during the cost measurements (throughput, instructions)"
    ) as stop:
        started = count() if plan.count_beside else None
        if plan.throughput and not sweep.attach(
            results, plan.throughput, preflights, server, args.out, say, args.loadgen
        ):
            return False
        if plan.counting:
            alongside = "counted beside the correctness checks and the throughput pass" if plan.count_beside else None
            return instruction_count.attach(results, started or count(), alongside, preflight.failed(preflights))
    return stop.complete


def _measure(
    plan: Plan, args, settings: Run, preflights: list[preflight.Preflight], server, results, stack: ExitStack
) -> bool:
    """The checks, then the cost side; False when interrupted (every row so far is kept, the note says when)."""
    count = _Counter(plan, preflights, server, args.out, settings.say, stack)

    def between(exc) -> str:
        counting = " while instructions were being counted" if count.count is not None else ""
        return f"interrupted by {exc} between two parts of the run{counting}"

    with finishing_on_interrupt(results, between) as stop:  # the parts handle their own; this covers between them
        complete = run(settings, preflights, plan.checks, results, count if plan.count_beside else None)
        if complete and any(p.ready for p in preflights):
            complete = _cost(plan, args, preflights, server, settings.say, results, count)
        return complete
    return stop.complete


def _audited(args) -> audit.Spec | None:
    """The app to audit, checked for form; its folder goes on the import path of this run and its processes."""
    if not args.audit:
        if args.session or args.session_from or args.env or args.scope or args.route_class or args.sub_app:
            raise audit.AuditError(
                "--session, --session-from, --env, --scope, --route-class and --sub-app belong to --audit MODULE:APP"
            )
        return None
    app_dir = (args.app_dir or Path.cwd()).resolve()
    if not app_dir.is_dir():
        raise audit.AuditError(f"--app-dir {args.app_dir}: no such folder")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(app_dir), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(app_dir))
    declared = {"route_class": args.route_class, "sub_app": args.sub_app, "background": args.background_session}
    return audit.spec(args.audit, args.session, args.session_from, args.env, app_dir, args.scope, declared)


def main(argv: list[str]) -> int:
    args = _args(argv)
    try:
        audited = _audited(args)
        # `--strategy <the audited row's id>` alone: that row without any built-in one beside it
        names = [n for n in args.strategy if audited is None or n != audited.id]
        strategies = (
            [] if args.strategy and not names else discovery.select(discovery.discover(args.strategies_dir), names)
        )
        plan = Plan.of(args)
    except (discovery.UnknownStrategy, checks.UnknownCheck, audit.AuditError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not strategies and audited is None:
        print(f"error: no strategy modules in {args.strategies_dir}", file=sys.stderr)
        return 2

    try:
        with lock(args.out), ExitStack() as stack:
            stack.callback(stop_forks)
            server = _server(args.db, stack)
            if audited is not None:
                strategies = [discovery.at(audit.prepare(audited, server, args.out)), *strategies]
            if args.ablation == "on" and plan.checks:
                strategies += ablation.variants(strategies, args.out / "ablation")
            settings = Run(
                args.out,
                server.admin_url if server else "sqlite",
                args.timeout,
                args.quiet,
                max(1, args.jobs),
            )
            preflights = preflight.run(strategies, args.out / "logs", settings.jobs, settings.say, server)
            if audited is not None and (broken := next((p for p in preflights if p.strategy.id == audited.id), None)):
                if broken.outcome == "error":  # every row of it would be an error: bad input, not a measurement
                    print(f"error: {broken.reason}", file=sys.stderr)
                    return 2
            results = ResultsFile(
                args.out / "results.json",
                environment=environment(
                    " ".join(["python -m experiments", *map(shlex.quote, argv)]), describe_backend(server)
                ),
                strategies=[p.describe() for p in preflights],
                checks=[c.describe() for c in plan.checks],
            )
            where = f"PostgreSQL {server.version}" if server else "SQLite"
            print(
                f"{len(strategies)} strategies × {len(plan.checks)} checks on {where}, each in its own process",
                flush=True,
            )
            complete = _measure(plan, args, settings, preflights, server, results, stack)
            report = files.write(results.doc, args.out)
            print(terminal_table(results.doc), flush=True)
    except (Busy, postgres.DatabaseUnreachable, postgres.PostgresNotFound, audit.AuditError, ContractError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("interrupted before the first measurement; nothing to keep", file=sys.stderr)
        return 130
    print(("" if complete else "INCOMPLETE (interrupted): ") + f"{report}\n{results.path}", flush=True)
    return 0 if complete else 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
