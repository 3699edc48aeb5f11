"""Is the session cleaned up when the endpoint raises, and before the client is told the request is done?

The thread's lifetime worries (#726): a session that is not closed on the error
path leaves its connection checked out and its transaction open; `yield`
cleanup that runs after the response has been sent means the client can be
told "done" before the work is committed (FastAPI 0.106 moved dependency exit
before the response, 0.118 moved it back after, 0.121 added
`Depends(scope="function")`). Both checks run in-process, where the moment a
response is sent is exact.
"""

from __future__ import annotations

import time

import anyio

from experiments.checks import Check, measures
from experiments.harness import discovery, instruments
from experiments.harness.serving import serve
from experiments.harness.watch import answered

FAILING = 5  # write-then-raise requests per write route, sent together
SETTLE_S = 1.5  # how long in-flight cleanup (threads, tasks, the garbage collector) gets before we count
POLL_S = 0.1

CLEANUP_ON_ERROR = Check(
    id="cleanup_on_error",
    title="A request that raises after writing leaves nothing behind",
    column="cleanup on error",
    measures=(
        f"{FAILING} concurrent requests per write route (`def` and `async def`, whichever the strategy serves) "
        "add a row, flush it and raise; after letting in-flight cleanup settle (up to "
        f"{SETTLE_S:g} s): connections still in an open transaction (PostgreSQL: idle in transaction; SQLite: the "
        "harness cannot take the write lock), connections still checked out of the app's pools, failed "
        "requests' rows present at the end, and whether a normal write on each route still succeeds afterwards"
    ),
    why=(
        "a session that is closed only on the happy path (`db = SessionLocal(); yield db; db.close()`, or "
        "`remove()` where it does not reach the request's thread) keeps its connection and its open "
        "transaction after an exception: locks held, pools drained, and a later request on the same session "
        "may commit the failed request's half-written rows"
    ),
    rule="passed when transactions_left_open = 0, checked_out_after = 0, rows_half_written = 0 and later_requests_failed = 0",
    passes=lambda m: (
        m["transactions_left_open"] == 0
        and m["checked_out_after"] == 0
        and m["rows_half_written"] == 0
        and m["later_requests_failed"] == 0
    ),
    key=("transactions_left_open", "checked_out_after", "rows_half_written"),
    routes=("/sync/write", "/async/write"),
)


async def _settle(database, counts: instruments.Counts) -> tuple[int, float]:
    """Poll until no transaction is left open and nothing is checked out, or SETTLE_S passes.

    Returns the transactions left open at the end and the seconds it took.
    The counts are read in a worker thread: on SQLite the probe waits for the
    write lock, and the event loop must keep running the app's cleanup meanwhile.
    """
    started = time.monotonic()
    while True:
        left_open = await anyio.to_thread.run_sync(database.transactions_left_open)
        waited = time.monotonic() - started
        if (left_open == 0 and counts.checked_out <= 0) or waited >= SETTLE_S:
            return left_open, waited
        await anyio.sleep(POLL_S)


@measures(CLEANUP_ON_ERROR)
async def test_cleanup_on_error(served, record, database):
    paths = sorted(served.routes)
    failed_keys = [f"{path}-fails-{i}" for path in paths for i in range(FAILING)]
    with instruments.counting() as counts:
        statuses = []
        for path in paths:
            keys = [f"{path}-fails-{i}" for i in range(FAILING)]
            responses = await served.concurrently(
                FAILING, lambda i: served.client.post(path, params={"key": keys[i], "fail": True, "delay": 0})
            )
            statuses += [r.status_code for r in responses]
        left_open, waited = await _settle(database, counts)
        checked_out = max(counts.checked_out, 0)
        present_before = len(await anyio.to_thread.run_sync(database.keys_present, failed_keys))

        later_keys = [f"{path}-after" for path in paths]
        later = await served.concurrently(
            len(paths), lambda i: served.client.post(paths[i], params={"key": later_keys[i], "fail": False, "delay": 0})
        )
    committed = await anyio.to_thread.run_sync(database.keys_present, later_keys + failed_keys)
    later_failed = sum(not (r.is_success and k in committed) for r, k in zip(later, later_keys))
    half_written = len(committed & set(failed_keys))
    metrics = {
        "failing_requests": len(failed_keys),
        "failing_requests_acknowledged": sum(200 <= s < 300 for s in statuses),
        "transactions_left_open": left_open,
        "checked_out_after": checked_out,
        "settle_s": round(waited, 2),
        "rows_half_written": half_written,
        "rows_half_written_before_later_requests": present_before,
        "later_requests": len(paths),
        "later_requests_failed": later_failed,
    }
    record(
        metrics,
        f"After {len(failed_keys)} requests that wrote and raised on {', '.join(paths)} and {waited:.1f} s of "
        f"settling: {left_open} transactions left open, {checked_out} connections still checked out; "
        f"{half_written} of the failed requests' rows present at the end ({present_before} before the later "
        f"writes); {later_failed} of {len(paths)} later normal writes failed.",
    )


