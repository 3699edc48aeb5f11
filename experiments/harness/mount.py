"""The probe routes, added to an app from where its endpoints get their session: one path for strategies and audits.

A strategy module holds its pattern and nothing of the harness: the engine's and the sessions' lifetime, the
`app`, and how an endpoint gets its session. The mount reads that from the module:

    SessionDep = Annotated[Session, Depends(get_db)]   any module-level alias over a Session (or AsyncSession,
                                                       SQLModel's, a library's) with a `Depends`: what `def` (or
                                                       `async def`) endpoints take, `scope=` and all
    SESSION_FROM = lambda: db.session                  or a getter, called with the request if it takes one, where
    ASYNC_SESSION_FROM = ...                           the session is used: in the endpoint, and in a stream or a
                                                       background task when they run (a `scoped_session` registry
                                                       is handed to them itself, as code calling it does)

and what the pattern does differently, declared:

    ROUTE_CLASS = AutoCommitAPIRoute                   its endpoints' route class
    SUB_APP = api                                      the mounted application its endpoints are served by
    BACKGROUND_SESSION = open_session                  a background task opens its own session from this
    COMMITS_AFTER_ENDPOINT = True                      teardown, middleware or the route class commits: the
                                                       probes only flush
    SECOND_SESSION / SECOND_SESSION_FROM               the second database's source, for apps that have one
    ASYNC_SECOND_SESSION / ..._FROM                    its own for `async def` endpoints, where they differ

A route the module serves itself (its body differs) or lists in UNSUPPORTED is left alone; the rest of
experiments/probes.py's contract is added, so a check written after the module still measures it. An audited app
gives the same `Wiring`, from the command line (experiments/harness/audit.py).

Not `from __future__ import annotations`: the probe endpoints are closures, and FastAPI reads their annotations
(`Depends(load_user)` of a local function) as objects.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_origin

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request, params
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, scoped_session

from experiments import probes

NO_SESSION_FOR_DEF = "the pattern gives `def` endpoints no Session: its session source gives an AsyncSession"
NDJSON = "application/x-ndjson"


class MountError(Exception):
    """The module's session sources cannot be told apart; the message says which and the fix."""


@dataclass(frozen=True)
class Side:
    """Where one kind of endpoint gets its session: a dependency FastAPI resolves, or a getter the code calls."""

    dependency: Any = None  # an Annotated[..., Depends(...)] the endpoint's `db` parameter is declared with
    getter: Callable | None = None  # else called (with the request, if it takes a parameter) where the session is used
    commits: bool = False  # the pattern commits after the endpoint (teardown, middleware, route class)


@dataclass(frozen=True)
class Wiring:
    """Everything the probe routes need to get their sessions as the pattern's own endpoints do."""

    def_side: Side | None  # None: the pattern has no Session for `def` endpoints
    async_side: Side
    second: tuple[Side | None, Side | None] = (None, None)  # (def, async) sources of a second database
    route_class: type[APIRoute] = APIRoute
    background: Callable | None = None  # a context manager factory a background task opens its own session from
    unsupported: dict[str, str] = field(default_factory=dict)

    def router(self, skip: set[str] = frozenset()) -> APIRouter:
        """The probe routes not in `skip`, in the route class of the pattern's endpoints."""
        router = probe_router(self.route_class)
        for path, method, endpoint, extra in _routes(self):
            if path not in skip:
                router.add_api_route(path, endpoint, methods=[method], **extra)
        return router


def probe_router(route_class: type[APIRoute], prefix: str = "") -> APIRouter:
    """A router for probe routes that the app's own app-wide hooks cannot break: a tag for those that read
    `route.tags[0]`, and FastAPI's own operation ids, kept when included (an app's `generate_unique_id_function`
    would otherwise name them, and may fail on routes it was not written for)."""
    return APIRouter(
        prefix=prefix, route_class=route_class, tags=["sessionbench"], generate_unique_id_function=generate_unique_id
    )


