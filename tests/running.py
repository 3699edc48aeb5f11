"""Running the real comparison from tests: `python -m experiments`, exactly as `nox -s compare` does."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.harness import postgres
from experiments.harness.standalone import CHILD_MARK
from report.results import by_pair

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixture_strategies"
# The known-good strategy is the authoring template itself: what `nox -s new` hands a user must pass everything.
TEMPLATE = ROOT / "strategies" / "_template.py"
GOOD = "session_per_request"


def compare(out: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m experiments --out OUT ARGS…`, as `nox -s compare` runs it (without the throughput part unless ARGS ask)."""
    return subprocess.run(
        [sys.executable, "-m", "experiments", "--out", str(out), "--throughput", "off", *args],  # checks only, unless asked
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
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


def children_left() -> list[int]:
    """Pids of live processes started by experiments.harness.standalone (uvicorn, its reload workers, exit runs)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"{CHILD_MARK}=".encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def rows_by_pair(out: Path) -> dict[tuple[str, str], dict]:
    doc = json.loads((out / "results.json").read_text())
    return by_pair(doc["results"])


def declared(path: Path, name: str) -> tuple[str, ...]:
    """A fixture strategy's module-level tuple `name` (FLAGGED_BY, GOOD_FOR), read without importing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return ()


def known_bad() -> dict[str, list[str]]:
    """check id -> the fixture strategies that declare they must be flagged by it (FLAGGED_BY)."""
    found: dict[str, list[str]] = {}
    for path in sorted(FIXTURES.glob("[!_]*.py")):
        for check in declared(path, "FLAGGED_BY"):
            found.setdefault(check, []).append(path.stem)
    return found


def known_good() -> dict[str, str]:
    """check id -> the strategy that must pass it: a fixture declaring GOOD_FOR, else the template."""
    found = {}
    for path in sorted(FIXTURES.glob("[!_]*.py")):
        for check in declared(path, "GOOD_FOR"):
            found[check] = path.stem
    return found


def require_postgres() -> None:
    """Skip where PostgreSQL is not installed, except in CI, whose .ci/run installs it."""
    try:
        postgres.find_bindir()
    except postgres.PostgresNotFound as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
