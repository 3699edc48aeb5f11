"""An existing app measured as a row, without rewriting it: `python -m experiments --audit myapp.main:app`.

The app keeps its own lifespan, middleware, engine and dependencies; the probe
routes of experiments/probes.py are added in front of its own routes, and take
their session where the app's endpoints take theirs: from a `Depends` callable
(sync or async, a generator or not), an `Annotated[..., Depends(...)]` alias, or
a getter called with the request, for apps whose session lives in middleware,
`request.state` or a registry. The app reads its database from its own setting,
which `--env NAME={DATABASE_URL}` points at the harness's database.

Before the run, `resolve` calls each session source once, in a process of its
own, against a database of the run's backend, and learns what it gives (a
`Session` or an `AsyncSession`), whether that session reaches the harness's
database (the setting may never have reached the engine: the app connected
elsewhere), and whether the app commits after the endpoint (a row the endpoint
only flushed is there afterwards). `write_strategy` records those facts in a
strategy module in the run's output; every check imports it like any other, and
it calls `mounted`, which adds the probe routes through experiments/harness/mount.py.

Not `from __future__ import annotations`: the probe endpoints are closures, and FastAPI reads their annotations
(`Depends(load_user)` of a local function) as objects.
"""

import importlib
import inspect
import json
import os
import re
import sys
import tempfile
import tomllib
import traceback
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from fastapi import Depends, FastAPI, params
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes
from experiments.harness import discovery, instruments, mount
from experiments.harness.processes import FORKS, exit_reason, kill_group

TIMEOUT_S = 60.0  # importing the app, entering its lifespan and one request; a stuck app is killed after this
# What an --env template may name: the harness's URLs for the app, and the sync URL's parts for an app that builds
# its URL from them (POSTGRES_SERVER={DATABASE_HOST} ...); a part the URL lacks (SQLite's host) is empty.
PARTS = {
    "DATABASE_HOST": "host",
    "DATABASE_PORT": "port",
    "DATABASE_USER": "username",
    "DATABASE_PASSWORD": "password",
    "DATABASE_NAME": "database",
}
FIELDS = ("DATABASE_URL", "ASYNC_DATABASE_URL", *PARTS)
PREFIX = "/_sessionbench"  # where resolve's own routes go, away from the app's


class AuditError(Exception):
    """The app cannot be audited as given; the message is one line naming what and the fix."""


@dataclass(frozen=True)
class Source:
    """Where the app's endpoints get a session: `target` ("module:attribute") is a dependency, or a getter."""

    target: str
    getter: bool = False
    scope: str | None = None  # a dependency's `Depends(scope=...)` (FastAPI 0.121+), when the app's routes give one
    kind: str | None = None  # "Session" or "AsyncSession", once resolved
    commits: bool = False  # the app commits after the endpoint (dependency teardown, middleware), once resolved
    maker: bool = False  # it gives a sessionmaker: each request opens (`with maker() as session`) and closes its own

    @property
    def flag(self) -> str:
        return f"{'--session-from' if self.getter else '--session'} {self.target}"


@dataclass(frozen=True)
class Spec:
    """What the user named: the app, its session sources, and the settings that point it at the database."""

    app: str
    sources: tuple[Source, ...]
    env: tuple[tuple[str, str], ...] = ()  # (setting, template over FIELDS)
    app_dir: str | None = None  # put first on the import path, for the app and every process the run starts
    route_class: str | None = None  # its endpoints' route class, where none of its routes shows it (--route-class)
    sub_app: str | None = None  # the mounted application its endpoints are served by (--sub-app)
    background: str | None = None  # what its background tasks open their own session from (--background-session)
    notes: tuple[str, ...] = ()  # what resolving the sources found that the reader should know
    own: dict | None = None  # the app's own facts (own_facts, and the pools its engines declare), once resolved

    @property
    def id(self) -> str:
        return "audit_" + re.sub(r"\W+", "_", self.app).strip("_")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        raw = json.loads(text)
        return cls(
            raw["app"],
            tuple(Source(**s) for s in raw["sources"]),
            tuple(map(tuple, raw["env"])),
            raw["app_dir"],
            raw.get("route_class"),
            raw.get("sub_app"),
            raw.get("background"),
            tuple(raw.get("notes", ())),
            raw.get("own"),
        )


