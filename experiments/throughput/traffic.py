"""The processes the throughput measurement drives: closed-loop load, in-process or over loopback, and a uvicorn server.

The workers are long-lived and take one JSON command per line on stdin, answering
one JSON line each, so the parent can interleave apps round by round without
paying a process start per measurement, and can kill a worker (its own process
group) that hangs without losing the others.

    python -m experiments.throughput.traffic inprocess FILE   # serve the app in FILE through the ASGI transport, load it
    python -m experiments.throughput.traffic remote           # load the server named in each command, over loopback
    python -m experiments.throughput.traffic serve FILE PORT  # uvicorn serving the app in FILE on 127.0.0.1:PORT

Besides the load, each worker measures connection hold time (hold.py): `inprocess` answers `{"hold": {"url": …,
"requests": N}}` with a batch of N sequential requests timed from the pool's events; `serve` answers
`{"hold": "snapshot"}` with the connection-seconds its pools have had checked out and the requests it completed so
far, which the parent reads before and after each measurement window.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import anyio
import httpx

from experiments.harness import discovery
from experiments.harness.serving import serve
from experiments.throughput import hold


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (0-100) of an ascending list, nearest rank."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _loop(client: httpx.AsyncClient, method: str, url: str, concurrency: int, seconds: float, keys) -> tuple:
    """`concurrency` clients each sending the next request as soon as the last one answered, for `seconds`."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def user() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                ok = (await client.request(method, url.format(key=next(keys)))).status_code < 400
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(user)
    return latencies, errors


async def measure(
    client: httpx.AsyncClient, method: str, url: str, concurrency: int, seconds: float, warmup_s: float, key_prefix: str
) -> dict:
    """Warm up, then load for `seconds`: requests/s and latency percentiles of the successful requests.

    `{key}` in the URL becomes a unique key per request (the write route needs one).
    `cpu_s` is this process's CPU time during the measurement: in-process that is
    client and app together; with `remote` it is the load generator alone.
    """
    keys = (f"{key_prefix}-{i}" for i in itertools.count())
    await _loop(client, method, url, concurrency, warmup_s, keys)
    cpu, started = _cpu_s(), time.perf_counter()
    latencies, errors = await _loop(client, method, url, concurrency, seconds, keys)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed_s": round(elapsed, 4),
        "rps": len(latencies) / elapsed,
        **{f"p{q}_ms": percentile(latencies, q) * 1000 for q in (50, 90, 99)},
        "client_cpu_s": round(_cpu_s() - cpu, 4),
    }


def _protocol():
    """The answer channel: the real stdout; whatever the app prints goes to stderr (the log) instead."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, discovery.ContractError):
        return str(exc)
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


async def _commands():
    while line := await anyio.to_thread.run_sync(sys.stdin.readline):
        yield json.loads(line)


async def inprocess(file: str) -> None:
    """Answer `ready` (with the probe paths served) once the app's lifespan started, then one line per command."""
    out = _protocol()
    try:
        module = discovery.load(discovery.at(Path(file)))
        routes = discovery.served_routes(module.app)
        # tag paths whose endpoint is of the kind the path names, for the hold time (hold.Recorder)
        kinds = {k: p for k, p in discovery.PATTERN_ROUTES.items() if p in discovery.served_routes(module.app, k)}
        recorder = hold.Recorder(module.app)
        async with serve(recorder, routes) as served:
            print(json.dumps({"ready": sorted(routes), "kinds": kinds}), file=out)
            async for command in _commands():
                if "hold" in command:
                    reply = await recorder.measure(served.client, **command["hold"])
                else:
                    reply = await measure(served.client, **command)
                print(json.dumps(reply), file=out)
    except Exception as exc:  # a strategy's failure is reported to the parent, which records it
        print(json.dumps({"error": _reason(exc)}), file=out)


async def remote() -> None:
    """The Python load generator: each command names the server (`base_url`) and the load."""
    out = _protocol()
    print(json.dumps({"ready": []}), file=out)
    async for command in _commands():
        base_url = command.pop("base_url")
        limits = httpx.Limits(max_connections=command["concurrency"], max_keepalive_connections=command["concurrency"])
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as client:
            print(json.dumps(await measure(client, **command)), file=out)


def serve_over_http(file: str, port: int) -> None:
    """uvicorn on loopback, as the app would be deployed (one worker, lifespan on); first says which paths it serves."""
    import uvicorn

    out = _protocol()
    try:
        module = discovery.load(discovery.at(Path(file)))
    except discovery.ContractError as exc:
        print(json.dumps({"error": _reason(exc)}), file=out)
        return
    meter = hold.LoadMeter().install()
    threading.Thread(target=_snapshots, args=(meter, out), daemon=True, name="sessionbench-hold").start()
    # where each probe path is served (under a prefix in apps that mount their API): the load generator asks there
    print(
        json.dumps(
            {"ready": sorted(discovery.served_routes(module.app)), "served_at": discovery.served_at(module.app)}
        ),
        file=out,
    )
    uvicorn.run(
        meter.wrap(module.app), host="127.0.0.1", port=port, lifespan="on", log_level="warning", access_log=False
    )


def _snapshots(meter: hold.LoadMeter, out) -> None:
    """The server's commands: `{"hold": "snapshot"}` answers the connection-seconds and requests so far."""
    for line in sys.stdin:
        if json.loads(line).get("hold") == "snapshot":
            print(json.dumps(meter.snapshot()), file=out)


if __name__ == "__main__":
    kind, *rest = sys.argv[1:]
    if kind == "serve":
        serve_over_http(rest[0], int(rest[1]))
    elif kind == "inprocess":
        anyio.run(inprocess, rest[0])
    else:
        anyio.run(remote)
