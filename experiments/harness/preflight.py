"""Each strategy is imported once, under a short timeout, before any of its checks run.

Without it, a module that hangs at import costs every check its full timeout
(13 checks x 45-90 s for an answer the first one already had). A module whose
`REQUIRES` are not installed here is not imported at all: its rows are
`skipped` with the reason and where it can be measured, as asv marks a
benchmark it cannot run here. A strategy declares what it needs beyond the
harness's own packages as PEP 508 strings, read without importing the module:

    REQUIRES = ("fastapi-sqla>=4.0", "fastapi>=0.121")
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from experiments.checks import source_hash
from experiments.harness import discovery
from experiments.harness.discovery import Strategy
from experiments.harness.processes import FORKS, exit_reason, kill_group, signals_interrupt
from report.format import Strategy as StrategyEntry
from report.locks import pins, python_markers

TIMEOUT_S = 20.0  # a heavy library imports in 2-3 s here; a module still importing after this is stuck
LOCKS = discovery.ROOT / "locks"  # default.txt (nox -s compare) and matrix/<cell>.txt (nox -s matrix), see noxfile.py


@dataclass(frozen=True)
class Preflight:
    """What importing a strategy once told us: `ready` to measure, or the one reason all its rows share."""

    strategy: Strategy
    outcome: str  # "ready", "skipped" (REQUIRES unmet here) or "error" (the module could not be imported)
    reason: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)  # installed versions of what it REQUIRES
    warnings: tuple[str, ...] = ()  # what the import warned about (shown, never raised)
    pattern: dict[str, str] = field(default_factory=dict)  # per kind of endpoint, its source the report quotes
    unserved: dict[str, dict] = field(default_factory=dict)  # check id -> {kind or "": skip reason} it cannot be run on

    @property
    def ready(self) -> bool:
        return self.outcome == "ready"

    def describe(self) -> StrategyEntry:
        """The strategy as stored in the results file: the module, what it needs, and what it got."""
        return {
            **self.strategy.describe(),
            "requires": list(self.strategy.requires),
            "versions": self.versions,
            "preflight": self.outcome,
            "source_hash": source_hash(self.strategy.path),
            **({"import_warnings": list(self.warnings)} if self.warnings else {}),
            **({"pattern": self.pattern} if self.pattern else {}),
        }


def failed(preflights: list[Preflight]) -> list[dict]:
    """`{"app", "reason"}` per strategy that could not be imported: the cost side lists these next to its own errors."""
    return [
        {"app": p.strategy.id, "reason": f"import preflight: {p.reason}"} for p in preflights if p.outcome == "error"
    ]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(strategy: Strategy) -> tuple[list[str], dict[str, str | None]]:
    """(the REQUIRES this environment does not meet, installed version of each required package)."""
    unmet, versions = [], {}
    for text in strategy.requires:
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            unmet.append(f"{text!r} (not a PEP 508 requirement: fix REQUIRES in {strategy.file})")
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        have = versions[req.name] = _installed(req.name)
        if have is None or (req.specifier and not req.specifier.contains(have, prereleases=True)):
            unmet.append(f"{req} (installed here: {have or 'none'})")
    return unmet, versions


def where_measured(requires: tuple[str, ...]) -> str:
    """The nox sessions whose pinned environment installs what `requires` asks for, read from the lock files.

    A lock is universal (its pins carry Python markers): a matrix cell's is read for the Python its name gives,
    the default one for this interpreter's."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    places = []
    for lock in [LOCKS / "default.txt", *sorted((LOCKS / "matrix").glob("*.txt"))]:
        default = lock.parent == LOCKS
        python = here if default else lock.stem.split("-")[0].removeprefix("py")
        if lock.exists() and _meets(requires, pins(lock.read_text(), python), python):
            places.append("`nox -s compare`" if default else f'`nox -s "matrix({lock.stem})"`')
    if not places:
        return "no lock file of this repository installs it (add it to pyproject.toml, then `nox -s lock`)"
    return "measured by " + ", ".join(places)


def _meets(requires: tuple[str, ...], pinned: dict[str, str], python: str) -> bool:
    for text in requires:
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            return False
        if req.marker is not None and not req.marker.evaluate(python_markers(python)):
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            return False
    return True


