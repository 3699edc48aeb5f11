"""Finding strategy modules and loading their apps, with one-line errors for broken ones.

Discovery reads files without importing them (a module that crashes on import
must not take the harness down); loading imports one module and checks the
contract: an `app`, and every probe route either served (at its path, or under
a prefix: an included router's, a mounted sub-application's) or declared in
`UNSUPPORTED`.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy.orm
from starlette.routing import Mount

from experiments.harness import mount
from experiments.probes import KINDS, OPTIONAL, ROUTES, path_kinds

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before 0.137.2
    iter_route_contexts = None

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / "strategies"


class ContractError(Exception):
    """A strategy module breaks the contract; the message is one line naming the file and the fix."""


class UnknownStrategy(Exception):
    """`--strategy` named a module that is not there."""


@dataclass(frozen=True)
class Strategy:
    id: str
    path: Path
    module: str
    label: str
    requires: tuple[str, ...] = ()  # REQUIRES: what it needs installed beyond the harness (PEP 508 strings)
    ablation_of: tuple[str, ...] = ()  # ABLATION_OF: (the strategy, the ingredient switched off), for a variant
    own: tuple = ()  # OWN: an audited app's own facts, as (name, value) pairs (audit.own_facts)

    @property
    def file(self) -> str:
        """The path as a user would type it."""
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)

    def describe(self) -> dict:
        found = {"id": self.id, "label": self.label, "module": self.module, "file": self.file}
        found |= {"ablation_of": list(self.ablation_of)} if self.ablation_of else {}
        return found | ({"own": dict(self.own)} if self.own else {})


def declared(path: Path, name: str) -> tuple:
    """A module-level tuple of literals `name` (REQUIRES, ABLATION_OF, OWN, FLAGGED_BY, GOOD_FOR), read without importing
    the module."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (SyntaxError, ValueError):
        return ()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            try:
                return tuple(ast.literal_eval(node.value))
            except ValueError:
                return ()
    return ()


def _label(path: Path) -> str:
    """The docstring's first line as written (markdown backticks included), or the file's stem."""
    try:
        doc = ast.get_docstring(ast.parse(path.read_text(), str(path)))
    except (SyntaxError, ValueError):
        doc = None
    return doc.strip().splitlines()[0].strip() if doc else path.stem


def _module_name(path: Path) -> str:
    """`strategies.x` for a module of this repository; a private name for one elsewhere."""
    try:
        return ".".join(path.resolve().relative_to(ROOT).with_suffix("").parts)
    except ValueError:
        return f"sessionbench_external.{path.stem}"


