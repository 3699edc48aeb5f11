"""What a check is, and the registry of all of them.

A check is a pytest test in `experiments/test_*.py` decorated with
`@measures(CHECK)`: the test sends traffic and records numbers; the verdict is
`rules.judge(CHECK, metrics)`, by the rule object written next to it (its words
and the metrics it reads come from the same object), so that no check can
hard-code what a strategy "should" get.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from experiments.harness.watch import REQUEST_BOUND_S, SLOW_CAP
from experiments.probes import path_kinds
from experiments.rules import Rule
from report.format import SEVERITIES
from report.format import Check as CheckEntry

CHECKS: dict[str, Check] = {}
MODULES: dict[str, str] = {}  # check id -> the experiments module whose test measures it
NEEDS_SERVER = "needs a database server that counts connections: run with --db postgresql"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    measures: str
    why: str  # the claim of the seed thread it tests
    rule: Rule  # the verdict from the metrics, in words too (experiments/rules.py)
    severity: str  # what its failure costs a user: a key of report.format.SEVERITIES
    key: tuple[str, ...]  # the metrics shown in the summary matrix
    routes: tuple[str, ...]  # probe routes it can measure on; skipped when the strategy serves none
    timeout_s: float = 60.0
    needs_server: bool = False  # measures what only a database server can count; skipped on SQLite
    pool: dict | None = None  # engine defaults (pool_size=…) every strategy's engines get, unless it sets its own
    exclusive: bool = False  # its numbers are timings: run with a core to itself, beside no other kind of check
    second_database: bool = False  # creates the database $SECOND_DATABASE_URL names, for apps that have two
    column: str = ""  # its name as a column of the verdict matrix: a few plain words
    whole_app: bool = False  # judges the app as a whole (reload, shutdown, /nodb), not one kind of endpoint
    permanent: Rule | None = None  # when a failure does not go away by itself (never recovers, stuck connections)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.id}: severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")

    @property
    def passes(self) -> Rule:
        return self.rule

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of endpoint (probes.KINDS) judged apart, each on its own numbers; () for a whole-app check."""
        if self.whole_app:
            return ()
        return tuple(dict.fromkeys(kind for route in self.routes for kind in path_kinds(route)))

    def describe(self) -> CheckEntry:
        """The check as stored in the results file."""
        return {
            "id": self.id,
            "title": self.title,
            "measures": self.measures,
            "why": self.why,
            "rule": self.rule.words(),
            "rule_metrics": list(self.rule.metrics),
            "severity": self.severity,
            "permanent_when": self.permanent.words() if self.permanent else None,
            "key": list(self.key),
            "routes": list(self.routes),
            "timeout_s": self.timeout_s,
            "needs_server": self.needs_server,
            "pool": self.pool,
            "exclusive": self.exclusive,
            "second_database": self.second_database,
            "column": self.column or self.id,
            "kinds": list(self.kinds),
            "request_bound_s": REQUEST_BOUND_S,  # the harness's rule under every check's own: unanswered fails
            "request_cap_s": SLOW_CAP * REQUEST_BOUND_S,  # how long a request the app is computing is waited for
            "source_hash": source_hash(Path(sys.modules[MODULES[self.id]].__file__)),
        }


def measures(check: Check):
    """Register `check` and mark the test function that measures it."""

    def mark(test):
        if check.id in CHECKS and CHECKS[check.id] is not check:
            raise ValueError(f"two checks are named {check.id!r}")
        CHECKS[check.id] = check
        MODULES[check.id] = test.__module__
        return pytest.mark.anyio(pytest.mark.check(check.id)(test))

    return mark


def source_hash(path: Path) -> str:
    """What results are keyed by, as asv keys a benchmark's by its code: a change of the source, not of the repository."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class UnknownCheck(Exception):
    """`--check` named an id no experiment module defines."""


def select(ids: list[str]) -> list[Check]:
    """The checks named (all when none), or UnknownCheck listing the known ids."""
    checks = registry()
    unknown = [i for i in ids if i not in checks]
    if unknown:
        raise UnknownCheck(f"unknown check {', '.join(unknown)}; known: {', '.join(checks)}")
    return [checks[i] for i in dict.fromkeys(ids)] or list(checks.values())


def registry() -> dict[str, Check]:
    """Every check, in the order the experiment modules define them."""
    import experiments

    for info in sorted(pkgutil.iter_modules(experiments.__path__), key=lambda m: m.name):
        if info.name.startswith("test_"):
            importlib.import_module(f"experiments.{info.name}")
    return dict(CHECKS)
