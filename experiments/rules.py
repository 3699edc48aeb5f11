"""A check's rule as data: the verdict, the words the report prints, and the metrics it reads, from one object.

pytest-benchmark's regression rules evaluate and describe themselves; so do these, so that nothing reads a rule's
prose back to learn what it judges. `judge(check, metrics)` is the whole path from numbers to a verdict.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from report.format import FAILED, PASSED

OPERATORS = {"=": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
# Added to a check's metrics by the harness (watch.py): a request left unanswered, or a loop blocked for good, fails
# any check, before its own rule is read (a blocked loop leaves the check's own numbers unmeasured).
HARNESS_METRICS = ("unanswered_requests", "requests_not_sent", "loop_blocked_s")


@dataclass(frozen=True)
class Term:
    """`metric op value`, where value is a number, a flag, or the name of another metric of the same row."""

    metric: str
    op: str = "="
    value: float | bool | str = 0
    optional: bool = False  # holds where the metric was not measured (a server-only count on SQLite)

    def holds(self, metrics: dict) -> bool:
        if self.optional and self.metric not in metrics:
            return True
        other = metrics[self.value] if isinstance(self.value, str) else self.value
        return OPERATORS[self.op](metrics[self.metric], other)

    def words(self) -> str:
        value = (
            self.value
            if isinstance(self.value, str)
            else f"{self.value:g}"
            if not isinstance(self.value, bool)
            else str(self.value).lower()
        )
        return f"{self.metric} {self.op} {value}" + (" (where measured)" if self.optional else "")


@dataclass(frozen=True)
class Rule:
    """All of `terms` hold (or any of them, `any_of`); `note` says why, after the terms."""

    terms: tuple[Term, ...]
    note: str = ""
    any_of: bool = False
    verb: str = "passed"

    def __call__(self, metrics: dict) -> bool:
        return (any if self.any_of else all)(t.holds(metrics) for t in self.terms)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for t in self.terms for n in (t.metric, t.value) if isinstance(n, str)))

    def words(self) -> str:
        parts = [t.words() for t in self.terms]
        joined = (
            parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} {'or' if self.any_of else 'and'} {parts[-1]}"
        )
        return f"{self.verb} when {joined}" + (f": {self.note}" if self.note else "")


def zero(*metrics: str, note: str = "") -> Rule:
    """Passed when every one of `metrics` is 0."""
    return Rule(tuple(Term(m) for m in metrics), note)


def any_positive(*metrics: str, note: str = "") -> Rule:
    """True when one of `metrics` is above 0: for what makes a failure permanent."""
    return Rule(tuple(Term(m, ">", 0) for m in metrics), note, any_of=True, verb="permanent")


def judge(check, metrics: dict) -> str:
    """The verdict on one row's numbers: the check's rule, under the harness's own (no request left unanswered)."""
    if any(metrics.get(name) for name in HARNESS_METRICS):
        return FAILED
    return PASSED if check.rule(metrics) else FAILED


def permanent(check, metrics: dict) -> bool:
    """Whether a failure does not go away by itself: the app never recovers, requests hang, connections stay out."""
    if any(metrics.get(name) for name in HARNESS_METRICS):
        return True
    return check.permanent is not None and check.permanent({**dict.fromkeys(check.permanent.metrics, 0), **metrics})
