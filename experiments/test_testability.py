"""Can a test make the app use a session the test controls, without editing the strategy?

The thread's case for dependencies over globals (#726): "all the ressource
needed by your route are passed as function parameters, which tends to make
testing easier since you can just pass a fake DB session". FastAPI's way to do
that in a test is `app.dependency_overrides`. The check does it: it overrides
each dependency the route declares, one at a time, with one that hands out the
test's own session, and looks at which session the endpoint really used.
"""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from experiments.checks import Check, measures
from experiments.harness.instruments import HARNESS
from experiments.probes import ROUTES

TESTABILITY = Check(
    id="testability",
    title="A test can hand the endpoint its own session through `app.dependency_overrides`",
    column="test overrides",
    measures=(
        "per tag route the strategy serves: the dependencies in the route's tree (FastAPI's `route.dependant`, "
        "sub-dependencies and app-level ones included); each is overridden in turn with one that yields the test's "
        "own session (a `Session`, or an `AsyncSession` where the endpoint gets one, on the same database) and one "
        "request is sent: overrides after which the endpoint used the test's session, and requests that failed"
    ),
    why=(
        "\"using dependencies rather than globals mean that all the ressource needed by your route are passed as "
        "function parameters, which tends to make testing easier since you can just pass a fake DB session\" "
        "(sm-Fifteen, #726); and of fastapi-sqlalchemy: \"it doesn't take advantage of dependency injection so you "
        "can't really make your routes or functions use a different DB object without modifying their code\""
    ),
    rule="passed when routes_overridable = routes: on every tag route some override puts the test's session into "
    "the endpoint (otherwise a test has to patch module globals)",
    passes=lambda m: m["routes"] > 0 and m["routes_overridable"] == m["routes"],
    key=("routes_overridable",),
    routes=("/sync/tag", "/async/tag"),
)


def dependencies(app, path: str) -> list:
    """The callables in the dependency tree of the route answering `path`, outermost first, each once."""
    route = next(r for r in app.routes if getattr(r, "path", None) == path and ROUTES[path] in (r.methods or ()))
    found, todo = [], list(route.dependant.dependencies)
    while todo:
        dependant = todo.pop(0)
        if dependant.call is not None and dependant.call not in found:
            found.append(dependant.call)
        todo.extend(dependant.dependencies)
    return found


def _name(call) -> str:
    return getattr(call, "__qualname__", None) or getattr(call, "__name__", None) or type(call).__name__


class OwnSessions:
    """The test's own sessions on the check's database: the harness's engines, not the app's."""

    def __init__(self, database):
        self.engine = create_engine(database.url, logging_name=HARNESS)
        self.async_engine = create_async_engine(database.async_url, logging_name=HARNESS)

    def override(self, kind: str):
        """A dependency that yields a fresh test session of `kind` ("Session" or "AsyncSession"), and its key."""
        if kind == "AsyncSession":
            session = AsyncSession(self.async_engine)

            async def test_session():
                yield session

            return test_session, session.sync_session.hash_key
        session = Session(self.engine)

        def test_session():
            yield session

        return test_session, session.hash_key

    async def close(self) -> None:
        self.engine.dispose()
        await self.async_engine.dispose()


async def _route(served, path: str, sessions: OwnSessions) -> dict:
    app, params = served.app, {"delay": 0, "query": False}
    own = await served.client.get(path, params={**params, "tag": "own"})
    if own.status_code != 200:
        return {"path": path, "dependencies": [], "reaching": [], "failed": 1, "tried": 0}
    kind, reaching, failed = own.json()["session_kind"], [], 0
    calls = dependencies(app, path)
    for call in calls:
        test_session, key = sessions.override(kind)
        app.dependency_overrides[call] = test_session
        try:
            r = await served.client.get(path, params={**params, "tag": f"override-{_name(call)}"})
        finally:
            del app.dependency_overrides[call]
        if r.status_code != 200:
            failed += 1
        elif r.json()["session"] == key:
            reaching.append(_name(call))
    return {"path": path, "dependencies": [_name(c) for c in calls], "reaching": reaching, "failed": failed,
            "tried": len(calls)}


@measures(TESTABILITY)
async def test_testability(served, database, record):
    sessions = OwnSessions(database)
    try:
        found = [await _route(served, path, sessions) for path in sorted(served.routes)]
    finally:
        await sessions.close()
    metrics = {
        "routes": len(found),
        "routes_overridable": sum(bool(r["reaching"]) for r in found),
        "dependencies": sum(len(r["dependencies"]) for r in found),
        "overrides_reaching_endpoint": sum(len(r["reaching"]) for r in found),
        "requests_failed": sum(r["failed"] for r in found),
    }
    record(metrics, "; ".join(
        f"{r['path']}: " + (
            f"{len(r['reaching'])} of {r['tried']} dependencies overridden put the test's session into the endpoint "
            f"({', '.join(r['reaching']) or 'none'}; tried: {', '.join(r['dependencies'])})" if r["dependencies"]
            else "the route declares no dependency to override: the endpoint finds its session elsewhere (a global, "
            "request.state, a ContextVar)"
        ) + (f", {r['failed']} requests failed" if r["failed"] else "")
        for r in found
    ) + ".")
