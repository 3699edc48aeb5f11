"""The claims of FastAPI #726 (the seed thread), as data, and how the measured rows judge them.

A claim names the rows that would support it: `(strategy, check, outcome)`
where the outcome is "passed" or "failed". Errors and skips measure nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from report.results import by_pair

ALL_FIVE = ("isolation_async", "isolation_threadpool", "carryover_sequential", "same_session_in_request", "lost_writes")
LIFETIMES = ("reload_server", "reload_in_process", "shutdown")


@dataclass(frozen=True)
class Claim:
    quote: str  # the thread's words, verbatim (spelling included)
    who: str
    specs: tuple[tuple[str, str, str], ...]  # (strategy_id, check_id, outcome that supports the claim)


CLAIMS = (
    Claim(
        "thread-local sessions might not work that well with FastAPI since Python's coroutines don't have "
        "a 1:1 mapping with threads",
        "sm-Fifteen",
        (("global_scoped_session", "isolation_async", "failed"),),
    ),
    Claim(
        "The alternative would be ContextVars, those are made to solve these use cases.",
        "tiangolo",
        (("contextvar", "isolation_async", "passed"), ("contextvar", "isolation_threadpool", "passed")),
    ),
    Claim(
        "a single request could be handled by more than one thread",
        "tiangolo",
        (("global_scoped_session", "same_session_in_request", "failed"),),
    ),
    Claim(
        "The contextmanager approach is almost exactly equivalent to the middleware approach",
        "dmontagu",
        tuple((s, c, "passed") for s in ("yield_dependency", "middleware") for c in ALL_FIVE),
    ),
    Claim(
        "sessions should be handled with context manager dependencies, [...] the underlying database "
        "connection pool, which should be instanciated once for the application and then reused",
        "sm-Fifteen",
        tuple(("lifespan_dependency", c, "passed") for c in ALL_FIVE + LIFETIMES),
    ),
    Claim(
        "reloading your code would create a new connection engine without closing the first one, meaning any "
        "connection the old engine kept open could leak and stay open",
        "sm-Fifteen",
        tuple((s, c, outcome) for c in ("reload_server", "reload_in_process")
              for s, outcome in (("yield_dependency", "failed"), ("lifespan_dependency", "passed"))),
    ),
    Claim(
        "async DB connections, which can't asynchoneously close with the Python interpreter because by then the "
        "asyncio event loop is most likely gone",
        "sm-Fifteen",
        (("async_dependency", "shutdown", "failed"), ("async_scoped_session", "shutdown", "failed")),
    ),
    Claim(
        "in the contextmanager approach, a session isn't automatically created for every request -- it is only "
        "created for endpoint calls that actually make use of the session dependency",
        "dmontagu",
        (("yield_dependency", "sessions_nobody_needed", "passed"), ("middleware", "sessions_nobody_needed", "failed")),
    ),
)

OPPOSITE = {"passed": "failed", "failed": "passed"}


def judge(claim: Claim, rows: list[dict]) -> tuple[str, list[str]]:
    """("supported" | "refuted" | "mixed" | "not measured", one evidence line per spec).

    Skipped rows (a check that does not apply here, e.g. a server-side check on
    SQLite) are left out of the verdict; a missing or errored row makes it
    "not measured", as does a claim whose rows were all skipped.
    """
    found = by_pair(rows)
    outcomes, lines = [], []
    for strategy, check, expected in claim.specs:
        row = found.get((strategy, check), {})
        outcome = row.get("outcome")
        if outcome != "skipped":
            outcomes.append((outcome, expected))
        detail = row.get("evidence") or row.get("reason")
        lines.append(f"{strategy} × {check}: {outcome or 'not run'} (claim needs {expected})" + (f" — {detail}" if detail else ""))
    if not outcomes or any(o not in OPPOSITE for o, _ in outcomes):
        verdict = "not measured"
    elif all(o == e for o, e in outcomes):
        verdict = "supported"
    elif all(o == OPPOSITE[e] for o, e in outcomes):
        verdict = "refuted"
    else:
        verdict = "mixed"
    return verdict, lines
