"""Can a test make the app use a session the test controls, without editing the strategy, and roll back what the
app wrote through it?

The thread's case for dependencies over globals (#726): "all the ressource
needed by your route are passed as function parameters, which tends to make
testing easier since you can just pass a fake DB session". FastAPI's way to do
that in a test is `app.dependency_overrides`, and projects override a
dependency with what it hands out: a session, a sessionmaker (use-case code
opens its sessions from it), or their own unit of work. The checks learn which
by running the real dependencies once, in one request with each of them
wrapped, and looking at what each really yields: return annotations are often
missing (the docs' `get_db` has none) or name a base class. Then they override
each dependency in turn with the test's own of that kind and look at which
session the endpoint really used; `rollback_tests` binds it to a connection
inside a transaction the test rolls back, as test suites do.
"""

from __future__ import annotations

import copy
import functools
import inspect
from contextlib import asynccontextmanager, contextmanager

import anyio
from fastapi.dependencies.utils import get_typed_signature
from sqlalchemy import create_engine, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments.checks import Check, measures
from experiments.harness.discovery import probe_routes
from experiments.harness.instruments import HARNESS
from experiments.probes import Note
from experiments.rules import Rule, Term

# What a dependency can hand out that a test stands in for, as the metrics name it: a session, a sessionmaker, or an
# object holding either among its attributes or theirs (a unit of work, UNIT_OF_WORK_DEPTH).
HANDS_OUT = ("session", "sessionmaker", "unit_of_work")

TESTABILITY = Check(
    id="testability",
    title="A test can hand the endpoint its own session through `app.dependency_overrides`",
    column="test overrides",
    measures=(
        "per tag route the strategy serves: the dependencies in the route's tree (FastAPI's `route.dependant`, "
        "sub-dependencies and app-level ones included) and what each hands out, seen in one request with every one "
        "of them wrapped: a session, a sessionmaker, or an object holding one among its attributes or theirs (a unit "
        "of work). Each of those is overridden in turn (in the `dependency_overrides` of the application the route "
        "belongs to: a mounted sub-application has its own) with the test's own of the same kind, sync or async, "
        "on the same database (a `Session` or `AsyncSession`; a `sessionmaker` or `async_sessionmaker`; a copy of the "
        "object with each session and sessionmaker it holds swapped for the test's) and one request is sent: "
        "overrides after which the endpoint used the test's session, the routes each kind of override reached "
        "(`routes_reached_by_session`, `_sessionmaker`, `_unit_of_work`), and requests that failed"
    ),
    why=(
        '"using dependencies rather than globals mean that all the ressource needed by your route are passed as '
        'function parameters, which tends to make testing easier since you can just pass a fake DB session" '
        "(sm-Fifteen, #726); and of fastapi-sqlalchemy: \"it doesn't take advantage of dependency injection so you "
        "can't really make your routes or functions use a different DB object without modifying their code\""
    ),
    rule=Rule(
        (Term("routes", ">", 0), Term("routes_overridable", "=", "routes")),
        "on every tag route some override of the kind its dependency "
        "hands out puts the test's session into the endpoint (otherwise a test has to patch module globals)",
    ),
    severity="nuisance",
    key=("routes_overridable",),
    routes=("/sync/tag", "/async/tag"),
)

