"""Can an endpoint return the ORM object it has just committed?

`commit()` expires every attribute of the session's objects (SQLAlchemy's
default, `expire_on_commit=True`), and FastAPI reads the returned object for its
`response_model` after the endpoint has returned. An `AsyncSession` cannot load
the expired attributes there: FastAPI reads them on the event loop, outside the
greenlet in which it does its I/O, and SQLAlchemy raises `MissingGreenlet`
("greenlet_spawn has not been called") after the row was committed. A sync
`Session` loads them, with a SELECT per object after the commit.
"""

from __future__ import annotations

import anyio

from experiments.checks import Check, measures
from experiments.harness import instruments, serving
from experiments.harness.serving import serve
from experiments.harness.watch import answered
from experiments.rules import zero

CREATED = 10  # sequential requests per created route: one at a time, so every SELECT is the request's own

OBJECTS_AFTER_COMMIT = Check(
    id="objects_after_commit",
    title="An endpoint can return the ORM object it has just committed",
    column="objects after commit",
    measures=(
        f"{CREATED} sequential requests on the created route of each kind, each adding a row through the request's "
        "session, committing it where the pattern commits and returning the ORM object through "
        "`response_model=NoteOut`: 5xx answers, `MissingGreenlet` errors raised in the app, rows written (counted "
        "over the harness's own connection), SELECTs a session ran after its commit (reloading what the commit "
        "expired), and the `expire_on_commit` of the sessions that committed"
    ),
    why=(
        "fastapi-users #1175 and #1395, sqlalchemy #6164 and #9627, sqlmodel #643, fastapi-sqla #56: an object "
        'returned through a response model after `commit()` raises `MissingGreenlet` ("greenlet_spawn has not been '
        'called") in async code; Kludex in sqlalchemy #5811: "If you\'re using it with Pydantic (or FastAPI), you '
        'need to set `expire_on_commit=False`"'
    ),
    rule=zero(
        "responses_5xx",
        "missing_greenlet_errors",
        note="the client gets the object it wrote. "
        "selects_after_commit is the cost beside the verdict, not part of it: a sync `Session` that expires on "
        "commit answers correctly, but FastAPI's read of each returned object loads it again, a SELECT per object "
        "that the request never asked for, on a connection taken from the pool again, in a transaction left open "
        "until the session closes (the I/O an `AsyncSession` refuses there with `MissingGreenlet`); "
        "`expire_on_commit=False` on the sessionmaker removes it for any pattern. A pattern that commits after the "
        "response is built (in teardown or middleware) reads no expired object, whatever its setting; whether that "
        "late commit's failure reaches the client is `cleanup_timing`'s question",
    ),
    severity="errors",
    key=("responses_5xx", "missing_greenlet_errors", "selects_after_commit"),
    routes=("/sync/created", "/async/created"),
)


def _setting(found: set[bool]) -> bool | str | None:
    """The `expire_on_commit` of the sessions that committed: one value, "both", or None when none committed."""
    return next(iter(found)) if len(found) == 1 else "both" if found else None


@measures(OBJECTS_AFTER_COMMIT)
async def test_objects_after_commit(app_module, routes, kind, database, record, watch):
    (path,) = routes
    keys = [f"{path}-{i}" for i in range(CREATED)]
    exchanges: list[serving.Exchange] = []
    responses, raised_in = [], 0  # requests during which MissingGreenlet was raised
    with instruments.commits() as seen:
        async with serve(serving.recorded(app_module.app, exchanges), routes, watch) as served:
            for key in keys:
                before = seen.missing_greenlet
                responses.append(await served.client.post(path, params={"key": key}))
                raised_in += seen.missing_greenlet > before
    present = await anyio.to_thread.run_sync(database.keys_present, keys)
    errors = [e.error for e in exchanges if e.error]
    metrics = {
        "requests": CREATED,
        "responses_5xx": sum(answered(r) and r.status_code >= 500 for r in responses),
        "missing_greenlet_errors": seen.missing_greenlet,
        "app_errors": len(errors),
        "rows_written": len(present),
        "selects_after_commit": seen.selects_after_commit,
        "commits": seen.commits,
        "expire_on_commit": _setting(seen.expire_on_commit),
    }
    common = min(set(errors), key=lambda e: (-errors.count(e), e)) if errors else None
    record(
        metrics,
        f"{metrics['responses_5xx']} of {CREATED} requests to {path} answered 5xx"
        + (f" (the app raised {common.rstrip(':')})" if common else "")
        + f"; MissingGreenlet raised {seen.missing_greenlet} times, in {raised_in} requests; {len(present)} of "
        f"{CREATED} rows written; {seen.selects_after_commit} SELECTs after {seen.commits} commits; the sessions "
        f"that committed had expire_on_commit={metrics['expire_on_commit']}.",
    )
