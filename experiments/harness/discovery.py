"""Finding strategy modules and loading their apps, with one-line errors for broken ones.

Discovery reads files without importing them (a module that crashes on import
must not take the harness down); loading imports one module and checks the
contract: an `app`, and every probe route either served or declared in
`UNSUPPORTED`.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from experiments.probes import KINDS, OPTIONAL, ROUTES

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

    @property
    def file(self) -> str:
        """The path as a user would type it."""
        try:
            return str(self.path.relative_to(ROOT))
        except ValueError:
            return str(self.path)

    def describe(self) -> dict:
        return {"id": self.id, "label": self.label, "module": self.module, "file": self.file}


def declared(path: Path, name: str) -> tuple:
    """A module-level tuple of literals `name` (REQUIRES, FLAGGED_BY, GOOD_FOR), read without importing the module."""
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
    return Strategy(id=path.stem, path=path, module=_module_name(path), label=_label(path),
                    requires=tuple(map(str, declared(path, "REQUIRES"))))


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


def load(strategy: Strategy):
    """Import the strategy fresh and return its module, or raise ContractError."""
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
        raise ContractError(f"{strategy.file}: defines no `app`; expose the FastAPI application as a module-level `app`")
    return module


def one_line_warning(warning) -> str:
    """`DeprecationWarning: text (file.py:12)` for a recorded `warnings.WarningMessage`."""
    text = next((line.strip() for line in str(warning.message).splitlines() if line.strip()), "")[:200]
    return f"{warning.category.__name__}: {text} ({Path(warning.filename).name}:{warning.lineno})"


def served_routes(app, kind: str | None = None) -> set[str]:
    """Paths of the probe routes the app answers with the method the checks use; only `def` or `async def`
    endpoints when `kind` says which (probes.KINDS)."""
    found = set()
    for route in getattr(app, "routes", []):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None) or set()
        if path in ROUTES and ROUTES[path] in methods and (kind is None or _kind(route) == kind):
            found.add(path)
    return found


def _kind(route) -> str:
    """"async" for an `async def` endpoint (or a callable object whose `__call__` is one), else "def"."""
    call = getattr(route, "endpoint", None)
    is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(getattr(call, "__call__", None))
    return "async" if is_async else "def"


PATTERN_LINES = 40  # the most of a strategy's source the report quotes for one kind of endpoint
PATTERN_ROUTES = {"def": "/sync/tag", "async": "/async/tag"}  # whose wiring shows how a kind gets its session


def pattern(module) -> dict[str, str]:
    """Per kind of endpoint, the strategy's own source that hands it a session: the app's lifespan or startup
    handlers, its middleware, the dependencies of the kind's tag route, and that endpoint, as far as the module
    defines them (a library's code is not quoted), at most PATTERN_LINES lines each."""
    app, found = module.app, {}
    router = getattr(app, "router", None)
    app_wide = [getattr(router, "lifespan_context", None), *getattr(router, "on_startup", []),
                *getattr(router, "on_shutdown", [])]
    for m in getattr(app, "user_middleware", []):
        app_wide += [m.cls, *(v for v in getattr(m, "kwargs", {}).values() if callable(v))]
    for kind, path in PATTERN_ROUTES.items():
        route = next((r for r in getattr(app, "routes", []) if getattr(r, "path", None) == path
                      and _kind(r) == kind), None)
        if route is None:
            continue
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
            found[kind] = "\n".join(lines[:PATTERN_LINES]).rstrip() + ("\n# …" if len(lines) > PATTERN_LINES + 1 else "")
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


def contract_error(strategy: Strategy, missing: list[str]) -> ContractError:
    routes = ", ".join(f"{ROUTES[p]} {p}" for p in missing)
    return ContractError(
        f"{strategy.file}: no route {routes}; add it (bodies in experiments/probes.py) "
        f"or list it in UNSUPPORTED with the reason"
    )