def spec(
    app: str,
    sessions: list[str],
    getters: list[str],
    env: list[str],
    app_dir: Path | None,
    scope: str | None = None,
    declared: dict[str, str | None] | None = None,
) -> Spec:
    """The command line's audit options, checked for form (one-line AuditError), nothing imported yet; `declared`:
    route_class, sub_app and background, as the flags name them."""
    declared = {k: v for k, v in (declared or {}).items() if v}
    for target in [app, *sessions, *getters, *declared.values()]:
        if not re.fullmatch(r"[\w.]+:[\w.]+", target):
            raise AuditError(f"{target!r}: name it as module:attribute, e.g. myapp.main:app or myapp.deps:get_db")
    if not sessions and not getters:
        raise AuditError(
            f"{app}: say where its endpoints get a session: --session myapp.deps:get_db (a dependency) "
            "or --session-from myapp.db:current_session (a getter called with the request)"
        )
    settings = []
    for item in env:
        name, sep, template = item.partition("=")
        if not sep or not name.isidentifier():
            raise AuditError(f"--env {item!r}: write NAME=TEMPLATE, e.g. MYAPP_DATABASE_URL={{DATABASE_URL}}")
        try:
            template.format_map(dict.fromkeys(FIELDS, ""))
        except (KeyError, ValueError, IndexError) as exc:
            known = ", ".join(f"{{{f}}}" for f in FIELDS)
            raise AuditError(f"--env {item!r}: unknown field {exc}; a template may name {known}") from None
        settings.append((name, template))
    sources = tuple(Source(t, scope=scope) for t in sessions) + tuple(Source(t, getter=True) for t in getters)
    return Spec(app, sources, tuple(settings), str(app_dir.resolve()) if app_dir else None, **declared)


def pythons() -> list[str]:
    """The X.Y of every Python on PATH or in pyenv, for a message that names what `--python` can pick."""
    found = {m.group(1) for d in os.environ.get("PATH", "").split(os.pathsep) if os.path.isdir(d)
             for name in os.listdir(d) if (m := re.fullmatch(r"python(3\.\d+)", name))}  # fmt: skip
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if versions.is_dir():
        found |= {m.group(1) for v in versions.iterdir() if (m := re.match(r"(3\.\d+)", v.name))}
    return sorted(found, key=lambda v: tuple(map(int, v.split("."))))