TIMED = 10  # sequential requests per tag route whose response is timed against cleanup
CONFLICTS = 3  # conflicting commits per conflict route

CLEANUP_TIMING = Check(
    id="cleanup_timing",
    title='The client is not told "done" before the work is committed',
    column="commit before 200",
    measures=(
        f"{CONFLICTS} requests per conflict route (`def` and `async def`) add a row and a second one that breaks "
        "the unique key, and the strategy commits where it commits (endpoint or dependency teardown): the status "
        "the client got and whether the row is there. Also, for "
        f"{TIMED} sequential querying requests per tag route the strategy serves, in-process: responses whose last "
        "body message went out while a connection was still checked out (the session not yet closed)"
    ),
    why=(
        "\"the contextmanager approach doesn't clean up the session until after sending the response (so you need "
        "to handle commits and any associated errors inside your endpoint ...)\" (#726); with FastAPI's default "
        "dependency scope that is true again since 0.118, so a commit placed in teardown can fail after the client "
        'got 200; `Depends(..., scope="function")` (0.121) runs teardown before the response'
    ),
    rule=(
        "passed when acknowledged_but_not_committed = 0 (2xx responses whose row is absent). "
        "responses_sent_before_cleanup is shown, not judged: a session closed just after the response holds "
        "its connection a little longer (the pool exhaustion check measures what that costs) but loses nothing; "
        "the harm is a commit that runs, and fails, after the client was answered"
    ),
    passes=lambda m: m["acknowledged_but_not_committed"] == 0,
    key=("acknowledged_but_not_committed", "responses_sent_before_cleanup"),
    # The verdict's routes: the check is skipped when the strategy serves neither. The tag routes are timed
    # as well wherever the strategy serves them.
    routes=("/sync/conflict", "/async/conflict"),
)

TAG_ROUTES = ("/sync/tag", "/async/tag")


def _spy(app, counts: instruments.Counts, seen: list[tuple[str, int]]):
    """Wrap the ASGI app: note (path, connections checked out) when the last body message is sent."""

    async def spying(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def spying_send(message):
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                seen.append((scope["path"], counts.checked_out))
            await send(message)

        await app(scope, receive, spying_send)

    return spying


@measures(CLEANUP_TIMING)
async def test_cleanup_timing(app_module, routes, kind, database, record, watch):
    tag_routes = sorted(discovery.served_routes(app_module.app, kind) & set(TAG_ROUTES))
    conflict_routes = sorted(routes)
    seen: list[tuple[str, int]] = []
    statuses: list[tuple[str, int]] = []
    with instruments.counting() as counts:
        async with serve(_spy(app_module.app, counts, seen), routes, watch) as served:
            for path in tag_routes:
                for i in range(TIMED):
                    await served.client.get(path, params={"tag": f"timed-{i}", "delay": 0, "query": True})
            for path in conflict_routes:
                for i in range(CONFLICTS):
                    key = f"{path}-conflict-{i}"
                    r = await served.client.post(path, params={"key": key})
                    if answered(r):  # the harness counts the others (watch.py)
                        statuses.append((key, r.status_code))
    timed = [(path, out) for path, out in seen if path in TAG_ROUTES]
    late = {path: sum(out > 0 for p, out in timed if p == path) for path in tag_routes}
    present = await anyio.to_thread.run_sync(database.keys_present, [k for k, _ in statuses])
    acked = [k for k, status in statuses if 200 <= status < 300]
    metrics = {
        "conflict_requests": len(statuses),
        "conflict_acknowledged": len(acked),
        "conflict_server_errors": sum(status >= 500 for _, status in statuses),
        "acknowledged_but_not_committed": sum(k not in present for k in acked),
        "timed_requests": len(timed),
        "responses_sent_before_cleanup": sum(late.values()),
    }
    codes = ", ".join(sorted({str(s) for _, s in statuses})) or "none"
    timing = "; ".join(f"{late[p]} of {TIMED} on {p}" for p in tag_routes) or "no tag route served"
    record(
        metrics,
        f"{metrics['acknowledged_but_not_committed']} of {len(statuses)} commits that break the unique key on "
        f"{', '.join(conflict_routes)} were answered 2xx with the row absent (statuses: {codes}); responses sent "
        f"while a connection was still checked out: {timing}.",
    )
