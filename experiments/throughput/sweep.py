"""Throughput and latency per strategy, as ratios to two baselines measured in the same run.

On 2 shared cores a number alone swings 15-40 % from run to run, so nothing here
is read alone: every app (the strategies and the baselines in
experiments/baselines/) runs in a long-lived process of its own, and each round
visits every (route, concurrency) cell with the apps in a fresh random order, so
that a strategy and the baselines it is divided by are measured side by side.
A ratio is taken per round, and the report gives the median over rounds with a
distribution-free interval (`median_interval`); an interval containing 1 reads
"indistinguishable". Rounds, not longer measurements, are what narrow it: the
full plan has 7, so that its interval covers 98 %, and two runs of the same
machine should then overlap on nearly every ratio.

Modes: `inprocess` (the app behind httpx's ASGI transport, client and app in one
process: framework + session cost only) and `server` (uvicorn on loopback, loaded
by wrk when installed, else by a Python load generator in a process of its own).
Every process gets its own process group and a hard timeout, and is killed when
its mode ends, also on Ctrl-C. An app that fails gets an `errors` entry with the
reason; the others are still measured.

Connection hold time (hold.py): in-process, each round ends with a batch of
sequential requests per app and tag path (`Sweep._hold`, apps in a fresh random
order), summarised like the ratios (`summarize_hold`: per-round medians, the
ratio to the raw connection per round, `median_interval` over rounds); in server
mode the uvicorn worker's readings around each measurement give the hold under
load and the ceiling the pool implies (`summarize_under_load`).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from experiments.harness import discovery, preflight
from experiments.harness.postgres import Cluster, free_port
from experiments.harness.processes import finishing_on_interrupt
from experiments.harness.serving import Database, database_name
from experiments.throughput import baselines, hold, session_cost
from experiments.throughput.baselines import NO_DB, RAW
from experiments.throughput.plan import App, Plan
from experiments.throughput.routes import KINDS
from experiments.throughput.summaries import CEILING_TOLERANCE, summarize, summarize_hold, summarize_under_load
from experiments.throughput.workers import START_TIMEOUT_S, WRK_LUA, Failed, Target, Worker, python_client, wrk_client
from report import answers
from report.format import Throughput

PLANS = {
    # The quick plan: one level, no session-cost benchmark (`--instructions quick` counts the CPU per request beside it).
    "quick": Plan(
        levels=(8,), rounds=4, seconds=0.05, warmup_s=0.02, modes=("inprocess",), benchmark_rounds=0, answers_only=True
    ),
    "full": Plan(
        levels=(1, 8, 32, 64), rounds=7, seconds=0.2, warmup_s=0.05, modes=("inprocess", "server"), benchmark_rounds=30
    ),
}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("throughput (see docs/cost.md)")
    group.add_argument(
        "--throughput",
        choices=["quick", "full", "off"],
        default="quick",
        help="quick (default: in-process, 8 clients, 4 rounds, the answers and the baselines only), full (both modes, 4 levels, 7 rounds, "
        "~25 min) or off",
    )
    group.add_argument(
        "--quick", dest="throughput", action="store_const", const="quick", help="same as --throughput quick"
    )
    group.add_argument("--no-checks", action="store_true", help="measure throughput only, run no correctness check")
    group.add_argument(
        "--levels", type=lambda s: tuple(int(x) for x in s.split(",")), help="concurrency levels, e.g. 1,8,32"
    )
    group.add_argument("--rounds", type=int, help="rounds per cell")
    group.add_argument("--seconds", type=float, help="seconds per measurement")
    group.add_argument("--modes", type=lambda s: tuple(s.split(",")), help="inprocess,server")
    group.add_argument(
        "--session-cost-rounds",
        dest="benchmark_rounds",
        type=int,
        help="pytest-benchmark rounds of the per-request session cost (quick: none, full: 30)",
    )
    group.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="client for server mode: wrk when installed (auto), or the Python one",
    )
    group.add_argument(
        "--hold-requests",
        dest="hold_requests",
        type=int,
        help="connection hold time: sequential in-process requests per app, tag path and round "
        "(default 20; 0 turns it off)",
    )


def plan(args) -> Plan | None:
    if args.throughput == "off":
        return None
    chosen = PLANS[args.throughput]
    overrides = {
        k: getattr(args, k) for k in ("levels", "rounds", "seconds", "modes", "benchmark_rounds") if getattr(args, k)
    }
    if getattr(args, "hold_requests", None) is not None:
        overrides["hold_requests"] = args.hold_requests
    return Plan(**{**asdict(chosen), **overrides})


def apps(strategies: list[discovery.Strategy]) -> list[App]:
    found = {s.id: s for s in discovery.discover(baselines.DIR)}
    return [App(NO_DB, found["no_database"], True), App(RAW, found["raw_connection"], True)] + [
        App(s.id, s, False) for s in strategies
    ]


def _database(app: App, mode: str, server: Cluster | None, scratch: Path) -> Database:
    name = database_name(f"sb_tp_{mode}_{app.id}")
    return Database.postgresql(server, name) if server else Database.sqlite(scratch / f"{name}.db")


class Sweep:
    """One throughput run: starts the targets of a mode, runs the rounds, records samples and errors."""

    def __init__(self, plan: Plan, apps: list[App], server: Cluster | None, out: Path, say, loadgen: str):
        self.plan, self.apps, self.server, self.say = plan, apps, server, say
        self.logs = out / "logs" / "throughput"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.samples: dict = {}
        self.hold_samples: dict = {}  # (app, kind, path) -> {round: hold.batch() sample}
        self.hold_s = 0.0  # wall time of the hold batches, all rounds
        self.errors: list[dict] = []
        self.clients: dict[str, str] = {}
        self.loadgen = "wrk" if loadgen == "wrk" or (loadgen == "auto" and shutil.which("wrk")) else "python"

    def _error(self, mode: str, app: App, reason: str) -> None:
        self.errors.append({"mode": mode, "app": app.id, "reason": reason})
        self.say(f"  {mode} × {app.id}: ERROR: {reason}")

    def _start(self, mode: str, stack: ExitStack, scratch: Path) -> list[Target]:
        """Start every app of this mode at once (startup is not measured), then wait for each to be ready."""
        client = self._client(stack, scratch) if mode == "server" else None
        started = []
        for app in self.apps:
            try:
                env = {**os.environ, **_database(app, mode, self.server, scratch).environ}
            except Exception as exc:  # a database that cannot be created for one app costs that app only
                self._error(mode, app, f"could not create its database: {type(exc).__name__}: {exc}")
                continue
            log = self.logs / f"{mode}-{app.id.replace(':', '-')}.log"
            if mode == "inprocess":
                target = Target(
                    app,
                    [sys.executable, "-m", "experiments.throughput.traffic", "inprocess", str(app.strategy.path)],
                    env,
                    log,
                )
            else:
                port = free_port()
                argv = [
                    sys.executable,
                    "-m",
                    "experiments.throughput.traffic",
                    "serve",
                    str(app.strategy.path),
                    str(port),
                ]
                target = Target(app, argv, env, log, port, client)
            stack.callback(target.close)
            started.append(target)
        ready, deadline = [], time.monotonic() + START_TIMEOUT_S
        for target in started:
            try:
                target.ready(deadline)
                ready.append(target)
            except Failed as exc:
                target.close()
                self._error(mode, target.app, str(exc))
        return ready

    def _client(self, stack: ExitStack, scratch: Path):
        if self.loadgen == "wrk":
            script = scratch / "sessionbench.lua"
            script.write_text(WRK_LUA)
            version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10).stdout.split("[")[0]
            self.clients["server"] = f"{version.strip()} (-t1), in its own process"
            return wrk_client(script)
        worker = Worker(
            [sys.executable, "-m", "experiments.throughput.traffic", "remote"],
            dict(os.environ),
            self.logs / "loadgen.log",
        )
        stack.callback(worker.close)
        worker.answer(START_TIMEOUT_S)
        self.clients["server"] = (
            "Python httpx load generator (experiments.throughput.traffic remote), in its own process"
        )
        return python_client(worker)

    def _cells(self, targets: list[Target]) -> list[tuple[Target, str, str, str]]:
        """(target, kind, method, path) for every path each app is measured on."""
        every = self.plan.answers_only  # the quick pass costs each answer on each kind of endpoint it serves
        wanted = {p for t in targets if not t.app.baseline for ps in t.paths(set(), every).values() for p in ps}
        return [
            (t, kind, KINDS[kind][1], p) for t in targets for kind, ps in t.paths(wanted, every).items() for p in ps
        ]

    def mode(self, mode: str) -> None:
        self.clients.setdefault(mode, "httpx ASGI transport, in the app's process")
        scratch = Path(tempfile.mkdtemp(prefix="sessionbench-tp-"))
        try:
            with ExitStack() as stack:
                targets = self._start(mode, stack, scratch)
                cells = self._cells(targets)
                self.say(
                    f"  {mode}: {len(targets)} apps ready, {len(cells)} app × route pairs, "
                    f"{len(self.plan.levels)} levels, {self.plan.rounds} rounds (+1 warm-up)"
                )
                failed: set = set()  # apps, and (app, path, level) cells, that broke: not measured again
                for round in range(-1, self.plan.rounds):  # round -1 warms every app and route up, and is dropped
                    self._round(mode, round, cells, failed)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _round(self, mode: str, round: int, cells: list, failed: set) -> None:
        levels = self.plan.levels[-1:] if round < 0 else self.plan.levels
        paths = list(dict.fromkeys((kind, method, path) for _, kind, method, path in cells))
        for kind, method, path in paths:
            for level in levels:
                here = [
                    t
                    for t, k, _, p in cells
                    if (k, p) == (kind, path) and not {t.app.id, (t.app.id, path, level)} & failed
                ]
                random.Random(f"{mode}-{round}-{path}-{level}").shuffle(here)
                for target in here:
                    prefix = f"{mode[0]}{round}c{level}{path.replace('/', '')}"  # unique keys across cells
                    try:
                        sample = target.measure(method, path + KINDS[kind][2], level, self.plan, prefix)
                    except Failed as exc:
                        failed.add((target.app.id, path, level))
                        self._error(mode, target.app, f"{method} {path} at {level} concurrent: {exc}")
                        self._restart(mode, target, failed)
                        continue
                    if round >= 0:
                        self.samples.setdefault((mode, target.app.id, kind, path, level), []).append(sample)
        if mode == "inprocess" and round >= 0 and self.plan.hold_requests > 0:
            self._hold(mode, round, cells, failed)
        self.say(f"  {mode} round {round + 1}/{self.plan.rounds} done" if round >= 0 else f"  {mode} warm-up done")

    def _hold(self, mode: str, round: int, cells: list, failed: set) -> None:
        """Connection hold time: every app's batch of sequential requests on each tag path whose endpoint is of its
        kind, kind by kind, the apps in a fresh random order each round (so a strategy and the raw connection it is
        divided by are measured seconds apart)."""
        targets, started = list(dict.fromkeys(t for t, *_ in cells)), time.monotonic()
        for kind in discovery.PATTERN_ROUTES:
            here = [t for t in targets if kind in t.kinds and not {t.app.id, (t.app.id, "hold", kind)} & failed]
            random.Random(f"{mode}-{round}-hold-{kind}").shuffle(here)
            for target in here:
                path = target.kinds[kind]
                try:
                    sample = target.hold(path, self.plan.hold_requests)
                except Failed as exc:
                    failed.add((target.app.id, "hold", kind))
                    self._error(mode, target.app, f"hold time, GET {path} sequential: {exc}")
                    self._restart(mode, target, failed)
                    continue
                self.hold_samples.setdefault((target.app.id, kind, path), {})[round] = sample
        self.hold_s += time.monotonic() - started

    def _restart(self, mode: str, target: Target, failed: set) -> None:
        try:
            target.restart()
        except Failed as exc:
            failed.add(target.app.id)
            self._error(mode, target.app, f"could not be restarted, no further measurement: {exc}")


def attach(results, plan: Plan, preflights: list, server: Cluster | None, out: Path, say, loadgen: str) -> bool:
    """Measure the strategies the import preflight found ready and add the `throughput` part to the results, the
    ones it did not listed with its reason; False when interrupted (Ctrl-C or SIGTERM)."""
    strategies = [p.strategy for p in preflights if p.ready and not p.strategy.ablation_of]  # variants: verdicts only
    if plan.answers_only and results.doc["results"]:  # the quick pass orders the answers; bench measures every row
        wanted = set(answers.candidates(results.doc))
        strategies = [s for s in strategies if s.id in wanted]
        if not strategies:  # baselines alone order nothing
            say("throughput: no strategy of this run passes every check of a kind of app, so none is costed")
            return True
    say(f"throughput ({', '.join(plan.modes)}): {len(strategies)} strategies and 2 baselines")
    with finishing_on_interrupt(results, lambda exc: f"interrupted by {exc} during the throughput measurement") as stop:
        part = run(plan, strategies, server, out, say, loadgen)
        part["errors"] = [{"mode": "import preflight", **e} for e in preflight.failed(preflights)] + part["errors"]
        results.attach("throughput", part)
    return stop.complete


def run(
    plan: Plan, strategies: list[discovery.Strategy], server: Cluster | None, out: Path, say, loadgen: str
) -> Throughput:
    """Measure every app in every mode of the plan, then the session cost; the `throughput` part of the results."""
    started = time.monotonic()
    chosen = apps(strategies)
    sweep = Sweep(plan, chosen, server, out, say, loadgen)
    load_before = os.getloadavg()
    for mode in plan.modes:
        sweep.mode(mode)
    # A cell that broke in a later round has fewer samples than rounds: keep only cells measured in every round.
    samples = {k: v for k, v in sweep.samples.items() if len(v) == plan.rounds}
    holds = summarize_hold(sweep.hold_samples, [a.id for a in chosen])
    return {
        "plan": asdict(plan),
        "apps": [a.describe() for a in chosen],
        "clients": sweep.clients,
        "server": _server_description() if "server" in plan.modes else None,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cells": summarize(samples, plan.modes),
        "hold_settings": {
            "warmup": hold.WARMUP,
            "pools": list(hold.POOLS),
            "tolerance": CEILING_TOLERANCE,
            "duration_s": round(sweep.hold_s, 1),
        },
        "hold": holds,
        "hold_under_load": summarize_under_load(samples, holds),
        "errors": sweep.errors,
        "session_cost": session_cost.run(chosen, server, out, plan.benchmark_rounds, say)
        if plan.benchmark_rounds
        else [],
        "duration_s": round(time.monotonic() - started, 1),
    }


def _server_description() -> str:
    return f"uvicorn {version('uvicorn')}, one worker, default loop and HTTP implementation, on 127.0.0.1"