ROLLBACK_TESTS = Check(
    id="rollback_tests",
    title="A test can roll back what the app writes, through the override the strategy allows",
    column="test rollback",
    measures=(
        "per write route the strategy serves (its write commits, or the strategy commits it): the test opens a sync "
        "and an async connection and begins a transaction on each (on SQLite with SQLAlchemy's recipe that makes "
        "SAVEPOINT work under pysqlite and aiosqlite), overrides in turn each dependency `testability` would "
        "override, with the same kind of stand-in bound to those connections with "
        '`join_transaction_mode="create_savepoint"` (where none hands out a session, the write is sent inside the '
        "test's transaction as it is), sends one write, looks for its row as a test does (through the session it "
        "handed the app, pending objects flushed, then on its connections), rolls both transactions back and looks "
        "for the row again with a connection of the harness's own. Per route, from its best override: routes whose "
        "write reached the test's session, was found by the test and left no row (`routes_rollback_isolated`), "
        "writes the test found, rows left after the rollback; overrides tried and reaching the endpoint, requests "
        "that failed"
    ),
    why=(
        "FastAPI's testing page overrides `get_db` so that tests write to a test database, and the threads show "
        'tests whose override never reached the session that wrote: "The fake database gets created but still, the '
        'real one is being used by the tests" (#3242), "my pytests pass only once ... because they still use the '
        'actual postgres database" (#3472), #2301, #4639; fastapi-sqla #153: "the app doesn\'t use the session '
        'fixture resulting in writes to the database", fixed there with `app.dependency_overrides[...] = lambda: '
        'session`. SQLAlchemy\'s "Joining a Session into an External Transaction (such as for test suites)" is what '
        "makes each test's writes disappear at its end"
    ),
    rule=Rule(
        (Term("routes", ">", 0), Term("routes_rollback_isolated", "=", "routes")),
        "on every write route some override puts the test's "
        "session into the endpoint, the test finds the write, and no row of it is left once the test rolls its "
        "transaction back",
    ),
    severity="nuisance",
    key=("routes_rollback_isolated", "rows_left_after_rollback"),
    routes=("/sync/write", "/async/write"),
)


def dependencies(app, path: str) -> list:
    """The callables in the dependency tree of the route answering `path` (wherever the app serves it: in an
    included router, a mounted sub-application), outermost first, each once."""
    _, route = probe_routes(app)[path]
    found, todo = [], list(route.dependant.dependencies)
    while todo:
        dependant = todo.pop(0)
        if dependant.call is not None and dependant.call not in found:
            found.append(dependant.call)
        todo.extend(dependant.dependencies)
    return found


def _name(call) -> str:
    return getattr(call, "__qualname__", None) or getattr(call, "__name__", None) or type(call).__name__


def _observing(call, seen: dict):
    """An override that runs the real dependency `call` as FastAPI runs it, and keeps what it hands its dependants
    in `seen[call]`. It has the signature FastAPI itself reads from `call` (`get_typed_signature`, annotations
    evaluated in `call`'s module) and is the same kind of callable (generator, async generator, coroutine function
    or plain), so FastAPI runs it in the same thread and tears it down at the same point."""
    target = call
    while isinstance(target, functools.partial):
        target = target.func
    if not (inspect.isroutine(target) or inspect.isclass(target)):
        target = target.__call__  # a callable object
    target = inspect.unwrap(target)
    if inspect.isasyncgenfunction(target):

        async def observe(**values):
            async with asynccontextmanager(call)(**values) as value:
                seen[call] = value
                yield value
    elif inspect.isgeneratorfunction(target):

        def observe(**values):
            with contextmanager(call)(**values) as value:
                seen[call] = value
                yield value
    elif inspect.iscoroutinefunction(target):

        async def observe(**values):
            seen[call] = value = await call(**values)
            return value
    else:

        def observe(**values):
            seen[call] = value = call(**values)
            return value

    observe.__signature__ = get_typed_signature(call)
    return observe


def _overrides(app, path: str) -> dict:
    """The `dependency_overrides` that reach the route answering `path`: those of the application it belongs to
    (FastAPI's `dependency_overrides_provider`; a mounted sub-application has its own, where its tests override)."""
    _, route = probe_routes(app)[path]
    return (getattr(route, "dependency_overrides_provider", None) or app).dependency_overrides


async def _observed(overrides: dict, calls: list, send):
    """`await send()` with every dependency in `calls` wrapped (_observing): the response, and what each dependency
    FastAPI called handed out."""
    seen: dict = {}
    overrides.update({call: _observing(call, seen) for call in calls})
    try:
        return await send(), seen
    finally:
        for call in calls:
            del overrides[call]


@contextmanager
def _overriding(overrides: dict, call, stand_in):
    """`call` overridden by a dependency handing out `stand_in`, as a test writes it (`lambda: session`); nothing
    when `call` is None."""
    if call is None:
        yield
        return
    overrides[call] = lambda: stand_in
    try:
        yield
    finally:
        del overrides[call]


