"""Runs every strategy × check in a subprocess of its own, with a hard timeout, and keeps every row.

One pytest process per strategy × check: a strategy that hangs the event loop,
deadlocks its pool or kills its process costs one `error` row, never the run,
and no state (module-level engines, thread-local sessions, worker threads)
leaks from one check into the next. Each process gets its own process group
so that a timeout or Ctrl-C kills everything it started.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING, Protocol

from experiments.checks import MODULES, NEEDS_SERVER, Check
from experiments.harness.discovery import ROOT, Strategy
from experiments.harness.processes import FORKS, Interrupted, exit_reason, finishing_on_interrupt, kill_group
from report.format import ERROR, FAILED, PASSED, SKIPPED, Document, Row
from report.markdown import key_numbers
from report.results import ResultsFile, by_pair, combine, measured_parts, per_kind

if TYPE_CHECKING:
    from experiments.harness.preflight import Preflight

WORDS = {PASSED: "passed", FAILED: "FAILED", ERROR: "ERROR", SKIPPED: "skipped"}  # an outcome in the terminal
SHARED_NICE = 10  # niceness of the checks that run several at a time, beside other work
CORES = len(os.sched_getaffinity(0))  # timing checks run one per core: a check process is one busy thread at a time


class Beside(Protocol):
    """Work that `run`'s `shared()` starts beside the checks (the instruction count)."""

    def progress(self) -> str | None:
        """What an interruption now stops, for the run's note (`counting instructions (…)`); None when nothing runs."""


class Busy(Exception):
    """Another run is writing to the same output directory."""


@dataclass
class Run:
    out: Path
    db: str
    timeout_s: float | None  # overrides each check's own timeout when set
    quiet: bool = False
    jobs: int = 4
    live: set = field(default_factory=set)  # check processes running now
    cpus: Queue = field(default_factory=lambda: _queue(sorted(os.sched_getaffinity(0))))  # free for a timing check

    def kill_all(self) -> None:
        for proc in list(self.live):
            kill_group(proc)

    @property
    def work(self) -> Path:
        return self.out / ".work" / "checks"  # the cost side keeps its own scratch beside it, alive meanwhile

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def one(self, strategy: Strategy, check: Check, nice: int = 0) -> Row:
        """Measure one strategy × check in a fresh process (at niceness `nice`); return its row. A timing check's
        process is pinned to a core of its own, as pyperf pins its workers, and the row's conditions say which."""
        if check.needs_server and self.db == "sqlite":  # known before starting anything
            return {"strategy": strategy.id, "check": check.id, "outcome": SKIPPED, "reason": NEEDS_SERVER,
                    "duration_s": 0.0}  # fmt: skip
        if not check.exclusive:
            return self._measure(strategy, check, nice, None)
        cpu = self.cpus.get()
        try:
            row = self._measure(strategy, check, nice, cpu)
        finally:
            self.cpus.put(cpu)
        row.setdefault("conditions", {})["cpu"] = cpu
        return row

    def _measure(self, strategy: Strategy, check: Check, nice: int, cpu: int | None) -> Row:
        name = f"{strategy.id}-{check.id}"
        rows, log = self.work / f"{name}.jsonl", self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        rows.unlink(missing_ok=True)
        timeout = self.timeout_s or check.timeout_s
        args = [
            str(ROOT / (MODULES[check.id].replace(".", "/") + ".py")),  # collect only the check's own module
            "-q", "-p", "no:cacheprovider", "-p", "anyio.pytest_plugin",
            "--assert=plain",  # checks assert nothing; their modules are already imported by the fork server
            "-W", "default",  # the strategy's warnings are shown and recorded in its row, never raised
            "--strategy", str(strategy.path), "--check", check.id,
            "--db", self.db, "--rows", str(rows), "--basetemp", str(self.work / name), "--time-limit", str(timeout),
        ]  # fmt: skip
        started, found, left = time.monotonic(), [], list(check.kinds)
        while True:  # a process that ends early (unanswered requests end it) leaves its other kinds to the next
            kinds = [arg for k in left for arg in ("--kind", k)]
            timed_out, code = self._process(name, [*args, *kinds], log, timeout, nice, cpu)
            fresh = [json.loads(line) for line in rows.read_text().splitlines()][len(found) :] if rows.exists() else []
            found += fresh
            left = [k for k in left if k not in {r.get("kind") for r in found}]
            if not (fresh and left):
                break
        if not found or left:
            if timed_out:
                reason = f"timed out after {timeout:g} s (process killed)"
            else:
                reason = f"the check process {exit_reason(code)} before recording a result; see {log}"
            found += [_error(strategy, check, reason, started, kind) for kind in left or [None]]
        return combine(found) if check.kinds else found[-1]  # measured; a teardown that hung afterwards changes nothing

    def _process(
        self, name: str, args: list[str], log: Path, timeout: float, nice: int, cpu: int | None
    ) -> tuple[bool, int | None]:
        """Run one check process to its end or `timeout`: (timed out, exit code)."""
        proc = FORKS.Process(target=_pytest_in_own_session, args=(args, str(log), nice, cpu), name=name)
        proc.start()
        self.live.add(proc)
        try:
            proc.join(timeout)
            return proc.exitcode is None, proc.exitcode
        finally:
            kill_group(proc)  # also whatever it started and left behind
            self.live.discard(proc)


