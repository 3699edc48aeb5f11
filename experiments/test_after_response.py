"""Does the session still serve what runs after the endpoint returns: a streamed body, a background task?

A `StreamingResponse` is iterated, and `BackgroundTasks` run, after the
endpoint has returned, and FastAPI has moved the exit of `yield` dependencies
around them: from 0.106 to 0.117 it ran before the response ("the
StreamingResponse would not be able to use that session while streaming data
because the session would have already been closed", 0.118.0 release notes),
from 0.118 after it, so that every open stream holds its connection, and
`Depends(scope="function")` (0.121) brings the early exit back. SQLAlchemy 2
reopens a closed session on use, so reading through it does not fail: the
connection it takes is one that nobody returns. The cyclic garbage collector is
paused while these checks run, so that such a connection stays counted instead
of being returned whenever the collector happens to run.
"""

from __future__ import annotations

import json
import statistics
import time

import anyio

from experiments.checks import Check, measures
from experiments.harness import discovery, instruments, serving
from experiments.harness.serving import serve
from experiments.harness.watch import answered
from experiments.rules import any_positive, zero

POOL = {"pool_size": 5, "max_overflow": 0, "pool_timeout": 0.5}
# As many streams as the pool holds: each pins a connection while it runs (measured: connection-seconds per stream,
# and what other requests get meanwhile), which every pattern that keeps its session for its stream does. A stream
# beyond the pool would fail on every such pattern alike; what is judged is what a pattern gets wrong.
STREAMS = POOL["pool_size"]
CHUNKS = 8
CHUNK_DELAY_S = 0.15  # a stream lasts CHUNKS x this: more than twice the pool's timeout
OTHERS = 3  # requests to a querying route sent while the streams are open
# How long in-flight cleanup gets before connections still checked out are counted. The collector is paused, so
# a connection nobody returns stays counted however long this is; it only has to cover a close in flight.
SETTLE_S = 0.5
POLL_S = 0.05
TAG_ROUTES = {"def": "/sync/tag", "async": "/async/tag"}


async def _settle(counts: instruments.Counts) -> float:
    """Wait until nothing is checked out, or SETTLE_S passes; the seconds waited."""
    started = time.monotonic()
    while counts.checked_out > 0 and time.monotonic() - started < SETTLE_S:
        await anyio.sleep(POLL_S)
    return time.monotonic() - started


def _errors(exchanges: list[serving.Exchange]) -> list[str]:
    """The distinct errors the app raised, most frequent first (at most 3)."""
    found = [e.error for e in exchanges if e.error]
    return sorted(set(found), key=lambda e: (-found.count(e), e))[:3]


STREAMING = Check(
    id="streaming",
    title="A streamed response reads through the session without erroring, leaking a connection or reusing a closed session",
    column="streaming",
    measures=(
        f"{STREAMS} streamed responses at once on the stream route of each kind (as many as the pool of "
        f"{POOL['pool_size']} holds, no overflow, {POOL['pool_timeout']:g} s timeout), each {CHUNKS} chunks read "
        f"through the request's session {CHUNK_DELAY_S * 1000:.0f} ms apart; once every stream has sent a chunk, "
        f"{OTHERS} querying requests to the tag route. Counted: streams that failed or ended early (with the errors "
        "raised in them), connections still checked out "
        f"{SETTLE_S:g} s after the last stream ended, sessions that took a connection again after their owner "
        "closed them; measured beside the verdict: the connection-seconds each stream held, the peak checked out, "
        "and how the other requests fared (failed, longest wait) while the streams held the pool"
    ),
    why=(
        "FastAPI #11143, #10857, discussion #11444: from 0.106 to 0.117 the `yield` session was closed before the "
        "stream ran; from 0.118 it stays open while the stream runs, so every open stream pins a connection and a "
        "server-sent-events endpoint can exhaust the pool"
    ),
    rule=zero(
        "streams_failed",
        "checked_out_after",
        "sessions_reopened_after_close",
        note="connection_s_per_stream, other_requests_failed and other_request_wait_ms are shown, not judged: a pattern "
        "that keeps its session for its stream holds a connection for the stream's whole life, whichever pattern it "
        "is; the ways out (a session per chunk, a gate that makes others wait) are in the rows",
    ),
    severity="leak",
    permanent=any_positive("checked_out_after"),
    key=("streams_failed", "checked_out_after", "sessions_reopened_after_close", "connection_s_per_stream"),
    routes=("/sync/stream", "/async/stream"),
    pool=POOL,
)


def _lines(text: str) -> int:
    """Complete chunks in a streamed body."""
    count = 0
    for line in text.splitlines():
        try:
            count += "chunk" in json.loads(line)
        except ValueError:
            break
    return count


