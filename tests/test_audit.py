"""`--audit` (nox -s audit): an app measured through its own session source, and the one-line errors for bad input.

The proof that an audit measures what a strategy measures: audit a built-in
strategy's app through what its module declares (audit_flags), run it beside
that strategy, and every check the strategy serves gives both rows the same
verdict and, for checks that count rather than time, the same key numbers, per
kind of endpoint. Five strategies run by default (a sync and async pair, a
library's, an app's route class, a sub-application's middleware, a getter);
SESSIONBENCH_AUDIT_ALL=1 runs every one in strategies/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from experiments.harness import discovery, mount, preflight
from experiments.harness.discovery import ROOT
from experiments.harness.serving import Database
from tests.running import require_postgres

# Checks the audit cannot reproduce by design: a second database's source has no flag (--session names one per kind).
NOT_AUDITED = ("multiple_databases",)
QUICK = (  # one of each way in: aliases, a route class, a sub-app, getters, a getter that fails in every request
    "gated_sync_and_async_sessions",
    "fastcrud_setup",
    "polar_style",
    "dispatch_style",
    "contextvar",
    "contextvar_def_dependency",
)
STRATEGIES = sorted(p.stem for p in (ROOT / "strategies").glob("[!_]*.py"))


def audit_flags(strategy: str) -> list[str]:
    """The command line naming what the strategy module declares, as a user would name it in an app of theirs: its
    session aliases (--session) or getters (--session-from), and its route class, sub-application and background
    session. Read from the module itself, so that every strategy's audit follows the module as it is."""
    with warnings.catch_warnings():  # what a module warns about at import is its row's business, not this test's
        warnings.simplefilter("ignore")
        module = discovery.load(discovery.at(ROOT / "strategies" / f"{strategy}.py"))
    target = lambda name: f"strategies.{strategy}:{name}"  # noqa: E731
    flags, seen = [], set()
    getters = [n for n in ("SESSION_FROM", "ASYNC_SESSION_FROM") if getattr(module, n, None) is not None]
    for name in getters:
        flags += ["--session-from", target(name)]
    for name, value in vars(module).items() if not getters else ():
        dependency = mount.kind_of(value) and value.__metadata__[-1].dependency
        if dependency and value is not getattr(module, "SECOND_SESSION", None) and dependency not in seen:
            seen.add(dependency)
            flags += ["--session", target(name)]
    for declared, flag in (("ROUTE_CLASS", "--route-class"), ("SUB_APP", "--sub-app"),
                           ("BACKGROUND_SESSION", "--background-session")):  # fmt: skip
        if getattr(module, declared, None) is not None:
            flags += [flag, target(declared)]
    return flags


