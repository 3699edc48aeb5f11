"""Instructions executed per request, counted under valgrind: CPU work that the machine's load does not change.

Wall-clock throughput on 2 shared cores swings from run to run; the number of
instructions a request executes does not. This counts them the way CodSpeed's
CI does: the apps are served in-process (asgi-lifespan + httpx's ASGI
transport, as the checks do) inside a pytest process running under
`valgrind --tool=callgrind --instr-atstart=no`, and pytest-codspeed switches
collection on only around each batch of requests and dumps the count when the
batch ends (one callgrind file per batch). Start-up, imports and lifespan are
never counted; every thread is (a `def` endpoint runs in the threadpool).
A batch of 0 requests, counted the same way, is subtracted, so the per-request
figure is (I(N) - I(0)) / N.

Two processes differ in ways one process cannot show (memory layout, type
caches: up to about 1 % here), so in the full plan each repeat is a valgrind
process of its own, the apps in a rotated order, and the spread over repeats is
the spread a second run would see; the quick plan keeps its repeats in one
process (a third of the cost) and its range shows batch-to-batch variation
only. `Count` runs under_valgrind.py as those pytest processes, `jobs` at a
time, in the background, each under a hard timeout in its own process group,
and `summarize` turns their callgrind dumps into the results' cells.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from experiments.harness import discovery
from experiments.harness.processes import finishing_on_interrupt, kill_group
from experiments.throughput import stats
from experiments.throughput.routes import KINDS
from report.format import InstructionCell, Instructions


@dataclass(frozen=True)
class Plan:
    kinds: tuple[str, ...]  # kinds of traffic of routes.KINDS
    levels: tuple[int, ...]  # concurrent clients
    repeats: int  # counted batches per app, path and level
    requests: int  # per counted batch
    jobs: int  # shares of the apps, counted at once
    repeats_apart: bool  # each repeat in a valgrind process of its own (the honest spread), or all in one (cheaper)
    beside_throughput: bool  # counted while the throughput pass runs (on the core it leaves idle), or after it
    warmup: int  # requests sent uncounted right before each counted batch (below)


PLANS = {
    "quick": Plan(
        kinds=("read",),
        levels=(1,),
        repeats=2,
        requests=10,
        jobs=1,
        repeats_apart=False,
        beside_throughput=True,
        warmup=5,
    ),
    "full": Plan(
        kinds=tuple(KINDS),
        levels=(1, 8),
        repeats=3,
        requests=32,
        jobs=2,
        repeats_apart=True,
        beside_throughput=False,
        warmup=10,
    ),
}
# The warm-up requests go right before each counted batch, on its path and level: the batch then sees the state of a
# steady load (worker threads started and not yet retired by anyio's 10 s idle limit, which valgrind's slowness
# would otherwise reach between batches; caches filled), not whatever the previous batch left.
UNDER_VALGRIND = Path(__file__).with_name("under_valgrind.py")  # the pytest module each counting process runs
START_S, PER_APP_S, PER_REQUEST_S = 90, 30, 0.5  # a process's hard timeout, generous for a loaded machine
CONDITIONS = {"PYTHONHASHSEED": "0"}
# The largest relative difference between two runs' figures this harness vouches for: below it a difference is not
# settled. Measured (docs/reference-runs.md): two full runs differed by at most 1.3 % on 74 figures; issue 13's bar: 2 %.
TOLERANCE = 0.02


def cases(apps: list[list[str]], plan: dict, repeats: list[int]) -> list[dict]:
    """The batches of one process, in order: app by app, level by level, an empty batch first, then repeat by repeat.

    One app is served at a time, each with an event loop and threadpool of its own, and its batches at one
    level all come before the next level's: a batch never pays for retiring threads a busier level started.
    The empty batch is counted once per app and level in a process, named for the process's first repeat:
    every batch of that process subtracts it (a batch costs as much to switch counting on and off as ten requests).
    """
    cases = []
    for app, file in apps:
        for level in plan["levels"]:
            cases.append(
                {
                    "app": app,
                    "file": file,
                    "level": level,
                    "kind": None,
                    "path": None,
                    "requests": 0,
                    "id": case_id(app, level, repeats[0], "empty"),
                }
            )
            for repeat in repeats:
                cases += [
                    {
                        "app": app,
                        "file": file,
                        "level": level,
                        "kind": kind,
                        "path": path,
                        "requests": plan["requests"],
                        "warmup": plan["warmup"],
                        "id": case_id(app, level, repeat, path),
                    }
                    for kind in plan["kinds"]
                    for path in KINDS[kind][0]
                ]
    return cases


def case_id(app: str, level: int, repeat: int, path: str) -> str:
    """A batch's test id, which names its callgrind dump."""
    return f"{app}-c{level}-r{repeat}-{path}"


