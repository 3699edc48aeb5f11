"""The bodies of the probe routes, written once and wired by every strategy in its own idiom.

Where the session comes from (a `Depends`, `request.state`, a registry, a
`ContextVar`) is what is measured, so each strategy writes its own route
functions; what those routes *do* lives here so that every strategy does
exactly the same work. Each body accepts a sync `Session` or an `AsyncSession`.

The route contract (paths the checks call):

    GET  /sync/tag?tag=&delay=&query=   def endpoint, sync Session      -> tag()
    GET  /async/tag?tag=&delay=&query=  async def endpoint, the session the
                                    strategy gives async code             -> tag_async()
    GET  /same                      a dependency and the endpoint both
                                    take the session                      -> session_key(), same_session()
    POST /sync/write?key=&fail=&delay=   def endpoint                     -> write()
    POST /async/write?key=&fail=&delay=  async def endpoint               -> write_async()
                                    (a strategy that commits in teardown
                                    or middleware passes `commit=False`)
    GET  /nodb                      never touches the database            -> no_database()
    GET  /sync/model?delay=         def endpoint with `response_model=NoteOut`
                                    returning the ORM row                 -> load_note()
    GET  /sync/user?delay=          a def dependency loads the current user
                                    with the session, the endpoint sleeps -> current_user(), greet()
    POST /sync/conflict?key=        def endpoint; adds a row that cannot be
                                    committed; the strategy commits it
                                    where it commits (endpoint or teardown) -> add_conflicting()
    POST /async/conflict?key=       the same from an async def endpoint   -> add_conflicting()
    GET  /sync/stream?chunks=&delay=    def endpoint returning a `StreamingResponse`
                                    of stream(session, ...)              -> stream()
    GET  /async/stream?chunks=&delay=   async def endpoint, stream_async()  -> stream_async()
    POST /sync/background?key=      def endpoint adding a `BackgroundTasks`
                                    task write_later(session, key)       -> write_later()
    POST /async/background?key=     async def endpoint, write_later_async() -> write_later_async()
    POST /sync/created?key=         def endpoint with `response_model=NoteOut`
                                    returning the row it committed       -> create()
    POST /async/created?key=        async def endpoint, the same         -> create_async()
                                    (a strategy that commits in teardown
                                    or middleware passes `commit=False`)

Optional, for apps with two databases ($SECOND_DATABASE_URL, $ASYNC_SECOND_DATABASE_URL):

    POST /sync/write2?key=&fail=&delay=   def endpoint, a session for each database -> write_both()
    POST /async/write2?key=&fail=&delay=  async def endpoint                       -> write_both_async()

A strategy that cannot serve a path lists it in a module-level
`UNSUPPORTED = {"/sync/tag": "why"}`; the checks needing it are skipped. One
that leaves out the optional routes is skipped by the checks that need them.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator

import anyio
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Float, String, bindparam, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

ROUTES = {
    "/sync/tag": "GET",
    "/async/tag": "GET",
    "/same": "GET",
    "/sync/write": "POST",
    "/async/write": "POST",
    "/nodb": "GET",
    "/sync/model": "GET",
    "/sync/user": "GET",
    "/sync/conflict": "POST",
    "/async/conflict": "POST",
    "/sync/stream": "GET",
    "/async/stream": "GET",
    "/sync/background": "POST",
    "/async/background": "POST",
    "/sync/created": "POST",
    "/async/created": "POST",
    "/sync/write2": "POST",
    "/async/write2": "POST",
}
OPTIONAL = {"/sync/write2": "two databases", "/async/write2": "two databases"}  # served only by apps that have them

# The kinds of endpoint a verdict can concern. An app's `def` endpoints run in FastAPI's threadpool with a sync
# `Session`; its `async def` ones run on the event loop with whatever session the strategy gives async code. A
# reader's app may have only one kind, so checks that reach both judge each on its own numbers.
KINDS = {"def": "`def` endpoints", "async": "`async def` endpoints"}
PATH_KINDS = {"/sync/": "def", "/async/": "async"}  # what the route contract asks each path to be


def path_kinds(path: str) -> tuple[str, ...]:
    """The kinds of endpoint `path` may be: the one its prefix names, or either (`/same`, `/nodb`)."""
    for prefix, kind in PATH_KINDS.items():
        if path.startswith(prefix):
            return (kind,)
    return tuple(KINDS)


SEED_ROW_ID = 1
# Seconds a querying tag probe also spends inside the database, in `sessionbench_pause(seconds)` (pg_sleep on
# PostgreSQL, a sleeping function the harness registers on SQLite connections): set by the loop check, so that a
# query's round trip takes real time, as on a database server, and blocks whatever thread waits for it.
PAUSE_S = 0.0


class Base(DeclarativeBase):
    pass


class Note(Base):
    """The one table: a seed row the tag probe loads, and one row per write."""

    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)


class NoteOut(BaseModel):
    """The response model of /sync/model: FastAPI validates the returned ORM row into it."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    key: str


