"""The throwaway PostgreSQL cluster starts, serves fresh databases, and always leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from experiments.harness import postgres
from experiments.harness.postgres import DatabaseUnreachable, PostgresNotFound, existing_server, throwaway_cluster
from tests.running import FIXTURES, GOOD, TEMPLATE, compare, processes_mentioning, require_postgres, rows_by_pair


@pytest.fixture(scope="module")
def cluster():
    require_postgres()
    with throwaway_cluster() as started:
        yield started


def port_open(url: str) -> bool:
    port = int(re.search(r":(\d+)/", url).group(1))
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text(sql))
    finally:
        engine.dispose()


def test_version_is_the_servers_own(cluster):
    sync_url, _ = cluster.fresh_database("version_probe")
    assert scalar(sync_url, "SHOW server_version").split()[0] == cluster.version


def test_fresh_database_sync_and_async(cluster):
    sync_url, async_url = cluster.fresh_database("fresh_one")
    assert sync_url.startswith("postgresql+psycopg://") and async_url.startswith("postgresql+asyncpg://")
    assert scalar(sync_url, "SELECT current_database()") == "fresh_one"

    async def current_database() -> str:
        engine = create_async_engine(async_url)
        try:
            async with engine.connect() as conn:
                return await conn.scalar(text("SELECT current_database()"))
        finally:
            await engine.dispose()

    assert asyncio.run(current_database()) == "fresh_one"


def test_fresh_database_again_while_connected(cluster):
    sync_url, _ = cluster.fresh_database("fresh_twice")
    engine = create_engine(sync_url)
    try:
        with engine.connect() as held:
            held.execute(text("CREATE TABLE leftover (id int)"))
            held.commit()
            assert cluster.fresh_database("fresh_twice")[0] == sync_url  # drops despite `held`
            with pytest.raises(DBAPIError):
                held.execute(text("SELECT 1"))  # terminated by DROP … WITH (FORCE)
    finally:
        engine.dispose()
    assert scalar(sync_url, "SELECT to_regclass('leftover') IS NULL") is True


def test_existing_server_gives_the_same_interface(cluster):
    plain = cluster.admin_url.replace("postgresql+psycopg://", "postgresql://")
    server = existing_server(plain)
    assert server.admin_url == cluster.admin_url
    assert server.version == cluster.version
    assert server.directory is None
    sync_url, _ = server.fresh_database("via_existing")
    assert scalar(sync_url, "SELECT current_database()") == "via_existing"


@pytest.mark.parametrize("body_raises", [None, RuntimeError, KeyboardInterrupt])
def test_cluster_is_gone_after_the_block(body_raises):
    require_postgres()
    with pytest.raises(body_raises) if body_raises else nullcontext():
        with throwaway_cluster() as started:
            directory, url = started.directory, started.admin_url
            assert directory.is_dir() and processes_mentioning(str(directory))  # the scan does see it
            assert port_open(url)
            if body_raises:
                raise body_raises("body failed")
    assert processes_mentioning(str(directory)) == []
    assert not directory.exists()
    assert not port_open(url)


def test_unreachable_server_fails_fast_in_one_line():
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable) as caught:
        existing_server("postgresql://nobody:hunter2@127.0.0.1:1/x")
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "\n" not in message
    assert "hunter2" not in message


def test_missing_binaries_are_reported_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "DEBIAN_ROOT", tmp_path / "nowhere")
    with pytest.raises(PostgresNotFound, match="apt-get install postgresql"):
        postgres.find_bindir()


def test_compare_runs_on_a_throwaway_cluster_and_removes_it(tmp_path):
    """The PostgreSQL path end to end: verdicts as on SQLite, server version recorded, nothing left running."""
    require_postgres()
    private = Path(tempfile.mkdtemp(prefix="sbpg-"))  # the run's TMPDIR: other runs' clusters live elsewhere
    private.chmod(0o755)  # as /tmp: the cluster runs as the unprivileged postgres user
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    shutil.copy(TEMPLATE, strategies / f"{GOOD}.py")
    shutil.copy(FIXTURES / "one_global_session.py", strategies)
    done = compare(tmp_path / "out", "--db", "postgresql", "--strategies-dir", str(strategies),
                   "--check", "lost_writes", "--check", "isolation_async", "--quiet",
                   env={"TMPDIR": str(private)})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rows_by_pair(tmp_path / "out")
    assert {check: row["outcome"] for (name, check), row in rows.items() if name == GOOD} == {
        "lost_writes": "passed", "isolation_async": "passed"}  # fmt: skip
    assert rows[("one_global_session", "lost_writes")]["outcome"] == "failed"
    database = json.loads((tmp_path / "out" / "results.json").read_text())["environment"]["database"]
    assert database["backend"] == "postgresql" and re.match(r"\d+\.\d+", database["version"])
    assert not list(private.glob("sessionbench-pg-*")), "the cluster directory was left behind"
    assert processes_mentioning(str(private)) == [], "a server process outlived the run"
    private.rmdir()


def test_compare_with_an_unreachable_server_says_so_in_one_line(tmp_path):
    done = compare(tmp_path, "--db", "postgresql://nobody@127.0.0.1:1/x", "--strategies-dir", str(FIXTURES))
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot connect to PostgreSQL at postgresql") and done.stderr.count("\n") == 1


def test_long_database_names_stay_distinct():
    """Two check processes of one ablation variant, whose id alone nearly fills PostgreSQL's 63 characters, must not
    share a database: a shared one is dropped under the other's feet."""
    from experiments.harness.serving import NAME_MAX, database_name

    variant = "sb_gated_sync_and_async_sessions__without_engine_dispose_await_async_engine_dispos"
    names = {database_name(f"{variant}_{check}_def") for check in ("streaming", "lost_writes", "shutdown")}
    assert len(names) == 3 and all(len(n) <= NAME_MAX for n in names)
    assert database_name("sb_Yield-Dependency") == "sb_yield_dependency"
