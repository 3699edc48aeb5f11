"""Counting what SQLAlchemy does inside the app, and setting its pool, without touching the strategy's code.

Listeners on the `Pool` and `Session` classes see every engine and session the
strategy creates, whatever it calls them, so a check can ask "how many
connections were checked out when the response went out" or "how many sessions
did a request that needs none create". `pool_defaults` makes a check's pool
(pool_size=5, ...) the default of SQLAlchemy's queue pool itself, so it reaches
every engine whatever path made it (`sqlalchemy.create_engine`,
`sqlalchemy.engine.create_engine`, `engine_from_config`, `sqlmodel.create_engine`,
`create_async_engine`, a library's own wrapper); `engines_used` records the pool
each engine the app connected through actually had, for the row.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import AdaptedConnection, Connection, Engine
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, QueuePool


@dataclass
class Counts:
    sessions_created: int = 0
    checkouts: int = 0  # connections handed out by any pool
    checked_out: int = 0  # handed out and not yet returned, now
    peak_checked_out: int = 0
    last_checkin: float = 0.0  # monotonic time the last connection was returned
    reopened_after_close: int = 0  # sessions that took a connection again after their owner closed them


@contextmanager
def counting() -> Iterator[Counts]:
    """Count sessions created and pool checkouts/checkins, in every engine, while the block runs."""
    counts = Counts()
    lock = threading.Lock()  # checkouts happen on threadpool threads as well as the loop's

    def on_checkout(*_):
        with lock:
            counts.checkouts += 1
            counts.checked_out += 1
            counts.peak_checked_out = max(counts.peak_checked_out, counts.checked_out)

    def on_checkin(*_):
        with lock:
            counts.checked_out -= 1
            counts.last_checkin = time.monotonic()

    original_init, original_close = Session.__init__, Session.close
    closed: weakref.WeakSet[Session] = weakref.WeakSet()

    def counting_init(self, *args, **kwargs):
        with lock:
            counts.sessions_created += 1
        original_init(self, *args, **kwargs)

    def noting_close(self):
        closed.add(self)
        original_close(self)

    def on_begin(session, _transaction, _connection):
        if session in closed:  # SQLAlchemy 2 reopens a closed session on use; its owner will not close it again
            closed.discard(session)
            with lock:
                counts.reopened_after_close += 1

    event.listen(Pool, "checkout", on_checkout)
    event.listen(Pool, "checkin", on_checkin)
    event.listen(Session, "after_begin", on_begin)
    Session.__init__ = counting_init  # AsyncSession builds a Session too, so it is counted once
    Session.close = noting_close
    try:
        yield counts
    finally:
        Session.__init__, Session.close = original_init, original_close
        event.remove(Pool, "checkout", on_checkout)
        event.remove(Pool, "checkin", on_checkin)
        event.remove(Session, "after_begin", on_begin)


@dataclass
class Commits:
    commits: int = 0
    expire_on_commit: set[bool] = field(default_factory=set)  # `expire_on_commit` of each session that committed
    selects_after_commit: int = 0  # SELECTs run through a session after it committed (reloading what it expired)
    missing_greenlet: int = 0  # MissingGreenlet raised: an AsyncSession asked for I/O outside its greenlet


@contextmanager
def commits() -> Iterator[Commits]:
    """Count, in every session and engine while the block runs, the commits and the setting of each session that
    committed, the SELECTs a session ran after its commit, and the MissingGreenlet errors raised.

    A SELECT is the session's when it runs on the connection the session last began a transaction on; only
    statements that ran are counted, so an AsyncSession's reload that raised MissingGreenlet is not a SELECT.
    """
    found = Commits()
    lock = threading.Lock()
    committed: weakref.WeakSet[Session] = weakref.WeakSet()
    session_of: weakref.WeakKeyDictionary[Connection, Session] = weakref.WeakKeyDictionary()

    def on_commit(session):
        with lock:
            found.commits += 1
            found.expire_on_commit.add(bool(session.expire_on_commit))
            committed.add(session)

    def on_begin(session, _transaction, connection):
        session_of[connection] = session

    def on_execute(conn, _cursor, statement, *_):
        if statement.lstrip()[:6].upper() == "SELECT" and session_of.get(conn) in committed:
            with lock:
                found.selects_after_commit += 1

    own_init = vars(MissingGreenlet).get("__init__")

    def counting_init(self, *args, **kwargs):
        with lock:
            found.missing_greenlet += 1
        super(MissingGreenlet, self).__init__(*args, **kwargs)

    event.listen(Session, "after_commit", on_commit)
    event.listen(Session, "after_begin", on_begin)
    event.listen(Engine, "after_cursor_execute", on_execute)
    MissingGreenlet.__init__ = counting_init  # SQLAlchemy raises it from await_only, below any listener
    try:
        yield found
    finally:
        if own_init is None:
            del MissingGreenlet.__init__
        else:
            MissingGreenlet.__init__ = own_init
        event.remove(Session, "after_commit", on_commit)
        event.remove(Session, "after_begin", on_begin)
        event.remove(Engine, "after_cursor_execute", on_execute)


@contextmanager
def sync_driver_calls_on(thread: int, calls: dict[str, int]) -> Iterator[None]:
    """Count into `calls` ("execute", "commit", "rollback", "reset") what sync engines ask of their database driver
    on `thread` (the event loop's) while the block runs. An async engine's driver calls run there too, awaited inside
    SQLAlchemy's greenlet: its dialect says so (`is_async`), and its pooled connections are adapted ones."""
    lock = threading.Lock()

    def count(name: str, is_async: bool) -> None:
        if threading.get_ident() == thread and not is_async:
            with lock:
                calls[name] += 1

    def on_execute(conn, *_):
        count("execute", conn.dialect.is_async)

    def on_commit(conn):
        count("commit", conn.dialect.is_async)

    def on_rollback(conn):
        count("rollback", conn.dialect.is_async)

    def on_reset(dbapi_connection, *_):
        count("reset", isinstance(dbapi_connection, AdaptedConnection))

    listeners = [(Engine, "before_cursor_execute", on_execute), (Engine, "commit", on_commit),
                 (Engine, "rollback", on_rollback), (Pool, "reset", on_reset)]  # fmt: skip
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while the block runs, then collect.

    A session is a reference cycle, so a connection only its owner's close would have returned is otherwise
    returned whenever the collector happens to run: paused, such a connection stays checked out until counted,
    and the same behaviour gives the same count every run.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


def register_pause() -> None:
    """Give every SQLite connection opened from here on `sessionbench_pause(seconds)`, which sleeps inside the
    database call (probes.PAUSE_S): in the thread that runs the query, aiosqlite's own for an async engine, the
    caller's for a sync one. PostgreSQL has it as a SQL function over pg_sleep (serving.Database)."""
    if not event.contains(Pool, "connect", _add_pause):
        event.listen(Pool, "connect", _add_pause)


def _add_pause(dbapi_connection, _record) -> None:
    create = getattr(dbapi_connection, "create_function", None)  # sqlite3's, and aiosqlite's adapter's
    if create is not None:
        create("sessionbench_pause", 1, _pause)


def _pause(seconds: float) -> int:
    time.sleep(seconds)
    return 1


HARNESS = "sessionbench-harness"  # logging_name of the harness's own engines (schema, row counts): not the app's
# create_engine's names for the pool settings a check declares -> QueuePool.__init__'s parameters
_POOL_ARGS = {"pool_size": "pool_size", "max_overflow": "max_overflow", "pool_timeout": "timeout"}


def pool_defaults(monkeypatch: pytest.MonkeyPatch, **pool) -> None:
    """Make `pool` (e.g. pool_size=5, max_overflow=0, pool_timeout=1) the default of every queue pool created
    after this call, sync or async, whatever created it; settings an engine passes itself win, and an engine
    that chose another pool class (NullPool, StaticPool...) keeps it. `engines_used` says which engines ran as
    declared."""
    unknown = set(pool) - set(_POOL_ARGS)
    if unknown:
        raise ValueError(f"pool settings {sorted(unknown)} are not among {sorted(_POOL_ARGS)}")
    init = QueuePool.__init__  # AsyncAdaptedQueuePool inherits it; create_engine reads its signature, so keep it
    names = init.__code__.co_varnames[1 : init.__code__.co_argcount]  # creator, pool_size, max_overflow, ...
    defaults = dict(zip(names[-len(init.__defaults__) :], init.__defaults__))
    defaults |= {_POOL_ARGS[name]: value for name, value in pool.items()}
    monkeypatch.setattr(init, "__defaults__", tuple(defaults[n] for n in names[-len(init.__defaults__) :]))


def describe_pool(pool: Pool) -> dict:
    """The pool as it is: class, whether it pings a connection before handing it out (`pool_pre_ping`), and for a
    queue pool its size, overflow and timeout."""
    found = {"class": type(pool).__name__, "pool_pre_ping": bool(pool._pre_ping)}
    if isinstance(pool, QueuePool):
        found |= {"pool_size": pool.size(), "max_overflow": pool._max_overflow, "pool_timeout": pool.timeout()}
    return found


def as_declared(found: dict, declared: dict | None) -> bool | None:
    """Did a pool run with the declared settings? None when nothing was declared."""
    if not declared:
        return None
    return all(found.get(name) == value for name, value in declared.items())


class EnginesUsed:
    """The engines that handed the app a connection, and the pool each really had."""

    def __init__(self, declared: dict | None):
        self.declared = declared
        self.seen: weakref.WeakSet[Engine] = weakref.WeakSet()

    def _engines(self) -> list[Engine]:
        return sorted(self.seen, key=lambda e: str(e.url))

    @staticmethod
    def _name(engine: Engine) -> str:
        database = Path(engine.url.database).name if engine.url.database else ""
        return f"{engine.url.drivername} {database}".strip()

    def conditions(self) -> dict:
        """`{"pool": declared, "engines": [{driver, database, class, pool_size, ...}], "as_declared": bool | None}`."""
        engines = []
        for engine in self._engines():
            pool = describe_pool(engine.pool)
            database = Path(engine.url.database).name if engine.url.database else None
            engines.append(
                {
                    "driver": engine.url.drivername,
                    "database": database,
                    **pool,
                    "as_declared": as_declared(pool, self.declared),
                }
            )
        verdicts = [e["as_declared"] for e in engines]
        return {
            "pool": self.declared,
            "engines": engines,  # as_declared: None when nothing was declared or used
            "as_declared": all(verdicts) if self.declared and engines else None,
        }

    def state(self) -> str:
        """`sqlite x.db: 15 of 15 connections checked out (QueuePool)`, per engine, now."""
        found = []
        for engine in self._engines():
            pool = engine.pool
            limit = f" of {pool.size() + pool._max_overflow}" if isinstance(pool, QueuePool) else ""
            found.append(
                f"{self._name(engine)}: {pool.checkedout()}{limit} connections checked out ({type(pool).__name__})"
            )
        return "; ".join(found)


@contextmanager
def engines_used(declared: dict | None = None) -> Iterator[EnginesUsed]:
    """Note every engine that hands the app a connection while the block runs (not the harness's own)."""
    used = EnginesUsed(declared)

    def note(conn) -> None:
        if conn.engine.logging_name != HARNESS:
            used.seen.add(conn.engine)

    event.listen(Engine, "engine_connect", note)
    try:
        yield used
    finally:
        event.remove(Engine, "engine_connect", note)


def mismatch(conditions: dict) -> str:
    """`sqlite x.db ran QueuePool(pool_size=20, max_overflow=0, pool_timeout=1)`, per engine not as declared."""
    off = [e for e in conditions["engines"] if e["as_declared"] is False]
    return "; ".join(
        f"{e['driver']} {e['database'] or ''} ran {e['class']}("
        + ", ".join(f"{k}={e[k]:g}" for k in ("pool_size", "max_overflow", "pool_timeout") if k in e)
        + ")"
        for e in off
    )
