"""Does an `async def` endpoint using the strategy's session stall the event loop, and does any sync I/O run on it?

Everything on the loop waits while one request does blocking work on it. A
sync `Session` in an `async def` endpoint queries on the loop thread: each
query stalls every other request for its whole round trip, which the check
makes take real time inside the database (probes.PAUSE_S), as a server's
does; and held across an `await`, the session keeps its connection, so once
the pool is empty the next checkout blocks the loop until the pool times out.
An `AsyncSession` awaits both. A ticker task on the same loop records how late
it wakes: the lag every request on that loop suffers. The check process is
itself killable, so the traffic runs in it; a thread records the finding
(blocked) at a deadline if the loop never comes back.
"""

from __future__ import annotations

import math
import threading
import time

import anyio

from experiments import probes
from experiments.checks import Check, measures
from experiments.harness import instruments
from experiments.harness.serving import serve
from experiments.rules import Rule, Term, any_positive, zero

CONCURRENT = 10  # twice the pool
DELAY_S = 0.05  # each request awaits this long with its session (and connection) in hand
PAUSE_S = 0.3  # each request's query spends this long inside the database (above MAX_LAG_MS)
# Queued async requests wait at most 1 round of PAUSE_S + DELAY_S for a connection, well inside the timeout; a
# sync checkout from the empty pool stalls the loop for it, below the harness's blocked-loop limit (watch.py).
POOL = dict(pool_size=5, max_overflow=0, pool_timeout=2.0)
DEADLINE_S = 15.0  # a run still going after this has a loop that is not coming back: recorded as blocked
MAX_LAG_MS = 200.0
TICK_S = 0.005
IDLE_S = 0.3  # ticks before any traffic: the loop's own noise on this machine, for comparison
PATH = "/async/tag"
# Requests start this far apart, all still in flight together: started in one go, the in-process client's and
# the app's own work for all of them would run in one loop iteration and show up as lag of the harness's making.
STAGGER_S = 0.001

EVENT_LOOP_BLOCKING = Check(
    id="event_loop_blocking",
    title="An `async def` endpoint with the strategy's session does not stall the event loop",
    column="loop not blocked",
    measures=(
        f"{CONCURRENT} concurrent requests to an `async def` endpoint that loads a row with the session the "
        f"strategy gives async code, runs a query that spends {PAUSE_S * 1000:.0f} ms inside the database "
        f"(`sessionbench_pause`: pg_sleep on PostgreSQL, a sleeping function on SQLite) and awaits "
        f"{DELAY_S * 1000:.0f} ms, pool_size={POOL['pool_size']}, "
        f"max_overflow=0, pool_timeout={POOL['pool_timeout']:g} s: how late a ticker task on the same loop wakes "
        f"from {TICK_S * 1000:g} ms sleeps (max and p99 lag, ms), requests completed and failed; the run is killed after "
        f"{DEADLINE_S:g} s (blocked)"
    ),
    why=(
        "the thread's patterns hand a sync `Session` to any endpoint that asks, `async def` ones included; those run "
        "on the event loop, so a blocking query or pool checkout there stops every other request, which is why the "
        "asyncio forms (`AsyncSession`, `async_scoped_session`) are candidates at all"
    ),
    rule=Rule(
        (Term("max_lag_ms", "<", MAX_LAG_MS), Term("failed_requests"), Term("blocked", "=", False)),
        f"{MAX_LAG_MS:g} ms is under "
        f"the {PAUSE_S * 1000:.0f} ms one query blocks a loop that waits for it, and the "
        f"{POOL['pool_timeout'] * 1000:g} ms a loop waits for a sync checkout from the empty pool; several times "
        "what the in-process client and an idle loop show on 2 busy shared cores, up to ~50 ms",
    ),
    severity="errors",
    permanent=any_positive("blocked"),
    key=("max_lag_ms", "failed_requests"),
    routes=("/async/tag",),
    timeout_s=DEADLINE_S + 30,  # the deadline plus startup: the harness never kills a normal run
    pool=POOL,
    exclusive=True,
)


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


class Loop:
    """What the ticker and the requests saw so far; read by the deadline thread if the loop never returns."""

    def __init__(self):
        self.idle: list[float] = []
        self.busy: list[float] = []
        self.phase = self.idle
        self.done = self.failed = 0
        self.running = True
        self.last_tick = time.monotonic()

    async def ticker(self) -> None:
        while self.running:
            before = time.monotonic()
            await anyio.sleep(TICK_S)
            self.last_tick = time.monotonic()
            self.phase.append((self.last_tick - before - TICK_S) * 1000)

    async def one(self, served, i: int) -> None:
        r = await served.client.get(PATH, params={"tag": f"request-{i}", "delay": DELAY_S, "query": True})
        self.done += 1
        self.failed += r.status_code != 200

    def metrics(self, wall_s: float | None) -> dict:
        """The numbers so far; `wall_s` None means the deadline passed with the loop blocked."""
        blocked = wall_s is None
        silent_ms = (time.monotonic() - self.last_tick) * 1000 if blocked else 0.0
        return {
            "requests": CONCURRENT,
            "completed": self.done,
            "failed_requests": CONCURRENT - self.done + self.failed,  # unanswered at the deadline count
            "max_lag_ms": round(max([*self.busy, silent_ms], default=0.0), 1),
            "p99_lag_ms": None if blocked else round(_p99(self.busy), 1),
            "ticks": len(self.busy),
            "idle_max_lag_ms": round(max(self.idle, default=0.0), 1),
            "wall_s": None if blocked else round(wall_s, 2),
            "blocked": blocked,
        }


