"""Does an `async def` endpoint using the strategy's session stall the event loop?

Everything on the loop waits while one request does blocking work on it. A
sync `Session` in an `async def` endpoint queries on the loop thread; held
across an `await`, it keeps its connection while other requests run, and once
the pool is empty the next checkout blocks the loop until the pool times out,
and no other request can give a connection back meanwhile. The traffic and a
ticker run in a child process (experiments/loop_driver.py) that is killed at a
deadline, so a loop blocked for good still yields numbers and a verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from experiments.checks import Check, measures
from experiments.harness.discovery import ROOT
from experiments.harness.loop_driver import TICK_S
from experiments.harness.runner import kill_group
from experiments.harness.standalone import CHILD_MARK

CONCURRENT = 20  # four times the pool
DELAY_S = 0.05  # each request awaits this long with its session (and connection) in hand
POOL = dict(pool_size=5, max_overflow=0, pool_timeout=0.5)
DEADLINE_S = 15.0  # the driver is killed after this; the loop was blocked at least since its last report
MAX_LAG_MS = 200.0

EVENT_LOOP_BLOCKING = Check(
    id="event_loop_blocking",
    title="An `async def` endpoint with the strategy's session does not stall the event loop",
    measures=(
        f"{CONCURRENT} concurrent requests to an `async def` endpoint that loads a row with the session the "
        f"strategy gives async code and awaits {DELAY_S * 1000:.0f} ms, pool_size={POOL['pool_size']}, "
        f"max_overflow=0, pool_timeout={POOL['pool_timeout']:g} s: how late a ticker task on the same loop wakes "
        f"from {TICK_S * 1000:g} ms sleeps (max and p99 lag, ms), requests completed and failed; the run is killed after "
        f"{DEADLINE_S:g} s (blocked)"
    ),
    why=(
        "the thread's patterns hand a sync `Session` to any endpoint that asks, `async def` ones included; those run "
        "on the event loop, so a blocking query or pool checkout there stops every other request, which is why the "
        "asyncio forms (`AsyncSession`, `async_scoped_session`) are candidates at all"
    ),
    rule=(
        f"passed when max_lag_ms < {MAX_LAG_MS:g}, failed_requests = 0 and not blocked ({MAX_LAG_MS:g} ms: well "
        f"under the {POOL['pool_timeout'] * 1000:g} ms a loop waits for a sync checkout from the empty pool, and "
        "several times what the in-process client and an idle loop show on 2 busy shared cores, up to ~50 ms)"
    ),
    passes=lambda m: m["max_lag_ms"] < MAX_LAG_MS and m["failed_requests"] == 0 and not m["blocked"],
    key=("max_lag_ms", "failed_requests"),
    routes=("/async/tag",),
    timeout_s=DEADLINE_S + 30,  # the driver's deadline plus startup: the harness never kills a normal run
    pool=POOL,
    exclusive=True,
)


def _drive(strategy, database) -> tuple[dict, dict | None, float | None, dict | None]:
    """Run the driver; (last progress, final result or None if killed, seconds the loop had been silent, the pools
    its engines had)."""
    cmd = [
        sys.executable, "-m", "experiments.harness.loop_driver", str(strategy.path), "--pool", json.dumps(POOL),
        "--concurrent", str(CONCURRENT), "--delay", str(DELAY_S), "--parent", str(os.getpid()),
    ]  # fmt: skip
    env = {**os.environ, **database.environ, CHILD_MARK: "1"}  # found by the leftover-process test
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    lines: list[tuple[float, dict]] = []
    stderr: list[str] = []

    def read_stdout() -> None:
        for line in proc.stdout:
            try:
                lines.append((time.monotonic(), json.loads(line)))
            except json.JSONDecodeError:  # a strategy printing to stdout
                continue

    readers = [threading.Thread(target=read_stdout), threading.Thread(target=lambda: stderr.extend(proc.stderr))]
    for t in readers:
        t.start()
    started = time.monotonic()
    try:
        proc.wait(timeout=DEADLINE_S)
        killed_at = None
    except subprocess.TimeoutExpired:
        killed_at = time.monotonic()
    finally:
        kill_group(proc)  # its own process group: nothing it started survives
        for t in readers:
            t.join()
    progress = [(at, body["progress"]) for at, body in lines if "progress" in body]
    final = next((body["final"] for _, body in lines if "final" in body), None)
    conditions = final.pop("conditions") if final else next(
        (body["conditions"] for _, body in reversed(lines) if "conditions" in body), None)
    if final is None and killed_at is None:
        tail = "".join(stderr).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the loop driver exited with code {proc.returncode} without a result: {tail[0]}")
    last_at, last = progress[-1] if progress else (started, {"max_lag_ms": 0.0, "completed": 0, "failed": 0})
    return last, final, None if killed_at is None else killed_at - last_at, conditions


@measures(EVENT_LOOP_BLOCKING)
async def test_event_loop_blocking(app_module, routes, strategy, database, record):
    last, final, silent_s, conditions = _drive(strategy, database)  # app_module: contract checked, skipped if not served
    if final is not None:
        metrics = {**final, "blocked": False}
        record(
            metrics,
            f"While {CONCURRENT} concurrent requests ran ({metrics['wall_s']:.1f} s), a ticker on the loop woke up "
            f"to {metrics['max_lag_ms']:.0f} ms late (p99 {metrics['p99_lag_ms']:.0f} ms, idle before "
            f"{metrics['idle_max_lag_ms']:.0f} ms); {metrics['failed_requests']} of {CONCURRENT} requests failed.",
            conditions,
        )
        return
    metrics = {
        "requests": CONCURRENT,
        "completed": last["completed"],
        "failed_requests": CONCURRENT - last["completed"] + last["failed"],  # unanswered at the deadline count
        "max_lag_ms": round(max(last["max_lag_ms"], silent_s * 1000), 1),
        "p99_lag_ms": None,
        "blocked": True,
    }
    record(
        metrics,
        f"The event loop had not ticked for {silent_s:.1f} s when the driver was killed at the {DEADLINE_S:g} s "
        f"deadline; {last['completed']} of {CONCURRENT} requests had been answered, {last['failed']} of them with "
        "an error.",
        conditions,
    )