def discover(directory: Path = DEFAULT_DIR) -> list[Strategy]:
    """Every `*.py` in `directory` not starting with `_`, sorted by name."""
    directory = Path(directory).resolve()
    if not directory.is_dir():
        raise UnknownStrategy(f"{directory}: no such strategies directory")
    return [at(p) for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")]


def at(path: Path) -> Strategy:
    """The strategy defined by one module file."""
    path = Path(path).resolve()
    return Strategy(
        id=path.stem,
        path=path,
        module=_module_name(path),
        label=_label(path),
        requires=tuple(map(str, declared(path, "REQUIRES"))),
        ablation_of=tuple(map(str, declared(path, "ABLATION_OF"))),
        own=declared(path, "OWN"),
    )


def select(found: list[Strategy], names: list[str] | None) -> list[Strategy]:
    """The strategies named (all when none), or UnknownStrategy listing the known names."""
    if not names:
        return found
    by_id = {s.id: s for s in found}
    unknown = [n for n in names if n not in by_id]
    if unknown:
        raise UnknownStrategy(
            f"unknown strategy {', '.join(map(repr, unknown))}; known: {', '.join(by_id) or '(none)'}"
        )
    return [by_id[n] for n in dict.fromkeys(names)]


def _where(exc: BaseException, path: Path) -> str:
    """`line N` of the strategy file where the exception arose, if it did."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path]
    return f" (line {frames[-1].lineno})" if frames else ""


def forget_models(module) -> None:
    """Take the mapped classes an earlier import of `module` declared out of their MetaData and registry, so that
    importing it again declares them afresh: SQLModel's `table=True` models share `SQLModel.metadata`, where a
    second table of the same name raises "Table ... is already defined". The earlier app keeps its own mapping:
    its mappers are configured first, so that their relationships are resolved to the earlier classes."""
    own = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    mapped = [(cls, mapper) for cls in own if (mapper := sqlalchemy.inspect(cls, raiseerr=False)) is not None]
    if mapped:
        sqlalchemy.orm.configure_mappers()
    for cls, mapper in mapped:
        table = cls.__dict__.get("__table__")  # its own table, not one it inherits
        if table is not None and table.metadata.tables.get(table.key) is table:
            table.metadata.remove(table)
        # Private, and the smallest surface: SQLAlchemy has no public way to drop one class from its registry's
        # name lookup, and without it the new class is declared with a warning that it replaces the old one.
        mapper.registry._dispose_cls(cls)


def load(strategy: Strategy):
    """Import the strategy fresh and return its module, or raise ContractError."""
    if (earlier := sys.modules.get(strategy.module)) is not None:
        forget_models(earlier)
    spec = importlib.util.spec_from_file_location(strategy.module, strategy.path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[strategy.module] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # anything a user's module can raise on import
        del sys.modules[strategy.module]
        msg = (str(exc).splitlines() or [""])[0]
        fix = "the module must import cleanly"
        if isinstance(exc, KeyError) and "SECOND_DATABASE_URL" in msg:
            fix = f"{msg} is set only for the checks that use two databases: read it with os.environ.get"
        raise ContractError(
            f"{strategy.file}: import failed{_where(exc, strategy.path)}: {type(exc).__name__}: {msg}; {fix}"
        ) from None
    if not hasattr(module, "app"):
        raise ContractError(
            f"{strategy.file}: defines no `app`; expose the FastAPI application as a module-level `app`"
        )
    try:
        mounted = mount.mount(module, served_routes(module.app))
    except mount.MountError as exc:
        raise ContractError(f"{strategy.file}: {exc}") from None
    if mounted is not None:
        module.UNSUPPORTED = mounted  # what it declared, and what its session sources cannot serve
    return module


def one_line_warning(warning) -> str:
    """`DeprecationWarning: text (file.py:12)` for a recorded `warnings.WarningMessage`."""
    text = next((line.strip() for line in str(warning.message).splitlines() if line.strip()), "")[:200]
    return f"{warning.category.__name__}: {text} ({Path(warning.filename).name}:{warning.lineno})"


def walk(app, prefix: str = "") -> Iterator[tuple[str, object]]:
    """Every route `app` (an application, a Router, a Mount) answers, with the full path it answers at: the routes
    of included routers (their prefixes applied, nested ones too) and of mounted sub-applications."""
    for route in _flattened(getattr(app, "routes", [])):
        path = prefix + (getattr(route, "path", None) or "")
        if isinstance(getattr(route, "original_route", route), Mount):  # a RouteContext keeps what it stands for
            yield from walk(route, path)
        else:
            yield path, route


def _flattened(routes) -> Iterator:
    """`routes` with each included router replaced by its routes, prefixes applied: FastAPI 0.137 keeps an
    `include_router` as one lazy entry of `app.routes`, earlier releases copied its routes in."""
    if iter_route_contexts is not None:  # public from FastAPI 0.137.2
        return iter_route_contexts(routes)
    # Before 0.137 the list is flat already; 0.137.0-0.137.1 have only this private way into an included router.
    return (
        getattr(context, "starlette_route", None) or context
        for route in routes
        for context in getattr(route, "effective_route_contexts", lambda: [route])()
    )


def probe_routes(app) -> dict[str, tuple[str, object]]:
    """Per probe path the app serves with the method the checks use: the path it is served at and its route.

    A probe route under a prefix counts (an included router's `prefix=`, a mounted sub-application, as real apps
    put their API under `/api/v1`): checks name the probe path and serving.py sends the request on to the served
    one. A route at the probe path itself wins; under a path parameter a probe route cannot be reached."""
    found: dict[str, tuple[str, object]] = {}
    for path, route in walk(app):
        methods = getattr(route, "methods", None) or set()
        for probe, method in ROUTES.items():
            if (
                path.endswith(probe)
                and method in methods
                and "{" not in path
                and (probe not in found or path == probe != found[probe][0])
            ):
                found[probe] = (path, route)
    return found


def served_at(app) -> dict[str, str]:
    """Probe path -> the path the app serves it at (the same path unless under a prefix)."""
    return {probe: path for probe, (path, _) in probe_routes(app).items()}


def served_routes(app, kind: str | None = None) -> set[str]:
    """Paths of the probe routes the app answers with the method the checks use; only `def` or `async def`
    endpoints when `kind` says which (probes.KINDS)."""
    return {probe for probe, (_, route) in probe_routes(app).items() if kind is None or _kind(route) == kind}


def _kind(route) -> str:
    """ "async" for an `async def` endpoint (or a callable object whose `__call__` is one), else "def"."""
    call = getattr(route, "endpoint", None)
    is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(getattr(call, "__call__", None))
    return "async" if is_async else "def"


PATTERN_LINES = 40  # the most of a strategy's source the report quotes for one kind of endpoint
PATTERN_MODULE_LINES = 60  # the most of a pattern-only module it quotes, whole
PATTERN_ROUTES = {"def": "/sync/tag", "async": "/async/tag"}  # whose wiring shows how a kind gets its session


def pattern(module) -> dict[str, str]:
    """Per kind of endpoint, the strategy's own source that hands it a session: a module that serves no probe route
    of its own is quoted whole (whole()); else the lifespan or startup handlers
    and the middleware of the app (and of the mounted sub-application serving the route), the dependencies of the
    kind's tag route, and that endpoint, as far as the module defines them (a library's code is not quoted), at
    most PATTERN_LINES lines each."""
    app, found = module.app, {}
    served = probe_routes(app)
    for kind, path in PATTERN_ROUTES.items():
        route = served.get(path, (None, None))[1]
        if route is None or _kind(route) != kind:
            continue
        if getattr(route.endpoint, "__module__", None) == mount.__name__:  # the pattern is the module itself
            found[kind] = whole(module)
            continue
        owner = getattr(route, "dependency_overrides_provider", None)  # the FastAPI app the route was added to
        app_wide = [*_app_wide(app, module), *(_app_wide(owner, module) if owner not in (None, app) else [])]
        calls, dependants = [], [getattr(route, "dependant", None)]
        while dependants:
            dependant = dependants.pop(0)
            if dependant is not None:
                calls.append(dependant.call)
                dependants += dependant.dependencies
        lines = []
        for call in dict.fromkeys(c for c in [*app_wide, *reversed(calls)] if _defined_in(c, module)):
            lines += [*inspect.getsource(call).rstrip().splitlines(), ""]
        if lines:
            found[kind] = "\n".join(lines[:PATTERN_LINES]).rstrip() + (
                "\n# …" if len(lines) > PATTERN_LINES + 1 else ""
            )
    return found


HARNESS_NAMES = {"REQUIRES", "UNSUPPORTED", "INGREDIENTS"}  # what a module declares for the harness, not its app


def whole(module) -> str:
    """The module as its users would paste it: its source without the docstring and the harness's declarations,
    at most PATTERN_MODULE_LINES lines."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    for node in ast.parse(source).body:
        harness = isinstance(node, ast.Assign) and {getattr(t, "id", None) for t in node.targets} & HARNESS_NAMES
        docstring = isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)
        if harness or docstring:
            lines[node.lineno - 1 : node.end_lineno] = [""] * (node.end_lineno - node.lineno + 1)
    text = re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines)).strip("\n").splitlines()
    return "\n".join(text[:PATTERN_MODULE_LINES]) + ("\n# …" if len(text) > PATTERN_MODULE_LINES else "")