def _import_in_child(path: str, result: str, log: str, scratch: str, server=None) -> None:
    """Body of the preflight process: import the module against a database of the run's backend (a file in
    `scratch`, or one on `server`, a postgres.Cluster), say what it served: an app whose settings accept only the
    run's kind of URL imports here as it will in its checks.

    The parent owns `scratch`: a module that exits or hangs at import ends this process before any cleanup of its
    own would run."""
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import warnings

    from experiments.harness.serving import Database

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if server is None:
            database = Database.sqlite(Path(scratch) / "preflight.db")
        else:
            database = Database.postgresql(server, f"sb_preflight_{Path(path).stem}")
        os.environ.update({**database.environ, **database.second().environ_as_second})
        try:
            module = discovery.load(discovery.at(Path(path)))
            body = {"served": sorted(discovery.served_routes(module.app)), "pattern": discovery.pattern(module),
                    "unserved": unserved(module)}  # fmt: skip
        except discovery.ContractError as exc:
            body = {"error": str(exc)}
        body["warnings"] = sorted({discovery.one_line_warning(w) for w in seen})
        Path(result).write_text(json.dumps(body))
    os._exit(0)  # don't wait for threads or engines the module may have started


def unserved(module) -> dict[str, dict]:
    """The checks the module serves no route of, for any kind of endpoint they judge: check id -> {kind or "": the
    skip row's reason and whether the module declared it}, as the check process would find them, so that the runner
    writes those rows without starting one. A route missing from the contract is left to the check (an error)."""
    from experiments.checks import registry

    found = {}
    for check in registry().values():
        if discovery.missing_routes(module, check.routes):
            continue
        parts = {kind or "": discovery.unserved(module, check.routes, kind) for kind in check.kinds or (None,)}
        if all(parts.values()):
            found[check.id] = parts
    return found


def check(
    strategy: Strategy, logs: Path, timeout_s: float = TIMEOUT_S, live: set | None = None, server=None
) -> Preflight:
    """Import `strategy` in a process of its own (forked from the preloaded server) and judge it ready or not.

    The process is added to `live` while it runs, so that an interrupted run can kill it."""
    unmet, versions = requirements(strategy)
    if unmet:
        return Preflight(
            strategy, "skipped", f"needs {'; '.join(unmet)}: {where_measured(strategy.requires)}", versions
        )
    logs.mkdir(parents=True, exist_ok=True)
    log, result = logs / f"{strategy.id}-preflight.log", logs / f".{strategy.id}-preflight.json"
    result.unlink(missing_ok=True)
    scratch = tempfile.TemporaryDirectory(prefix="sessionbench-preflight-")
    proc = FORKS.Process(
        target=_import_in_child,
        args=(str(strategy.path), str(result), str(log), scratch.name, server),
        name=f"{strategy.id}-preflight",
    )
    proc.start()
    live = set() if live is None else live
    live.add(proc)
    try:
        proc.join(timeout_s)
        if proc.exitcode is None:
            return Preflight(
                strategy,
                "error",
                f"{strategy.file}: import did not finish within {timeout_s:g} s "
                "(process killed); the module must import without blocking",
                versions,
            )
    finally:
        kill_group(proc)
        live.discard(proc)
        scratch.cleanup()
    body = json.loads(result.read_text()) if result.exists() else None
    result.unlink(missing_ok=True)
    if body is None:
        return Preflight(
            strategy,
            "error",
            f"{strategy.file}: the process importing it {exit_reason(proc.exitcode)}; see {log}",
            versions,
        )
    if "error" in body:
        return Preflight(strategy, "error", body["error"], versions, tuple(body["warnings"]))
    return Preflight(strategy, "ready", None, versions, tuple(body["warnings"]), body["pattern"], body["unserved"])


def run(strategies: list[Strategy], logs: Path, jobs: int, say, server=None) -> list[Preflight]:
    """Preflight every strategy, `jobs` at a time, in the order given, against the run's backend (`server`, or
    SQLite); one progress line per strategy not ready."""
    started, live = time.monotonic(), set()
    with ThreadPoolExecutor(max(1, jobs)) as pool, signals_interrupt():
        try:
            found = list(pool.map(lambda s: check(s, logs, live=live, server=server), strategies))
        except BaseException:  # Ctrl-C or SIGTERM: a module stuck importing must not outlive the run
            for proc in list(live):
                kill_group(proc)
            raise
    for p in found:
        if not p.ready:
            say(f"preflight: {p.strategy.id}: {p.outcome.upper()}: {p.reason}")
    ready = sum(p.ready for p in found)
    say(f"preflight: {ready} of {len(found)} strategies import ({time.monotonic() - started:.0f}s)")
    return found
