"""Running the real comparison from tests: `python -m experiments`, exactly as `nox -s compare` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def rows_by_pair(out: Path) -> dict[tuple[str, str], dict]:
    doc = json.loads((out / "results.json").read_text())
    return by_pair(doc["results"])
