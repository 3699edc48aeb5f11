"""Do requests that never touch the database still pay for a session?

The thread's objection to the middleware pattern (#726): a middleware opens a
session for every request, health checks and static files included, where a
dependency opens one only for the routes that ask for it.
"""

from __future__ import annotations

from experiments.checks import Check, measures
from experiments.harness import instruments
from experiments.rules import zero

REQUESTS = 20

SESSIONS_NOBODY_NEEDED = Check(
    id="sessions_nobody_needed",
    title="A route that needs no database takes no connection",
    column="no unasked connections",
    whole_app=True,
    measures=(
        f"{REQUESTS} sequential requests to a route that never touches the database: sessions created and "
        "connections checked out of the app's pools (SQLAlchemy events on every engine), per request"
    ),
    why=(
        "\"in the contextmanager approach, a session isn't automatically created for every request -- it is only "
        'created for endpoint calls that actually make use of the session dependency" (#726, on the middleware '
        "approach, which fastapi-sqlalchemy's `DBSessionMiddleware` shares); a session that connects eagerly also "
        "takes a pooled connection from requests that need one. The rule judges that connection: a session that never "
        "connects costs an object, not a pool slot, so sessions created are shown and not judged"
    ),
    rule=zero("checkouts", "failed_requests"),
    severity="errors",
    key=("checkouts_per_request", "sessions_per_request"),
    routes=("/nodb",),
)


@measures(SESSIONS_NOBODY_NEEDED)
async def test_sessions_nobody_needed(served, record):
    failed = 0
    with instruments.counting() as counts:
        for _ in range(REQUESTS):
            r = await served.client.get("/nodb")
            failed += not r.is_success
    metrics = {
        "requests": REQUESTS,
        "failed_requests": failed,
        "sessions_created": counts.sessions_created,
        "checkouts": counts.checkouts,
        "sessions_per_request": round(counts.sessions_created / REQUESTS, 2),
        "checkouts_per_request": round(counts.checkouts / REQUESTS, 2),
    }
    record(
        metrics,
        f"{REQUESTS} requests to /nodb, which never touches the database, created {counts.sessions_created} "
        f"sessions and checked out {counts.checkouts} connections; {failed} requests failed.",
    )
