"""Does each request get a session of its own, and nothing left over from the request before?

The thread's first worry (#726): `scoped_session` is thread-local, and "Python's
coroutines don't have a 1:1 mapping with threads", so requests may share or
inherit sessions. These checks tag a session per request and look for tags,
transactions and objects that belong to another request.
"""

from __future__ import annotations

import math

import anyio

from experiments.checks import Check, measures
from experiments.rules import zero

CONCURRENT = 50
SEQUENTIAL = 20
DELAY_S = 0.05
# `def` endpoints: a thread-local session leaks from one request to another only when a thread serves a second
# request's dependency before the first request is done, so a burst has to outnumber the threads by far, and the
# race it exposes is caught in every round only at about 2.5 threads' worth of requests (seen: 15-24 requests
# caught per round of 100 over 40 threads, 0-5 per round of 50). Three rounds, each judged.
THREADPOOL_BURST_PER_TOKEN = 2.5
THREADPOOL_ROUNDS = 3


def _shared_concurrently(bodies: list[dict]) -> int:
    """Requests whose session was also in use by another request at the same time."""
    return sum(
        any(
            other is not body
            and other["session"] == body["session"]
            and other["started"] < body["ended"]
            and body["started"] < other["ended"]
            for other in bodies
        )
        for body in bodies
    )


async def _isolation(app, path: str, size: int = CONCURRENT, rounds: int = 1) -> tuple[dict, str]:
    """`rounds` bursts of `size` concurrent tag-sleep-read requests to `path`, every number summed over them."""
    bodies, failed, foreign, shared = [], 0, [], []  # foreign tags and shared sessions per round
    for n in range(rounds):
        responses = await app.concurrently(
            size,
            lambda i: app.client.get(path, params={"tag": f"round-{n}-request-{i}", "delay": DELAY_S, "query": False}),
        )
        burst = [r.json() for r in responses if r.status_code == 200]
        failed += size - len(burst)
        bodies += burst
        foreign.append(sum(b["tag_after"] != b["tag"] for b in burst))
        shared.append(_shared_concurrently(burst))
    metrics = {
        "rounds": rounds,
        "requests": size * rounds,
        "failed_requests": failed,
        "foreign_tag_seen": sum(foreign),
        "shared_concurrently": sum(shared),
        "distinct_sessions": len({b["session"] for b in bodies}),
        "threads": len({b["thread"] for b in bodies}),
    }
    caught = [f + s for f, s in zip(foreign, shared)]
    per_round = f" (per round of {size}: {', '.join(map(str, caught))} requests caught)" if rounds > 1 else ""
    evidence = (
        f"{metrics['foreign_tag_seen']} of {metrics['requests']} concurrent requests to {path} read back another "
        f"request's tag; {metrics['shared_concurrently']} used a session another request was using at the "
        f"same time{per_round}; {metrics['distinct_sessions']} distinct sessions on {metrics['threads']} threads; "
        f"{metrics['failed_requests']} requests failed."
    )
    return metrics, evidence


ISOLATION_RULE = zero("foreign_tag_seen", "shared_concurrently", "failed_requests")

ISOLATION_ASYNC = Check(
    id="isolation_async",
    title="Concurrent `async def` requests each get their own session",
    column="concurrent isolation",
    measures=(
        f"{CONCURRENT} concurrent requests to an `async def` endpoint each tag their session, sleep "
        f"{DELAY_S * 1000:.0f} ms and read the tag back: tags that changed under them, requests that shared "
        "a session with a request in flight, distinct sessions (`Session.hash_key`), threads"
    ),
    why=(
        "\"thread-local sessions might not work that well with FastAPI since Python's coroutines don't have "
        'a 1:1 mapping with threads" (sm-Fifteen, #726); every `async def` endpoint runs on the event-loop thread'
    ),
    rule=ISOLATION_RULE,
    severity="data",
    key=("foreign_tag_seen",),
    routes=("/async/tag",),
)

ISOLATION_THREADPOOL = Check(
    id="isolation_threadpool",
    title="Concurrent `def` requests each get their own session",
    column="concurrent isolation",
    measures=(
        f"the same tag-sleep-read requests against a `def` endpoint, which FastAPI runs in its threadpool: "
        f"{THREADPOOL_ROUNDS} bursts of {THREADPOOL_BURST_PER_TOKEN:g} times the threadpool's tokens (read after "
        f"startup; 100 for FastAPI's 40), so that threads serve several requests at once"
    ),
    why=(
        '"a single thread can handle more than one request, and at the same time, a single request could be '
        'handled by more than one thread" (tiangolo, #726)'
    ),
    rule=ISOLATION_RULE,
    severity="data",
    key=("foreign_tag_seen",),
    routes=("/sync/tag",),
)