class OwnSession(Session):
    """A session of the test's, sync or inside an `AsyncSession`: its key is kept, so that a response naming it is
    known to be the test's, whoever opened it (the test, or the app from the test's sessionmaker)."""

    keys: set[int] = set()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        OwnSession.keys.add(self.hash_key)


UNIT_OF_WORK_DEPTH = 2  # an object's attributes, and theirs (a unit of work's repositories), are searched for sessions


def _hands_out(value) -> str:
    """The HANDS_OUT kind of a value Binding.stand_in can stand in for."""
    if isinstance(value, (Session, AsyncSession)):
        return "session"
    return "sessionmaker" if isinstance(value, (sessionmaker, async_sessionmaker)) else "unit_of_work"


class Binding:
    """Where the test's stand-ins get their connections: the harness's engines, or the connections of a transaction
    the test rolls back (with the session options that make them join it)."""

    def __init__(self, bind, async_bind, **options):
        self.bind, self.async_bind, self.options = bind, async_bind, options
        self.sessions: list = []

    def stand_in(self, value, depth: int = 0):
        """What the test hands the app in place of `value`, which a dependency handed out: a session or sessionmaker
        of the same kind (sync or async) bound here, or a shallow copy of an object holding some (a unit of work),
        each swapped for the test's; None when it holds none."""
        if isinstance(value, AsyncSession):
            session = AsyncSession(self.async_bind, sync_session_class=OwnSession, **self.options)
        elif isinstance(value, Session):
            session = OwnSession(self.bind, **self.options)
        elif isinstance(value, async_sessionmaker):
            return async_sessionmaker(self.async_bind, sync_session_class=OwnSession, **self.options)
        elif isinstance(value, sessionmaker):
            return sessionmaker(self.bind, class_=OwnSession, **self.options)
        else:
            return self._copy(value, depth)
        self.sessions.append(session)
        return session

    def _copy(self, value, depth: int):
        if (
            depth == UNIT_OF_WORK_DEPTH
            or not hasattr(value, "__dict__")
            or isinstance(value, type)
            or inspect.ismodule(value)
            or inspect.isroutine(value)
        ):
            return None
        swapped = {
            name: own for name, held in vars(value).items() if (own := self.stand_in(held, depth + 1)) is not None
        }
        if not swapped:
            return None
        copied = copy.copy(value)
        vars(copied).update(swapped)
        return copied

    async def finds(self, key: str) -> bool:
        """Whether the test finds the row keyed `key` as a test looks for it: through a session it handed the app
        (pending objects flushed first, as a query does) or on its own connections."""
        row = select(Note.key).where(Note.key == key)
        for session in self.sessions:
            if isinstance(session, AsyncSession):
                found = await session.scalar(row)
            else:
                found = await anyio.to_thread.run_sync(session.scalar, row)
            if found is not None:
                return True
        return (
            await anyio.to_thread.run_sync(self.bind.scalar, row) is not None
            or await self.async_bind.scalar(row) is not None
        )

    async def close(self) -> None:
        """Close the sessions the test made itself (the app closes those it opens from a test sessionmaker)."""
        for session in self.sessions:
            await session.close() if isinstance(session, AsyncSession) else session.close()


def _begin_explicitly(engine) -> None:
    """SQLAlchemy's recipe for SAVEPOINT under pysqlite and aiosqlite (SQLite dialect docs, "Serializable isolation /
    Savepoints / Transactional DDL"): the driver's own BEGIN off, SQLAlchemy's when a transaction begins. Without it
    the first SAVEPOINT starts SQLite's transaction, and releasing it (the app's commit) commits past the test's."""

    @event.listens_for(engine, "connect")
    def no_driver_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def begin(connection):
        connection.exec_driver_sql("BEGIN")


