"""How the measured rows judge a claim of FastAPI #726 (the claims themselves are in report/thread_claims.py).

A claim is quoted verbatim with who said it. Its test is two sets of
expectations on named rows: `says`, what the claim itself predicts, and
`contrast`, what its alternatives must show for the rows to single the claim
out (an async-only claim needs sync engines to behave otherwise; a claim that
a pattern leaks needs the pattern it is compared with not to). An expectation
is an outcome (`Expect(s, c, "failed")`), a rule on one metric
(`Expect(s, c, "responses_sent_before_cleanup > 0")`), or two strategies
compared on one check (`Compare`, same or different outcome or metric).

Verdicts (`judge`): refuted when none of the claim's own measured
expectations holds; partly when some hold and some (the contrast's included)
do not, naming the checks that disagree; supported when all hold, no row is
missing or errored and the contrast is measured; untested otherwise (nothing
measured, or nothing disagrees yet the rest of the evidence is missing).
Skipped rows (a check that does not apply, e.g. a server-only one on SQLite)
and metrics a run does not record are left out, with one exception: a skip
whose reason is the strategy's own declaration that it cannot serve the
check's routes is the finding when the expectation accepts "unserved" (a
library that cannot serve two databases, for one).
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from report.results import by_pair, key_number, measured_parts

OUTCOMES = ("passed", "failed", "unserved")
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "=": operator.eq, "!=": operator.ne}
RULE = re.compile(r"^(\w+) (>=|<=|!=|>|<|=) (-?[\d.]+|\w+)$")


@dataclass(frozen=True)
class Finding:
    holds: bool | None  # None: not measured
    check: str
    text: str
    missing: bool = False  # not measured because the row is absent or errored (not: skipped, or a metric n/a here)


def _measured(row: dict) -> str | None:
    """Why `row` measures nothing ("not run", "skipped", "error": the report lists the reasons once, under the
    matrix), or None when it holds a passed/failed verdict."""
    if not row:
        return "not run"
    return None if row["outcome"] in ("passed", "failed") else row["outcome"]


def _metrics(row: dict, kind: str | None) -> dict:
    """The numbers a claim reads: the row's, or those of `kind` of endpoint where the check judges kinds apart
    (a claim about such a check names its kind; where it does not and only one kind was measured, that one)."""
    parts = measured_parts(row)
    if kind is not None and "kinds" in row:
        return parts.get(kind, {})
    return next(iter(parts.values())) if len(parts) == 1 else {}


def _absent(row: dict) -> bool:
    """The row should be there and is not: never run, or it could not measure."""
    return row.get("outcome") not in ("passed", "failed", "skipped")


def _numbers(row: dict, keys: list[str]) -> str:
    number = key_number(row, keys)
    return f" ({number})" if number else ""


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Expect:
    """`strategy` × `check` has outcome `want` ("passed", "failed", "failed or unserved"), or meets the rule `want`
    ("<metric> <op> <number or metric>")."""

    strategy: str
    check: str
    want: str
    kind: str | None = None  # the kind of endpoint whose numbers a rule reads, for a check that judges kinds apart

    def __post_init__(self):
        if not (set(self.want.split(" or ")) <= set(OUTCOMES) or RULE.match(self.want)):
            raise ValueError(f"{self.want!r}: an outcome of {OUTCOMES} or a rule like 'metric > 0'")

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return ((self.strategy, self.check),)

    def evaluate(self, found: dict, keys: dict) -> Finding:
        row = found.get((self.strategy, self.check), {})
        where = f"`{self.strategy}` × `{self.check}`"
        rule = RULE.match(self.want)
        if rule:
            return self._rule(row, where, *rule.groups())
        wanted = self.want.split(" or ")
        if "unserved" in wanted and row.get("outcome") == "skipped" and row.get("unsupported"):
            return Finding(True, self.check, f"{where}: unserved, {row['reason']} (needs {self.want})")
        missing = _measured(row)
        if missing:
            return Finding(None, self.check, f"{where}: {missing} (needs {self.want})", _absent(row))
        got = row["outcome"]
        return Finding(
            got in wanted, self.check, f"{where}: {got}{_numbers(row, keys.get(self.check, []))} (needs {self.want})"
        )

    def _rule(self, row: dict, where: str, metric: str, op: str, other: str) -> Finding:
        missing = _measured(row)
        metrics = _metrics(row, self.kind)
        if not missing and metric not in metrics:
            missing = f"{row['outcome']}, no {metric} measured"
        if not missing and not re.match(r"^-?[\d.]+$", other) and other not in metrics:
            missing = f"{row['outcome']}, no {other} measured"
        if missing:
            return Finding(None, self.check, f"{where}: {missing} (needs {metric} {op} {other})", _absent(row))
        bound = metrics[other] if other in metrics else float(other)
        shown = f", {other} = {_value(bound)}" if other in metrics else ""
        return Finding(
            OPS[op](metrics[metric], bound),
            self.check,
            f"{where}: {metric} = {_value(metrics[metric])}{shown} (needs {metric} {op} {other})",
        )


@dataclass(frozen=True)
class Compare:
    """Two strategies on one check: the same (or, with same=False, a different) outcome, or value of `metric`."""

    check: str
    strategies: tuple[str, str]
    same: bool = True
    metric: str | None = None
    kind: str | None = None  # whose numbers `metric` is, for a check that judges kinds apart

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((s, self.check) for s in self.strategies)

    def evaluate(self, found: dict, keys: dict) -> Finding:
        rows = [found.get(pair, {}) for pair in self.pairs]
        a, b = self.strategies
        what = self.metric or "outcome"
        where = f"`{a}` vs `{b}` × `{self.check}`"
        needs = f"(needs {'the same' if self.same else 'a different'} {what})"
        missing = [f"`{s}` {m}" for s, m in zip(self.strategies, map(_measured, rows)) if m]
        missing += [
            f"`{s}` {r['outcome']}, no {self.metric} measured"
            for s, r in zip(self.strategies, rows)
            if not _measured(r) and self.metric and self.metric not in _metrics(r, self.kind)
        ]
        if missing:
            return Finding(None, self.check, f"{where}: {'; '.join(missing)} {needs}", any(map(_absent, rows)))
        if self.metric:
            values = [_metrics(r, self.kind)[self.metric] for r in rows]
            shown = f"{self.metric} {_value(values[0])} vs {_value(values[1])}"
        else:
            values = [r["outcome"] for r in rows]
            shown = " vs ".join(f"{v}{_numbers(r, keys.get(self.check, []))}" for v, r in zip(values, rows))
        return Finding((values[0] == values[1]) == self.same, self.check, f"{where}: {shown} {needs}")


@dataclass(frozen=True)
class Claim:
    quote: str  # the thread's words, verbatim (spelling included); [...] marks a cut
    who: str
    says: tuple = ()  # what the claim predicts, on the rows of the patterns it is about
    contrast: tuple = ()  # what the alternatives must show for those rows to single the claim out
    note: str = ""  # what the rows stand for, or why nothing measures the claim

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return {pair for e in (*self.says, *self.contrast) for pair in e.pairs}


@dataclass(frozen=True)
class Verdict:
    verdict: str  # supported | refuted | partly | untested
    says: list[Finding]
    contrast: list[Finding]
    disagree: list[str]  # checks whose findings go against the claim (partly, refuted)


def judge(claim: Claim, rows: list[dict], keys: dict[str, list[str]] | None = None) -> Verdict:
    """The verdict of `claim` on `rows`; `keys` (check id -> key metrics) adds numbers to outcome findings."""
    found, keys = by_pair(rows), keys or {}
    says = [e.evaluate(found, keys) for e in claim.says]
    contrast = [e.evaluate(found, keys) for e in claim.contrast]
    own = [f.holds for f in says if f.holds is not None]
    other = [f.holds for f in contrast if f.holds is not None]
    disagree = list(dict.fromkeys(f.check for f in says + contrast if f.holds is False))
    if not own:
        verdict = "untested"
    elif not any(own):
        verdict = "refuted"
    elif not (all(own) and all(other)):
        verdict = "partly"
    elif any(f.missing for f in says + contrast) or (claim.contrast and not other):
        verdict = "untested"  # nothing disagrees, but what would complete the evidence was not measured
    else:
        verdict = "supported"
    return Verdict(verdict, says, contrast, disagree if verdict in ("partly", "refuted") else [])