def _error(strategy: Strategy, check: Check, reason: str, started: float, kind: str | None = None) -> Row:
    return {
        "strategy": strategy.id,
        "check": check.id,
        **({"kind": kind} if kind else {}),
        "outcome": ERROR,
        "reason": reason,
        "duration_s": round(time.monotonic() - started, 3),
    }


def _queue(items: list) -> Queue:
    found = Queue()
    for item in items:
        found.put(item)
    return found


def _skipped(strategy: Strategy, check: Check, parts: dict) -> Row:
    """The row of a check the strategy serves no route of, per kind of endpoint as its check process would write it."""
    rows = [
        {
            "strategy": strategy.id,
            "check": check.id,
            **({"kind": kind} if kind else {}),
            "outcome": SKIPPED,
            "reason": part["reason"],
            "unsupported": part["unsupported"],
            "duration_s": 0.0,
        }  # fmt: skip
        for kind, part in parts.items()
    ]
    return combine(rows) if check.kinds else rows[0]


def _pytest_in_own_session(args: list[str], log: str, nice: int, cpu: int | None) -> None:
    """Body of a check process: its own session (so a kill reaches what it starts), on `cpu` alone when given,
    output to `log`, pytest."""
    os.setsid()
    os.nice(nice)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # its threads and whatever it starts (a uvicorn server) inherit it
    # What the fork server imported is never garbage: collections skip it, which halves a short check's CPU.
    gc.freeze()
    os.chdir(ROOT)
    # Only the harness's own plugins (-p above): a library under measurement may ship one (fastapi-sqla does).
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import pytest

    code = pytest.main(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code))