class OwnEngines:
    """The test's engines on the check's database: the harness's, not the app's."""

    def __init__(self, database):
        self.engine = create_engine(database.url, logging_name=HARNESS)
        self.async_engine = create_async_engine(database.async_url, logging_name=HARNESS)
        if self.engine.dialect.name == "sqlite":
            for engine in (self.engine, self.async_engine.sync_engine):
                _begin_explicitly(engine)

    @asynccontextmanager
    async def transaction(self):
        """A Binding on a sync and an async connection, each inside a transaction the test begins, and rolls back on
        exit; its sessions join it with SAVEPOINTs (`join_transaction_mode="create_savepoint"`), so the app's commit
        releases a savepoint instead (SQLAlchemy's "Joining a Session into an External Transaction")."""
        connection = await anyio.to_thread.run_sync(self.engine.connect)
        async_connection = await self.async_engine.connect()
        try:
            await anyio.to_thread.run_sync(connection.begin)
            await async_connection.begin()
            binding = Binding(connection, async_connection, join_transaction_mode="create_savepoint")
            try:
                yield binding
            finally:
                await binding.close()
        finally:
            await async_connection.rollback()
            await async_connection.close()
            await anyio.to_thread.run_sync(connection.rollback)
            await anyio.to_thread.run_sync(connection.close)

    async def close(self) -> None:
        self.engine.dispose()
        await self.async_engine.dispose()


def _listed(overrides: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} ({kind.replace('_', ' ')})" for name, kind in overrides)


async def _overridable(served, path: str, binding: Binding) -> dict:
    """One tag route: what each dependency hands out, and which overrides put the test's session into the endpoint."""
    overrides, calls = _overrides(served.app, path), dependencies(served.app, path)

    def tag(name: str):
        return served.client.get(path, params={"tag": name, "delay": 0, "query": False})

    found = {"path": path, "dependencies": [_name(c) for c in calls], "tried": [], "reaching": [], "failed": 0}
    response, seen = await _observed(overrides, calls, lambda: tag("observed"))
    if response.status_code != 200:
        return {**found, "failed": 1, "observed": response.status_code}
    for call in calls:
        if (stand_in := binding.stand_in(seen.get(call))) is None:
            continue
        override = (_name(call), _hands_out(seen[call]))
        found["tried"].append(override)
        with _overriding(overrides, call, stand_in):
            r = await tag(f"override-{_name(call)}")
        if r.status_code != 200:
            found["failed"] += 1
        elif r.json()["session"] in OwnSession.keys:
            found["reaching"].append(override)
    return found


def _overridable_evidence(r: dict) -> str:
    if "observed" in r:
        said = f"answered {r['observed']} with its dependencies observed"
    elif not r["dependencies"]:
        said = (
            "the route declares no dependency to override: the endpoint finds its session elsewhere (a global, "
            "request.state, a ContextVar)"
        )
    elif not r["tried"]:
        said = (
            f"none of its dependencies ({', '.join(r['dependencies'])}) hands out a session, a sessionmaker or "
            "an object holding one: the endpoint finds its session elsewhere"
        )
    else:
        said = (
            f"{len(r['reaching'])} of {len(r['tried'])} overrides put the test's session into the endpoint "
            f"({_listed(r['reaching']) or 'none'}; tried: {_listed(r['tried'])}; dependencies: "
            f"{', '.join(r['dependencies'])})"
        )
    return f"{r['path']}: {said}" + (f", {r['failed']} requests failed" if r["failed"] else "")


@measures(TESTABILITY)
async def test_testability(served, database, record):
    engines = OwnEngines(database)
    binding = Binding(engines.engine, engines.async_engine)
    try:
        found = [await _overridable(served, path, binding) for path in sorted(served.routes)]
    finally:
        await binding.close()
        await engines.close()
    metrics = {
        "routes": len(found),
        "routes_overridable": sum(bool(r["reaching"]) for r in found),
        "dependencies": sum(len(r["dependencies"]) for r in found),
        "overrides_tried": sum(len(r["tried"]) for r in found),
        "overrides_reaching_endpoint": sum(len(r["reaching"]) for r in found),
        **{
            f"routes_reached_by_{kind}": sum(any(k == kind for _, k in r["reaching"]) for r in found)
            for kind in HANDS_OUT
        },
        "requests_failed": sum(r["failed"] for r in found),
    }
    record(metrics, "; ".join(map(_overridable_evidence, found)) + ".")