class ProbeFailure(RuntimeError):
    """Raised by the write probe when asked to fail after writing."""


PAUSE_QUERY = select(func.sessionbench_pause(bindparam("seconds", type_=Float)))


def _load(session: Session) -> None:
    """The tag probe's query through a sync Session: the seed row, then the check's pause in the database, if any."""
    session.get(Note, SEED_ROW_ID)
    if PAUSE_S:
        session.execute(PAUSE_QUERY, {"seconds": PAUSE_S})


def _sync(session: Session | AsyncSession) -> Session:
    return session.sync_session if isinstance(session, AsyncSession) else session


def session_key(session: Session | AsyncSession) -> int:
    """Identity of a session that survives across threads (`Session.hash_key`, never `id()`)."""
    return _sync(session).hash_key


# The request that last used each open transaction (SessionTransaction objects are weak-referenceable): a request
# that starts inside a transaction an earlier request used has inherited it; one begun for it (a dependency's
# `with SessionLocal.begin()`) is its own.
_TRANSACTION_USED_BY: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _objects(session: Session) -> list:
    return [*session.identity_map.values(), *session.new]


def _before(session: Session) -> dict:
    """What the session already carried when this request got it, and which of it an earlier request left."""
    transaction = session.get_transaction()
    return {
        "tag_before": session.info.get("tag"),
        "in_transaction_before": session.in_transaction(),
        "transaction_of_earlier_request": transaction is not None and transaction in _TRANSACTION_USED_BY,
        "objects_of_earlier_requests": sum("request" in inspect(o).info for o in _objects(session)),
    }


def _after(session: Session, tag: str, started: float, before: dict, kind: str = "Session") -> dict:
    """What the request saw, and marks on what it leaves behind (its transaction, its objects) for the next one."""
    if (transaction := session.get_transaction()) is not None:
        _TRANSACTION_USED_BY[transaction] = tag
    for obj in _objects(session):
        inspect(obj).info["request"] = tag
    return {
        **before,
        "session_kind": kind,  # what the endpoint was handed: "Session" or "AsyncSession"
        "tag": tag,
        "tag_after": session.info.get("tag"),
        "session": session.hash_key,
        "thread": threading.get_ident(),
        "started": started,
        "ended": time.monotonic(),
    }


def tag(session: Session, tag: str, delay: float, query: bool) -> dict:
    """Tag the session, optionally load the seed row (opening a transaction), sleep, read the tag back.

    The concurrent checks pass `query=False`: a connection held across the sleep
    would turn an isolation test into a pool-exhaustion test.
    """
    started = time.monotonic()
    before = _before(session)
    session.info["tag"] = tag
    if query:
        _load(session)
    time.sleep(delay)
    return _after(session, tag, started, before)