def python_it_needs(app_dir: Path) -> str:
    """What the app's pyproject.toml `requires-python` says, when it excludes the Python running the audit (else
    ""): "the app requires Python >=3.14 (pyproject.toml), this audit runs 3.11.2"."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    pyproject = app_dir / "pyproject.toml"
    try:
        wanted = tomllib.loads(pyproject.read_text()).get("project", {}).get("requires-python")
        accepted = SpecifierSet(wanted) if wanted else None
    except (OSError, tomllib.TOMLDecodeError, InvalidSpecifier):  # no pyproject, or none we can read: no demand
        return ""
    here = ".".join(map(str, sys.version_info[:3]))
    if accepted is None or here in accepted:
        return ""
    return f"the app requires Python {wanted} ({pyproject}), this audit runs {here}"


def _use_app_dir(spec: Spec) -> None:
    """Import the app from its folder and run it there, as its own server would: a relative path it reads (pydantic
    settings' `env_file="../.env"`) means what it means to the app. The harness's own paths are absolute."""
    if spec.app_dir:
        if spec.app_dir not in sys.path:
            sys.path.insert(0, spec.app_dir)
        os.chdir(spec.app_dir)


def fields(environ: dict[str, str]) -> dict[str, str]:
    """FIELDS for the database `environ` points at (the harness sets its URLs per check)."""
    url = make_url(environ["DATABASE_URL"])
    parts = {field: "" if (v := getattr(url, part)) is None else str(v) for field, part in PARTS.items()}
    return {"DATABASE_URL": environ["DATABASE_URL"], "ASYNC_DATABASE_URL": environ["ASYNC_DATABASE_URL"], **parts}


def _apply_env(spec: Spec) -> None:
    """The app's own settings, pointed at this process's database."""
    found = fields(os.environ) if spec.env else {}
    for name, template in spec.env:
        os.environ[name] = template.format_map(found)


def _object(target: str, read_later: bool = False):
    """The object `target` names; with `read_later`, a function that reads it when called, for a getter that is a
    property (fastapi-sqlalchemy's `db.session` raises outside a request, so it is read in the request)."""
    module, _, attribute = target.partition(":")
    try:
        found = importlib.import_module(module)
    except Exception as exc:  # whatever the app raises on import
        traceback.print_exc(limit=-8)  # the app's last frames, into the log of the process importing it
        raise AuditError(f"{target}: {module} does not import ({_own_words(exc)}); {_fix(exc)}") from None
    *path, last = attribute.split(".")
    for name in path:
        if not hasattr(found, name):
            raise AuditError(f"{target}: {module} has no {attribute}")
        found = getattr(found, name)
    owner, static = found, inspect.getattr_static(found, last, None)
    if read_later and isinstance(static, property):
        return lambda: getattr(owner, last)
    if static is None and not hasattr(found, last):
        raise AuditError(f"{target}: {module} has no {attribute}")
    return getattr(found, last)


def _own_words(exc: BaseException) -> str:
    """The app's own message on one line, every line of it (a settings error names each field), at most 600
    characters."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip() and "errors.pydantic" not in line)
    return f"{type(exc).__name__}: {text}"[:600]


def _fix(exc: BaseException) -> str:
    """The flag or file that fixes an import failure, by what failed (the app runs in its folder: see _use_app_dir)."""
    if needs := python_it_needs(Path.cwd()):
        return f"{needs}; pass --python X.Y naming one that fits (on this machine: {', '.join(pythons()) or 'none'})"
    if isinstance(exc, ModuleNotFoundError):
        return (
            "run from the app's folder or pass --app-dir, and install what it needs (--requirements FILE, or the "
            "app's pyproject.toml)"
        )
    if isinstance(exc, SyntaxError):
        return "the app does not parse with this Python: pass the interpreter it needs to nox (--python)"
    return "the app raised this while importing: point its settings at the harness's database with --env NAME=TEMPLATE"


def _app(spec: Spec) -> FastAPI:
    app = _object(spec.app)
    if not isinstance(app, FastAPI):
        raise AuditError(f"{spec.app} is a {type(app).__name__}, not a FastAPI application; name the app object")
    return app


def _annotation(source: Source):
    """The parameter annotation that gives an endpoint the dependency's session, with the user's Depends options."""
    found = _object(source.target)
    if get_origin(found) is Annotated:
        return found
    if isinstance(found, params.Depends):
        return Annotated[Any, found]
    if callable(found):
        return Annotated[Any, Depends(found, scope=source.scope) if source.scope else Depends(found)]
    raise AuditError(f"{source.target} is a {type(found).__name__}: name a dependency, or an Annotated[..., Depends()]")


def declared_kind(source: Source) -> str | None:
    """ "Session" or "AsyncSession" as the source's own annotations say: an Annotated alias's type, or a callable's
    return type (a generator's yield type); None when it says nothing."""
    found = _object(source.target, read_later=source.getter)
    if get_origin(found) is Annotated:
        return mount.kind_of(found)
    found = found.dependency if isinstance(found, params.Depends) else found
    try:
        given = get_type_hints(found).get("return")
    except Exception:  # not a function, or annotations that do not resolve: it says nothing
        return None
    if get_origin(given) in (Generator, Iterator, AsyncGenerator, AsyncIterator):
        given = get_args(given)[0]
    return mount.kind_of(Annotated[given, Depends()]) if isinstance(given, type) else None


MAKERS = (sessionmaker, async_sessionmaker)


def _side(source: Source) -> mount.Side:
    """Where the probe routes get their session from `source`: its dependency, or its getter; a sessionmaker
    (given by either, or named itself) opened per request, as the app's code opens it."""
    found = None if not source.getter else _object(source.target, read_later=True)
    if source.getter and not callable(found):
        raise AuditError(f"{source.target} is a {type(found).__name__}, not a callable returning the session")
    if source.getter and not isinstance(found, MAKERS):
        return mount.Side(getter=found, commits=source.commits)
    given = _annotation(source) if not source.getter else Annotated[Any, Depends(lambda: found)]
    if not (source.maker or isinstance(found, MAKERS)):
        return mount.Side(dependency=given, commits=source.commits)
    if source.kind == "AsyncSession" or isinstance(found, async_sessionmaker):

        async def opened(maker: given):
            async with maker() as session:
                yield session
    else:

        def opened(maker: given):
            with maker() as session:
                yield session

    return mount.Side(dependency=Annotated[Any, Depends(opened)], commits=source.commits)


def _calls(dependant) -> set:
    """Every callable in a route's dependency tree."""
    found, todo = set(), [dependant]
    while todo:
        node = todo.pop()
        if node is not None:
            found.add(node.call)
            todo += node.dependencies
    return found


def _taking(app: FastAPI, sources: tuple[Source, ...]) -> tuple[list[APIRoute], list[APIRoute]]:
    """The app's own routes, and those whose dependencies include a `--session` source."""
    wanted = {_annotation(s).__metadata__[-1].dependency for s in sources if not s.getter}
    routes = [o for _, r in discovery.walk(app) if isinstance(o := getattr(r, "original_route", r), APIRoute)]
    return routes, [r for r in routes if wanted & _calls(getattr(r, "dependant", None))]


def route_class(app: FastAPI, sources: tuple[Source, ...]) -> type[APIRoute]:
    """The route class of the app's own endpoints that take a session from `sources` (of all its endpoints where none
    does), the most common one: a route class may commit after the endpoint (Polar's `AutoCommitAPIRoute`), and the
    probes must be routed as the app's endpoints are."""
    routes, taking = _taking(app, sources)
    counted = Counter(type(r) for r in taking or routes)
    return counted.most_common(1)[0][0] if counted else APIRoute


def own_facts(app: FastAPI, sources: tuple[Source, ...]) -> dict:
    """What the app itself has, read from its routes before the probes join them: the kinds of endpoint that take
    its session (all its endpoints, for a getter), and whether any streams a response or takes BackgroundTasks. The
    checks exercise all of these; the report says which the app does not use."""
    routes, taking = _taking(app, sources)
    taking = taking if any(not s.getter for s in sources) else routes

    def streams(route: APIRoute) -> bool:
        try:
            source = inspect.getsource(route.endpoint)
        except (OSError, TypeError):
            source = ""
        return issubclass(getattr(route.response_class, "value", route.response_class), StreamingResponse) or any(
            word in source for word in ("StreamingResponse", "EventSourceResponse")
        )

    return {
        "kinds": sorted({"async" if inspect.iscoroutinefunction(r.endpoint) else "def" for r in taking}),
        "routes_taking_the_session": len(taking),
        "streams": any(streams(r) for r in routes),
        "background_tasks": any(r.dependant.background_tasks_param_name for r in routes),
    }


def sides(sources: tuple[Source, ...]) -> dict[str, Source]:
    """The source of each kind of session ("Session", "AsyncSession"), or AuditError when two give the same kind."""
    by_kind: dict[str, Source] = {}
    for source in sources:
        if source.kind in by_kind:
            raise AuditError(
                f"{by_kind[source.kind].flag} and {source.flag} both give a {source.kind}: name one source per kind "
                "(a Session for `def` endpoints, an AsyncSession for `async def` ones)"
            )
        by_kind[source.kind] = source
    return by_kind


def _forget(spec: Spec) -> None:
    """Before importing the app again (reload_in_process), drop the modules of its top-level packages, so that the
    app, its engine and its models are made afresh, as a reloaded server would; the harness's own modules stay."""
    tops = {t.target.split(":")[0].split(".")[0] for t in spec.sources} | {spec.app.split(".")[0].split(":")[0]}
    tops -= {"experiments", "report", "conftest"}
    for name in [n for n in sys.modules if n.split(".")[0] in tops]:
        discovery.forget_models(sys.modules[name])
        del sys.modules[name]


def mounted(spec_json: str) -> tuple[FastAPI, dict[str, str]]:
    """The audited app with the probe routes in front of its own, and the routes it cannot serve (its UNSUPPORTED).
    Called by the strategy module `write_strategy` wrote, at each import of it."""
    spec = Spec.from_json(spec_json)
    _use_app_dir(spec)
    _apply_env(spec)
    module = spec.app.split(":")[0]
    if module in sys.modules:
        _forget(spec)
    app = _app(spec)
    by_kind = {kind: _side(source) for kind, source in sides(spec.sources).items()}
    def_side, async_side, unsupported = mount.sides(by_kind, {})
    background = _object(spec.background) if spec.background else None
    wiring = mount.Wiring(def_side, async_side, route_class=_route_class(spec, app), background=background)
    mount.in_front(_serving(spec, app), wiring.router())
    return app, unsupported


def _route_class(spec: Spec, app: FastAPI) -> type[APIRoute]:
    return _object(spec.route_class) if spec.route_class else route_class(app, spec.sources)


def _serving(spec: Spec, app: FastAPI) -> FastAPI:
    """The application the probe routes go on: the app, or the sub-application its endpoints are served by."""
    return _object(spec.sub_app) if spec.sub_app else app


def write_strategy(spec: Spec, directory: Path) -> Path:
    """The strategy module of the audited app, in the run's output: its label names the app and its sources."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.id}.py"
    sources = ", ".join(f"`{s.target}`" + (" (getter)" if s.getter else "") for s in spec.sources)
    path.write_text(
        f'"""`{spec.app}`, audited: its session from {sources}\n\n'
        "Written by `python -m experiments --audit` (experiments/harness/audit.py) for one run; what resolving the\n"
        'sources found is in SPEC.\n"""\n\n'
        "from experiments.harness import audit\n\n"
        f"SPEC = {spec.to_json()!r}\n"
        f"OWN = {tuple((spec.own or {}).items())!r}  # what the app itself has, for the report\n\n"
        "app, UNSUPPORTED = audit.mounted(SPEC)\n"
    )
    return path


MARKER = "sessionbench-audit"  # the key of the row resolve's route flushes and never commits


def _resolve_route(source: Source, index: int):
    """The route that asks `source` for a session, reads the seed row through it and, only where that row is the
    harness's, flushes a row of its own without committing it."""

    async def run(db, statement):
        return await statement(db) if isinstance(db, AsyncSession) else statement(db)

    async def facts(db):
        if isinstance(db, MAKERS):  # the app opens its sessions from it: so does the probe, once
            async_maker = isinstance(db, async_sessionmaker)
            async with db() if async_maker else _async(db()) as session:
                return {**await facts(session), "maker": True}
        if not isinstance(db, Session | AsyncSession):
            return {"gives": type(db).__name__}
        sync = db.sync_session if isinstance(db, AsyncSession) else db
        try:
            bind = sync.get_bind().url.render_as_string(hide_password=True)
        except Exception:  # no bind of its own (binds per mapper, or none): the query below decides
            bind = None
        try:
            seed = await run(db, lambda s: s.scalar(probes.STREAM_QUERY))
        except Exception as exc:  # the harness's table is not where the session points
            seed = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        if seed == "seed":
            db.add(probes.Note(key=f"{MARKER}-{index}"))
            await run(db, lambda s: s.flush())
        kind = "AsyncSession" if sync is not db else "Session"
        try:  # the pool the app's engine declares: the checks impose their own where it sets none
            pool = instruments.describe_pool(sync.get_bind().pool)
        except Exception:  # binds per mapper, or none: not known
            pool = None
        found = {"gives": type(db).__name__, "kind": kind, "bind": bind, "seed": seed, "pool": pool}
        return found | ({"fresh_each_call": True} if calls.get("fresh") else {})

    side, calls = _side(source), {}
    if side.getter is not None:  # asked twice in one request, it must give one session: the request's
        once = mount.request_getter(side.getter)

        def twice(request):
            first = once(request)
            calls["fresh"] = once(request) is not first
            return first

        side = replace(side, getter=twice)
    return mount.wired(facts, side)


@asynccontextmanager
async def _async(session: Session):
    with session:
        yield session


def _resolve_in_child(spec_json: str, environ: dict[str, str], result: str, log: str) -> None:
    """Body of the resolving process: serve the app with one route per source, call each once, write the facts."""
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import anyio
    import httpx
    from asgi_lifespan import LifespanManager

    spec = Spec.from_json(spec_json)
    os.environ.update(environ)

    async def call() -> dict:
        app = _app(spec)
        own = own_facts(_serving(spec, app), spec.sources)
        router = mount.probe_router(_route_class(spec, app), PREFIX)
        for i, source in enumerate(spec.sources):
            router.get(f"/{i}")(_resolve_route(source, i))
        mount.in_front(_serving(spec, app), router)
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://audit") as client:
                found = []
                for i, source in enumerate(spec.sources):
                    path = next(p for p, _ in discovery.walk(app) if p.endswith(f"{PREFIX}/{i}"))  # under a sub-app's
                    try:
                        response = await client.get(path)
                    except Exception as exc:  # the app raised: its own words and where, never a bare 500
                        raised = _raised(exc)
                        if kind := declared_kind(source):  # it says what it gives: measured as it is
                            found.append({"gives": kind, "kind": kind, "raised": raised})
                            continue
                        raise AuditError(
                            f"{source.flag}: a route taking its session raised {raised}; name the source that gives "
                            "the session, needing nothing else, or annotate what it returns (-> Session) to have the "
                            "app measured with that failure"
                        ) from None
                    if response.status_code != 200:
                        raise AuditError(
                            f"{source.flag}: a route taking its session answered {response.status_code} "
                            f"({response.text[:120]}); name the source that gives the session, needing nothing else"
                        )
                    found.append(response.json())
                return {"sources": found, "app": own}

    try:
        _use_app_dir(spec)
        _apply_env(spec)
        body = anyio.run(call)
    except AuditError as exc:
        body = {"error": str(exc)}
    except Exception as exc:  # the app's lifespan or a dependency failed
        where = traceback.extract_tb(exc.__traceback__)[-1]
        line = (str(exc).splitlines() or [""])[0]
        body = {"error": f"{spec.app}: {type(exc).__name__}: {line} ({Path(where.filename).name}:{where.lineno})"}
    Path(result).write_text(json.dumps(body))
    os._exit(0)  # don't wait for the app's threads or engines


def _raised(exc: BaseException) -> str:
    """`LookupError: <message> (file.py:12)`: what the app raised, and its last frame."""
    traceback.print_exception(exc, limit=-8)  # into the resolve log
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{_own_words(exc)} ({Path(where.filename).name}:{where.lineno})"


def _bound_elsewhere(spec: Spec, source: Source, facts: dict) -> str:
    settings = ", ".join(name for name, _ in spec.env)
    fix = (
        f"the setting {settings} (--env) never reached the engine: check that the app reads it, and reads it when "
        "the engine is made"
        if settings
        else "pass --env NAME={DATABASE_URL} naming the setting the app reads its database URL from"
    )
    return (
        f"{source.flag}: its session is bound to {facts['bind'] or 'no engine of its own'}, not the harness's "
        f"database (reading the probe table: {facts['seed']}); {fix}"
    )


def resolve(spec: Spec, database, workdir: Path, timeout_s: float = TIMEOUT_S) -> Spec:
    """`spec` with each source's kind and commit point, learnt by calling it once against `database` (a fresh
    serving.Database of the run's backend); AuditError when it gives no session or reaches another database."""
    workdir.mkdir(parents=True, exist_ok=True)
    log, result = workdir / "resolve.log", workdir / ".resolve.json"
    result.unlink(missing_ok=True)
    proc = FORKS.Process(target=_resolve_in_child, args=(spec.to_json(), database.environ, str(result), str(log)))
    proc.start()
    try:
        proc.join(timeout_s)
        if proc.exitcode is None:
            raise AuditError(f"{spec.app}: serving it for one request took over {timeout_s:g} s (killed); see {log}")
    finally:
        kill_group(proc)
    if not result.exists():
        raise AuditError(f"{spec.app}: the process serving it {exit_reason(proc.exitcode)}; see {log}")
    body = json.loads(result.read_text())
    result.unlink()
    if "error" in body:
        raise AuditError(body["error"])
    resolved, notes = [], []
    committed = database.keys_present([f"{MARKER}-{i}" for i in range(len(spec.sources))])
    pools = {json.dumps(f["pool"], sort_keys=True): f["pool"] for f in body["sources"] if f.get("pool")}
    own = {"app": spec.app, **body["app"], "pools": list(pools.values())}
    for i, (source, facts) in enumerate(zip(spec.sources, body["sources"], strict=True)):
        if "kind" not in facts:
            raise AuditError(
                f"{source.flag} gives a {facts['gives']}, not a Session or AsyncSession; name the dependency "
                "(or getter) that gives the session itself"
            )
        if facts.get("fresh_each_call"):
            raise AuditError(
                f"{source.flag} gives a new session each time it is called, so no two parts of a request would share "
                "one; name the getter the app's code shares (request.state, a registry), or its sessionmaker itself "
                "to have each request open and close one"
            )
        if "raised" in facts:
            notes.append(
                f"{source.flag}: a request taking its session raised {facts['raised']}; it says it gives a "
                f"{facts['kind']}, so the app is measured as it is and the checks count that failure"
            )
        elif facts["seed"] != "seed":
            raise AuditError(_bound_elsewhere(spec, source, facts))
        kind = facts["kind"]
        commits = f"{MARKER}-{i}" in committed
        resolved.append(replace(source, kind=kind, commits=commits, maker=bool(facts.get("maker"))))
    resolved_spec = replace(spec, sources=tuple(resolved), notes=tuple(notes), own=own)
    sides(resolved_spec.sources)  # one source per kind, or the one-line error now
    return resolved_spec


def prepare(spec: Spec, server, out: Path) -> Path:
    """Resolve the audited app against a fresh database of the run's backend and write its strategy module."""
    from experiments.harness.serving import Database

    with tempfile.TemporaryDirectory(prefix="sessionbench-audit-") as scratch:
        if server is None:
            database = Database.sqlite(Path(scratch) / "audit.db")
        else:
            database = Database.postgresql(server, f"audit_{os.getpid()}")
        resolved = resolve(spec, database, out / "logs")
    needs = python_it_needs(Path(spec.app_dir)) if spec.app_dir else ""
    for note in (*resolved.notes, *([f"{needs}, and imports here: measured on it"] if needs else [])):
        print(f"note: {note}", file=sys.stderr)
    return write_strategy(resolved, out / "audited")