def request_getter(getter: Callable) -> Callable:
    """The getter as a function of the request, whether it takes one or not."""
    try:
        required = [
            p for p in inspect.signature(getter).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]  # fmt: skip
    except (TypeError, ValueError):  # no signature to read: given the request
        required = [None]
    return getter if required else lambda request: getter()


def _later(side: Side) -> Callable:
    """What a stream or a task looks the session up with when it runs: a registry is used itself, as code calling
    a global `scoped_session` does (each call finds its thread's session); another getter is called then."""
    if isinstance(side.getter, scoped_session):
        return lambda request: side.getter
    return request_getter(side.getter)


REQUEST = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)


def wired(endpoint, side: Side, name: str = "db", late: bool = False):
    """`endpoint` with its `name` parameter given by `side`: a dependency FastAPI resolves, or a getter called with the
    request (so that the route's dependency tree stays the pattern's own). `late`: the endpoint gets the getter
    itself, for a stream or a task to call when it runs."""
    signature = inspect.signature(endpoint)
    others = [p for p in signature.parameters.values() if p.name != name]
    if side.getter is None:
        db = inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=side.dependency)
        endpoint.__signature__ = signature.replace(parameters=[*others, db])
        return endpoint
    get = _later(side) if late else request_getter(side.getter)
    passes_request = any(p.name == "request" for p in others)

    def arguments(kwargs: dict) -> dict:
        request = kwargs["request"] if passes_request else kwargs.pop("request")
        return {**kwargs, name: (lambda: get(request)) if late else get(request)}

    if inspect.iscoroutinefunction(endpoint):

        async def wired(**kwargs):
            return await endpoint(**arguments(kwargs))
    else:

        def wired(**kwargs):
            return endpoint(**arguments(kwargs))

    wired.__name__ = wired.__qualname__ = endpoint.__name__
    wired.__signature__ = signature.replace(parameters=others if passes_request else [*others, REQUEST])
    return wired


async def _commit(db) -> None:
    await db.commit() if isinstance(db, AsyncSession) else db.commit()


def _streams_and_tasks(wiring: Wiring, side: Side, kind: str) -> list[tuple]:
    """The stream and background routes of one kind: the session handed over (a dependency's), looked up when they
    run (a getter's), or a session of the task's own (BACKGROUND_SESSION)."""
    late = side.getter is not None
    own = wiring.background

    if kind == "def":

        def stream_late(db, chunks: int, delay: float):
            yield from probes.stream(db(), chunks, delay)

        def stream(chunks: int, delay: float, db):
            body = stream_late(db, chunks, delay) if late else probes.stream(db, chunks, delay)
            return StreamingResponse(body, media_type=NDJSON)

        def write_later(db, key: str) -> None:
            if own is not None:
                with own() as session:
                    return probes.write_later(session, key)
            probes.write_later(db() if late else db, key)

        def background(key: str, tasks: BackgroundTasks, db):
            tasks.add_task(write_later, db, key)
            return {"key": key}
    else:

        async def stream_late(db, chunks: int, delay: float):
            async for chunk in probes.stream_async(db(), chunks, delay):
                yield chunk

        async def stream(chunks: int, delay: float, db):
            body = stream_late(db, chunks, delay) if late else probes.stream_async(db, chunks, delay)
            return StreamingResponse(body, media_type=NDJSON)

        async def write_later(db, key: str) -> None:
            if own is not None and inspect.isasyncgenfunction(inspect.unwrap(own)):
                async with own() as session:
                    return await probes.write_later_async(session, key)
            if own is not None:
                with own() as session:
                    return await probes.write_later_async(session, key)
            await probes.write_later_async(db() if late else db, key)

        async def background(key: str, tasks: BackgroundTasks, db):
            tasks.add_task(write_later, db, key)
            return {"key": key}

    return [
        (f"/{'sync' if kind == 'def' else 'async'}/stream", "GET", wired(stream, side, late=late), {}),
        (f"/{'sync' if kind == 'def' else 'async'}/background", "POST", wired(background, side, late=late), {}),
    ]