def _audit(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments", "--throughput", "off", "--quiet", "--out", str(tmp_path), *argv],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def verdicts(doc: dict, strategy: str) -> dict[tuple[str, str | None], tuple[str, dict]]:
    """(check, kind or None) -> (outcome, key counts) of one strategy's rows where it was measured (not skipped): for
    each whole-number key metric its rule judges, whether it is 0, of checks that count, not timings. Zero or not is
    what a rule turns on; the exact count differs between two runs of one app too (10 connections left open, or 9,
    as the collector happens to run: report/matrix.py reads them the same way). A
    number shown beside a verdict may differ: where the app commits is learnt by resolving it (dispatch_style's
    middleware commits what its endpoints leave, so an audit flushes where the strategy commits)."""
    checks = {c["id"]: c for c in doc["checks"]}
    found = {}
    for row in doc["results"]:
        if row["strategy"] != strategy or row["check"] in NOT_AUDITED:
            continue
        check = checks[row["check"]]
        for kind, part in (row.get("kinds") or {None: row}).items():
            if part["outcome"] != "skipped":
                metrics = part.get("metrics") or {}
                judged = [k for k in check["key"] if k in check["rule_metrics"]]
                counts = {k: "=0" if metrics[k] == 0 else ">0" for k in judged if type(metrics.get(k)) is int}
                found[(row["check"], kind)] = (part["outcome"], {} if check["exclusive"] else counts)
    return found


def agree(own: tuple[str, dict], audited: tuple[str, dict]) -> bool:
    """One verdict, for the same reasons: the outcome and the judged counts, zero or not; or, for a failure, one
    count above 0 in common. A pattern whose failure is a race can fail a check for two reasons in one run and for
    one of them in the next (`global_scoped_session`'s threads share a session among its streams, or not, as the
    threadpool schedules them), so the audit must find one of the built-in row's reasons, not all."""
    (outcome, counts), (other, found) = own, audited
    above = {k for k, v in counts.items() if v == ">0"} & {k for k, v in found.items() if v == ">0"}
    return outcome == other and (counts == found or (outcome == "failed" and bool(above)))


@pytest.mark.parametrize(
    "strategy", [s for s in STRATEGIES if os.environ.get("SESSIONBENCH_AUDIT_ALL") or s in QUICK]
)  # fmt: skip
def test_audit_reproduces_the_strategys_verdicts_and_numbers(strategy, tmp_path, monkeypatch):
    unmet, _ = preflight.requirements(discovery.at(ROOT / "strategies" / f"{strategy}.py"))
    if unmet:
        pytest.skip(f"needs {'; '.join(unmet)}: a matrix cell installs it")
    for name, value in Database.sqlite(tmp_path / "flags.db").environ.items():
        monkeypatch.setenv(name, value)
    flags = audit_flags(strategy)
    done = _audit(
        tmp_path, "--audit", f"strategies.{strategy}:app", *flags, "--strategy", strategy, "--ablation", "off"
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    audited = next(s["id"] for s in doc["strategies"] if s["id"].startswith("audit_"))
    own, through_audit = verdicts(doc, strategy), verdicts(doc, audited)
    assert "error" not in {o for o, _ in own.values()} | {o for o, _ in through_audit.values()}
    differing = {
        k: (v, through_audit.get(k, "skipped"))
        for k, v in own.items()
        if k not in through_audit or not agree(v, through_audit[k])
    }
    assert not differing, f"(built-in, audited) verdicts and key numbers differ: {differing}"


APP = """
    import os
    from fastapi import Depends, FastAPI
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.orm import Session, sessionmaker

    engine = create_engine(os.environ.get("MYAPP_DATABASE_URL", "sqlite:///{elsewhere}"))
    app = FastAPI(generate_unique_id_function=lambda route: f"{{route.tags[0]}}-{{route.name}}")  # the template's

    @app.middleware("http")
    async def session_per_request(request, call_next):
        with Session(engine) as session:
            request.state.db = session
            return await call_next(request)

    def session_of(request):
        return request.state.db

    def no_session(request):
        return request.state.nothing

    def new_session():
        return Session(engine)

    def get_db():
        with Session(engine) as session:
            yield session

    Maker = sessionmaker(engine)
    AsyncMaker = async_sessionmaker(create_async_engine(os.environ.get("MYAPP_ASYNC_URL", "sqlite+aiosqlite://")))

    def get_maker():  # the app's code opens `with maker() as session` itself, as rhoboro's use cases do
        yield Maker

    async def get_async_maker():
        yield AsyncMaker

    def get_settings():
        return {{"debug": True}}

    @app.get("/items", tags=["items"])
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
    (folder / ".env").write_text("MYAPP_PROJECT=demo\n")
    (folder / "myapp" / "parts.py").write_text(  # a URL built from its parts, as apps with POSTGRES_SERVER etc. do,
        # and a settings file read from where the app runs (the full-stack template's env_file="../.env")
        "import os\nfrom pathlib import Path\nPROJECT = Path('.env').read_text()\nfrom fastapi import FastAPI\nfrom sqlalchemy import create_engine\nfrom sqlalchemy.orm import Session\n"
        "engine = create_engine(f\"sqlite:///{os.environ['MYAPP_DB_NAME']}\")\napp = FastAPI()\n\n"
        "def get_db():\n    with Session(engine) as session:\n        yield session\n"
    )
    (folder / "myapp" / "settings.py").write_text(  # as pydantic-settings words a missing setting
        'raise ValueError("1 validation error for Settings\\nPOSTGRES_SERVER\\n  Field required")\n'
    )
    return folder


def _error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("source", "like"),
    [
        (["--session", "myapp.main:get_db"], "yield_dependency"),
        (["--session-from", "myapp.main:session_of"], "yield_dependency"),
        (["--session", "myapp.main:get_maker"], "yield_dependency"),  # a dependency that gives a sessionmaker
        (["--session-from", "myapp.main:Maker"], "yield_dependency"),  # the sessionmaker itself
        (["--session", "myapp.main:get_async_maker"], "async_dependency"),
    ],
)
def test_an_app_of_ones_own_is_a_row(myapp, tmp_path, source, like):
    done = _audit(
        tmp_path / "out", "--app-dir", str(myapp), "--audit", "myapp.main:app", *source,
        "--env", "MYAPP_DATABASE_URL={DATABASE_URL}", "--env", "MYAPP_ASYNC_URL={ASYNC_DATABASE_URL}",
        "--strategy", like, "--check", "cleanup_on_error", "--check", "lost_writes",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert verdicts(doc, "audit_myapp_main_app") == verdicts(doc, like) != {}
    assert "`myapp.main:app`, audited" in (tmp_path / "out" / "REPORT.md").read_text()


def test_an_app_that_builds_its_url_from_parts_and_reads_files_where_it_runs_is_measured(myapp, tmp_path):
    done = _audit(
        tmp_path / "out", "--app-dir", str(myapp), "--audit", "myapp.parts:app", "--session", "myapp.parts:get_db",
        "--env", "MYAPP_DB_NAME={DATABASE_NAME}", "--strategy", "yield_dependency", "--check", "cleanup_on_error",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert verdicts(doc, "audit_myapp_parts_app") == verdicts(doc, "yield_dependency") != {}


def test_an_app_that_needs_another_python_says_which(myapp, tmp_path):
    """Its own pyproject's `requires-python` is named when its code does not parse here (PEP 758's `except A, B:`,
    the full-stack template's since Python 3.14), and is only a note when it imports all the same."""
    (myapp / "pyproject.toml").write_text('[project]\nname = "myapp"\nrequires-python = ">=3.14"\n')
    (myapp / "myapp" / "newer.py").write_text("try:\n    pass\nexcept ValueError, TypeError:\n    pass\n")
    line = _error(
        _audit(
            tmp_path / "out", "--app-dir", str(myapp), "--audit", "myapp.newer:app", "--session", "myapp.main:get_db"
        )
    )
    assert "requires Python >=3.14" in line and "pass --python X.Y" in line and "3.11" in line
    done = _audit(
        tmp_path / "out2", "--app-dir", str(myapp), "--audit", "myapp.main:app", "--session", "myapp.main:get_db",
        "--env", "MYAPP_DATABASE_URL={DATABASE_URL}", "--check", "cleanup_on_error", "--strategy", "audit_myapp_main_app",
    )  # fmt: skip
    assert done.returncode == 0 and "note: the app requires Python >=3.14" in done.stderr, done.stderr


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
        (["--audit", "myapp.settings:app", "--session", "myapp.main:get_db"], "POSTGRES_SERVER; Field required"),
        (["--audit", "myapp.main:app", "--session-from", "myapp.main:no_session"], "raised AttributeError: 'State'"),
        (["--audit", "myapp.main:app", "--session-from", "myapp.main:new_session"], "a new session each time"),
    ],
)
def test_bad_input_is_one_line(myapp, tmp_path, argv, says):
    line = _error(
        _audit(tmp_path / "out", "--app-dir", str(myapp), "--env", "MYAPP_DATABASE_URL={DATABASE_URL}", *argv)
    )
    assert line.startswith("error: ") and says in line


