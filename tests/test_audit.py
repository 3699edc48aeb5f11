"""`--audit` (nox -s audit): an app measured through its own session source, and the one-line errors for bad input.

The proof that an audit measures what a hand-wired strategy measures: audit the
app and dependency of a built-in `Depends` strategy, run it beside that
strategy, and every check the strategy serves gives both rows the same verdict.
Three strategies run by default (a sync and an async dependency, a library's,
an app's with its own route class); SESSIONBENCH_AUDIT_ALL=1 runs every one
listed in SOURCES, a getter's among them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.harness import discovery, preflight
from experiments.harness.discovery import ROOT

# Built-in strategy -> the command line naming its session sources, as its docstring and module show them.
SOURCES = {
    "yield_dependency": ["--session", "get_db"],
    "async_dependency": ["--session", "get_db"],
    "lifespan_dependency": ["--session", "get_db"],
    "async_lifespan_dependency": ["--session", "get_db"],
    "semaphore_dependency": ["--session", "get_db"],
    "threadpool_tokens": ["--session", "get_db"],
    "function_scope_dependency": ["--session", "get_db", "--scope", "function"],
    "sync_and_async_lifespan": ["--session", "get_db", "--session", "get_async_db"],
    "bounded_sync_and_async_lifespan": ["--session", "get_db", "--session", "get_async_db"],
    "middleware": ["--session", "get_db"],
    "sm_fifteen_startup_globals": ["--session", "get_db_sess"],
    "sqlmodel_tutorial": ["--session", "SessionDep"],
    "fastapi_utils_session": ["--session", "get_db"],
    "full_stack_template": ["--session", "SessionDep"],
    "fastapi_users_sqlalchemy": ["--session", "get_async_session"],
    "fastcrud_setup": ["--session", "get_session"],
    "polar_style": ["--session", "get_db_session"],
    "advanced_alchemy_manual": ["--session", "SyncDatabaseSession", "--session", "DatabaseSession"],
    "advanced_alchemy_autocommit": ["--session", "SyncDatabaseSession", "--session", "DatabaseSession"],
    "global_scoped_session": ["--session-from", "Session"],  # the registry, called in the endpoint
}
QUICK = ("bounded_sync_and_async_lifespan", "fastcrud_setup", "polar_style")


def _audit(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments", "--throughput", "off", "--quiet", "--out", str(tmp_path), *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def verdicts(doc: dict, strategy: str) -> dict[tuple[str, str | None], str]:
    """(check, kind or None) -> outcome of one strategy's rows, where it was measured (not skipped)."""
    found = {}
    for row in doc["results"]:
        if row["strategy"] != strategy:
            continue
        for kind, part in (row.get("kinds") or {None: row}).items():
            if part["outcome"] != "skipped":
                found[(row["check"], kind)] = part["outcome"]
    return found


@pytest.mark.parametrize(
    "strategy", [s for s in SOURCES if os.environ.get("SESSIONBENCH_AUDIT_ALL") or s in QUICK]
)  # fmt: skip
def test_audit_reproduces_the_strategys_verdicts(strategy, tmp_path):
    unmet, _ = preflight.requirements(discovery.at(ROOT / "strategies" / f"{strategy}.py"))
    if unmet:
        pytest.skip(f"needs {'; '.join(unmet)}: a matrix cell installs it")
    options = SOURCES[strategy]
    sources = ("--session", "--session-from")
    named = [f"strategies.{strategy}:{o}" if flag in sources else o for flag, o in zip(["", *options], options)]
    done = _audit(tmp_path, "--audit", f"strategies.{strategy}:app", *named, "--strategy", strategy)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    audited = next(s["id"] for s in doc["strategies"] if s["id"].startswith("audit_"))
    own, through_audit = verdicts(doc, strategy), verdicts(doc, audited)
    assert "error" not in own.values() and "error" not in through_audit.values()
    differing = {k: (v, through_audit.get(k, "skipped")) for k, v in own.items() if through_audit.get(k) != v}
    assert not differing, f"(built-in, audited) verdicts differ: {differing}"


APP = """
    import os
    from fastapi import Depends, FastAPI
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(os.environ.get("MYAPP_DATABASE_URL", "sqlite:///{elsewhere}"))
    app = FastAPI()

    @app.middleware("http")
    async def session_per_request(request, call_next):
        with Session(engine) as session:
            request.state.db = session
            return await call_next(request)

    def session_of(request):
        return request.state.db

    def get_db():
        with Session(engine) as session:
            yield session

    def get_settings():
        return {{"debug": True}}

    @app.get("/items")
    def items(db: Session = Depends(get_db)):
        return []
"""


@pytest.fixture
def myapp(tmp_path) -> Path:
    """A small app of a user's, in a folder of its own, that reads its database URL from MYAPP_DATABASE_URL."""
    folder = tmp_path / "project"
    (folder / "myapp").mkdir(parents=True)
    (folder / "myapp" / "__init__.py").touch()
    (folder / "myapp" / "main.py").write_text(textwrap.dedent(APP.format(elsewhere=tmp_path / "own.db")))
    return folder


def _error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("source", [["--session", "myapp.main:get_db"], ["--session-from", "myapp.main:session_of"]])
def test_an_app_of_ones_own_is_a_row(myapp, tmp_path, source):
    done = _audit(
        tmp_path / "out", "--app-dir", str(myapp), "--audit", "myapp.main:app", *source,
        "--env", "MYAPP_DATABASE_URL={DATABASE_URL}", "--strategy", "yield_dependency", "--check", "cleanup_on_error",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert verdicts(doc, "audit_myapp_main_app") == verdicts(doc, "yield_dependency") != {}
    assert "`myapp.main:app`, audited" in (tmp_path / "out" / "REPORT.md").read_text()


def test_a_setting_that_never_reached_the_engine_is_one_line(myapp, tmp_path):
    line = _error(
        _audit(
            tmp_path / "out",
            "--app-dir",
            str(myapp),
            "--audit",
            "myapp.main:app",
            "--session",
            "myapp.main:get_db",
            "--env",
            "OTHER_DATABASE_URL={DATABASE_URL}",
        )  # fmt: skip
    )
    assert "OTHER_DATABASE_URL" in line and "never reached the engine" in line and "own.db" in line


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--audit", "myapp.main:app", "--session", "myapp.main:get_settings"], "gives a dict, not a Session"),
        (["--audit", "myapp.nowhere:app", "--session", "myapp.main:get_db"], "myapp.nowhere does not import"),
        (["--audit", "myapp.main:application", "--session", "myapp.main:get_db"], "has no application"),
        (["--audit", "myapp.main:get_db", "--session", "myapp.main:get_db"], "not a FastAPI application"),
        (["--audit", "myapp.main", "--session", "myapp.main:get_db"], "name it as module:attribute"),
        (["--audit", "myapp.main:app"], "say where its endpoints get a session"),
        (["--audit", "myapp.main:app", "--session", "myapp.main:get_db", "--env", "X={URL}"], "unknown field"),
        (["--session", "myapp.main:get_db"], "belong to --audit"),
    ],
)
def test_bad_input_is_one_line(myapp, tmp_path, argv, says):
    line = _error(
        _audit(tmp_path / "out", "--app-dir", str(myapp), "--env", "MYAPP_DATABASE_URL={DATABASE_URL}", *argv)
    )
    assert line.startswith("error: ") and says in line