def add_arguments(parser) -> None:
    group = parser.add_argument_group("instructions per request, under valgrind (see docs/cost.md)")
    group.add_argument(
        "--instructions",
        choices=["quick", "full", "off"],
        help="quick (the read route, sequential, one process at a time beside the quick throughput "
        "pass), full (every route, 1 and 8 clients, two processes at once, after the sweep; "
        "the default with --throughput full) or off (the default otherwise)",
    )
    group.add_argument("--instruction-requests", type=_positive, help="requests per counted batch")
    group.add_argument("--instruction-repeats", type=_positive, help="counted batches per app, path and level")
    group.add_argument(
        "--instruction-levels", type=lambda s: tuple(map(_positive, s.split(","))), help="clients, e.g. 1,8"
    )
    group.add_argument("--instruction-kinds", type=_kinds, help="route kinds, e.g. read,write,nodb")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(text.split(","))
    if unknown := [k for k in kinds if k not in KINDS]:
        raise argparse.ArgumentTypeError(
            f"unknown route kind {', '.join(map(repr, unknown))}; known: {', '.join(KINDS)}"
        )
    return kinds


def plan(args) -> Plan | None:
    # Counted by default only with the full sweep: beside the quick pass it held up `nox -s compare` by 1.5 minutes.
    chosen = args.instructions or ("full" if args.throughput == "full" else "off")
    if chosen == "off":
        return None
    names = {
        "requests": "instruction_requests",
        "repeats": "instruction_repeats",
        "levels": "instruction_levels",
        "kinds": "instruction_kinds",
    }
    overrides = {k: getattr(args, a) for k, a in names.items() if getattr(args, a)}
    return Plan(**{**asdict(PLANS[chosen]), **overrides})


def missing() -> str | None:
    """Why instructions cannot be counted here, with the fix; None when they can."""
    if not shutil.which("valgrind"):
        return "valgrind is not installed (Debian: `apt-get install valgrind`); instructions were not counted"
    if importlib.util.find_spec("pytest_codspeed") is None:
        return "pytest-codspeed is not installed (`nox` installs it; else `pip install pytest-codspeed`)"
    return None


