"""The report: golden rendering, the results file's round trip and errors, claim verdicts, the CLI."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from experiments.checks import registry
from experiments.harness import discovery
from report import claims
from report.render import render
from report.results import LOCK_VARIABLE, SCHEMA, ResultsError, ResultsFile, load, lock_state
from tests.running import ROOT

GOLDEN = ROOT / "tests" / "golden" / "REPORT.md"


@pytest.fixture
def doc() -> dict:
    """Two strategies × two checks, one row of each outcome, an interrupted run."""
    return {
        "schema": SCHEMA,
        "complete": False,
        "note": "interrupted by SIGINT after 4 of 10 rows",
        "environment": {
            "python": "3.11.7",
            "implementation": "CPython",
            "packages": {"fastapi": "0.121.0", "sqlalchemy": "2.0.36", "asgi-lifespan": None},
            "lock": {"file": "locks/default.txt", "sha256": "0123456789abcdef" * 4, "pins": 45,
                     "differ": {"fastapi": {"locked": "0.121.1", "installed": "0.121.0"}}},
            "database": {"backend": "sqlite", "version": "3.45.1"},
            "cpu_count": 2,
            "platform": "Linux-6.1-x86_64",
            "git_sha": "a7c6598",
            "started_at": "2025-01-02T03:04:05+00:00",
            "command": "nox -s compare",
        },
        "strategies": [
            {"id": "global_scoped_session", "label": "A global thread-local scoped_session",
             "module": "strategies.global_scoped_session", "file": "strategies/global_scoped_session.py"},
            {"id": "yield_dependency", "label": "A session per request from a yield dependency",
             "module": "strategies.yield_dependency", "file": "strategies/yield_dependency.py"},
        ],
        "checks": [
            {"id": "isolation_async", "title": "Concurrent `async def` requests each get their own session",
             "measures": "50 concurrent tag-sleep-read requests", "why": "coroutines are not threads",
             "rule": "passed when foreign_tag_seen = 0", "key": ["foreign_tag_seen"], "routes": ["/async/tag"],
             "timeout_s": 60.0},
            {"id": "same_session_in_request", "title": "A dependency and its endpoint share one session",
             "measures": "20 concurrent requests", "why": "a request can span threads",
             "rule": "passed when mismatched = 0", "key": ["mismatched"], "routes": ["/same"], "timeout_s": 60.0},
        ],
        "results": [
            {"strategy": "global_scoped_session", "check": "isolation_async", "outcome": "failed",
             "metrics": {"requests": 50, "foreign_tag_seen": 49, "distinct_sessions": 1},
             "evidence": "49 of 50 requests read back another request's tag | one session.", "duration_s": 0.8},
            {"strategy": "global_scoped_session", "check": "same_session_in_request", "outcome": "error",
             "reason": "IllegalStateChangeError at session.py:12: already closing", "duration_s": 0.1},
            {"strategy": "yield_dependency", "check": "isolation_async", "outcome": "passed",
             "metrics": {"requests": 50, "foreign_tag_seen": 0, "ratio": 1.23456},
             "evidence": "0 of 50 requests read back another request's tag.", "duration_s": 0.7},
            {"strategy": "yield_dependency", "check": "same_session_in_request", "outcome": "skipped",
             "reason": "/same not served: no dependency takes the session", "duration_s": 0.0},
        ],
    }


def test_render_matches_golden(doc):
    text = render(doc)
    assert render(copy.deepcopy(doc)) == text
    if os.environ.get("SESSIONBENCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_complete_run_has_no_banner(doc):
    doc["complete"] = True
    del doc["note"]
    assert "INCOMPLETE" not in render(doc)


def test_render_links_the_matrix_when_asked(doc):
    assert "[MATRIX.md](MATRIX.md)" in render(doc, matrix_link=True)
    assert "MATRIX.md" not in render(doc)


def test_lock_state_names_the_file_its_hash_and_what_differs(tmp_path, monkeypatch):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# header\n"
        f"pytest=={pytest.__version__} \\\n    --hash=sha256:00\n    # via x\n"
        "fastapi==0.0.1 \\\n    --hash=sha256:00\n"
        "colorama==0.4.6 ; sys_platform == 'no such platform' \\\n    --hash=sha256:00\n"
    )
    monkeypatch.delenv(LOCK_VARIABLE, raising=False)
    assert lock_state() is None
    monkeypatch.setenv(LOCK_VARIABLE, str(lock))
    state = lock_state()
    assert state["file"] == str(lock) and state["sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert state["pins"] == 2  # colorama's marker does not hold here
    assert state["differ"] == {"fastapi": {"locked": "0.0.1", "installed": metadata.version("fastapi")}}


def _write(path: Path, doc: dict) -> None:
    results = ResultsFile(path, doc["environment"], doc["strategies"], doc["checks"])
    for row in doc["results"]:
        results.add(row)
    results.finish(complete=False, note=doc["note"])


def test_results_round_trip(doc, tmp_path):
    path = tmp_path / "results.json"
    _write(path, doc)
    assert load(path) == doc


@pytest.mark.parametrize(
    "content, says",
    [(None, "no such file"), ("{not json", "not JSON"), (json.dumps({"schema": 99}), "schema 99")],
)
def test_load_errors_name_the_file(tmp_path, content, says):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ResultsError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert str(path) in message and says in message and "\n" not in message


def _row(strategy, check, outcome):
    extra = {"reason": "r"} if outcome in ("error", "skipped") else {"metrics": {}, "evidence": f"{outcome} here"}
    return {"strategy": strategy, "check": check, "outcome": outcome, **extra}


CLAIM = claims.Claim("q", "who", (("s1", "c1", "passed"), ("s2", "c1", "failed")))


@pytest.mark.parametrize(
    "outcomes, verdict",
    [
        (("passed", "failed"), "supported"),
        (("failed", "passed"), "refuted"),
        (("passed", "passed"), "mixed"),
        (("passed", "error"), "not measured"),
        (("passed", None), "not measured"),
        (("passed", "skipped"), "supported"),
        (("skipped", "skipped"), "not measured"),
    ],
)
def test_judge(outcomes, verdict):
    rows = [_row(s, "c1", o) for s, o in zip(("s1", "s2"), outcomes) if o]
    got, lines = claims.judge(CLAIM, rows)
    assert got == verdict
    assert len(lines) == 2 and lines[0].startswith(f"s1 × c1: {outcomes[0]} (claim needs passed)")


def test_claims_name_known_ids():
    strategies, checks = {s.id for s in discovery.discover()}, registry()
    for claim in claims.CLAIMS:
        for strategy, check, outcome in claim.specs:
            assert strategy in strategies and check in checks and outcome in ("passed", "failed")


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "report", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_writes_report(doc, tmp_path):
    path = tmp_path / "results.json"
    _write(path, doc)
    proc = _cli(path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "REPORT.md")
    assert (tmp_path / "REPORT.md").read_text() == render(doc)


def test_cli_missing_file(tmp_path):
    proc = _cli(tmp_path / "nope.json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and str(tmp_path / "nope.json") in proc.stderr