def _evidence(m: dict) -> str:
    if m["blocked"]:
        return (
            f"The event loop had not ticked for {m['max_lag_ms'] / 1000:.1f} s at the {DEADLINE_S:g} s deadline; "
            f"{m['completed']} of {CONCURRENT} requests had been answered, {m['failed_requests']} failed or "
            "were still waiting."
        )
    return (
        f"While {CONCURRENT} concurrent requests ran ({m['wall_s']:.1f} s), a ticker on the loop woke up to "
        f"{m['max_lag_ms']:.0f} ms late (p99 {m['p99_lag_ms']:.0f} ms, idle before {m['idle_max_lag_ms']:.0f} ms); "
        f"{m['failed_requests']} of {CONCURRENT} requests failed."
    )


@measures(EVENT_LOOP_BLOCKING)
async def test_event_loop_blocking(app_module, routes, record, monkeypatch):
    monkeypatch.setattr(probes, "PAUSE_S", PAUSE_S)
    loop, settled = Loop(), threading.Lock()

    def deadline() -> None:  # a thread: the loop may never run again to record anything itself
        if settled.acquire(blocking=False):
            metrics = loop.metrics(None)
            record(metrics, _evidence(metrics), now=True)

    timer = threading.Timer(DEADLINE_S, deadline)
    timer.daemon = True
    async with serve(app_module.app, routes) as served:
        timer.start()
        async with anyio.create_task_group() as outer:
            outer.start_soon(loop.ticker)
            await anyio.sleep(IDLE_S)
            loop.phase = loop.busy
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(CONCURRENT):
                    tg.start_soon(loop.one, served, i)
                    await anyio.sleep(STAGGER_S)
            wall = time.monotonic() - started
            loop.running = False
    timer.cancel()
    if settled.acquire(blocking=False):
        metrics = loop.metrics(wall)
        record(metrics, _evidence(metrics))


READS = WRITES = 5  # sequential requests per route: a per-request count, not a timing
LOOP_ROUTES = {"/sync/tag": "read", "/async/tag": "read", "/sync/write": "write", "/async/write": "write"}

SYNC_IO_ON_LOOP = Check(
    id="sync_io_on_loop",
    title="No sync database I/O on the event loop, wherever the session is opened, used or closed",
    column="no sync I/O on loop",
    measures=(
        f"{READS} sequential reads (the tag route, querying) and {WRITES} sequential writes (the write route, "
        "committing) per kind of endpoint: the calls a sync engine makes to its database driver (statements "
        "executed, commits, rollbacks, the reset of a connection returned to the pool) on the event loop's thread, "
        "in the endpoint, its dependencies' setup and teardown, or middleware; an async driver's calls are awaited "
        "and not counted"
    ),
    why=(
        "the thread's patterns hand out a sync `Session` wherever asked, and close it wherever the pattern closes "
        "it: an `async def` dependency or an HTTP middleware closes it on the event loop, a ROLLBACK round trip per "
        "request that stalls every other request as a query there does; counted, not timed, so that the verdict "
        "repeats on a noisy machine"
    ),
    rule=zero("loop_driver_calls", "failed_requests"),
    severity="errors",
    key=("loop_driver_calls_per_request", "failed_requests"),
    routes=tuple(LOOP_ROUTES),
)


@measures(SYNC_IO_ON_LOOP)
async def test_sync_io_on_loop(served, record):
    calls = {"execute": 0, "commit": 0, "rollback": 0, "reset": 0}
    with instruments.sync_driver_calls_on(threading.get_ident(), calls):
        statuses = []
        for path in sorted(served.routes):
            for i in range(READS if LOOP_ROUTES[path] == "read" else WRITES):
                if LOOP_ROUTES[path] == "read":
                    params = {"tag": f"loop-{i}", "delay": 0, "query": True}
                    statuses.append((await served.client.get(path, params=params)).status_code)
                else:
                    params = {"key": f"loop-{path}-{i}", "fail": False, "delay": 0}
                    statuses.append((await served.client.post(path, params=params)).status_code)
    total = sum(calls.values())
    metrics = {
        "requests": len(statuses),
        "failed_requests": sum(s != 200 for s in statuses),
        "loop_driver_calls": total,
        "loop_driver_calls_per_request": round(total / max(len(statuses), 1), 2),
        **{f"loop_{name}s": n for name, n in calls.items()},
    }
    record(
        metrics,
        f"{total} sync driver calls on the event loop's thread over {len(statuses)} requests to "
        f"{', '.join(sorted(served.routes))} ({', '.join(f'{n} {name}' for name, n in calls.items())}); "
        f"{metrics['failed_requests']} requests failed.",
    )