def _routes(wiring: Wiring) -> list[tuple[str, str, Callable, dict]]:
    """(path, method, endpoint, route options) for the whole route contract: `def` endpoints on the Session of the
    def side (none when there is none), `async def` ones on the async side's session; a probe commits unless the
    pattern commits after the endpoint."""
    model = {"response_model": probes.NoteOut}
    routes = []
    side = wiring.def_side
    if side is not None:
        commit = not side.commits

        def load_user(db) -> int:
            return probes.session_key(db)

        def current_user(db) -> int:
            return probes.current_user(db)

        load_user, current_user = wired(load_user, side), wired(current_user, side)

        def sync_tag(tag: str, delay: float, query: bool, db):
            return probes.tag(db, tag, delay, query)

        def same(user: Annotated[int, Depends(load_user)], db):
            return probes.same_session(user, db)

        def sync_write(key: str, fail: bool, delay: float, db):
            return probes.write(db, key, fail, delay, commit=commit)

        def nodb():
            return probes.no_database()

        def sync_model(delay: float, db):
            return probes.load_note(db, delay)

        def sync_user(delay: float, user: Annotated[int, Depends(current_user)]):
            return probes.greet(user, delay)

        def sync_conflict(key: str, db):
            result = probes.add_conflicting(db, key)
            if commit:
                db.commit()
            return result

        def sync_created(key: str, db):
            return probes.create(db, key, commit=commit)

        routes += [
            ("/sync/tag", "GET", wired(sync_tag, side), {}),
            ("/same", "GET", wired(same, side), {}),
            ("/sync/write", "POST", wired(sync_write, side), {}),
            ("/nodb", "GET", nodb, {}),
            ("/sync/model", "GET", wired(sync_model, side), model),
            ("/sync/user", "GET", sync_user, {}),
            ("/sync/conflict", "POST", wired(sync_conflict, side), {}),
            *_streams_and_tasks(wiring, side, "def"),
            ("/sync/created", "POST", wired(sync_created, side), model),
        ]
        if wiring.second[0] is not None:

            def sync_write2(key: str, fail: bool, delay: float, db, second):
                return probes.write_both(db, second, key, fail, delay)

            routes.append(("/sync/write2", "POST", wired(wired(sync_write2, side), wiring.second[0], "second"), {}))

    side = wiring.async_side
    commit = not side.commits

    async def async_tag(tag: str, delay: float, query: bool, db):
        return await probes.tag_async(db, tag, delay, query)

    async def async_write(key: str, fail: bool, delay: float, db):
        return await probes.write_async(db, key, fail, delay, commit=commit)

    async def async_conflict(key: str, db):
        result = probes.add_conflicting(db, key)
        if commit:
            await _commit(db)
        return result

    async def async_created(key: str, db):
        return await probes.create_async(db, key, commit=commit)

    if wiring.def_side is None:  # the session and the key a dependency saw, from async code

        async def load_user_async(db) -> int:
            return probes.session_key(db)

        load_user_async = wired(load_user_async, side)

        async def same_async(user: Annotated[int, Depends(load_user_async)], db):
            return probes.same_session(user, db)

        async def nodb_async():
            return probes.no_database()

        routes += [("/same", "GET", wired(same_async, side), {}), ("/nodb", "GET", nodb_async, {})]
    routes += [
        ("/async/tag", "GET", wired(async_tag, side), {}),
        ("/async/write", "POST", wired(async_write, side), {}),
        ("/async/conflict", "POST", wired(async_conflict, side), {}),
        *_streams_and_tasks(wiring, side, "async"),
        ("/async/created", "POST", wired(async_created, side), model),
    ]
    if wiring.second[1] is not None:

        async def async_write2(key: str, fail: bool, delay: float, db, second):
            return await probes.write_both_async(db, second, key, fail, delay)

        routes.append(("/async/write2", "POST", wired(wired(async_write2, side), wiring.second[1], "second"), {}))
    return routes


def kind_of(annotated) -> str | None:
    """ "Session" or "AsyncSession" for an `Annotated[<a session class>, Depends(...)]`, else None."""
    if get_origin(annotated) is not Annotated:
        return None
    base, *metadata = get_args(annotated)
    if not any(isinstance(m, params.Depends) for m in metadata) or not isinstance(base, type):
        return None
    if issubclass(base, AsyncSession):
        return "AsyncSession"
    return "Session" if issubclass(base, Session) else None


