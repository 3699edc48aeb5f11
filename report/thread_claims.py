"""The claims of FastAPI #726 (the seed thread), as data: each quoted with who said it, and the rows that test it.

report/claims.py says how an expectation is written and how the rows judge it; the report renders each claim
with its verdict and the numbers behind it.
"""

from __future__ import annotations

from report.claims import Claim, Compare, Expect

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


def _all(strategies, checks, want) -> tuple[Expect, ...]:
    """`want` of every strategy in every check."""
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
    contrast=(Expect("middleware", "sessions_nobody_needed", "sessions_per_request > 0"),),
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
            Compare(
                "cleanup_timing", ("yield_dependency", "middleware"), metric="responses_sent_before_cleanup", kind="def"
            ),
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
        says=(Expect("yield_dependency", "cleanup_timing", "responses_sent_before_cleanup > 0", kind="def"),),
        contrast=(Expect("middleware", "cleanup_timing", "responses_sent_before_cleanup = 0", kind="def"),),
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
            Expect("global_scoped_session", "same_session_in_request", "mismatched > 0", kind="def"),
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
