"""The fixture run: each fixture strategy through the checks it is declared for, once per test session.

Checks that need a database server run on a throwaway PostgreSQL cluster (one
for the whole session); the others on SQLite. Each strategy runs only the
checks it is there for, which keeps the suite short as checks are added.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from experiments.checks import registry
from experiments.harness import postgres
from tests.running import FIXTURES, GOOD, TEMPLATE, compare, known_bad, known_good, require_postgres, rows_by_pair


@pytest.fixture(scope="session")
def fixture_strategies(tmp_path_factory):
    """The fixture strategies and the template (as the known-good GOOD), in one strategies directory."""
    strategies = tmp_path_factory.mktemp("fixture-strategies")
    for module in FIXTURES.glob("[!_]*.py"):
        shutil.copy(module, strategies)
    shutil.copy(TEMPLATE, strategies / f"{GOOD}.py")
    return strategies


def _plan(server: bool) -> dict[str, list[str]]:
    """strategy -> checks to run on it, for the checks that need a server (or those that do not)."""
    checks = [c.id for c in registry().values() if c.needs_server == server]
    plan: dict[str, list[str]] = {}
    for check in checks:
        for name in known_bad().get(check, []) + known_good()[check]:
            plan.setdefault(name, []).append(check)
    return {name: list(dict.fromkeys(ids)) for name, ids in plan.items() if ids}


def _run(strategies, out_root, plan: dict[str, list[str]], *db: str) -> dict[tuple[str, str], dict]:
    """One comparison per strategy. Those whose checks are all counts run two at a time (most of each is a
    process starting up); a strategy with a timing (`exclusive`) check runs alone afterwards, as the runner would."""

    def one(name: str) -> dict[tuple[str, str], dict]:
        out = out_root / name
        args = [arg for check in plan[name] for arg in ("--check", check)]
        done = compare(out, "--strategies-dir", str(strategies), "--strategy", name, *args, *db, "--quiet")
        assert done.returncode == 0, done.stdout + done.stderr
        return rows_by_pair(out)

    checks = registry()
    timed = {name for name, ids in plan.items() if any(checks[i].exclusive for i in ids)}
    rows = {}
    with ThreadPoolExecutor(2) as pool:
        for found in pool.map(one, [name for name in plan if name not in timed]):
            rows |= found
    for name in sorted(timed):
        rows |= one(name)
    return rows


@pytest.fixture(scope="session")
def fixture_run(fixture_strategies, tmp_path_factory) -> dict[tuple[str, str], dict]:
    """Rows of the checks that run on SQLite, keyed (strategy, check)."""
    return _run(fixture_strategies, tmp_path_factory.mktemp("fixture-run"), _plan(server=False))


@pytest.fixture(scope="session")
def server_fixture_run(fixture_strategies, tmp_path_factory) -> dict[tuple[str, str], dict]:
    """Rows of the checks that need a database server, on one throwaway PostgreSQL cluster."""
    require_postgres()
    with postgres.throwaway_cluster() as cluster:
        url = cluster.admin_url.replace("postgresql+psycopg://", "postgresql://")
        return _run(fixture_strategies, tmp_path_factory.mktemp("server-fixture-run"), _plan(server=True), "--db", url)
