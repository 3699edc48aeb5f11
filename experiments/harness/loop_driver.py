"""Traffic and a loop ticker against one strategy's app, in a process the loop-blocking check can kill.

    python -m experiments.harness.loop_driver STRATEGY_FILE --pool '{"pool_size": 5}' --concurrent 25 --delay 0.1

The app runs in-process (httpx ASGITransport) on this process's event loop,
next to a ticker task that sleeps TICK_S and records how late it wakes up: the
lag every request on that loop suffers. A sync Session used on the loop thread
can block it for as long as a pool checkout waits, or for ever, so the check
runs this in a child process with a deadline and kills it when it passes.

Output, one JSON object per line on stdout: `{"progress": …}` every
PROGRESS_S while the loop runs (the last one tells the check how far it got
when it had to kill the process), then `{"final": …}`.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from experiments.harness import discovery, instruments
from experiments.harness.serving import serve

TICK_S = 0.005
PROGRESS_S = 0.1
IDLE_S = 0.3  # ticks before any traffic: the loop's own noise on this machine, for comparison
PATH = "/async/tag"
# Requests start this far apart, all still in flight together: started in one go, the in-process client's and
# the app's own work for all of them would run in one loop iteration and show up as lag of the harness's making.
STAGGER_S = 0.001


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def _emit(kind: str, body: dict) -> None:
    sys.stdout.write(json.dumps({kind: body}) + "\n")
    sys.stdout.flush()


async def _measure(app, concurrent: int, delay: float, engines) -> dict:
    idle: list[float] = []
    busy: list[float] = []
    state = {"phase": idle, "done": 0, "failed": 0, "running": True, "conditions": None}

    async def ticker() -> None:
        last_report = time.monotonic()
        while state["running"]:
            before = time.monotonic()
            await anyio.sleep(TICK_S)
            now = time.monotonic()
            state["phase"].append((now - before - TICK_S) * 1000)
            if now - last_report >= PROGRESS_S:
                last_report = now
                _emit("progress", {"max_lag_ms": round(max(busy, default=0.0), 1), "ticks": len(busy),
                                   "completed": state["done"], "failed": state["failed"]})  # fmt: skip
                if (conditions := engines.conditions()) != state["conditions"]:  # the pools, as soon as an engine connects
                    state["conditions"] = conditions
                    _emit("conditions", conditions)

    async def one(served, i: int) -> None:
        try:
            r = await served.client.get(PATH, params={"tag": f"request-{i}", "delay": delay, "query": True})
            ok = r.status_code == 200
        except Exception:  # the transport re-raises nothing (raise_app_exceptions=False), but be sure
            ok = False
        state["done"] += 1
        state["failed"] += not ok

    async with serve(app, {PATH}) as served:
        async with anyio.create_task_group() as outer:
            outer.start_soon(ticker)
            await anyio.sleep(IDLE_S)
            state["phase"] = busy
            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for i in range(concurrent):
                    tg.start_soon(one, served, i)
                    await anyio.sleep(STAGGER_S)
            wall = time.monotonic() - started
            state["running"] = False
    return {
        "requests": concurrent,
        "completed": state["done"],
        "failed_requests": state["failed"],
        "max_lag_ms": round(max(busy, default=0.0), 1),
        "p99_lag_ms": round(_p99(busy), 1),
        "ticks": len(busy),
        "idle_max_lag_ms": round(max(idle, default=0.0), 1),
        "wall_s": round(wall, 2),
        "conditions": engines.conditions(),
    }


def _die_with(parent: int) -> None:
    """Exit when `parent` (the check process) dies: the driver runs in its own process group, which a harness
    killing the check process's group would not reach. The kernel signal where there is one, polling as well."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.harness.loop_driver")
    parser.add_argument("strategy", type=Path, help="the strategy module file")
    parser.add_argument("--pool", default="null", help="engine defaults as JSON, e.g. the check's pool")
    parser.add_argument("--concurrent", type=int, default=25)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--parent", type=int, default=None, help="exit when this process does")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _die_with(args.parent)
    pool = json.loads(args.pool)
    if pool:
        instruments.pool_defaults(pytest.MonkeyPatch(), **pool)  # this process ends with the measurement
    with instruments.engines_used(pool) as engines:
        module = discovery.load(discovery.at(args.strategy))
        _emit("final", anyio.run(_measure, module.app, args.concurrent, args.delay, engines))
    sys.stdout.flush()
    os._exit(0)  # don't wait for threadpool threads or engines a strategy may leave blocked


if __name__ == "__main__":
    main()