@contextmanager
def lock(out: Path):
    """Hold the output directory for this run; a second run in the same place stops with Busy."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"{out}: another run is writing here; wait for it or pass --out DIR") from None
        yield


def summary(row: Row, check: Check) -> str:
    """`passed (foreign_tag_seen=0)` or `ERROR: reason`, for the progress line."""
    mark = WORDS[row["outcome"]]
    if measured_parts(row):
        return f"{mark} ({per_kind(row, lambda m: key_numbers(m, check.key))})"
    return f"{mark}: {row.get('reason', '')}"


def terminal_table(doc: Document) -> str:
    """The verdicts as a plain-text table (strategies × checks), for the end of a terminal run."""
    found = {pair: WORDS[row["outcome"]] for pair, row in by_pair(doc["results"]).items()}
    checks = [c["id"] for c in doc["checks"]]
    width = max(len(s["id"]) for s in doc["strategies"])
    lines = [" " * width + "  " + "  ".join(checks)]
    for s in doc["strategies"]:
        cells = (found.get((s["id"], c), "-").ljust(len(c)) for c in checks)
        lines.append(s["id"].ljust(width) + "  " + "  ".join(cells))
    return "\n".join(lines)


def _unmeasured(preflight: Preflight, check: Check) -> Row:
    """The row of a strategy that preflight found not ready: every check shares its one reason."""
    return {
        "strategy": preflight.strategy.id,
        "check": check.id,
        "outcome": preflight.outcome,
        "reason": preflight.reason,
        "duration_s": 0.0,
    }


def _interrupted(exc: Interrupted, done: int, pairs: int, beside: Beside | None, starting: bool) -> str:
    """The note of a run interrupted during the checks, on one line: how many pairs were measured (when there were
    any to measure) and what was running beside them (`shared()`'s work, with how far it got, or that it was
    `starting`: the interruption came before `shared()` returned it)."""
    running = "starting to count instructions" if starting else beside.progress() if beside is not None else None
    parts = [f"after {done} of {pairs} measurements"] * bool(pairs) + [f"while {running}"] * bool(running)
    return f"interrupted by {exc} " + (", ".join(parts) or "before any measurement")


def run(
    settings: Run,
    preflights: list[Preflight],
    checks: list[Check],
    results: ResultsFile,
    shared: Callable[[], Beside | None] | None = None,
) -> bool:
    """Measure every pair of a ready strategy, adding rows as they come; False when interrupted.

    A strategy that preflight found not ready gets its rows at once, with its reason.
    Checks whose numbers are timings (`exclusive`) run first, one per core and
    nothing else beside them (a check process is one busy thread at a time:
    its event loop, or the threadpool thread that holds the GIL); then the others
    `settings.jobs` at a time (they wait on sleeps and I/O more than on the CPU, and their numbers are counts), when `shared()` is called so
    that work which does not mind sharing the machine (an instruction count) can start.
    """
    for preflight in preflights:
        if not preflight.ready:
            for check in checks:
                results.add(_unmeasured(preflight, check))
    strategies = [p.strategy for p in preflights if p.ready]
    unserved = {p.strategy.id: p.unserved for p in preflights if p.ready}
    pairs = [(s, c) for s in strategies for c in checks]
    for strategy, check in pairs:  # nothing to start a process for: skipped as the check process would skip it
        if check.id in unserved[strategy.id]:
            results.add(_skipped(strategy, check, unserved[strategy.id][check.id]))
    pairs = [(s, c) for s, c in pairs if c.id not in unserved[s.id]]
    # (pairs, at once, niceness): checks that share the machine yield the CPU to what runs beside them (their numbers
    # are counts, not timings), or work started by `shared()`, the instruction count, would hold up the run's end.
    phases = [
        ([p for p in pairs if p[1].exclusive], CORES, 0),
        ([p for p in pairs if not p[1].exclusive], settings.jobs, SHARED_NICE),
    ]
    done, started, beside, starting = 0, time.monotonic(), None, False

    def note(exc: Interrupted) -> str:  # reads the counts as they are at the interruption
        return _interrupted(exc, done, len(pairs), beside, starting)

    with finishing_on_interrupt(results, note) as stop:
        shutil.rmtree(settings.work, ignore_errors=True)
        settings.work.mkdir(parents=True)
        try:
            for batch, jobs, nice in phases:
                if nice and shared is not None:  # the timing checks are done: the machine may be shared from here
                    starting = True
                    beside, starting = shared(), False
                with ThreadPoolExecutor(jobs) as pool:
                    try:
                        for future in as_completed([pool.submit(settings.one, *pair, nice) for pair in batch]):
                            row, done = future.result(), done + 1
                            results.add(row)
                            check = next(c for c in checks if c.id == row["check"])
                            settings.say(
                                f"[{done:>3}/{len(pairs)} {time.monotonic() - started:5.0f}s] "
                                f"{row['strategy']} × {check.id}: {summary(row, check)}"
                            )
                    except BaseException:
                        pool.shutdown(wait=False, cancel_futures=True)
                        settings.kill_all()
                        raise
        finally:
            shutil.rmtree(settings.work, ignore_errors=True)
    if stop.complete:
        results.finish(complete=True)
    return stop.complete
