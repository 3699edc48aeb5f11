"""The child processes of a run: where they fork from, how they are killed, and how a run stops cleanly.

Everything that can hang runs in a process of its own, leading its own process
group, so that a timeout or Ctrl-C kills it and whatever it started. The
runner, the import preflight, the throughput sweep and the instruction count
all start and stop their processes through this module.
"""

from __future__ import annotations

import multiprocessing
import os
import pkgutil
import signal
import subprocess
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from experiments.harness.discovery import ROOT


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; the run stops and keeps what it has.

    A BaseException, like KeyboardInterrupt: code that ignores errors (`shutil.rmtree(ignore_errors=True)` catches
    every Exception) must not swallow it, or a Ctrl-C at that moment would be lost.
    """


@contextmanager
def signals_interrupt():
    """Turn SIGINT and SIGTERM into Interrupted, the same clean stop for both."""

    def stop(signum, frame):
        raise Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@dataclass
class Stop:
    """Whether the part of the run under `finishing_on_interrupt` ran to its end."""

    complete: bool = True


@contextmanager
def finishing_on_interrupt(results, note: Callable[[Interrupted], str]):
    """Run a part of the run; on Ctrl-C or SIGTERM, mark the results incomplete with `note(exc)` and carry on.

    The yielded Stop says whether the part completed: `with finishing_on_interrupt(…) as stop: …`, then
    `return stop.complete`.
    """
    stop = Stop()
    with signals_interrupt():
        try:
            yield stop
        except Interrupted as exc:
            stop.complete = False
            results.finish(complete=False, note=note(exc))


def kill_group(proc: multiprocessing.Process | subprocess.Popen) -> None:
    """Kill a process that leads its own process group, and everything it started; reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait() if isinstance(proc, subprocess.Popen) else proc.join()


def exit_reason(code: int) -> str:
    """`exited with code 3` or `was killed by signal 9`, for a process's exit status as Python reports it."""
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


# Check and preflight processes are forked from a server that has already imported the heavy libraries: a fresh
# process per strategy × check, without paying ~1.5 s of imports for each of them.
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload(
    [
        "fastapi",
        "sqlalchemy.orm",
        "sqlalchemy.ext.asyncio",
        "httpx",
        "anyio",
        "pytest",
        "asgi_lifespan",
        "pydantic",
        "psycopg",
        "asyncpg",
        "aiosqlite",
        "uvicorn",
        "anyio.pytest_plugin",
        "conftest",
        *(
            f"experiments.{m.name}"
            for m in pkgutil.iter_modules([str(ROOT / "experiments")])
            if m.name.startswith("test_")
        ),
    ]
)


def stop_forks() -> None:
    """Stop the fork server and the resource tracker, and reap them. Left alone they notice that the run has gone
    only after it exited, and outlive it for a moment as orphans."""
    from multiprocessing import forkserver, resource_tracker

    forkserver._forkserver._stop()  # what CPython's own tests call; there is no public way to stop them
    resource_tracker._resource_tracker._stop()