async def tag_async(session: Session | AsyncSession, tag: str, delay: float, query: bool) -> dict:
    """The same from an `async def` endpoint; a sync Session blocks the loop while it queries."""
    started = time.monotonic()
    sync = _sync(session)
    before = _before(sync)
    sync.info["tag"] = tag
    if query and isinstance(session, AsyncSession):
        await session.get(Note, SEED_ROW_ID)
        if PAUSE_S:
            await session.execute(PAUSE_QUERY, {"seconds": PAUSE_S})
    elif query:
        _load(session)
    await anyio.sleep(delay)
    return _after(sync, tag, started, before, "AsyncSession" if isinstance(session, AsyncSession) else "Session")


def same_session(dependency_session_key: int, session: Session | AsyncSession) -> dict:
    """Body of /same: the key a dependency saw next to the key the endpoint sees."""
    return {"dependency_session": dependency_session_key, "endpoint_session": session_key(session)}


def write(session: Session, key: str, fail: bool, delay: float, commit: bool = True) -> dict:
    """Add one row, sleep, then commit it; when `fail`, send it to the database and raise instead.

    The failing path flushes first, so that the row sits in an open transaction
    and it is the strategy's cleanup that decides whether it is rolled back.
    `commit=False` flushes and leaves the commit to the strategy (teardown,
    middleware), so the checks exercise the pattern's own commit point.
    """
    session.add(Note(key=key))
    time.sleep(delay)
    if fail:
        session.flush()
        raise ProbeFailure(f"asked to fail after writing {key}")
    session.commit() if commit else session.flush()
    return {"key": key, "session": session.hash_key}


async def write_async(session: Session | AsyncSession, key: str, fail: bool, delay: float, commit: bool = True) -> dict:
    """The same from an `async def` endpoint, yielding to other requests while it sleeps.

    The failing path flushes an AsyncSession before raising, like `write`.
    """
    session.add(Note(key=key))
    await anyio.sleep(delay)
    if fail:
        if isinstance(session, AsyncSession):
            # Not with a sync Session: on SQLite its write lock, held on the event-loop thread, would stall
            # every other request's commit (the loop-blocking check measures that).
            await session.flush()
        raise ProbeFailure(f"asked to fail after writing {key}")
    if not commit:  # left to the strategy; flushed where that cannot stall the loop (see above)
        if isinstance(session, AsyncSession):
            await session.flush()
    elif isinstance(session, AsyncSession):
        await session.commit()
    else:
        session.commit()
    return {"key": key, "session": session_key(session)}


def keys_in_both(key: str) -> tuple[str, str]:
    """The keys `write_both` gives the row in the first database and the one in the second."""
    return f"{key}@first", f"{key}@second"


def write_both(first: Session, second: Session, key: str, fail: bool, delay: float) -> dict:
    """Add one row to each database through its own session, sleep, commit both; when `fail`, flush both and raise.

    Each row's key names its database, so a row that lands in the other one is seen."""
    for session, row_key in zip((first, second), keys_in_both(key)):
        session.add(Note(key=row_key))
    time.sleep(delay)
    if fail:
        first.flush()
        second.flush()
        raise ProbeFailure(f"asked to fail after writing {key} to both databases")
    first.commit()
    second.commit()
    return {"key": key, "sessions": [first.hash_key, second.hash_key]}


async def write_both_async(
    first: Session | AsyncSession, second: Session | AsyncSession, key: str, fail: bool, delay: float
) -> dict:
    """The same from an `async def` endpoint (sync sessions are flushed only when asked to fail, as in write_async)."""
    for session, row_key in zip((first, second), keys_in_both(key)):
        session.add(Note(key=row_key))
    await anyio.sleep(delay)
    for session in (first, second):
        if fail and isinstance(session, AsyncSession):
            await session.flush()
    if fail:
        raise ProbeFailure(f"asked to fail after writing {key} to both databases")
    for session in (first, second):
        await session.commit() if isinstance(session, AsyncSession) else session.commit()
    return {"key": key, "sessions": [session_key(first), session_key(second)]}