def sides(by_kind: dict[str, Side], unsupported: dict[str, str]) -> tuple[Side | None, Side, dict[str, str]]:
    """(the `def` side or None, the `async def` side, what cannot be served): async code gets an AsyncSession where
    the pattern has one, else its Session, as the pattern's own endpoints would."""
    def_side = by_kind.get("Session")
    async_side = by_kind.get("AsyncSession", def_side)
    if def_side is None:
        unsupported = {p: NO_SESSION_FOR_DEF for p in probes.ROUTES if p.startswith("/sync/")} | unsupported
    return def_side, async_side, unsupported


def _declared(module) -> dict[str, Side]:
    """The module's session sources by kind: its getters, else its module-level session aliases."""
    commits = bool(getattr(module, "COMMITS_AFTER_ENDPOINT", False))
    getters = {
        kind: Side(getter=getter, commits=commits)
        for kind, name in (("Session", "SESSION_FROM"), ("AsyncSession", "ASYNC_SESSION_FROM"))
        if (getter := getattr(module, name, None)) is not None
    }
    if getters:
        return getters
    seconds = [getattr(module, name, None) for name in SECONDS]
    found: dict[str, dict] = {}
    for name, value in vars(module).items():
        if (kind := kind_of(value)) is not None and not any(value is second for second in seconds):
            found.setdefault(kind, {}).setdefault(get_args(value)[-1].dependency, (name, value))
    by_kind = {}
    for kind, aliases in found.items():
        if len(aliases) > 1:
            names = ", ".join(name for name, _ in aliases.values())
            raise MountError(
                f"{names} each give a {kind} from another dependency: keep one, or name the second database's "
                "as SECOND_SESSION"
            )
        ((_, annotated),) = aliases.values()
        by_kind[kind] = Side(dependency=annotated, commits=commits)
    return by_kind


SECONDS = ("SECOND_SESSION", "SECOND_SESSION_FROM", "ASYNC_SECOND_SESSION", "ASYNC_SECOND_SESSION_FROM")


def _second(module) -> tuple[Side | None, Side | None]:
    """The second database's (def, async) sources: SECOND_SESSION for both kinds, or for `def` endpoints where
    ASYNC_SECOND_SESSION gives `async def` ones their own (each may be a getter, ..._FROM)."""

    def side(prefix: str) -> Side | None:
        dependency, getter = getattr(module, f"{prefix}SESSION", None), getattr(module, f"{prefix}SESSION_FROM", None)
        return None if dependency is None and getter is None else Side(dependency=dependency, getter=getter)

    first, for_async = side("SECOND_"), side("ASYNC_SECOND_")
    if first is not None and first.dependency is not None and kind_of(first.dependency) == "AsyncSession":
        return None, for_async or first
    return first, for_async or first


def wiring(module) -> Wiring | None:
    """How the module's endpoints get their sessions, or None when it declares no source (it wires every route)."""
    by_kind = _declared(module)
    if not by_kind:
        return None
    def_side, async_side, unsupported = sides(by_kind, dict(getattr(module, "UNSUPPORTED", {}) or {}))
    return Wiring(
        def_side,
        async_side,
        _second(module),
        getattr(module, "ROUTE_CLASS", APIRoute),
        getattr(module, "BACKGROUND_SESSION", None),
        unsupported,
    )


def in_front(app: FastAPI, router: APIRouter) -> None:
    """Include `router` ahead of the app's own routes: Starlette answers with the first route that matches, and
    discovery takes the first probe route it finds."""
    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = added


def mount(module, served: set[str]) -> dict[str, str] | None:
    """Add to the module's app (or its SUB_APP) the probe routes it neither `served` nor declared unsupported;
    what it cannot serve, or None when it declares no session source."""
    found = wiring(module)
    if found is None:
        return None
    in_front(getattr(module, "SUB_APP", None) or module.app, found.router(served | set(found.unsupported)))
    return found.unsupported
