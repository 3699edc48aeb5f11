"""The fixture run: every fixture strategy through every check, once per test session."""

from __future__ import annotations

import shutil

import pytest

from tests.running import FIXTURES, GOOD, TEMPLATE, compare, rows_by_pair


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """Every fixture strategy through every check, once for the whole test session."""
    strategies = tmp_path_factory.mktemp("fixture-strategies")
    for module in FIXTURES.glob("[!_]*.py"):
        shutil.copy(module, strategies)
    shutil.copy(TEMPLATE, strategies / f"{GOOD}.py")
    out = tmp_path_factory.mktemp("fixture-run")
    done = compare(out, "--strategies-dir", str(strategies), "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    return rows_by_pair(out)
