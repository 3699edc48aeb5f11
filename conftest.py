"""Pytest wiring of the experiments: strategy discovery, options, and the plugin that records rows.

`pytest experiments` runs every discovered strategy through every check in this
one process (handy while writing a check); `nox -s compare` runs each
strategy × check in its own subprocess through `python -m experiments`, which
passes `--rows` so every outcome lands in a file as soon as it is known.

A check test records numbers with the `record` fixture; the verdict is the
check's rule applied to them, and a failed verdict fails the test.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import pytest

from experiments.checks import CHECKS, NEEDS_SERVER, UnknownCheck, select
from experiments.harness import discovery, instruments, postgres
from experiments.harness.serving import Database, serve

ROWS = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("sessionbench")
    group.addoption("--strategy", action="append", default=[], help="run only this strategy (repeatable)")
    group.addoption("--strategies-dir", default=str(discovery.DEFAULT_DIR), help="where strategy modules live")
    group.addoption("--check", action="append", default=[], help="run only this check id (repeatable)")
    group.addoption(
        "--db", default="sqlite",
        help="sqlite (default), postgresql (a throwaway cluster) or a postgresql://… URL of a server to use",
    )  # fmt: skip
    group.addoption("--rows", default=None, help="append one JSON line per strategy x check outcome to this file")


def pytest_configure(config):
    config.addinivalue_line("markers", "check(id): the check an experiment test measures")


def _strategies(config) -> list[discovery.Strategy]:
    found = discovery.discover(Path(config.getoption("strategies_dir")))
    try:
        return discovery.select(found, config.getoption("strategy"))
    except discovery.UnknownStrategy as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_generate_tests(metafunc):
    if "strategy" in metafunc.fixturenames and metafunc.definition.get_closest_marker("check"):
        strategies = _strategies(metafunc.config)
        metafunc.parametrize("strategy", strategies, ids=[s.id for s in strategies])


def pytest_collection_modifyitems(config, items):
    for item in items:  # a strategy's warnings are its own business, not a harness error
        if item.get_closest_marker("check"):
            item.add_marker(pytest.mark.filterwarnings("default"))
    if ids := config.getoption("check"):
        try:
            wanted = {c.id for c in select(ids)}
        except UnknownCheck as exc:
            raise pytest.UsageError(str(exc)) from None
        keep = [i for i in items if (m := i.get_closest_marker("check")) and m.args[0] in wanted]
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def check(request):
    return CHECKS[request.node.get_closest_marker("check").args[0]]


@pytest.fixture(scope="session")
def db_server(request):
    """None for SQLite; else the PostgreSQL server every check gets a fresh database on."""
    db = request.config.getoption("db")
    if db == "sqlite":
        yield None
    elif db == "postgresql":
        with postgres.throwaway_cluster() as cluster:
            yield cluster
    else:
        yield postgres.existing_server(db)


@pytest.fixture
def database(db_server, strategy, check, tmp_path_factory) -> Database:
    if db_server is None:
        if check.needs_server:
            pytest.skip(NEEDS_SERVER)
        return Database.sqlite(tmp_path_factory.mktemp("db") / f"{strategy.id}-{check.id}.db")
    return Database.postgresql(db_server, f"sb_{strategy.id}_{check.id}"[:63].lower())


@pytest.fixture
def app_module(strategy, check, database, monkeypatch):
    """The strategy's module, freshly imported against a fresh database (and the check's pool defaults)."""
    for name, value in database.environ.items():
        monkeypatch.setenv(name, value)
    if check.pool:
        instruments.small_pool(monkeypatch, **check.pool)
    module = discovery.load(strategy)
    missing = discovery.missing_routes(module, check.routes)
    if missing:
        raise discovery.contract_error(strategy, missing)
    if not discovery.served_routes(module.app) & set(check.routes):
        declared = discovery.unsupported(module)
        pytest.skip("; ".join(f"{p} not served: {declared[p]}" for p in check.routes))
    return module


@pytest.fixture
def routes(app_module, check) -> set[str]:
    """The check's probe routes this strategy serves (at least one, or the check was skipped)."""
    return discovery.served_routes(app_module.app) & set(check.routes)


@pytest.fixture
async def served(app_module, routes):
    """The strategy's app with its lifespan entered, and a client bound to it."""
    async with serve(app_module.app, routes) as app:
        yield app


@pytest.fixture
def record(request, check):
    """`record(metrics, evidence)`: what the check measured, in numbers and one sentence."""

    def record(metrics: dict, evidence: str) -> None:
        request.node.stash[ROWS] = {"metrics": metrics, "evidence": evidence, "passed": bool(check.passes(metrics))}

    return record


def _one_line(excinfo) -> str:
    exc = excinfo.value
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:  # anyio task groups wrap errors
        exc = exc.exceptions[0]
    if isinstance(exc, (discovery.ContractError, postgres.DatabaseUnreachable)):  # already one line that says it all
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    text = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}{where}: {text}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    marker = item.get_closest_marker("check")
    if marker is None:
        return report
    row = item.stash.setdefault(ROWS, {})
    row.setdefault("duration_s", 0.0)
    row["duration_s"] += call.duration
    if report.skipped and "outcome" not in row:
        row.update(outcome="skipped", reason=str(report.longrepr[2]).removeprefix("Skipped: "))
    elif report.failed and "outcome" not in row:
        row.update(outcome="error", reason=_one_line(call.excinfo))
    elif call.when == "call" and "passed" in row:
        row["outcome"] = "passed" if row["passed"] else "failed"
        if not row["passed"]:
            report.outcome, report.longrepr = "failed", row["evidence"]
    if call.when == "teardown":
        _write_row(item, marker.args[0], row)
    return report


def _write_row(item, check_id: str, row: dict) -> None:
    if "outcome" not in row:
        row.update(outcome="error", reason="the test recorded no measurement")
    row.pop("passed", None)
    out = {"strategy": item.callspec.params["strategy"].id, "check": check_id, **row}
    out["duration_s"] = round(out["duration_s"], 3)
    path = item.config.getoption("rows")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(out) + "\n")
            f.flush()
            os.fsync(f.fileno())