async def _trial(served, path: str, database, engines: OwnEngines, key: str, call=None, handed_out=None) -> dict | None:
    """One write to `path` inside a transaction the test rolls back, with `call` (when given) overridden by the test's
    stand-in for what it handed out, bound to the transaction; None when it handed out nothing to stand in for."""
    async with engines.transaction() as binding:
        stand_in = None if call is None else binding.stand_in(handed_out)
        if call is not None and stand_in is None:
            return None
        with _overriding(_overrides(served.app, path), call, stand_in):
            response = await served.client.post(path, params={"key": key, "fail": False, "delay": 0})
        found = await binding.finds(key)
    return {
        "override": None if call is None else (_name(call), _hands_out(handed_out)),
        "status": response.status_code,
        "reached": response.status_code == 200 and response.json().get("session") in OwnSession.keys,
        "found": found,
        "left": len(await anyio.to_thread.run_sync(database.keys_present, [key])),
    }


def _isolated(trial: dict) -> bool:
    return trial["reached"] and trial["found"] and trial["left"] == 0


async def _rolled_back(served, path: str, database, engines: OwnEngines) -> dict:
    """One write route: a trial per dependency the test can stand in for (or one with none), and the best of them,
    the route's outcome: isolated first, then one whose write reached the test's session, then the fewest rows left."""
    calls, prefix = dependencies(served.app, path), f"rollback{path.replace('/', '-')}"

    async def write():
        return await served.client.post(path, params={"key": f"{prefix}-observed", "fail": False, "delay": 0})

    response, seen = await _observed(_overrides(served.app, path), calls, write)
    if response.status_code != 200:
        return {"path": path, "observed": response.status_code, "trials": []}
    trials = []
    for call in calls:
        if trial := await _trial(served, path, database, engines, f"{prefix}-{len(trials)}", call, seen.get(call)):
            trials.append(trial)
    trials = trials or [await _trial(served, path, database, engines, f"{prefix}-bare")]
    best = min(trials, key=lambda t: (not _isolated(t), not t["reached"], t["left"]))
    return {"path": path, "trials": trials, "best": best}


def _rolled_back_evidence(r: dict) -> str:
    if not r["trials"]:
        return f"{r['path']}: answered {r['observed']} to a write with its dependencies observed"
    best, tried = r["best"], [t for t in r["trials"] if t["override"]]
    via = (
        f"with {_listed([best['override']])} overridden ({len(tried)} tried) the write"
        if best["override"]
        else "no dependency hands out a session, a sessionmaker or an object holding one: the write, sent inside the "
        "test's transaction,"
    )
    reached = (
        "used the test's session"
        if best["reached"]
        else "used a session of the app's own"
        if best["status"] == 200
        else f"failed ({best['status']})"
    )
    found = "found" if best["found"] else "not found"
    return f"{r['path']}: {via} {reached}, was {found} by the test, {best['left']} rows left after the rollback"


@measures(ROLLBACK_TESTS)
async def test_rollback_tests(served, database, record):
    engines = OwnEngines(database)
    try:
        found = [await _rolled_back(served, path, database, engines) for path in sorted(served.routes)]
    finally:
        await engines.close()
    best = [r["best"] for r in found if r["trials"]]
    trials = [t for r in found for t in r["trials"]]
    metrics = {
        "routes": len(found),
        "routes_rollback_isolated": sum(map(_isolated, best)),
        "writes_found_by_test": sum(t["found"] for t in best),
        "rows_left_after_rollback": sum(t["left"] for t in best),
        "overrides_tried": sum(bool(t["override"]) for t in trials),
        "overrides_reaching_endpoint": sum(t["reached"] for t in trials if t["override"]),
        "requests_failed": sum(t["status"] != 200 for t in trials) + sum(not r["trials"] for r in found),
    }
    record(metrics, "; ".join(map(_rolled_back_evidence, found)) + ".")