PUBLISHED = Path(__file__).parent / "published_app" / "backend"  # written as published apps are: see its README


def test_an_app_written_as_published_ones_are_is_audited_as_documented(tmp_path):
    """Settings from the .env above its folder and a PostgresDsn built from parts, a generate_unique_id_function
    that reads route.tags[0], a dependency that yields an async_sessionmaker: docs/audit.md's command, and nothing
    else, measures it with no error row, and the report speaks of its own kind of endpoint."""
    require_postgres()
    parts = ("SERVER", "HOST"), ("PORT", "PORT"), ("USER", "USER"), ("PASSWORD", "PASSWORD"), ("DB", "NAME")
    done = _audit(
        tmp_path, "--app-dir", str(PUBLISHED), "--audit", "app.main:app", "--session", "app.db:SessionMaker",
        *(arg for ours, theirs in parts for arg in ("--env", f"POSTGRES_{ours}={{DATABASE_{theirs}}}")),
        "--db", "postgresql", "--strategy", "audit_app_main_app", "--ablation", "off",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    rows = {r["check"]: r for r in doc["results"]}
    assert not [c for c, r in rows.items() if r["outcome"] == "error"], [r.get("reason") for r in rows.values()]
    assert rows["dropped_connections"]["outcome"] == "passed" and rows["shutdown"]["outcome"] == "failed"
    own = doc["strategies"][0]["own"]
    assert own["kinds"] == ["async"] and not own["streams"] and not own["background_tasks"]
    assert [(p["pool_size"], p["max_overflow"], p["pool_timeout"]) for p in own["pools"]] == [(5, 10, 30)]
    report = (tmp_path / "REPORT.md").read_text()
    assert "### Your app: `app.main:app`" in report and "are `async def` (2 routes)" in report
