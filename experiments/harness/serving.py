"""Running one strategy's app in-process: a fresh database, lifespan entered, an httpx client.

httpx's ASGITransport does not run lifespan, so asgi-lifespan's LifespanManager
enters it and hands the lifespan state on, as a server would.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import anyio
import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import create_engine, event, select, text

from experiments.harness import discovery
from experiments.harness.instruments import HARNESS
from experiments.harness.postgres import Cluster
from experiments.harness.watch import BoundedTransport, Watch
from experiments.probes import SEED_ROW_ID, Base, Note

# probes.PAUSE_S's query on PostgreSQL; SQLite connections get a Python function instead (instruments.register_pause)
PG_PAUSE = (
    "CREATE FUNCTION sessionbench_pause(seconds float8) RETURNS integer LANGUAGE sql "
    "AS 'SELECT 1 FROM pg_sleep(seconds)'"
)


NAME_MAX = 63  # PostgreSQL cuts identifiers longer than this, so two long names that share a start would collide


def database_name(name: str) -> str:
    """`name` lowercased with every other character than a letter, digit or `_` replaced, and, when longer than
    NAME_MAX, its start and a hash of the whole: check processes running at once each get their own database
    (an ablation variant's id alone nearly fills the limit)."""
    name = re.sub(r"\W", "_", name).lower()
    if len(name) <= NAME_MAX:
        return name
    return f"{name[: NAME_MAX - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Database:
    """One fresh database for one strategy × check, and the URLs a strategy reads from the environment."""

    url: str
    async_url: str
    server: Cluster | None = None  # PostgreSQL: the server that counts this database's connections
    name: str | None = None  # PostgreSQL: the database's name on `server`
    path: Path | None = None  # SQLite: the database file

    @property
    def environ(self) -> dict[str, str]:
        return {"DATABASE_URL": self.url, "ASYNC_DATABASE_URL": self.async_url}

    @property
    def environ_as_second(self) -> dict[str, str]:
        """The same URLs named for an app's second database (set only where a check created one)."""
        return {"SECOND_DATABASE_URL": self.url, "ASYNC_SECOND_DATABASE_URL": self.async_url}

    def second(self) -> Database:
        """A second fresh database next to this one (same server, or same folder), with the probe table and seed row."""
        if self.server is None:
            return Database.sqlite(self.path.with_name(f"{self.path.stem}-second{self.path.suffix}"))
        return Database.postgresql(self.server, f"{self.name}_second")

    def activity(self) -> dict[str, int]:
        """PostgreSQL's own counts for this database (backends, idle_in_transaction, sessions_abandoned)."""
        if self.server is None:
            raise RuntimeError("server-side counts need PostgreSQL; SQLite has no server")
        return self.server.activity(self.name)

    def connections(self, pid: int | None = None) -> int:
        """Connections open to this database now: backends on PostgreSQL, else file descriptors on the
        SQLite file held by process `pid` (default: this one), which is where SQLite connections live."""
        if self.server is not None:
            return self.activity()["backends"]
        fds = Path(f"/proc/{pid or os.getpid()}/fd")
        count = 0
        for fd in fds.iterdir():
            try:
                count += Path(os.readlink(fd)) == self.path
            except OSError:  # closed between listing and reading
                continue
        return count

    def transactions_left_open(self) -> int:
        """Connections sitting in an open transaction: PostgreSQL counts them (idle in transaction); on SQLite
        1 when the harness cannot take the write lock (someone holds a write transaction), else 0."""
        if self.server is not None:
            return self.activity()["idle_in_transaction"]
        conn = sqlite3.connect(self.path, timeout=0.5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return 0
        except sqlite3.OperationalError:  # "database is locked"
            return 1
        finally:
            conn.close()

    def keys_present(self, keys: list[str]) -> set[str]:
        """Which of `keys` have a row, read over a connection of the harness's own."""
        engine = create_engine(self.url, logging_name=HARNESS)
        try:
            with engine.connect() as conn:
                return set(conn.scalars(select(Note.key).where(Note.key.in_(keys))))
        finally:
            engine.dispose()

    def _create_schema(self, on_connect: str | None = None, functions: tuple[str, ...] = ()) -> Database:
        engine = create_engine(self.url, logging_name=HARNESS)
        if on_connect:
            event.listen(engine, "connect", lambda conn, _: conn.execute(on_connect))
        try:
            Base.metadata.create_all(engine)
            with engine.begin() as conn:
                for function in functions:
                    conn.execute(text(function))
                # No explicit id: on PostgreSQL that would leave the sequence behind and the first write would collide.
                seed = conn.execute(Note.__table__.insert().values(key="seed")).inserted_primary_key[0]
            if seed != SEED_ROW_ID:
                raise RuntimeError(f"the seed row got id {seed}, not {SEED_ROW_ID}: the database was not fresh")
        finally:
            engine.dispose()
        return self

    @classmethod
    def sqlite(cls, path: Path) -> Database:
        """A new SQLite file in WAL mode (readers never block writers), with the schema and seed row."""
        path = Path(path)
        for leftover in path.parent.glob(path.name + "*"):
            leftover.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = cls(url=f"sqlite:///{path}", async_url=f"sqlite+aiosqlite:///{path}", path=path.resolve())
        return db._create_schema(on_connect="PRAGMA journal_mode=WAL")

    @classmethod
    def postgresql(cls, server: Cluster, name: str) -> Database:
        """A new database on the server (psycopg and asyncpg URLs), with the schema and seed row; `name` made a
        PostgreSQL identifier that stays distinct (database_name)."""
        name = database_name(name)
        return cls(*server.fresh_database(name), server=server, name=name)._create_schema(functions=(PG_PAUSE,))


def describe_backend(server: Cluster | None) -> dict:
    """The database block of the results' environment."""
    if server is None:
        return {
            "backend": "sqlite",
            "version": sqlite3.sqlite_version,
            "drivers": {"sync": "sqlite3", "async": "aiosqlite"},
        }
    kind = "throwaway cluster" if server.directory else "existing server"
    return {"backend": "postgresql", "version": server.version, "server": kind,
            "drivers": {"sync": "psycopg", "async": "asyncpg"}}  # fmt: skip


@dataclass
class Served:
    """A running app and a client bound to it."""

    client: httpx.AsyncClient
    routes: set[str]  # probe routes this strategy serves
    app: object = None  # the application served (for `dependency_overrides`)

    async def concurrently(self, n: int, call: Callable[[int], Awaitable[httpx.Response]]) -> list[httpx.Response]:
        """Start `call(0)` … `call(n-1)` together and return their responses in order."""
        responses: list[httpx.Response | None] = [None] * n

        async def one(i: int) -> None:
            responses[i] = await call(i)

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        return responses  # type: ignore[return-value]


@dataclass
class Exchange:
    """One request as the app answered it, seen at the ASGI boundary: the moment a server's client has it all."""

    path: str
    params: dict[str, str]
    status: int | None = None
    chunks: int = 0  # body messages with content: a streamed response sends several
    sent_at: float | None = None  # monotonic time the last body message went out
    error: str | None = None  # what the app raised, before or after its response (a background task's error)


def recorded(app, exchanges: list[Exchange], before_last_body: Callable[[Exchange], Awaitable[None]] | None = None):
    """Wrap the ASGI app: note every HTTP request in `exchanges` (under its probe path, wherever the app serves it);
    `before_last_body(exchange)` runs just before the last body message is sent, that is, as a client over a socket
    receives the end of its response."""
    probe_at = {path: probe for probe, path in discovery.served_at(app).items()}

    async def recording(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        path = probe_at.get(scope["path"], scope["path"])
        exchange = Exchange(path, dict(parse_qsl(scope.get("query_string", b"").decode())))
        exchanges.append(exchange)

        async def sending(message):
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
            elif message["type"] == "http.response.body":
                exchange.chunks += bool(message.get("body"))
                if not message.get("more_body", False):
                    if before_last_body is not None:
                        await before_last_body(exchange)
                    exchange.sent_at = time.monotonic()
            await send(message)

        try:
            await app(scope, receive, sending)
        except Exception as exc:
            exchange.error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:200]
            raise

    recording.__wrapped__ = app  # where to_served_paths finds the application
    return recording


def to_served_paths(app) -> dict:
    """httpx `event_hooks` sending a request for a probe path on to the path `app` serves it at (under an included
    router's prefix or a mounted sub-application), so that checks name probe paths only."""
    while not hasattr(app, "routes") and (inner := getattr(app, "__wrapped__", None) or getattr(app, "app", None)):
        app = inner  # an ASGI wrapper around the application: `recorded`, or middleware keeping it as `.app`
    moved = {probe: path for probe, path in discovery.served_at(app).items() if path != probe}

    async def to_served_path(request: httpx.Request) -> None:
        if request.url.path in moved:
            request.url = request.url.copy_with(path=moved[request.url.path])

    return {"request": [to_served_path]} if moved else {}


def _state_per_request(app):
    """Give each request its own shallow copy of the lifespan state, as uvicorn does.

    asgi-lifespan puts the one state dict in every request's scope, so
    `request.state.x = …` in one request would overwrite it in all the others.
    """

    async def with_copied_state(scope, receive, send):
        if scope["type"] != "lifespan" and "state" in scope:
            scope = {**scope, "state": scope["state"].copy()}
        await app(scope, receive, send)

    return with_copied_state


@asynccontextmanager
async def serve(app, routes: set[str], watch: Watch | None = None):
    """Enter the app's lifespan, yield a Served, leave the lifespan (shutdown runs).

    With a `watch`, every request is bounded and a blocked event loop is reported (experiments/harness/watch.py).
    Requests for probe paths go to where the app serves them (to_served_paths).
    """
    hooks = to_served_paths(app)
    if watch is None:
        async with LifespanManager(_state_per_request(app), startup_timeout=30, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://app", event_hooks=hooks) as client:
                yield Served(client=client, routes=routes, app=app)
        return
    stop, started = threading.Event(), time.monotonic()
    watchdog = threading.Thread(target=watch.watchdog, args=(stop,), daemon=True, name="sessionbench-watchdog")
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(watch.ticker)
        watchdog.start()
        try:
            watch.phase = "starting"
            async with LifespanManager(_state_per_request(app), startup_timeout=30, shutdown_timeout=30) as manager:
                watch.phase = "serving"
                inner = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
                transport = BoundedTransport(inner, tasks, watch, started)
                async with httpx.AsyncClient(transport=transport, base_url="http://app", event_hooks=hooks) as client:
                    yield Served(client=client, routes=routes, app=app)
                watch.phase = "stopping"
        finally:
            stop.set()
            tasks.cancel_scope.cancel()
