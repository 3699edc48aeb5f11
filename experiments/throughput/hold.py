"""Connection hold time: how long a request keeps a pooled connection checked out, how much of that is SQL, and how
much comes after its response went out.

With a bounded pool that time caps throughput (Little's law: connections in use = req/s × hold time, at most the
pool), and the session patterns differ exactly there: a middleware holds its connection for the whole request, a
default-scope `yield` dependency until after the response is sent, `scope="function"` until the endpoint returns, a
lazily connecting session from its first query on.

Both instruments listen on SQLAlchemy's classes (`Pool`: checkout, checkin, detach; `Engine`: before and after
cursor execute), so they see every engine however the strategy made it, async engines' included:

- `Recorder` (the in-process worker, traffic.py `inprocess`): a batch of sequential requests, one in flight at a
  time, so every checkout belongs to the request in flight; it wraps the ASGI app to note when each request's last
  `http.response.body` message went out. The listeners are attached for the batch only and removed after it, and
  the wrapper passes requests straight through outside a batch: the throughput measurements around it pay one
  function call per request and nothing per query.
- `LoadMeter` (the uvicorn worker, traffic.py `serve`): under load, the connection-seconds each pool had checked
  out (the integral of connections out over time) and the requests the app completed, read at the start and at the
  end of each measurement window; `window()` turns two readings into hold per request, the pools' capacity
  (pool_size + max_overflow, read from the pool) and the ceiling they imply.

The arithmetic (`attribute`, `batch`, `window`, `ceilings`) is pure, and tested on hand-made samples.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
import weakref

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import AssertionPool, Pool, QueuePool, StaticPool

POOLS = (5, 20)  # the pool sizes the report gives a ceiling for
WARMUP = 3  # unrecorded requests before a worker's first batch on a path (the sweep warms only one tag path up)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def attribute(
    requests: list[tuple[float, float, float]], holds: list[tuple[float, float]], sql: list[tuple[float, float]]
) -> list[dict]:
    """Per request, seconds of connection checked out, of SQL, and of connection checked out after its response.

    `requests` are (start, sent, end) in order, one in flight at a time: request i owns [start_i, start_i+1) (the
    last one [start, end]), so a connection still out between two requests (a session kept past its request) is
    the earlier one's, and after its response. `holds` are (checkout, checkin) intervals, `sql` (before, after)
    cursor executions; two connections out at once count twice (connection-seconds, what the pool runs out of).
    """
    found = []
    for i, (start, sent, end) in enumerate(requests):
        until = requests[i + 1][0] if i + 1 < len(requests) else end
        found.append(
            {
                "hold_s": sum(_overlap(a, b, start, until) for a, b in holds),
                "sql_s": sum(_overlap(a, b, start, until) for a, b in sql),
                "after_s": sum(_overlap(a, b, min(sent, until), until) for a, b in holds),
            }
        )
    return found


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def batch(
    requests: list[tuple[float, float, float]],
    holds: list[tuple[float, float]],
    sql: list[tuple[float, float]],
    statuses: list[int | None],
    checkouts: int,
    open_at_end: int,
) -> dict:
    """One batch's sample: the median per-request hold in ms, and the shares of the batch's whole hold time that
    were SQL and after the response (None when no connection was checked out)."""
    per = attribute(requests, holds, sql)
    hold = sum(r["hold_s"] for r in per)
    return {
        "requests": len(per),
        "errors": sum(s is None or s >= 400 for s in statuses),
        "hold_ms": statistics.median(r["hold_s"] for r in per) * 1000 if per else 0.0,
        "mean_hold_ms": hold / len(per) * 1000 if per else 0.0,
        "sql_share": _share(sum(r["sql_s"] for r in per), hold),
        "after_response_share": _share(sum(r["after_s"] for r in per), hold),
        "checkouts_per_request": checkouts / len(per) if per else 0.0,
        "open_at_end": open_at_end,  # connections still checked out when the batch ended (counted up to its end)
    }


def ceilings(hold_ms: float | None, pools: tuple[int, ...] = POOLS) -> dict[str, float | None]:
    """req/s a pool of each size can serve at most when every request holds a connection `hold_ms` (Little's law);
    None when nothing is held (no bound from the pool)."""
    return {str(n): (n / (hold_ms / 1000) if hold_ms else None) for n in pools}


class Recorder:
    """The in-process instrument: an ASGI wrapper around the app, and the SQLAlchemy listeners of one batch."""

    def __init__(self, app):
        self.app = app
        self.on = False
        self.sent: float | None = None
        self.warmed: set[str] = set()
        self.pools: weakref.WeakSet | None = None  # every pool known to exist (found once, then from checkouts)

    async def __call__(self, scope, receive, send):
        if not self.on or scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message):
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.sent = time.perf_counter()  # the last body message has gone out: the client has it all

        await self.app(scope, receive, sending)

    # SQLAlchemy listeners: the pool's and the engine's, for every engine (listened on the classes)
    def _checkout(self, dbapi_connection, record, proxy) -> None:
        self.checkouts += 1
        self.open[record] = time.perf_counter()
        pool = getattr(proxy, "_pool", None)
        if pool is not None:
            self.pools.add(pool)

    def _checkin(self, dbapi_connection, record) -> None:
        now = time.perf_counter()
        self.holds.append((self.open.pop(record, self.began), now))  # out since before the batch: since its start

    def _before_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.executing[id(cursor)] = time.perf_counter()

    def _after_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        started = self.executing.pop(id(cursor), None)
        if started is not None:
            self.sql.append((started, time.perf_counter()))

    def _listeners(self) -> list:
        return [
            (Pool, "checkout", self._checkout),
            (Pool, "checkin", self._checkin),
            (Pool, "detach", self._checkin),
            (Engine, "before_cursor_execute", self._before_execute),
            (Engine, "after_cursor_execute", self._after_execute),
        ]

    def _listen(self) -> None:
        # Listening on Engine sets Engine._has_events for good; put it back after, so later requests skip dispatch.
        self.had_events = Engine.__dict__.get("_has_events", False)
        for target, name, fn in self._listeners():
            event.listen(target, name, fn)

    def _unlisten(self) -> None:
        for target, name, fn in self._listeners():
            event.remove(target, name, fn)
        Engine._has_events = self.had_events

    def _out_now(self) -> int:
        """Connections checked out of every known pool right now (the pools that count them)."""
        if self.pools is None:  # once per process: the pools made before the first batch (import, lifespan)
            self.pools = weakref.WeakSet(o for o in gc.get_objects() if isinstance(o, Pool))
        return sum(pool.checkedout() for pool in list(self.pools) if hasattr(pool, "checkedout"))

    async def measure(self, client: httpx.AsyncClient, url: str, requests: int, warmup: int = WARMUP) -> dict:
        """`requests` sequential requests with the listeners on (after `warmup` unrecorded ones, the first time this
        worker measures `url`): a batch() sample.

        A connection checked out before the batch (a session kept from an earlier request) shows no event until it
        is checked in: one checked in during the batch counts from the batch's start; one still out at the end
        (found by asking the pools) counts for the whole batch.
        """
        for _ in range(0 if url in self.warmed else warmup):
            await client.get(url)
        self.warmed.add(url)
        self._out_now()  # find the pools before the batch, outside its time
        self.holds, self.sql, self.open, self.executing, self.checkouts = [], [], {}, {}, 0
        windows, statuses = [], []
        self._listen()
        self.on, self.began = True, time.perf_counter()
        try:
            for _ in range(requests):
                self.sent, started = None, time.perf_counter()
                try:
                    status = (await client.get(url)).status_code
                except httpx.HTTPError:
                    status = None
                ended = time.perf_counter()
                windows.append((started, self.sent if self.sent is not None else ended, ended))
                statuses.append(status)
        finally:
            self.on = False
            self._unlisten()
        end = windows[-1][2] if windows else self.began
        out = self._out_now()
        from_before = max(0, out - len(self.open))  # out all along: checked out before the batch, never returned
        holds = self.holds + [(t, end) for t in self.open.values()] + [(self.began, end)] * from_before
        return batch(windows, holds, self.sql, statuses, self.checkouts, max(out, len(self.open)))


def capacity(pool) -> int | None:
    """Connections a pool hands out at most: pool_size + max_overflow for a queue pool (async ones included), 1 for
    a static or assertion pool; None when it has no bound (max_overflow=-1, NullPool, one connection per thread)."""
    if isinstance(pool, QueuePool):
        overflow = getattr(pool, "_max_overflow", -1)  # not public: QueuePool.overflow() is the current overflow
        return None if overflow < 0 else pool.size() + overflow
    if isinstance(pool, (StaticPool, AssertionPool)):
        return 1
    return None


class LoadMeter:
    """The server-side instrument: per pool, connection-seconds checked out so far; requests the app completed.

    Listeners stay on for the server's life (every app pays the same few µs per checkout), since a listener added
    while other threads dispatch events could break their iteration.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.pools: dict[int, dict] = {}  # id(pool) -> {pool, capacity, out, last, area, checkouts}
        self.out: dict = {}  # connection record -> its pool's entry, while checked out
        self.requests = 0

    def install(self) -> LoadMeter:
        event.listen(Pool, "checkout", self._checkout)
        event.listen(Pool, "checkin", self._checkin)
        event.listen(Pool, "detach", self._checkin)
        return self

    @staticmethod
    def _advance(entry: dict, now: float) -> None:
        entry["area"] += entry["out"] * (now - entry["last"])
        entry["last"] = now

    def _checkout(self, dbapi_connection, record, proxy) -> None:
        pool, now = getattr(proxy, "_pool", None), time.perf_counter()
        with self.lock:
            entry = self.pools.get(id(pool))
            if entry is None:
                entry = self.pools[id(pool)] = {
                    "pool": type(pool).__name__,
                    "capacity": capacity(pool),
                    "out": 0,
                    "last": now,
                    "area": 0.0,
                    "checkouts": 0,
                }
            self._advance(entry, now)
            entry["out"] += 1
            entry["checkouts"] += 1
            self.out[record] = entry

    def _checkin(self, dbapi_connection, record) -> None:
        now = time.perf_counter()
        with self.lock:
            entry = self.out.pop(record, None)
            if entry is not None:
                self._advance(entry, now)
                entry["out"] -= 1

    def wrap(self, app):
        async def counted(scope, receive, send):
            try:
                await app(scope, receive, send)
            finally:
                if scope["type"] == "http":
                    self.requests += 1  # on the event loop only

        return counted

    def snapshot(self) -> dict:
        now = time.perf_counter()
        with self.lock:
            for entry in self.pools.values():
                self._advance(entry, now)
            pools = {
                str(key): {k: e[k] for k in ("pool", "capacity", "area", "checkouts", "out")}
                for key, e in self.pools.items()
            }
        return {"t": now, "requests": self.requests, "pools": pools}


def window(before: dict, after: dict) -> dict:
    """Hold per request under load between two LoadMeter snapshots, and the ceiling the pools imply.

    A pool p that held `connection_s` connection-seconds over the window's requests holds hold_p per request; it
    serves at most capacity_p / hold_p req/s; the app's ceiling is the lowest over the pools it used (None when one
    has no bound). `busy` is the mean connections out over the window.
    """
    requests, seconds = after["requests"] - before["requests"], after["t"] - before["t"]
    pools = []
    for key, now in after["pools"].items():
        then = before["pools"].get(key, {"area": 0.0, "checkouts": 0})
        area, checkouts = now["area"] - then["area"], now["checkouts"] - then["checkouts"]
        if checkouts or area > 0:
            pools.append(
                {
                    "pool": now["pool"],
                    "capacity": now["capacity"],
                    "checkouts": checkouts,
                    "connection_s": round(area, 6),
                    "busy": area / seconds if seconds > 0 else None,
                    "hold_ms": area / requests * 1000 if requests else None,
                }
            )
    held = sum(p["connection_s"] for p in pools)
    known = bool(pools) and all(p["capacity"] is not None for p in pools)
    bounded = known and requests > 0 and held > 0
    return {
        "window_s": round(seconds, 4),
        "requests": requests,
        "connection_s": round(held, 6),
        "hold_ms": held / requests * 1000 if requests else None,
        "capacity": sum(p["capacity"] for p in pools) if known else None,
        "ceiling_rps": min(p["capacity"] / (p["hold_ms"] / 1000) for p in pools if p["hold_ms"]) if bounded else None,
        "pools": pools,
    }