def no_database() -> dict:
    """Body of /nodb: a request that needs no session at all."""
    return {"ok": True}


def load_note(session: Session, delay: float) -> Note:
    """Body of /sync/model: load the seed row and sleep; FastAPI serialises the row after the endpoint returns."""
    note = session.get(Note, SEED_ROW_ID)
    time.sleep(delay)
    return note


def current_user(session: Session) -> int:
    """Body of /sync/user's dependency: a query before the endpoint runs, as "load the current user" does."""
    return session.get(Note, SEED_ROW_ID).id


def greet(user: int, delay: float) -> dict:
    """Body of /sync/user's endpoint."""
    time.sleep(delay)
    return {"user": user}


CONFLICTING_KEY = "seed"  # the seed row's key: a second row with it breaks the unique constraint at commit


def add_conflicting(session: Session | AsyncSession, key: str) -> dict:
    """Add a row keyed `key` and one that breaks the unique key; whoever commits them gets an IntegrityError.

    Nothing is flushed here, so the error surfaces where the strategy commits:
    in the endpoint (the client sees a 500) or in teardown (maybe after the response).
    """
    session.add_all([Note(key=key), Note(key=CONFLICTING_KEY)])
    return {"key": key}


STREAM_QUERY = select(Note.key).where(Note.id == SEED_ROW_ID)  # a real round trip per chunk (`get` would hit the map)


def _chunk(i: int, key: str) -> str:
    return json.dumps({"chunk": i, "key": key}) + "\n"


def stream(session: Session, chunks: int, delay: float) -> Iterator[str]:
    """Body of /sync/stream's `StreamingResponse`: `chunks` lines, each read through the request's session, then
    a `delay` pause. It runs after the endpoint has returned, as Starlette sends the response; whatever transaction
    the reads open stays open until the strategy ends it, as in an app that streams from its session."""
    for i in range(chunks):
        yield _chunk(i, session.scalar(STREAM_QUERY))
        time.sleep(delay)


async def stream_async(session: Session | AsyncSession, chunks: int, delay: float) -> AsyncIterator[str]:
    """The same for /async/stream; a sync Session blocks the loop while it queries."""
    for i in range(chunks):
        key = await session.scalar(STREAM_QUERY) if isinstance(session, AsyncSession) else session.scalar(STREAM_QUERY)
        yield _chunk(i, key)
        await anyio.sleep(delay)


def write_later(session: Session, key: str) -> None:
    """The `BackgroundTasks` task of /sync/background: add a row through the request's session and commit it,
    after the response has been sent."""
    session.add(Note(key=key))
    session.commit()


async def write_later_async(session: Session | AsyncSession, key: str) -> None:
    """The task of /async/background."""
    session.add(Note(key=key))
    await session.commit() if isinstance(session, AsyncSession) else session.commit()


def create(session: Session, key: str, commit: bool = True) -> Note:
    """Body of /sync/created: add a row, commit it and return the ORM object itself, which FastAPI reads for the
    route's `response_model=NoteOut` once the endpoint has returned. A commit expires the object's attributes
    (SQLAlchemy's default, `expire_on_commit=True`), so reading them loads the row again. `commit=False` flushes
    instead (the row gets its id) and leaves the commit to the strategy."""
    note = Note(key=key)
    session.add(note)
    session.commit() if commit else session.flush()
    return note


async def create_async(session: Session | AsyncSession, key: str, commit: bool = True) -> Note:
    """The same for /async/created: FastAPI reads the object on the event loop, outside the greenlet in which an
    AsyncSession does its I/O. A sync Session is flushed here even with `commit=False`, unlike in write_async: the
    response needs the id, and the check's requests come one at a time, so its write lock stalls no other."""
    note = Note(key=key)
    session.add(note)
    if isinstance(session, AsyncSession):
        await session.commit() if commit else await session.flush()
    else:
        session.commit() if commit else session.flush()
    return note
