"""Per-request session set-up and tear-down cost, with pytest-benchmark: the fixed cost, apart from concurrency.

One in-process request at a time to the app's tag route, with `query=false`
(the session is opened, tagged and closed; no SQL) and with `query=true` (plus
a connection checkout and the SELECT). Minus the same request on the no-database
baseline, `query=false` is what the strategy's session handling costs per request.

`run()` runs this file in one pytest process (the apps in $SESSIONBENCH_COST_APPS,
a hard timeout: the throughput phase has already put every app under load, so
a hang here is unlikely, and one process start instead of one per app keeps the
quick run short; the apps take turns, REPEATS times) and keeps pytest-benchmark's JSON as `benchmark.json` next to
the results. `pytest experiments` does not collect this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio.from_thread
import pytest

from experiments.harness import discovery
from experiments.harness.processes import kill_group
from experiments.harness.serving import Database, database_name, serve
from experiments.throughput import baselines, stats

TIMEOUT_S = 180
TAG_PATHS = ("/sync/tag", "/async/tag")
BATCH = 10  # requests per benchmark round: the portal's thread hop is paid once per round, not per request
APPS = json.loads(os.environ.get("SESSIONBENCH_COST_APPS", "[]"))  # [[app id, module file], …]
REPEATS = 3
ROUNDS = int(os.environ.get("SESSIONBENCH_COST_ROUNDS", "10"))  # benchmark rounds per app, path and repeat
# Machine load drifts over seconds: every app is benchmarked once per repeat, the apps in turn, so that each
# difference to the baseline is taken between runs close in time, and its spread over repeats is known.
CASES = [
    (r, app, file, path, query)
    for r in range(REPEATS)
    for app, file in APPS
    for path in TAG_PATHS
    for query in (False, True)
]


@pytest.mark.filterwarnings("default")
@pytest.mark.parametrize("repeat, app, file, path, query", CASES, ids=[f"{r}-{a}-{p}-{q}" for r, a, _, p, q in CASES])
def test_request_cost(benchmark, db_server, tmp_path, monkeypatch, repeat, app, file, path, query):
    """A strategy on the tag path it serves (`def` first), a baseline on both, so each has its like to compare with."""
    strategy = discovery.at(Path(file))
    name = database_name(f"sb_cost_{app}")
    database = Database.postgresql(db_server, name) if db_server else Database.sqlite(tmp_path / f"{name}.db")
    for key, value in database.environ.items():
        monkeypatch.setenv(key, value)
    module = discovery.load(strategy)
    routes = discovery.served_routes(module.app)
    measured = [p for p in TAG_PATHS if p in routes][: None if strategy.path.parent == baselines.DIR else 1]
    if path not in measured:
        pytest.skip(f"{path} is not measured for {app}")
    url = f"{path}?tag=bench&delay=0&query={str(query).lower()}"
    benchmark.extra_info.update(repeat=repeat, app=app, path=path, query=query, requests_per_round=BATCH)
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serve(module.app, routes)) as served,
    ):

        async def requests():
            for _ in range(BATCH):
                response = await served.client.get(url)
                assert response.status_code == 200, f"GET {url} answered {response.status_code}"

        benchmark.pedantic(portal.call, (requests,), rounds=ROUNDS, warmup_rounds=2)


def run(apps, server, out: Path, rounds: int, say) -> list[dict]:
    """Benchmark every app; write out/benchmark.json; rows per app and path (µs per request), or the app's error."""
    work = out / ".work" / "session_cost"
    log = out / "logs" / "throughput" / "session_cost.log"
    cmd = [
        sys.executable, "-m", "pytest", __file__, "-q", "-rfE", "-p", "no:cacheprovider", "--basetemp", str(work),
        "--db", server.admin_url if server else "sqlite", "--benchmark-json", str(out / "benchmark.json"),
        "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning",
    ]  # fmt: skip
    work.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "COLUMNS": "400",  # the summary keeps each failure's reason whole
        "SESSIONBENCH_COST_APPS": json.dumps([[a.id, str(a.strategy.path)] for a in apps]),
        "SESSIONBENCH_COST_ROUNDS": str(rounds),
    }
    (out / "benchmark.json").unlink(missing_ok=True)
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd, cwd=discovery.ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            kill_group(proc)
        except BaseException:
            kill_group(proc)
            raise
    shutil.rmtree(work, ignore_errors=True)
    data = json.loads((out / "benchmark.json").read_text()) if (out / "benchmark.json").exists() else {}
    rows = _rows(data.get("benchmarks", []))
    failures = [line for line in log.read_text(errors="replace").splitlines() if line.startswith(("FAILED", "ERROR"))]
    for app in apps:
        if not any(r["app"] == app.id for r in rows):
            why = next(
                (line.split(" - ", 1)[-1] for line in failures if f"-{app.id}-/" in line), None
            )  # [0-app-/path-q]
            reason = why or ("timed out" if proc.returncode < 0 else "no benchmark recorded")
            rows.append({"app": app.id, "error": f"{reason}; see {log}"})
            say(f"  session cost × {app.id}: ERROR: {reason}")
    order = {a.id: i for i, a in enumerate(apps)}
    rows.sort(key=lambda r: order[r["app"]])
    return rows


def _rows(benchmarks: list[dict]) -> list[dict]:
    """One row per app and path, in µs per request: median and range over repeats of each repeat's median,
    without and with the SELECT, and the difference to the no-database baseline's same path in the same repeat."""
    medians: dict[tuple, dict[int, float]] = {}
    for bench in benchmarks:
        info = bench["extra_info"]
        key = (info["app"], info["path"], "with_select" if info["query"] else "session_only")
        medians.setdefault(key, {})[info["repeat"]] = bench["stats"]["median"] / BATCH * 1e6
    rows: dict[tuple, dict] = {}
    for (app, path, name), by_repeat in medians.items():
        row = rows.setdefault((app, path), {"app": app, "path": path, "repeats": len(by_repeat)})
        row[name] = stats.value_range(list(by_repeat.values()))
        reference = medians.get((baselines.NO_DB, path, "session_only"))
        if name == "session_only" and reference and app != baselines.NO_DB:
            row["over_no_database"] = stats.value_range(
                [v - reference[r] for r, v in by_repeat.items() if r in reference]
            )
    return list(rows.values())
