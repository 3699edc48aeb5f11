"""Child interpreters (the shutdown run, `uvicorn --reload`) import a strategy the way the in-process checks do.

Library strategies are named after their library (strategies/fastapi_sqlalchemy.py imports
fastapi_sqlalchemy). Here the template is saved as `sqlalchemy.py`: were its folder on the
child's path, or the copy uvicorn reloads importable as a top-level module, it would import
itself instead of SQLAlchemy and never start.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from experiments.harness import discovery
from experiments.harness.serving import Database
from experiments.harness.standalone import uvicorn_reload
from tests.running import TEMPLATE, compare, rows_by_pair

NAMED_AFTER_ITS_LIBRARY = "sqlalchemy"


@pytest.fixture
def strategy(tmp_path) -> discovery.Strategy:
    directory = tmp_path / "strategies"
    directory.mkdir()
    shutil.copy(TEMPLATE, directory / f"{NAMED_AFTER_ITS_LIBRARY}.py")
    return discovery.at(directory / f"{NAMED_AFTER_ITS_LIBRARY}.py")


def test_shutdown_measures_a_strategy_named_after_its_library(strategy, tmp_path):
    out = tmp_path / "out"
    done = compare(out, "--strategies-dir", str(strategy.path.parent), "--strategy", strategy.id,
                   "--check", "shutdown", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    row = rows_by_pair(out)[(strategy.id, "shutdown")]
    assert row["outcome"] == "passed", row


@pytest.mark.anyio
async def test_uvicorn_reload_serves_a_strategy_named_after_its_library(strategy, tmp_path):
    database = Database.sqlite(tmp_path / "app.db")
    async with uvicorn_reload(strategy, database.environ, tmp_path / "reload") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            before = await client.get("/nodb")
            await server.touch()
            after = await client.get("/nodb")
    assert (before.status_code, after.status_code) == (200, 200)