@measures(ISOLATION_ASYNC)
async def test_isolation_async(served, record):
    record(*await _isolation(served, "/async/tag"))


@measures(ISOLATION_THREADPOOL)
async def test_isolation_threadpool(served, record):
    tokens = anyio.to_thread.current_default_thread_limiter().total_tokens  # as the app's lifespan left them
    size = max(CONCURRENT, math.ceil(THREADPOOL_BURST_PER_TOKEN * tokens))
    metrics, evidence = await _isolation(served, "/sync/tag", size, THREADPOOL_ROUNDS)
    record({**metrics, "threadpool_tokens": tokens}, evidence)


CARRYOVER_SEQUENTIAL = Check(
    id="carryover_sequential",
    title="A request does not inherit the previous request's session",
    column="no carry-over",
    measures=(
        f"{SEQUENTIAL} sequential requests per tag route (`def` and `async def`, whichever the strategy serves): "
        "each tags its session and loads a row, and marks the transaction and the objects it leaves; requests "
        "that found, when they got their session, state an earlier request left: its tag (`Session.info`), its "
        "open transaction, or its loaded or pending objects. A transaction begun for the request itself (a "
        "dependency's `with SessionLocal.begin()`) is its own, not inherited"
    ),
    why=(
        "a thread-local `scoped_session` that is never `remove()`d hands the next request on that thread the "
        'same session; "remove() at the end of the request" is the contract SQLAlchemy\'s docs set for it'
    ),
    rule=zero("inherited_state", "failed_requests"),
    severity="data",
    key=("inherited_state",),
    routes=("/sync/tag", "/async/tag"),
)

INHERITED = {
    "tag": "tag_before",
    "transaction": "transaction_of_earlier_request",
    "objects": "objects_of_earlier_requests",
}


def _inherited(body: dict) -> bool:
    return any(body[field] for field in INHERITED.values())


@measures(CARRYOVER_SEQUENTIAL)
async def test_carryover_sequential(served, record):
    bodies, failed, per_route = [], 0, []
    for path in sorted(served.routes):
        inherited = 0
        for i in range(SEQUENTIAL):
            r = await served.client.get(path, params={"tag": f"request-{i}", "delay": 0, "query": True})
            if r.status_code != 200:
                failed += 1
                continue
            body = r.json()
            bodies.append(body)
            inherited += _inherited(body)
        per_route.append(f"{inherited} of {SEQUENTIAL} on {path}")
    metrics = {
        "requests": SEQUENTIAL * len(served.routes),
        "failed_requests": failed,
        "inherited_state": sum(map(_inherited, bodies)),
        **{f"inherited_{what}": sum(bool(b[field]) for b in bodies) for what, field in INHERITED.items()},
        "own_transaction_at_start": sum(b["in_transaction_before"] and not b[INHERITED["transaction"]] for b in bodies),
        "distinct_sessions": len({b["session"] for b in bodies}),
    }
    record(
        metrics,
        f"Requests that found state an earlier request left in their session: {', '.join(per_route)} (its tag "
        f"{metrics['inherited_tag']}, its open transaction {metrics['inherited_transaction']}, its objects "
        f"{metrics['inherited_objects']}); {metrics['own_transaction_at_start']} started inside a transaction begun "
        f"for them; {metrics['distinct_sessions']} distinct sessions; {failed} requests failed.",
    )


SAME_SESSION_IN_REQUEST = Check(
    id="same_session_in_request",
    title="A dependency and its endpoint share one session",
    column="one session per request",
    measures=(
        f'{SEQUENTIAL} concurrent requests to a route whose dependency (a "load the current user" step) and '
        "endpoint both take the session: requests where they got different sessions"
    ),
    why=(
        "objects loaded in one session and changed in another are silently not saved; sync dependencies and "
        "sync endpoints run in different threadpool threads, and a `ContextVar` set in a sync dependency is "
        "invisible downstream"
    ),
    rule=zero("mismatched", "failed_requests"),
    severity="data",
    key=("mismatched",),
    routes=("/same",),
)


@measures(SAME_SESSION_IN_REQUEST)
async def test_same_session_in_request(served, record):
    responses = await served.concurrently(SEQUENTIAL, lambda i: served.client.get("/same"))
    bodies = [r.json() for r in responses if r.status_code == 200]
    metrics = {
        "requests": SEQUENTIAL,
        "failed_requests": SEQUENTIAL - len(bodies),
        "mismatched": sum(b["dependency_session"] != b["endpoint_session"] for b in bodies),
    }
    record(
        metrics,
        f"In {metrics['mismatched']} of {SEQUENTIAL} requests the dependency and the endpoint got different "
        f"sessions; {metrics['failed_requests']} requests failed.",
    )
