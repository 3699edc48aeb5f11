"""Running the real comparison from tests: `python -m experiments`, exactly as `nox -s compare` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.harness import discovery, postgres
from experiments.harness.standalone import CHILD_MARK
from report.results import by_pair

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixture_strategies"
# The known-good strategy is the authoring template itself: what `nox -s new` hands a user must pass everything.
TEMPLATE = ROOT / "strategies" / "_template.py"
ALIAS = 'SessionDep = Annotated[Session, Depends(get_db, scope="function")]'  # its session source
GOOD = "session_per_request"


def template_with(*edits: tuple[str, str]) -> str:
    """The template's text with each (old, new) applied, refusing an edit whose `old` is no longer in it: a silent
    no-op would turn a known-bad fixture back into the known-good template."""
    text = TEMPLATE.read_text()
    for old, new in edits:
        if old not in text:
            raise AssertionError(f"strategies/_template.py no longer contains {old!r}; update the test's edit")
        text = text.replace(old, new)
    return text


def compare(out: Path, *args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m experiments --out OUT ARGS…`, as `nox -s compare` runs it (without the throughput part unless ARGS
    ask), with `env` added to the environment."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments",
            "--out",
            str(out),
            "--throughput",
            "off",
            *args,
        ],  # checks only, unless asked
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def processes_mentioning(needle: str) -> list[int]:
    """Pids of live processes (other than this one) whose command line contains `needle`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle.encode() in cmdline.read_bytes() and int(cmdline.parent.name) != os.getpid():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def processes_in_group(pgid: int) -> list[int]:
    """Pids of processes, zombies included, in process group `pgid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command: state, ppid, pgrp, …
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


def children_left(under: Path) -> list[int]:
    """Pids of live processes started by experiments.harness.standalone (uvicorn, its reload workers, exit runs) for
    strategies or outputs under `under` (other runs on the machine carry the same mark)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            marked = f"{CHILD_MARK}=".encode() in environ.read_bytes()
            if marked and str(under).encode() in (environ.parent / "cmdline").read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def rows_by_pair(out: Path) -> dict[tuple[str, str], dict]:
    doc = json.loads((out / "results.json").read_text())
    return by_pair(doc["results"])


def known_bad() -> dict[str, list[str]]:
    """check id -> the fixture strategies that declare they must be flagged by it (FLAGGED_BY)."""
    found: dict[str, list[str]] = {}
    for path in sorted(FIXTURES.glob("[!_]*.py")):
        for check in discovery.declared(path, "FLAGGED_BY"):
            found.setdefault(check, []).append(path.stem)
    return found


# The checks the template (what `nox -s new` hands a user) cannot pass, and why; a fixture declaring GOOD_FOR is
# their known-good instead. For every other check the template must pass, next to any GOOD_FOR fixture.
TEMPLATE_CANNOT_PASS = {
    "pool_exhaustion": "a `yield` session dependency holds its connection across threadpool hops (FastAPI #3205)",
    "event_loop_blocking": "a sync Session in an `async def` endpoint queries on the event loop",
    "sync_io_on_loop": "a sync Session in an `async def` endpoint queries on the event loop",
    "multiple_databases": "it serves one database; the two-database routes are optional",
    "streaming": 'a stream reads through the session after `scope="function"` closed it, on a connection nobody returns',
}


def known_good() -> dict[str, list[str]]:
    """check id -> the strategies that must pass it: the template (unless it cannot), and fixtures declaring GOOD_FOR."""
    from experiments.checks import registry

    found = {check: [] if check in TEMPLATE_CANNOT_PASS else [GOOD] for check in registry()}
    for path in sorted(FIXTURES.glob("[!_]*.py")):
        for check in discovery.declared(path, "GOOD_FOR"):
            found.setdefault(check, []).append(path.stem)
    return found


def require_postgres() -> None:
    """Skip where PostgreSQL is not installed, except in CI, whose .ci/run installs it."""
    try:
        postgres.find_bindir()
    except postgres.PostgresNotFound as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