def _no_aslr() -> list[str]:
    """setarch's prefix that turns address-space randomisation off, where the kernel lets it; else nothing."""
    argv = ["setarch", os.uname().machine, "--addr-no-randomize"]
    try:
        ok = (
            shutil.which("setarch") and subprocess.run([*argv, "true"], capture_output=True, timeout=10).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        ok = False
    return argv if ok else []


def _totals(dump: Path) -> tuple[str, int] | None:
    """(case id, instructions) of one callgrind dump triggered at a batch's end; None for any other dump."""
    with open(dump, "rb") as f:
        head = f.read(4096).decode(errors="replace")
        f.seek(max(0, f.seek(0, 2) - 4096))
        tail = f.read().decode(errors="replace")
    trigger = re.search(r"^desc: Trigger: Client Request: .*::test_instructions\[(.*)\]$", head, re.M)
    totals = re.search(r"^totals: (\d+)$", tail, re.M)
    return (trigger[1], int(totals[1])) if trigger and totals else None


def _counts(work: Path) -> dict[str, int]:
    """Case id -> instructions, from the dumps of the batches that ended so far (a dump still being written has no
    totals yet)."""
    return dict(filter(None, (_totals(d) for d in work.glob("*/callgrind.*.out*"))))


@dataclass
class Process:
    """One valgrind process: one share of the apps, counted for one repeat or all of them."""

    repeats: list[int]
    apps: list  # sweep.App, in the order counted
    log: Path
    proc: subprocess.Popen | None = None
    timed_out: bool = False


class Count:
    """The valgrind processes of one count, run `jobs` at a time by background threads; `result()` waits for them.

    Each process has a hard timeout and its own process group; `close()` kills whatever
    still runs and starts nothing more: hold the count (an ExitStack, `closing`) before
    `start()`, so that every exit closes it, Ctrl-C included.
    """

    def __init__(self, apps, plan: Plan, server, out: Path, say):
        self.apps, self.plan, self.server, self.say = apps, plan, server, say
        self.started = time.monotonic()
        self.work = out / ".work" / "instructions"
        self.unavailable = missing()
        self.processes: list[Process] = []
        self.threads: list[threading.Thread] = []
        self._lock, self._closed = threading.Lock(), False
        if self.unavailable:
            say(f"instructions: not counted: {self.unavailable}")
            return
        shutil.rmtree(self.work, ignore_errors=True)
        logs = out / "logs" / "instructions"
        logs.mkdir(parents=True, exist_ok=True)
        self.no_aslr = _no_aslr()
        shares = [apps[i :: plan.jobs] for i in range(plan.jobs) if apps[i :: plan.jobs]]
        for repeat in range(plan.repeats) if plan.repeats_apart else [None]:
            for i, share in enumerate(shares):
                if repeat is None:
                    self.processes.append(Process(list(range(plan.repeats)), share, logs / f"valgrind-{i}.log"))
                else:  # the apps in a rotated order, so that order effects go into the spread
                    order = share[repeat % len(share) :] + share[: repeat % len(share)]
                    self.processes.append(Process([repeat], order, logs / f"valgrind-r{repeat}-{i}.log"))
        todo = iter(self.processes)
        self.threads = [threading.Thread(target=self._run, args=(todo,), daemon=True) for _ in range(len(shares))]

    def start(self) -> None:
        """Start counting; call it once the caller holds the count, so that an interruption from here on closes it."""
        for thread in self.threads:
            thread.start()
        if self.threads:
            self.say(
                f"instructions: {len(self.apps)} apps counted under valgrind in {len(self.processes)} process(es), "
                f"{len(self.threads)} at a time"
            )

    def _run(self, todo) -> None:
        while True:
            with self._lock:  # so that close() either sees this process or stops it from starting
                process = next(todo, None)
                if self._closed or process is None:
                    return
                process.proc = self._start(process)
            batches = self._batches(process)
            limit = (
                START_S
                + PER_APP_S * len(process.apps)
                + PER_REQUEST_S * batches * (self.plan.requests + self.plan.warmup)
            )
            try:
                process.proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                process.timed_out = True
                kill_group(process.proc)

    def _batches(self, process: Process) -> int:
        return len(cases([[a.id, ""] for a in process.apps], asdict(self.plan), process.repeats))

    def progress(self) -> str | None:
        """What an interruption now stops, for the run's note: `counting instructions (2 of 9 planned batches
        counted)`; None when nothing is counted (valgrind missing)."""
        if not self.processes:
            return None
        planned = sum(map(self._batches, self.processes))
        return f"counting instructions ({len(_counts(self.work))} of {planned} planned batches counted)"

    def _start(self, process: Process) -> subprocess.Popen:
        work = self.work / process.log.stem
        work.mkdir(parents=True)
        run = {
            "apps": [[a.id, str(a.strategy.path)] for a in process.apps],
            "plan": asdict(self.plan),
            "repeats": process.repeats,
        }
        env = {
            **os.environ,
            **CONDITIONS,
            "CODSPEED_ENV": "1",
            "CODSPEED_PROFILE_FOLDER": str(work),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
            "SESSIONBENCH_INSTRUCTIONS": json.dumps(run),
        }
        env.pop("CODSPEED_RUNNER_MODE", None)
        # -vv: pytest's summary keeps a failure's whole reason (the errors' source) instead of cutting it at 80 columns
        cmd = [*self.no_aslr, "valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={work}/callgrind.%p.out", sys.executable, "-m", "pytest", str(UNDER_VALGRIND), "-vv", "-rfE",
               "-p", "no:cacheprovider", "-p", "pytest_codspeed.plugin", "--codspeed", "--basetemp", str(work / "tmp"),
               "--db", self.server.admin_url if self.server else "sqlite"]  # fmt: skip
        with open(process.log, "w") as f:
            return subprocess.Popen(
                cmd, cwd=discovery.ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
            )

    def result(self) -> Instructions:
        """Wait for every process and read the counts: the `instructions` part of the results."""
        part = {"plan": asdict(self.plan), "warmup": self.plan.warmup, "apps": [a.describe() for a in self.apps]}
        if self.unavailable:
            return {**part, "unavailable": self.unavailable}
        for thread in self.threads:
            thread.join()
        counts = _counts(self.work)
        errors = _errors(self.processes, counts, self.plan)
        for e in errors:
            self.say(f"  instructions × {e['app']}: ERROR: {e['reason']}")
        shutil.rmtree(self.work, ignore_errors=True)
        duration = round(time.monotonic() - self.started, 1)
        self.say(f"instructions: counted in {duration:g} s")
        return {
            **part,
            "conditions": _conditions(self.no_aslr),
            "tolerance": TOLERANCE,
            "cells": summarize(counts, self.plan, self.apps),
            "errors": errors,
            "duration_s": duration,
        }

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for process in self.processes:
            if process.proc:
                kill_group(process.proc)


def attach(results, count: Count, alongside: str | None = None, unimported: list[dict] = ()) -> bool:
    """Wait for `count` and add the `instructions` part to the results, with the strategies the import preflight
    could not import (`unimported`) among its errors; False when interrupted (Ctrl-C or SIGTERM)."""

    def stopped(exc) -> str:
        counted = count.progress() or "counting instructions"  # before close(): the batches counted until now
        count.close()
        return f"interrupted by {exc} while {counted}"

    with finishing_on_interrupt(results, stopped) as stop:
        part = count.result()
    if not stop.complete:
        return False
    if "errors" in part:  # absent when valgrind is not installed: then nothing was counted, and it says so
        part["errors"] = [*unimported, *part["errors"]]
    results.attach("instructions", {**part, **({"alongside": alongside} if alongside else {})})
    return True


def _errors(processes: list[Process], counts: dict, plan: Plan) -> list[dict]:
    """One entry per app some process left uncounted: the test's failure, a timeout, or how the process ended."""
    errors = {}
    for p in processes:
        failures = [
            line for line in p.log.read_text(errors="replace").splitlines() if line.startswith(("FAILED", "ERROR"))
        ]
        for app in p.apps:
            if not p.timed_out and any(c["id"] in counts for c in cases([[app.id, ""]], asdict(plan), p.repeats)):
                continue
            why = next((line.split(" - ", 1)[-1] for line in failures if f"[{app.id}-" in line), None)
            how = (
                "timed out under valgrind (process killed)"
                if p.timed_out
                else why or f"no count (exit {p.proc.returncode})"
            )
            errors.setdefault(app.id, {"app": app.id, "reason": f"{how}; see {p.log}"})
    return list(errors.values())


def _conditions(no_aslr: list[str]) -> dict:
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    return {
        "valgrind": f"{valgrind} callgrind, collection on only around each batch",
        "counter": f"pytest-codspeed {version('pytest-codspeed')} (garbage collection off during a batch)",
        "PYTHONHASHSEED": CONDITIONS["PYTHONHASHSEED"],
        "ASLR": "off (setarch -R)" if no_aslr else "on (setarch could not turn it off)",
    }


def summarize(counts: dict, plan: Plan, apps) -> list[InstructionCell]:
    """One cell per (app, kind, path, level): instructions per request over repeats, and per-repeat ratios to the baselines."""
    per: dict[tuple, dict[int, float]] = {}
    empty: dict[tuple, list[int]] = {}
    for repeat in range(plan.repeats):
        first = repeat if plan.repeats_apart else 0  # the repeat whose process counted the empty batch (cases)
        for case in cases([[a.id, ""] for a in apps], asdict(plan), [repeat]):
            zero = counts.get(case_id(case["app"], case["level"], first, "empty"))
            if zero is None:
                continue
            if not case["requests"]:
                if repeat == first:
                    empty.setdefault((case["app"], case["level"]), []).append(zero)
            elif case["id"] in counts:
                key = (case["app"], case["kind"], case["path"], case["level"])
                per.setdefault(key, {})[repeat] = (counts[case["id"]] - zero) / case["requests"]
    cells = []
    for (app, kind, path, level), by_repeat in per.items():
        cell: InstructionCell = {
            "app": app,
            "kind": kind,
            "path": path,
            "concurrency": level,
            "repeats": len(by_repeat),
            "per_request": stats.value_range(list(by_repeat.values())),
            "per_repeat": [by_repeat[r] for r in sorted(by_repeat)],
            "empty_batch": stats.value_range(empty[app, level]),
        }
        cell |= stats.vs_baselines(app, by_repeat, lambda base: per.get((base, kind, path, level)), stats.value_range)
        cells.append(cell)
    return cells