def _app_wide(app, module) -> list:
    """An application's lifespan or startup and shutdown handlers, and its middleware (classes and callables)."""
    router = getattr(app, "router", None)
    found = [
        *_lifespans(getattr(router, "lifespan_context", None), module),
        *getattr(router, "on_startup", []),
        *getattr(router, "on_shutdown", []),
    ]
    for m in getattr(app, "user_middleware", []):
        found += [m.cls, *(v for v in getattr(m, "kwargs", {}).values() if callable(v))]
    return found


def _lifespans(context, module) -> list:
    """The lifespan, or those it was merged from: each `include_router` chains the app's lifespan with the router's
    in a function of FastAPI's, whose free variables (behind `__wrapped__`) hold the two."""
    found, todo, seen = [], [context], set()
    while todo:
        context = todo.pop(0)
        if id(context) in seen:
            continue
        seen.add(id(context))
        inner = inspect.unwrap(context) if callable(context) else None
        if inspect.isfunction(inner) and not _defined_in(context, module):
            todo += [v for v in inspect.getclosurevars(inner).nonlocals.values() if callable(v)]
        else:
            found.append(context)
    return found


def _defined_in(call, module) -> bool:
    call = getattr(call, "__wrapped__", call)
    try:
        return getattr(call, "__module__", None) == module.__name__ and bool(inspect.getsource(call))
    except (OSError, TypeError):
        return False


