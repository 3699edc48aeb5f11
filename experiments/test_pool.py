"""Does a pool of 5 survive 100 concurrent `def` requests, and serve again right after?

FastAPI #3205: sync endpoints whose session comes from a `yield` dependency ran
the pool dry and deadlocked, because the dependency's exit needs a threadpool
thread that the requests waiting for a connection hold. PR #5122's separate
limiter fixed the original form; a response model, or a dependency that
queries before the endpoint, are the variants still reported to fail. The
check sends a burst to each variant with a pool smaller than the threadpool
(40 threads) and counts what the clients got. A burst is at least twice the
threadpool's tokens, read after the app started, so an app that raises them
(Kludex's fastapi-tips advise it) meets requests it cannot all give a thread.
"""

from __future__ import annotations

import time

import anyio

from experiments.checks import Check, measures
from experiments.harness.instruments import counting
from experiments.harness.watch import REQUEST_BOUND_S, answered
from experiments.rules import any_positive, zero

POOL_SIZE = 5
POOL_TIMEOUT_S = 1.0  # small, so that an exhausted pool turns into errors within seconds, not a 30 s hang
CONCURRENT = 100  # the burst, or twice the app's threadpool tokens where that is more
DELAY_S = 0.02  # each request holds its connection this long: 100 requests over 5 connections take ~0.4 s if queued
RECOVERY = 3  # sequential requests per route right after the burst (each may wait a pool timeout)
VARIANTS = {"/sync/model": "model", "/sync/user": "user"}

POOL_EXHAUSTION = Check(
    id="pool_exhaustion",
    title="A pool of 5 survives 100 concurrent `def` requests",
    column="pool burst",
    measures=(
        f"pool_size={POOL_SIZE}, max_overflow=0, pool_timeout={POOL_TIMEOUT_S:g} s; {CONCURRENT} concurrent "
        f"requests (or twice the threadpool's tokens after startup, where the app raised them past {CONCURRENT // 2}) to a `def` endpoint with a response model (/sync/model) and, separately, to one whose `def` "
        f"dependency queries before the endpoint (/sync/user), each holding the session {DELAY_S * 1000:.0f} ms: "
        f"responses with 5xx, requests unanswered after {REQUEST_BOUND_S:g} s, wall time of the burst, peak "
        f"connections checked out, then {RECOVERY} sequential requests per route that must succeed"
    ),
    why=(
        '"the connection pool, which should be instanciated once for the application and then reused" '
        "(sm-Fifteen, #726): one pool for every request holds only if requests queue for it instead of failing; "
        "sync `yield` dependencies ran it dry and hung in FastAPI #3205, and PR #5122 fixed only the original form"
    ),
    rule=zero("server_errors", "failed_requests", "recovery_failed"),
    severity="errors",
    permanent=any_positive("recovery_failed", "checked_out_after"),
    key=("server_errors", "unanswered_requests"),
    routes=tuple(VARIANTS),
    timeout_s=90.0,  # a failing strategy takes ~2 pool timeouts per route; only a hang comes near this
    pool=dict(pool_size=POOL_SIZE, max_overflow=0, pool_timeout=POOL_TIMEOUT_S),
    exclusive=True,
)


async def _get(served, path: str) -> int | None:
    """The status code, or None when no answer came within the harness's bound (counted by it, watch.py)."""
    response = await served.client.get(path, params={"delay": DELAY_S})
    return response.status_code if answered(response) else None


async def _burst(served, path: str, counts, size: int) -> dict:
    statuses: list[int | None] = [None] * size

    async def one(i: int) -> None:
        statuses[i] = await _get(served, path)

    started = time.monotonic()
    counts.peak_checked_out = counts.checked_out
    async with anyio.create_task_group() as tg:
        for i in range(size):
            tg.start_soon(one, i)
    wall = time.monotonic() - started
    peak = counts.peak_checked_out
    recovery = [await _get(served, path) for _ in range(RECOVERY)]
    return {
        "ok": sum(s == 200 for s in statuses),
        "server_errors": sum(s is not None and s >= 500 for s in statuses),
        "timeouts": sum(s is None for s in statuses),
        "wall_s": round(wall, 2),
        "peak_checked_out": peak,
        "recovery_failed": sum(s != 200 for s in recovery),
        "checked_out_after": counts.checked_out,
    }


@measures(POOL_EXHAUSTION)
async def test_pool_exhaustion(served, record, engines):
    tokens = int(anyio.to_thread.current_default_thread_limiter().total_tokens)  # as the app's lifespan left them
    size = max(CONCURRENT, 2 * tokens)
    with counting() as counts:  # from before the first request: connections a burst leaves out count in the next
        per_route = {path: await _burst(served, path, counts, size) for path in sorted(served.routes)}
    total = lambda name: sum(r[name] for r in per_route.values())  # noqa: E731
    requests = size * len(per_route)
    metrics = {
        "threadpool_tokens": tokens,
        "burst": size,
        "requests": requests,
        "server_errors": total("server_errors"),
        "failed_requests": requests - total("ok"),
        "recovery_failed": total("recovery_failed"),
        "peak_checked_out": max(r["peak_checked_out"] for r in per_route.values()),
        "checked_out_after": counts.checked_out,  # connections still out after the last recovery request
    }
    for path, r in per_route.items():
        name = VARIANTS[path]
        metrics |= {f"{name}_server_errors": r["server_errors"], f"{name}_wall_s": r["wall_s"]}
    record(
        metrics,
        "; ".join(
            f"{path}: {r['server_errors']} of {size} concurrent requests got 5xx and {r['timeouts']} no answer "
            f"within {REQUEST_BOUND_S:g} s, burst took {r['wall_s']:.1f} s with up to {r['peak_checked_out']} "
            f"connections checked out, then {RECOVERY - r['recovery_failed']} of {RECOVERY} sequential requests "
            f"succeeded and {r['checked_out_after']} connections stayed checked out"
            for path, r in per_route.items()
        )
        + f" (pool_size={POOL_SIZE}, max_overflow=0, pool_timeout={POOL_TIMEOUT_S:g} s, {tokens} threadpool tokens).",
        conditions={**engines.conditions(), "threadpool_tokens": tokens},
    )
