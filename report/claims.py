"""The claims of FastAPI #726 (the seed thread), as data, and how the measured rows judge them.

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

from report.results import by_pair, key_number

ISOLATION = (
    "isolation_async",
    "isolation_threadpool",
    "carryover_sequential",
    "same_session_in_request",
    "lost_writes",
)
LIFETIMES = ("reload_server", "reload_in_process", "shutdown")
EVERY_CHECK = (
    *ISOLATION,
    *LIFETIMES,
    "cleanup_on_error",
    "cleanup_timing",
    "sessions_nobody_needed",
    "pool_exhaustion",
    "event_loop_blocking",
)

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
        metrics = row.get("metrics") or {}
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
            if not _measured(r) and self.metric and self.metric not in (r.get("metrics") or {})
        ]
        if missing:
            return Finding(None, self.check, f"{where}: {'; '.join(missing)} {needs}", any(map(_absent, rows)))
        if self.metric:
            values = [r["metrics"][self.metric] for r in rows]
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


def _all(strategies, checks, want) -> tuple[Expect, ...]:
    return tuple(Expect(s, c, want) for s in strategies for c in checks)


MODULE_SYNC = ("yield_dependency", "middleware")  # module-level sync engines, never disposed
MODULE_ASYNC = ("async_dependency", "async_scoped_session")  # module-level async engines, never disposed

# Two claims of the thread say this: the `yield` dependency opens a session only for the routes that use it, where the
# middleware opens one for every request.
SESSION_ONLY_WHERE_USED = dict(
    says=(
        Expect("yield_dependency", "sessions_nobody_needed", "passed"),
        Expect("yield_dependency", "sessions_nobody_needed", "sessions_per_request = 0"),
    ),
    contrast=(
        Expect("middleware", "sessions_nobody_needed", "failed"),
        Expect("middleware", "sessions_nobody_needed", "sessions_per_request > 0"),
    ),
)

CLAIMS = (
    Claim(
        "The SQLAlchemy library comes with a scoped_session object, which effectively allows for thread-safe "
        "database sessions.",
        "acnebs",
        says=_all(["global_scoped_session"], ["isolation_threadpool", "isolation_async"], "passed"),
        note="thread-safe is not request-safe: `async def` requests share the event loop's one thread",
    ),
    Claim(
        "making scoped_session global [...] forces you to also have a global engine to bind it to, and global "
        "variables in ASGI don't have a well-defined lifetime",
        "sm-Fifteen",
        says=_all(["global_scoped_session"], LIFETIMES, "failed"),
        contrast=_all(["lifespan_dependency"], LIFETIMES, "passed"),
    ),
    Claim(
        "using dependencies rather than globals mean that all the ressource needed by your route are passed as "
        "function parameters, which tends to make testing easier since you can just pass a fake DB session instead "
        "of the one you would normally use",
        "sm-Fifteen",
        says=_all(["lifespan_dependency", "yield_dependency", "async_dependency"], ["testability"], "passed"),
        contrast=_all(["global_scoped_session", "contextvar"], ["testability"], "failed"),
    ),
    Claim(
        "thread-local sessions might not work that well with FastAPI since Python's coroutines don't have a 1:1 "
        "mapping with threads",
        "sm-Fifteen",
        says=(
            Expect("global_scoped_session", "isolation_async", "failed"),
            Expect("global_scoped_session", "isolation_async", "foreign_tag_seen > 0"),
        ),
        contrast=(
            Expect("global_scoped_session", "isolation_threadpool", "passed"),
            Expect("contextvar", "isolation_async", "passed"),
        ),
        note="contrast: the same thread-local session where each request has a thread of its own (`def`), and a "
        "scoping that follows coroutines (a ContextVar)",
    ),
    Claim(
        "SQLAlchemy's automatic cleanup system works in a WSGI setting (such as when using Flask) because it it set "
        "to cleanup whenever the Python interpreter shuts down",
        "sm-Fifteen",
        says=(
            *_all(MODULE_SYNC, ["shutdown"], "connections_after_shutdown > 0"),
            *_all(MODULE_SYNC, ["shutdown"], "exit_trouble_lines = 0"),
            *_all(MODULE_SYNC, ["shutdown"], "sessions_abandoned_at_exit = 0"),
        ),
        contrast=_all(MODULE_ASYNC, ["shutdown"], "sessions_abandoned_at_exit > 0"),
        note="sync module-level engines still hold connections after lifespan shutdown; the claim is that exit "
        "closes them cleanly, which only a server can tell (`sessions_abandoned_at_exit`, PostgreSQL); "
        "contrast: the ASGI-era async engines the thread sets against it",
    ),
    Claim(
        "reloading your code would create a new connection engine without closing the first one, meaning any "
        "connection the old engine kept open could leak and stay open",
        "sm-Fifteen",
        says=(
            Expect("yield_dependency", "reload_in_process", "growth > 0"),
            Expect("yield_dependency", "reload_server", "failed"),
        ),
        contrast=(
            Expect("lifespan_dependency", "reload_in_process", "growth = 0"),
            Expect("lifespan_dependency", "reload_server", "passed"),
        ),
    ),
    Claim(
        "while SQLAlchemy's engines and connection wrappers do extremely smart things to ensure that they get "
        "cleaned up automatically without the user having to do anything, most objects will not",
        "sm-Fifteen",
        note="nothing measures it: sessionbench only counts SQLAlchemy's own resources",
    ),
    Claim(
        "I should specify that in SQLAlchemy's case specifically, this is probably not needed (unless you want to "
        "make use of --reload)",
        "sm-Fifteen",
        says=(
            Expect("yield_dependency", "shutdown", "passed"),
            *(
                Compare(c, ("yield_dependency", "lifespan_dependency"))
                for c in (*ISOLATION, "cleanup_on_error", "pool_exhaustion", "event_loop_blocking")
            ),
        ),
        contrast=(
            Expect("yield_dependency", "reload_in_process", "failed"),
            Expect("yield_dependency", "reload_server", "failed"),
        ),
        note='"this": creating the engine at startup and disposing of it at shutdown instead of at import; '
        "`yield_dependency` is the module-level engine, `lifespan_dependency` the startup one",
    ),
    Claim(
        "async DB connections, which can't asynchoneously close with the Python interpreter because by then the "
        "asyncio event loop is most likely gone",
        "sm-Fifteen",
        says=(
            *_all(MODULE_ASYNC, ["shutdown"], "failed"),
            *_all(MODULE_ASYNC, ["shutdown"], "sessions_abandoned_at_exit > 0"),
        ),
        contrast=(
            *_all(MODULE_SYNC, ["shutdown"], "passed"),
            *_all(MODULE_SYNC, ["shutdown"], "sessions_abandoned_at_exit = 0"),
        ),
        note="module-level engines never disposed, async against sync: only a difference between them is "
        "evidence for the async part",
    ),
    Claim(
        "there is now also a contextmanager-style approach to getting a session that may be preferable to using a "
        "middleware if not all endpoints rely on the database",
        "dmontagu",
        **SESSION_ONLY_WHERE_USED,
    ),
    Claim(
        "I don't know if this is a good idea with database connection pools, the way I see it, it's probably "
        "preferable to open them once when starting the application and pulling connections from those as "
        "dependencies.",
        "sm-Fifteen",
        says=_all(["lifespan_dependency"], (*LIFETIMES, "pool_exhaustion"), "passed"),
        contrast=_all(["yield_dependency"], (*LIFETIMES, "pool_exhaustion"), "failed"),
        note="the pool opened at startup (`lifespan_dependency`) against the contextmanager dependency's "
        "module-level pool (`yield_dependency`): their lifetimes, and a burst larger than the pool",
    ),
    Claim(
        "The contextmanager approach is almost exactly equivalent to the middleware approach",
        "dmontagu",
        says=(
            *(Compare(c, ("yield_dependency", "middleware")) for c in EVERY_CHECK),
            Compare("sessions_nobody_needed", ("yield_dependency", "middleware"), metric="sessions_per_request"),
            Compare("cleanup_timing", ("yield_dependency", "middleware"), metric="responses_sent_before_cleanup"),
        ),
    ),
    Claim(
        "the connection pool is still only opened once when starting the application (as long as DBSession is a "
        "sessionmaker tied to a specific engine)",
        "dmontagu",
        note="nothing measures it yet: no check counts the pools an app opens while it runs",
    ),
    Claim(
        "the contextmanager approach doesn't clean up the session until after sending the response (so you need to "
        "handle commits and any associated errors inside your endpoint, which I would argue you should do anyway "
        "unless you want to be returning 500s to your clients)",
        "dmontagu",
        says=(Expect("yield_dependency", "cleanup_timing", "responses_sent_before_cleanup > 0"),),
        contrast=(Expect("middleware", "cleanup_timing", "responses_sent_before_cleanup = 0"),),
        note="FastAPI's default dependency scope; the response's last byte is sent while the connection is "
        "still checked out",
    ),
    Claim(
        "in the contextmanager approach, a session isn't automatically created for every request -- it is only "
        "created for endpoint calls that actually make use of the session dependency",
        "dmontagu",
        **SESSION_ONLY_WHERE_USED,
    ),
    Claim(
        "I haven't seen any argument against the use of a global sessionmaker; as far as I can tell that behaves "
        "basically equivalently to your proposed approach",
        "dmontagu",
        says=tuple(Compare(c, ("yield_dependency", "lifespan_dependency")) for c in EVERY_CHECK),
        note="the global sessionmaker with a module-level engine (`yield_dependency`) against the engine created "
        "at startup and disposed at shutdown (`lifespan_dependency`)",
    ),
    Claim(
        "Oh, I agree that sessions should be handled with context manager dependencies",
        "sm-Fifteen",
        says=_all(
            ["yield_dependency", "lifespan_dependency", "async_dependency"], (*ISOLATION, "cleanup_on_error"), "passed"
        ),
        contrast=_all(["global_scoped_session"], ("isolation_async", "carryover_sequential"), "failed"),
    ),
    Claim(
        "the underlying database connection pool, which should be instanciated once for the application and then "
        "reused [...], which neither the middleware approach nor the ctxmgr dependencies would be well suited for",
        "sm-Fifteen",
        says=_all(["middleware", "yield_dependency"], LIFETIMES, "failed"),
        contrast=_all(["lifespan_dependency"], LIFETIMES, "passed"),
    ),
    Claim(
        "SQLAlchemy scoped_session is based on thread locals. As @sm-Fifteen points out, those are not mapped 1:1 to "
        "requests when using async stuff. In summary, a single thread can handle more than one request",
        "tiangolo",
        says=(
            Expect("global_scoped_session", "isolation_async", "threads < requests"),
            Expect("global_scoped_session", "isolation_async", "distinct_sessions < requests"),
        ),
        contrast=(Expect("global_scoped_session", "isolation_threadpool", "passed"),),
    ),
    Claim(
        "a single request could be handled by more than one thread",
        "tiangolo",
        says=(
            Expect("global_scoped_session", "same_session_in_request", "failed"),
            Expect("global_scoped_session", "same_session_in_request", "mismatched > 0"),
        ),
        contrast=(
            Expect("contextvar", "same_session_in_request", "passed"),
            Expect("lifespan_dependency", "same_session_in_request", "passed"),
        ),
        note="a thread-local session differs between the dependency's thread and the endpoint's; a ContextVar or "
        "a session passed as a dependency follows the request",
    ),
    Claim(
        "The alternative would be ContextVars, those are made to solve these use cases.",
        "tiangolo",
        says=_all(
            ["contextvar"],
            ("isolation_async", "isolation_threadpool", "carryover_sequential", "same_session_in_request"),
            "passed",
        ),
        contrast=_all(["global_scoped_session"], ("isolation_async", "same_session_in_request"), "failed"),
    ),
    Claim(
        "But they don't behave exactly the same as thread locals and there are some caveats.",
        "tiangolo",
        says=(Expect("contextvar_def_dependency", "same_session_in_request", "failed"),),
        contrast=(Expect("contextvar", "same_session_in_request", "passed"),),
        note="the caveat measured: a ContextVar set in a sync (`def`) dependency is invisible downstream, set in "
        "middleware it is not",
    ),
    Claim(
        "it limits you to a single database connection (I need to connect to at least 3 on one of the projects I'm "
        "developping)",
        "sm-Fifteen",
        says=(Expect("fastapi_sqlalchemy", "multiple_databases", "failed or unserved"),),
        contrast=_all(["lifespan_dependency", "yield_dependency"], ["multiple_databases"], "passed"),
        note="about fastapi-sqlalchemy; a strategy that declares it cannot serve the two-database routes says so "
        "in its own words, and that is the finding",
    ),
    Claim(
        "it doesn't take advantage of dependency injection so you can't really make your routes or functions use a "
        "different DB object without modifying their code or the initialization sequence of your middleware",
        "sm-Fifteen",
        says=_all(["fastapi_sqlalchemy", "contextvar"], ["testability"], "failed"),
        contrast=_all(["lifespan_dependency"], ["testability"], "passed"),
        note="about fastapi-sqlalchemy; `contextvar` is its pattern written out",
    ),
    Claim(
        "you initially mentioned how it's probably better not to have a global database connection, but then your "
        "solution is just passing around the connection as a global, no? [...] I'm not sure I see the benefit of "
        "that approach.",
        "acnebs",
        says=tuple(Compare(c, ("lifespan_dependency", "yield_dependency")) for c in LIFETIMES),
        note="the engine created at startup and disposed at shutdown (`lifespan_dependency`) against one created at "
        "import (`yield_dependency`): no benefit means the same lifetimes",
    ),
)
