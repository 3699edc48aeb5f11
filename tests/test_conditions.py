"""The pool a check declares reaches every engine, whatever path created it, and each row says what it really was.

`pool_exhaustion` declares pool_size=5, max_overflow=0, pool_timeout=1. An
engine made through `sqlalchemy.engine.create_engine` or `engine_from_config`
(SQLModel's `create_engine` is the former; libraries use either) must run with
that pool; an engine that sets its own pool keeps it, and its row says so.
"""

from __future__ import annotations

import pytest

from experiments.test_pool import POOL_EXHAUSTION
from tests.running import compare, rows_by_pair, template_with

CREATE = '    engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)\n'
ENGINES = {
    "through_sqlalchemy_engine": "    import sqlalchemy.engine\n\n"
    '    engine = sqlalchemy.engine.create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)\n',
    "through_engine_from_config": "    from sqlalchemy import engine_from_config\n\n"
    '    engine = engine_from_config({"sqlalchemy.url": os.environ["DATABASE_URL"], "sqlalchemy.pool_pre_ping": True})\n',
    "own_pool_size": '    engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True, pool_size=20)\n',
    "raises_threadpool_tokens": CREATE + "    import anyio.to_thread\n\n"
    "    anyio.to_thread.current_default_thread_limiter().total_tokens = 60\n",
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    strategies = tmp_path_factory.mktemp("engine-paths")
    for name, create in ENGINES.items():
        (strategies / f"{name}.py").write_text(template_with((CREATE, create)))
    out = tmp_path_factory.mktemp("engine-paths-out")
    done = compare(out, "--strategies-dir", str(strategies), "--check", POOL_EXHAUSTION.id, "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    return rows_by_pair(out)


@pytest.mark.parametrize("strategy", ["through_sqlalchemy_engine", "through_engine_from_config"])
def test_the_declared_pool_reaches_engines_made_another_way(rows, strategy):
    row = rows[(strategy, POOL_EXHAUSTION.id)]
    assert row["kinds"]["def"]["metrics"]["peak_checked_out"] <= POOL_EXHAUSTION.pool["pool_size"], row
    (engine,) = row["conditions"]["engines"]
    assert engine["class"] == "QueuePool" and engine["as_declared"] is True, engine
    assert {k: engine[k] for k in POOL_EXHAUSTION.pool} == POOL_EXHAUSTION.pool


def test_an_engine_that_chose_its_own_pool_is_named_in_the_row(rows):
    row = rows[("own_pool_size", POOL_EXHAUSTION.id)]
    assert row["conditions"]["as_declared"] is False
    assert row["conditions"]["engines"][0]["pool_size"] == 20
    assert "Not under the declared pool" in row["evidence"] and "pool_size=20" in row["evidence"]


def test_a_burst_outnumbers_the_threads_the_app_gave_itself(rows):
    """Tokens raised in lifespan (fastapi-tips §2) are read after startup: the burst is twice them, and recorded."""
    row = rows[("raises_threadpool_tokens", POOL_EXHAUSTION.id)]
    metrics = row["kinds"]["def"]["metrics"]
    assert row["conditions"]["threadpool_tokens"] == 60 and metrics["burst"] == 120, row
    assert metrics["requests"] == 2 * 120
    assert rows[("own_pool_size", POOL_EXHAUSTION.id)]["kinds"]["def"]["metrics"]["burst"] == 100  # 40 tokens