@measures(STREAMING)
async def test_streaming(app_module, routes, kind, record, watch):
    (path,) = routes
    served = discovery.served_routes(app_module.app)
    other = next((p for p in (TAG_ROUTES[kind], *TAG_ROUTES.values()) if p in served), None)  # its own kind first
    exchanges: list[serving.Exchange] = []
    streams: list = [None] * STREAMS
    others: list = []
    waits: list[float] = []
    held_s = 0.0
    with instruments.collector_paused(), instruments.counting() as counts:
        async with serve(serving.recorded(app_module.app, exchanges), routes, watch) as app:

            async def one(i: int) -> None:
                streams[i] = await app.client.get(path, params={"chunks": CHUNKS, "delay": CHUNK_DELAY_S})

            async def hold() -> None:  # connection-seconds, sampled while the streams run
                nonlocal held_s
                while any(s is None for s in streams):
                    held_s += max(counts.checked_out, 0) * POLL_S / 5
                    await anyio.sleep(POLL_S / 5)

            async def other_request(i: int):
                started = time.monotonic()
                response = await app.client.get(other, params={"tag": f"other-{i}", "delay": 0, "query": True})
                waits.append(time.monotonic() - started)
                return response

            async with anyio.create_task_group() as tasks:
                for i in range(STREAMS):
                    tasks.start_soon(one, i)
                tasks.start_soon(hold)
                # A state we can observe, not a sleep: the pool is full of streams, or every stream is over.
                running = [e for e in exchanges if e.path == path]
                with anyio.move_on_after(POOL["pool_timeout"] + SETTLE_S):
                    while not (
                        sum(e.chunks > 0 for e in running) >= POOL["pool_size"]
                        or (len(running) == STREAMS and all(e.sent_at or e.error for e in running))
                    ):
                        await anyio.sleep(POLL_S / 5)
                        running = [e for e in exchanges if e.path == path]
                if other:
                    others = await app.concurrently(OTHERS, other_request)
            peak = counts.peak_checked_out
            waited = await _settle(counts)
            left = max(counts.checked_out, 0)
    ended = [e for e in exchanges if e.path == path]
    complete = sum(answered(r) and r.status_code == 200 and _lines(r.text) == CHUNKS for r in streams)
    errors = _errors(ended)
    metrics = {
        "streams": STREAMS,
        "streams_failed": STREAMS - complete,
        "stream_errors": sum(e.error is not None for e in ended),
        "peak_checked_out": peak,
        "other_requests": len(others),
        "other_requests_failed": sum(answered(r) and not r.is_success for r in others),
        "other_request_wait_ms": round(max(waits, default=0.0) * 1000),
        "connection_s_per_stream": round(held_s / STREAMS, 2),
        "checked_out_after": left,
        "sessions_reopened_after_close": counts.reopened_after_close,
    }
    record(
        metrics,
        f"{metrics['streams_failed']} of {STREAMS} streams on {path} failed or ended early"
        + (f" ({'; '.join(errors)})" if errors else "")
        + f"; each held a connection {metrics['connection_s_per_stream']:g} s, up to {peak} checked out at once; "
        f"{metrics['other_requests_failed']} of {len(others)} requests to {other or 'no tag route'} failed while "
        f"they ran (the longest took {metrics['other_request_wait_ms']} ms); {left} connections still checked out {waited:.1f} s after "
        f"the last stream; {counts.reopened_after_close} sessions took a connection again after being closed.",
    )


TASKS = 5  # sequential requests per background route, each adding a task that writes one row

BACKGROUND_TASKS = Check(
    id="background_tasks",
    title="A background task writes through the request's session, and the connection comes back",
    column="background tasks",
    measures=(
        f"{TASKS} sequential requests on the background route of each kind, each adding a `BackgroundTasks` task "
        "that writes a row through the request's session and commits it after the response: rows missing once the "
        "tasks have run, errors raised in the tasks, milliseconds a connection was still (or again) checked out "
        f"after each response went out, connections still checked out {SETTLE_S:g} s after the last task, and "
        "sessions that took a connection again after their owner closed them"
    ),
    why=(
        'FastAPI 0.106 release notes: "using resources from dependencies with yield in background tasks is no '
        'longer supported"; FastAPI #581, discussion #6871 and downstream "session is closed" reports; from '
        "0.118 the session is held while the task runs"
    ),
    rule=zero("requests_failed", "task_errors", "rows_missing", "checked_out_after"),
    severity="data",
    permanent=any_positive("checked_out_after"),
    key=("rows_missing", "task_errors", "sessions_reopened_after_close"),  # counts: a timing would differ every run
    routes=("/sync/background", "/async/background"),
)


@measures(BACKGROUND_TASKS)
async def test_background_tasks(app_module, routes, kind, database, record, watch):
    (path,) = routes
    keys = [f"{path}-task-{i}" for i in range(TASKS)]
    exchanges: list[serving.Exchange] = []
    held_after: list[float] = []  # per request, ms from its response to the last connection returned before it ended
    failed = 0
    with instruments.collector_paused(), instruments.counting() as counts:
        async with serve(serving.recorded(app_module.app, exchanges), routes, watch) as served:
            for key in keys:
                response = await served.client.post(path, params={"key": key})  # in-process: returns after the task
                failed += answered(response) and not response.is_success
                exchange = exchanges[-1]
                if exchange.sent_at is not None:  # one request at a time: a later checkin is this request's
                    held_after.append(max(counts.last_checkin - exchange.sent_at, 0.0))
            waited = await _settle(counts)
            left = max(counts.checked_out, 0)
    present = await anyio.to_thread.run_sync(database.keys_present, keys)
    errors = _errors(exchanges)
    metrics = {
        "tasks": TASKS,
        "requests_failed": failed,
        "task_errors": sum(e.error is not None for e in exchanges),
        "rows_missing": TASKS - len(present),
        "held_after_response_ms": round(statistics.median(held_after) * 1000, 2) if held_after else None,
        "checked_out_after": left,
        "sessions_reopened_after_close": counts.reopened_after_close,
    }
    record(
        metrics,
        f"{metrics['rows_missing']} of {TASKS} rows written by background tasks on {path} missing; "
        f"{metrics['task_errors']} tasks raised"
        + (f" ({'; '.join(errors)})" if errors else "")
        + f"; a connection stayed checked out {metrics['held_after_response_ms']} ms (median) after each response; "
        f"{left} still checked out {waited:.1f} s after the last task; {counts.reopened_after_close} sessions took a "
        "connection again after being closed.",
    )