def unsupported(module) -> dict[str, str]:
    declared = getattr(module, "UNSUPPORTED", {}) or {}
    return {path: str(why) for path, why in declared.items()}


def missing_routes(module, paths: tuple[str, ...]) -> list[str]:
    """Contract violations among `paths`: neither served nor declared unsupported (optional routes may be left out)."""
    have = served_routes(module.app) | set(unsupported(module)) | set(OPTIONAL)
    return [p for p in paths if p not in have]


def not_served(module, paths: tuple[str, ...], kind: str | None = None) -> str:
    """Why none of `paths` is served (as `kind` of endpoint, when given): the strategy's declared reasons, that an
    optional route was left out, or that the app serves it as the other kind."""
    declared = unsupported(module)

    def why(path: str) -> str:
        if path in declared:
            return declared[path]
        if path in served_routes(module.app):
            return f"served by {'a `def`' if kind == 'async' else 'an `async def`'} endpoint"
        return f"an optional route ({OPTIONAL[path]}), left out"

    return "; ".join(f"{p} not served{f' as {KINDS[kind]}' if kind else ''}: {why(p)}" for p in paths)


def unserved(module, routes: tuple[str, ...], kind: str | None) -> dict | None:
    """Why the module serves none of `routes` as `kind` of endpoint (all kinds when None), as a skipped row says it:
    {"reason", "unsupported": it declared them all}; None when it serves one. The one rule for the check process and
    the runner, which writes such rows without starting one."""
    wanted = tuple(p for p in routes if kind is None or kind in path_kinds(p))
    if served_routes(module.app, kind) & set(wanted):
        return None
    return {"reason": not_served(module, wanted, kind), "unsupported": set(wanted) <= set(unsupported(module))}


def contract_error(strategy: Strategy, missing: list[str]) -> ContractError:
    routes = ", ".join(f"{ROUTES[p]} {p}" for p in missing)
    return ContractError(
        f"{strategy.file}: no route {routes}; declare where its endpoints get their session "
        "(a module-level `SessionDep = Annotated[Session, Depends(get_db)]`, or SESSION_FROM) and the harness adds "
        "the probe routes, or list it in UNSUPPORTED with the reason"
    )
