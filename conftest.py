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
import time
import traceback
from pathlib import Path

import pytest

from experiments.checks import CHECKS, NEEDS_SERVER, UnknownCheck, select
from experiments.harness import discovery, instruments, postgres
from experiments.harness.serving import Database, serve
from experiments.harness.watch import LOOP_BLOCKED_S, Watch
from experiments.probes import KINDS
from experiments.rules import judge, permanent
from report.format import ERROR, FAILED, SKIPPED, Row

ROWS = pytest.StashKey[dict]()
STARTED = pytest.StashKey[float]()
WARNINGS: dict[str, set[str]] = {}  # test node id -> what the strategy (or a library it uses) warned about


def pytest_addoption(parser):
    group = parser.getgroup("sessionbench")
    group.addoption(
        "--strategy", action="append", default=[],
        help="run only this strategy: a module name in --strategies-dir, or a module file anywhere (repeatable)",
    )  # fmt: skip
    group.addoption("--strategies-dir", default=str(discovery.DEFAULT_DIR), help="where strategy modules live")
    group.addoption("--check", action="append", default=[], help="run only this check id (repeatable)")
    group.addoption(
        "--db", default="sqlite",
        help="sqlite (default), postgresql (a throwaway cluster) or a postgresql://… URL of a server to use",
    )  # fmt: skip
    group.addoption(
        "--kind",
        action="append",
        default=[],
        choices=list(KINDS),
        help="judge only this kind of endpoint (repeatable; checks of the whole app ignore it)",
    )
    group.addoption("--rows", default=None, help="append one JSON line per strategy x check outcome to this file")
    group.addoption(
        "--time-limit",
        type=float,
        default=None,
        help="seconds this check process is given before it is killed (bounds the loop watchdog)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "check(id): the check an experiment test measures")
    instruments.register_pause()


def _strategies(config) -> list[discovery.Strategy]:
    """The strategies named by `--strategy` (module files as they are, other names looked up in --strategies-dir),
    in the order named; all of --strategies-dir when none is."""
    names = config.getoption("strategy")
    files = {n: discovery.at(Path(n)) for n in names if n.endswith(".py") and Path(n).is_file()}
    try:
        found = discovery.select(
            discovery.discover(Path(config.getoption("strategies_dir"))), [n for n in names if n not in files]
        )
    except discovery.UnknownStrategy as exc:
        raise pytest.UsageError(str(exc)) from None
    if not files:
        return found
    by_name = {s.id: s for s in found}
    return [files[n] if n in files else by_name[n] for n in dict.fromkeys(names)]


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("check")
    if "strategy" in metafunc.fixturenames and marker:
        strategies = _strategies(metafunc.config)
        metafunc.parametrize("strategy", strategies, ids=[s.id for s in strategies])
        wanted = metafunc.config.getoption("kind") or list(KINDS)
        if kinds := CHECKS[marker.args[0]].kinds:  # each kind of endpoint judged on its own
            metafunc.parametrize("kind", [k for k in kinds if k in wanted])


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


@pytest.fixture
def kind() -> str | None:
    """The kind of endpoint this item judges (probes.KINDS), parametrized per check; None for a whole-app check."""
    return None


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
def database(db_server, strategy, check, kind, tmp_path_factory) -> Database:
    if db_server is None:
        if check.needs_server:
            pytest.skip(NEEDS_SERVER)
        return Database.sqlite(tmp_path_factory.mktemp("db") / f"{strategy.id}-{check.id}.db")
    return Database.postgresql(db_server, f"sb_{strategy.id}_{check.id}_{kind or 'app'}")


@pytest.fixture
def second_database(database, check) -> Database | None:
    """The second database, created for the checks that declare `second_database`."""
    return database.second() if check.second_database else None


@pytest.fixture
def app_module(request, strategy, check, kind, database, second_database, monkeypatch, engines):
    """The strategy's module, freshly imported against a fresh database (and the check's pool defaults)."""
    for name, value in {**database.environ, **(second_database.environ_as_second if second_database else {})}.items():
        monkeypatch.setenv(name, value)
    if check.pool:
        instruments.pool_defaults(monkeypatch, **check.pool)
    module = discovery.load(strategy)
    missing = discovery.missing_routes(module, check.routes)
    if missing:
        raise discovery.contract_error(strategy, missing)
    if skipped := discovery.unserved(module, check.routes, kind):
        # The strategy said it cannot serve these routes (a finding some claims rest on), left optional ones out,
        # or serves them with the other kind of endpoint.
        request.node.stash.setdefault(ROWS, {})["unsupported"] = skipped["unsupported"]
        pytest.skip(skipped["reason"])
    return module


@pytest.fixture
def routes(app_module, check, kind) -> set[str]:
    """The check's probe routes this strategy serves, with endpoints of `kind` (at least one, or it was skipped)."""
    return discovery.served_routes(app_module.app, kind) & set(check.routes)


@pytest.fixture
def engines(check):
    """The engines the app connects through, with the pool each really had (instruments.engines_used)."""
    with instruments.engines_used(check.pool) as used:
        yield used


@pytest.fixture
def watch(request, check, engines) -> Watch:
    """Bounds on the check's requests (experiments/harness/watch.py). A loop the strategy blocks for good is a
    finding: the row fails, naming what was in flight, and the process ends, since nothing can run past it."""

    def blocked(reason: str, silent_s: float, in_flight: int) -> None:
        metrics = {"loop_blocked_s": round(silent_s, 1), "requests_in_flight": in_flight}
        row = {"outcome": judge(check, metrics), "metrics": metrics, "evidence": reason + "."}
        _write_row(request.node, check.id, {**row, "permanent": permanent(check, metrics)})
        os._exit(3)

    limit = request.config.getoption("time_limit")
    return Watch(
        state=engines.state,
        on_blocked=blocked,
        loop_blocked_s=min(LOOP_BLOCKED_S, limit / 2) if limit else LOOP_BLOCKED_S,
    )


@pytest.fixture
async def served(app_module, routes, watch):
    """The strategy's app with its lifespan entered, and a client bound to it (every request bounded)."""
    async with serve(app_module.app, routes, watch) as app:
        yield app


@pytest.fixture
def record(request, check, engines, watch):
    """`record(metrics, evidence)`: what the check measured, in numbers and one sentence, and the conditions it
    ran under (the pools of the engines the app used; a check whose app runs elsewhere passes `conditions`).

    Requests the app left unanswered are added to the metrics and fail the check (the harness's rule, under
    every check's own); the row is then written at once and the process ends, since the app's stuck requests
    would hold up its shutdown. `now=True` does the same for a check recording from a thread while the app
    blocks its event loop."""

    def record(metrics: dict, evidence: str, conditions: dict | None = None, now: bool = False) -> None:
        conditions = conditions or engines.conditions()
        metrics = {**metrics, **watch.metrics()}
        evidence = " ".join(filter(None, [evidence, watch.evidence()]))
        if conditions["as_declared"] is False:
            evidence += f" Not under the declared pool: {instruments.mismatch(conditions)}."
        row = {"metrics": metrics, "evidence": evidence, "outcome": judge(check, metrics)}
        if row["outcome"] == FAILED:
            row["permanent"] = permanent(check, metrics)
        if conditions["engines"]:
            row["conditions"] = conditions
        request.node.stash[ROWS] = row
        if now or watch.metrics():
            _write_row(request.node, check.id, row)
            os._exit(0)

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


def pytest_warning_recorded(warning_message, when, nodeid, location):
    """A warning the code under measurement emitted: shown in the row, never raised (`-W default` in check processes)."""
    if nodeid:
        WARNINGS.setdefault(nodeid, set()).add(discovery.one_line_warning(warning_message))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if item.get_closest_marker("check") is None:
        return report
    row = item.stash.setdefault(ROWS, {})
    if report.skipped and "outcome" not in row:
        row.update(outcome=SKIPPED, reason=str(report.longrepr[2]).removeprefix("Skipped: "))
    elif report.failed and "outcome" not in row:
        row.update(outcome=ERROR, reason=_one_line(call.excinfo))
    elif call.when == "call" and row.get("outcome") == FAILED:
        report.outcome, report.longrepr = "failed", row["evidence"]
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Write the row once the test is over, warnings included (pytest reports those after teardown)."""
    item.stash[STARTED] = time.monotonic()
    result = yield
    if marker := item.get_closest_marker("check"):
        _write_row(item, marker.args[0], item.stash.setdefault(ROWS, {}))
    return result


def _write_row(item, check_id: str, row: dict) -> None:
    """Append the row to the --rows file (flushed to disk: the process may be killed or end right after)."""
    row = dict(row)
    row.setdefault("outcome", ERROR)
    if row["outcome"] == ERROR:
        row.setdefault("reason", "the test recorded no measurement")
    if warned := WARNINGS.pop(item.nodeid, None):
        row["warnings"] = sorted(warned)[:10]
    kind = {"kind": item.callspec.params["kind"]} if "kind" in item.callspec.params else {}
    out: Row = {
        "strategy": item.callspec.params["strategy"].id,
        "check": check_id,
        **kind,
        **row,
        "duration_s": round(time.monotonic() - item.stash[STARTED], 3),
    }
    path = item.config.getoption("rows")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(out) + "\n")
            f.flush()
            os.fsync(f.fileno())
