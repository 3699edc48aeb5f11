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
from experiments.harness import discovery, instruments, serving
from experiments.harness.serving import serve
from experiments.harness.watch import answered
from experiments.rules import any_positive, zero

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
    rule=zero("transactions_left_open", "checked_out_after", "rows_half_written", "later_requests_failed"),
    severity="data",
    permanent=any_positive("transactions_left_open", "checked_out_after", "later_requests_failed"),
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
VISIBLE = 5  # sequential writes per write route whose row is looked for as the response ends

CLEANUP_TIMING = Check(
    id="cleanup_timing",
    title='The client is not told "done" before the work is committed',
    column="commit before 200",
    measures=(
        f"{VISIBLE} sequential writes per write route (`def` and `async def`, whichever the strategy serves; a "
        "strategy that commits in teardown or middleware leaves the commit to it): whether the row is visible to "
        "the harness's own connection at the moment the last byte of the 2xx response goes out, as a client that "
        f"reads again at once would look for it. {CONFLICTS} requests per conflict route add a row and a second one "
        "that breaks the unique key, and the strategy commits where it commits: the status the client got and "
        f"whether the row is there. Also, for {TIMED} sequential querying requests per tag route, in-process: "
        "responses whose last body message went out while a connection was still checked out (the session not "
        "yet closed)"
    ),
    why=(
        "\"the contextmanager approach doesn't clean up the session until after sending the response (so you need "
        "to handle commits and any associated errors inside your endpoint ...)\" (#726); with FastAPI's default "
        "dependency scope that is true again since 0.118, so a commit placed in teardown runs after the client "
        "got 200: a read the client sends at once misses its own write, and a commit that fails is never "
        'reported to it; `Depends(..., scope="function")` (0.121) runs teardown before the response'
    ),
    rule=zero(
        "acknowledged_before_visible",
        "acknowledged_but_not_committed",
        note="acknowledged_before_visible counts 2xx responses complete before their row could be read, "
        "acknowledged_but_not_committed 2xx responses whose row never arrived. responses_sent_before_cleanup "
        "is shown, not judged: a session closed just after the response holds its connection a little longer "
        "(the pool exhaustion check and the connection hold time measure what that costs)",
    ),
    severity="data",
    key=("acknowledged_before_visible", "acknowledged_but_not_committed", "responses_sent_before_cleanup"),
    # The verdict's routes: the check is skipped when the strategy serves none. The tag routes are timed
    # as well wherever the strategy serves them.
    routes=("/sync/write", "/async/write", "/sync/conflict", "/async/conflict"),
)

TAG_ROUTES = ("/sync/tag", "/async/tag")
WRITE_ROUTES = ("/sync/write", "/async/write")


@measures(CLEANUP_TIMING)
async def test_cleanup_timing(app_module, routes, kind, database, record, watch):
    tag_routes = sorted(discovery.served_routes(app_module.app, kind) & set(TAG_ROUTES))
    write_routes = sorted(routes & set(WRITE_ROUTES))
    conflict_routes = sorted(routes - set(WRITE_ROUTES))
    exchanges: list[serving.Exchange] = []
    out_at_end: dict[int, int] = {}  # id(exchange) -> connections checked out as its response ended
    visible: dict[str, bool] = {}  # key of a 2xx write -> its row was there as the response ended

    async def as_the_response_ends(exchange: serving.Exchange) -> None:
        out_at_end[id(exchange)] = counts.checked_out
        if exchange.path in WRITE_ROUTES and 200 <= (exchange.status or 0) < 300:
            key = exchange.params["key"]
            visible[key] = key in await anyio.to_thread.run_sync(database.keys_present, [key])

    statuses: list[tuple[str, int]] = []
    with instruments.counting() as counts:
        async with serve(serving.recorded(app_module.app, exchanges, as_the_response_ends), routes, watch) as served:
            for path in tag_routes:
                for i in range(TIMED):
                    await served.client.get(path, params={"tag": f"timed-{i}", "delay": 0, "query": True})
            for path in write_routes:
                for i in range(VISIBLE):
                    r = await served.client.post(path, params={"key": f"{path}-visible-{i}", "fail": False, "delay": 0})
                    if answered(r):
                        statuses.append((f"{path}-visible-{i}", r.status_code))
            for path in conflict_routes:
                for i in range(CONFLICTS):
                    key = f"{path}-conflict-{i}"
                    r = await served.client.post(path, params={"key": key})
                    if answered(r):  # the harness counts the others (watch.py)
                        statuses.append((key, r.status_code))
    timed = [e for e in exchanges if e.path in TAG_ROUTES]
    late = {path: sum(out_at_end.get(id(e), 0) > 0 for e in timed if e.path == path) for path in tag_routes}
    present = await anyio.to_thread.run_sync(database.keys_present, [k for k, _ in statuses])
    acked = [k for k, status in statuses if 200 <= status < 300]
    conflicts = [(k, s) for k, s in statuses if "-conflict-" in k]
    metrics = {
        "writes": len(statuses) - len(conflicts),
        "writes_acknowledged": len(visible),
        "acknowledged_before_visible": sum(not seen for seen in visible.values()),
        "conflict_requests": len(conflicts),
        "conflict_acknowledged": sum(200 <= s < 300 for _, s in conflicts),
        "conflict_server_errors": sum(s >= 500 for _, s in conflicts),
        "acknowledged_but_not_committed": sum(k not in present for k in acked),
        "timed_requests": len(timed),
        "responses_sent_before_cleanup": sum(late.values()),
    }
    codes = ", ".join(sorted({str(s) for _, s in conflicts})) or "none"
    timing = "; ".join(f"{late[p]} of {TIMED} on {p}" for p in tag_routes) or "no tag route served"
    writes = (
        f"{metrics['acknowledged_before_visible']} of {len(visible)} acknowledged writes on "
        f"{', '.join(write_routes)} were not yet visible to another connection as their response ended; "
        if write_routes
        else ""
    )
    record(
        metrics,
        f"{writes}{metrics['acknowledged_but_not_committed']} of {len(acked)} acknowledged requests never got "
        f"their row ({len(conflicts)} commits that break the unique key on {', '.join(conflict_routes) or 'no route'}, "
        f"statuses: {codes}); responses sent while a connection was still checked out: {timing}.",
    )
