"""The throughput machinery works: baselines measured, intervals computed, plots written, broken apps isolated.

No timing assertions: the only comparison is that 5 ms of blocking work per
request ranks below apps without it, by a generous margin.
"""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys

import pytest

from experiments.throughput import hold, summaries
from experiments.throughput.stats import median_interval
from experiments.throughput.summaries import summarize, summarize_hold, summarize_under_load
from report.__main__ import main as report_main
from report.render import render
from report.throughput import section as throughput_section
from tests.running import ROOT, TEMPLATE, compare, processes_mentioning

SLOWED = ROOT / "tests" / "bench_strategies" / "slowed_5ms.py"
GOOD, SLOW, BROKEN = "session_per_request", "slowed_5ms", "broken"
BASELINES = {"baseline:no_database", "baseline:raw_connection"}
SHORT = [
    "--no-checks",
    "--throughput",
    "quick",
    "--levels",
    "1,8",
    "--rounds",
    "2",
    "--seconds",
    "0.1",
    "--session-cost-rounds",
    "3",
    "--instructions",
    "off",
]  # counted in tests/test_instructions.py


@pytest.fixture(scope="module")
def strategies(tmp_path_factory):
    found = tmp_path_factory.mktemp("bench-strategies")
    shutil.copy(TEMPLATE, found / f"{GOOD}.py")
    shutil.copy(SLOWED, found)
    (found / f"{BROKEN}.py").write_text("import a_module_that_does_not_exist\n")
    return found


def _run(strategies, out, *args):
    done = compare(out, "--strategies-dir", str(strategies), *SHORT, *args, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not processes_mentioning(str(strategies)), "a worker or server outlived the run"
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def inprocess(strategies, tmp_path_factory):
    out = tmp_path_factory.mktemp("tp-inprocess")
    return _run(strategies, out), out


@pytest.fixture(scope="module")
def server(strategies, tmp_path_factory):
    out = tmp_path_factory.mktemp("tp-server")
    doc = _run(strategies, out, "--modes", "server", "--loadgen", "python", "--strategy", SLOW, "--seconds", "0.3")
    return doc, out


def _cells(doc, app, kind=None):
    return [c for c in doc["throughput"]["cells"] if c["app"] == app and kind in (None, c["kind"])]


def test_baselines_and_strategies_measured_at_every_level(inprocess):
    doc, _ = inprocess
    for app in [*BASELINES, GOOD, SLOW]:
        for kind in ("read", "write", "nodb"):
            cells = _cells(doc, app, kind)
            assert {c["concurrency"] for c in cells} == {1, 8}, (app, kind)
            assert all(c["rounds"] == 2 and c["errors"] == 0 for c in cells), cells


def test_ratios_have_intervals(inprocess):
    doc, _ = inprocess
    for app in (GOOD, SLOW):
        for c in _cells(doc, app):
            for name in ("vs_raw", "vs_nodb"):
                ratio = c[name]
                assert ratio["low"] <= ratio["median"] <= ratio["high"], c
                assert ratio["indistinguishable"] == (ratio["low"] <= 1 <= ratio["high"])


def test_five_ms_of_work_ranks_below_the_rest(inprocess):
    doc, _ = inprocess
    for kind in ("read", "write", "nodb"):
        for slow, good in zip(_cells(doc, SLOW, kind), _cells(doc, GOOD, kind)):
            assert slow["rps"]["median"] < 0.8 * good["rps"]["median"], (slow, good)
    assert all(c["vs_nodb"]["median"] < 0.7 for c in _cells(doc, SLOW, "nodb"))


def test_a_broken_strategy_is_an_error_entry_and_the_rest_are_measured(inprocess):
    doc, _ = inprocess
    errors = [e for e in doc["throughput"]["errors"] if e["app"] == BROKEN]
    assert errors and "import failed" in errors[0]["reason"], doc["throughput"]["errors"]
    assert errors[0]["mode"] == "import preflight"
    assert not _cells(doc, BROKEN)
    cost = {r["app"]: r for r in doc["throughput"]["session_cost"]}
    assert BROKEN not in cost and "over_no_database" in cost[GOOD]


def test_report_plots_and_benchmark_json_are_written(inprocess):
    doc, out = inprocess
    report = (out / "REPORT.md").read_text()
    assert report == render(doc)
    for name in ("throughput-inprocess.png", "latency-inprocess.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
        assert f"]({name})" in report
    assert "× raw connection [50 % CI]" in report and f"`{BROKEN}` (import preflight)" in report
    benchmarks = json.loads((out / "benchmark.json").read_text())["benchmarks"]
    assert {b["extra_info"]["app"] for b in benchmarks} == BASELINES | {GOOD, SLOW}


def test_two_runs_disagree_only_where_a_ratio_moved_beyond_both_intervals(inprocess, tmp_path, capsys):
    """`python -m report --against`: a run agrees with itself; one ratio moved clear of its interval is named."""
    doc, out = inprocess
    moved = copy.deepcopy(doc)
    cell = next(c for c in moved["throughput"]["cells"] if c["app"] == SLOW and c.get("vs_raw"))
    beyond = 2 * cell["vs_raw"]["high"] + 1
    cell["vs_raw"].update(median=beyond, low=beyond, high=beyond, indistinguishable=False)
    (tmp_path / "results.json").write_text(json.dumps(moved))
    ratios = sum(bool(c.get(name)) for c in doc["throughput"]["cells"] for name in ("vs_raw", "vs_nodb"))

    assert report_main([str(out / "results.json"), "--against", str(out / "results.json")]) == 0
    assert f"run-to-run: {ratios} of {ratios} ratios" in capsys.readouterr().out
    assert report_main([str(tmp_path / "results.json"), "--against", str(out / "results.json")]) == 0
    assert f"run-to-run: {ratios - 1} of {ratios} ratios" in capsys.readouterr().out
    section = (tmp_path / "REPORT.md").read_text().split("## Run-to-run agreement")[1]
    assert f"| `{SLOW}` | `{cell['path']}` | {cell['concurrency']} | raw connection |" in section


def test_real_server_mode_with_the_python_load_generator(server):
    doc, out = server
    cells = _cells(doc, SLOW, "nodb")
    assert cells and all(c["mode"] == "server" and c["server_cpu"] > 0 for c in cells)
    assert "Python" in doc["throughput"]["clients"]["server"]
    assert all(c["vs_nodb"]["median"] < 0.7 for c in cells)
    assert (out / "throughput-server.png").exists()


def test_ctrl_c_during_throughput_keeps_results_and_leaves_no_process(strategies, tmp_path):
    cmd = [sys.executable, "-m", "experiments", "--out", str(tmp_path), "--strategies-dir", str(strategies), *SHORT]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            for line in proc.stdout:  # the apps are serving: the run is in its throughput part from here
                if "apps ready" in line:
                    break
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        finally:
            proc.kill()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["complete"] is False and "throughput" in doc["note"]
    assert "INCOMPLETE" in (tmp_path / "REPORT.md").read_text()
    assert not processes_mentioning(str(strategies))


def test_interval_holds_one_means_indistinguishable():
    assert median_interval([0.9, 1.1, 1.0])["indistinguishable"]
    far = median_interval([0.4, 0.5, 0.45])
    assert not far["indistinguishable"] and far["low"] <= 0.45 <= far["high"]


@pytest.mark.parametrize("rounds, k, confidence", [(3, 1, 0.75), (5, 1, 0.9375), (7, 1, 0.9844), (9, 2, 0.9609)])
def test_interval_is_the_kth_lowest_to_kth_highest_round(rounds, k, confidence):
    """The narrowest order-statistic interval covering 95 %, or the whole range (and what it covers) when none does."""
    values = [float(v) for v in range(rounds, 0, -1)]
    found = median_interval(values)
    assert (found["low"], found["high"], found["confidence"]) == (k, rounds + 1 - k, confidence)


def test_ratios_are_taken_round_by_round():
    sample = {"rps": 0, "p50_ms": 1, "p90_ms": 1, "p99_ms": 1, "errors": 0, "client_cpu_s": 1, "elapsed_s": 1}
    rounds = {"baseline:raw_connection": [100, 200], "baseline:no_database": [400, 800], "s": [50, 100]}
    samples = {
        ("inprocess", app, "nodb", "/nodb", 8): [{**sample, "rps": r} for r in rps] for app, rps in rounds.items()
    }
    (cell,) = [c for c in summarize(samples, ("inprocess",)) if c["app"] == "s"]
    assert cell["vs_raw"] == {"median": 0.5, "low": 0.5, "high": 0.5, "confidence": 0.5, "indistinguishable": False}
    assert cell["vs_nodb"]["median"] == 0.125


# Connection hold time (experiments/throughput/hold.py): the arithmetic on hand-made samples, the ordering the
# instrument sees on a real app, and the rows a run writes. No timing is asserted, only structure and order.


def test_hold_is_attributed_to_the_request_in_flight():
    """Each request owns the time from its start to the next one's: a connection kept across two requests is split,
    the part after a response was sent is after-response, and SQL is counted where it ran."""
    requests = [(0.0, 8.0, 9.0), (10.0, 18.0, 19.0)]  # (start, last body sent, end)
    holds = [(2.0, 6.0), (7.0, 12.0), (15.0, 20.0)]  # the second is still out when request 2 starts
    sql = [(3.0, 4.0), (16.0, 16.5)]
    first, second = hold.attribute(requests, holds, sql)
    assert first == {"hold_s": 4.0 + 3.0, "sql_s": 1.0, "after_s": 2.0}  # 8..10 of the second interval
    assert second == {"hold_s": 2.0 + 4.0, "sql_s": 0.5, "after_s": 1.0}  # the last request ends at 19


def test_a_batch_is_its_median_request_and_shares_of_the_whole():
    requests = [(0.0, 1.0, 1.0), (1.0, 2.0, 2.0), (2.0, 3.0, 3.0)]
    holds = [(0.0, 0.5), (1.0, 1.2), (2.0, 2.9)]
    sample = hold.batch(requests, holds, [(0.0, 0.16)], [200, 500, None], checkouts=3, open_at_end=0)
    assert sample["hold_ms"] == pytest.approx(500) and sample["mean_hold_ms"] == pytest.approx(1600 / 3)
    assert sample["sql_share"] == pytest.approx(0.1) and sample["after_response_share"] == 0
    assert sample["errors"] == 2 and sample["checkouts_per_request"] == 1
    nothing = hold.batch(requests, [], [], [200] * 3, checkouts=0, open_at_end=0)
    assert nothing["hold_ms"] == 0 and nothing["sql_share"] is None and nothing["after_response_share"] is None
    assert hold.ceilings(nothing["hold_ms"]) == {"5": None, "20": None}
    assert hold.ceilings(2.0) == {"5": pytest.approx(2500), "20": pytest.approx(10000)}


def _hold_sample(ms: float, sql=0.2, after=0.0) -> dict:
    return {
        "requests": 20,
        "errors": 0,
        "hold_ms": ms,
        "mean_hold_ms": ms,
        "sql_share": sql,
        "after_response_share": after,
        "checkouts_per_request": 1.0,
        "open_at_end": 0,
    }


def test_hold_rows_take_the_ratio_to_raw_round_by_round():
    raw = "baseline:raw_connection"
    samples = {
        (raw, "def", "/sync/tag"): {0: _hold_sample(0.1), 1: _hold_sample(0.2), 2: _hold_sample(0.4)},
        ("s", "def", "/sync/tag"): {
            0: _hold_sample(0.4, after=0.5),
            1: _hold_sample(0.8, after=0.3),
            2: _hold_sample(0.8, after=0.4),
        },
        ("s", "async", "/async/tag"): {0: _hold_sample(1.0)},  # no raw connection on this path: no ratio
    }
    rows = summarize_hold(samples, [raw, "s"])
    assert [(r["app"], r["kind"]) for r in rows] == [(raw, "def"), ("s", "def"), ("s", "async")]
    _, strategy, lonely = rows
    assert strategy["hold_ms"] == {"median": 0.8, "low": 0.4, "high": 0.8, "confidence": 0.75}
    assert strategy["ratio_to_raw"]["median"] == 4.0 and strategy["ratio_to_raw"]["low"] == 2.0  # 4, 4, 2
    assert not strategy["ratio_to_raw"]["indistinguishable"]
    assert strategy["after_response_share"] == 0.4 and strategy["sql_share"] == 0.2
    assert strategy["ceiling_rps"] == {"5": pytest.approx(6250), "20": pytest.approx(25000)}
    assert rows[0]["ratio_to_raw"] is None and lonely["ratio_to_raw"] is None and lonely["rounds"] == 1


def _reading(t: float, requests: int, **pools) -> dict:
    return {
        "t": t,
        "requests": requests,
        "pools": {
            k: {"pool": "QueuePool", "capacity": cap, "area": area, "checkouts": n, "out": 0}
            for k, (cap, area, n) in pools.items()
        },
    }


def test_a_window_under_load_gives_hold_capacity_and_ceiling():
    before = _reading(10.0, 100, a=(15, 1.0, 100))
    after = _reading(12.0, 300, a=(15, 9.0, 300), b=(5, 0.4, 200))  # pool b first used in this window
    found = hold.window(before, after)
    assert found["requests"] == 200 and found["window_s"] == 2.0 and found["connection_s"] == pytest.approx(8.4)
    assert found["hold_ms"] == pytest.approx(42) and found["capacity"] == 20
    # pool a: 40 ms per request over 15 connections (375 req/s); b: 2 ms over 5 (2500 req/s); the lower wins
    assert found["ceiling_rps"] == pytest.approx(375)
    assert {p["pool"]: p["busy"] for p in found["pools"]} == {"QueuePool": pytest.approx(0.2)}  # the last one's
    unbounded = hold.window(_reading(0, 0, a=(None, 0.0, 0)), _reading(1, 10, a=(None, 0.5, 10)))
    assert unbounded["capacity"] is None and unbounded["ceiling_rps"] is None and unbounded["hold_ms"] == 50
    idle = hold.window(_reading(0, 0, a=(15, 0.0, 0)), _reading(1, 10, a=(15, 0.0, 0)))
    assert idle["pools"] == [] and idle["connection_s"] == 0 and idle["ceiling_rps"] is None


def test_within_ceiling_is_judged_round_by_round_with_the_tolerance():
    def sample(rps, ceiling):
        window = {
            "window_s": 1.0,
            "requests": 100,
            "connection_s": 1.5,
            "hold_ms": 15.0,
            "capacity": 15,
            "ceiling_rps": ceiling,
            "pools": [],
        }
        return {"rps": rps, "hold": window}

    tolerance = 1 + summaries.CEILING_TOLERANCE
    samples = {
        ("server", "s", "read", "/sync/tag", 32): [sample(1000, 1000), sample(999 * tolerance, 1000)],
        ("server", "t", "read", "/sync/tag", 8): [sample(1000, 1000), sample(1001 * tolerance, 1000)],
        ("inprocess", "s", "read", "/sync/tag", 32): [sample(1, 1)],  # not server mode: no row
    }
    quiet = [{"app": "s", "path": "/sync/tag", "hold_ms": {"median": 0.5}}]
    s, t = summarize_under_load(samples, quiet)
    assert (s["app"], s["within_ceiling"], s["rounds_within"], s["above_pool"]) == ("s", True, 2, True)
    assert (t["app"], t["within_ceiling"], t["rounds_within"], t["above_pool"]) == ("t", False, 1, False)
    assert s["sequential_hold_ms"] == 0.5 and t["sequential_hold_ms"] is None
    assert s["capacity"] == 15 and s["busy_connections"] == 1.5 and s["ceiling_rps"] == 1000


def test_pool_capacity_is_read_from_the_pool():
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool, QueuePool, StaticPool

    url = "sqlite:///:memory:"
    assert hold.capacity(create_engine(url, poolclass=QueuePool, pool_size=5, max_overflow=10).pool) == 15
    assert hold.capacity(create_engine(url, poolclass=QueuePool, max_overflow=-1).pool) is None
    assert hold.capacity(create_engine(url, poolclass=NullPool).pool) is None
    assert hold.capacity(create_engine(url, poolclass=StaticPool).pool) == 1


def _two_scopes_app(url: str):
    """A default-scope `yield` session (closed after the response) and a `scope="function"` one (closed before)."""
    from fastapi import Depends, FastAPI
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import sessionmaker

    maker = sessionmaker(create_engine(url))
    app = FastAPI()

    def get_db():
        with maker() as session:
            yield session

    @app.get("/after")
    def after(db=Depends(get_db)):
        return db.execute(text("SELECT 1")).scalar()

    @app.get("/before")
    def before(db=Depends(get_db, scope="function")):
        return db.execute(text("SELECT 1")).scalar()

    @app.get("/none")
    def none():
        return 1

    return app


def test_the_recorder_sees_where_each_scope_returns_its_connection(tmp_path):
    """Ordering, not timing: the default scope checks in after the last body went out, scope="function" before."""
    import anyio
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from experiments.harness.serving import serve

    recorder = hold.Recorder(_two_scopes_app(f"sqlite:///{tmp_path / 'hold.db'}"))
    had_events = Engine._has_events  # another test's class-level listener may have set it for good

    async def main():
        async with serve(recorder, set()) as served:
            return {
                path: await recorder.measure(served.client, path, requests=5) for path in ("/after", "/before", "/none")
            }

    found = anyio.run(main)
    assert found["/after"]["hold_ms"] > 0 and found["/before"]["hold_ms"] > 0
    assert found["/after"]["after_response_share"] > 0 and found["/before"]["after_response_share"] == 0
    assert all(0 < found[p]["sql_share"] < 1 and found[p]["checkouts_per_request"] == 1 for p in ("/after", "/before"))
    assert found["/none"] == {**found["/none"], "hold_ms": 0, "sql_share": None, "checkouts_per_request": 0}
    assert all(s["errors"] == 0 and s["open_at_end"] == 0 and s["requests"] == 5 for s in found.values())
    # the listeners are gone after each batch, and engines no longer dispatch events for them
    assert not event.contains(Pool, "checkout", recorder._checkout) and Engine._has_events is had_events


def test_hold_rows_for_every_app_and_kind_of_a_run(inprocess):
    doc, out = inprocess
    rows = {(r["app"], r["kind"]): r for r in doc["throughput"]["hold"]}
    for app in (*BASELINES, GOOD, SLOW):
        for kind, path in (("def", "/sync/tag"), ("async", "/async/tag")):
            row = rows[app, kind]
            assert (row["path"], row["rounds"], row["requests"], row["errors"]) == (path, 2, 40, 0), row
            assert row["hold_ms"]["low"] <= row["hold_ms"]["median"] <= row["hold_ms"]["high"]
            if app == "baseline:no_database":
                assert row["hold_ms"]["median"] == 0 and row["sql_share"] is None
                continue
            assert row["hold_ms"]["median"] > 0 and row["checkouts_per_request"] >= 1
            assert 0 < row["sql_share"] <= 1 and 0 <= row["after_response_share"] <= 1
            assert set(row["ceiling_rps"]) == {"5", "20"} and all(v > 0 for v in row["ceiling_rps"].values())
            if app != "baseline:raw_connection":
                assert row["ratio_to_raw"]["low"] <= row["ratio_to_raw"]["median"] <= row["ratio_to_raw"]["high"]
    assert rows[GOOD, "def"]["after_response_share"] == 0  # the template closes its session when the endpoint returns
    assert not doc["throughput"]["hold_under_load"]  # in-process only
    report = (out / "REPORT.md").read_text()
    assert "### Connection hold time" in report and f"| `{SLOW}` | `async def` | `/async/tag` |" in report


def test_hold_under_load_is_recorded_in_server_mode(server):
    doc, out = server
    rows = [r for r in doc["throughput"]["hold_under_load"] if r["app"] == SLOW]
    assert {(r["kind"], r["concurrency"]) for r in rows} == {(k, c) for k in ("read", "write") for c in (1, 8)}
    for r in rows:
        # the template's engine has SQLAlchemy's default queue pool, 5 + 10 overflow; 8 clients cannot fill it
        assert r["capacity"] == 15 and not r["above_pool"] and r["rounds_checked"] == 2
        assert r["hold_ms"]["median"] > 0 and r["ceiling_rps"] > r["rps"] > 0 and r["within_ceiling"]
    assert "No read cell was measured at a concurrency above its app's pool" in (out / "REPORT.md").read_text()


def test_the_hold_tables_are_rendered_from_the_doc_alone():
    raw = "baseline:raw_connection"
    holds = summarize_hold(
        {
            (raw, "def", "/sync/tag"): {0: _hold_sample(0.1)},
            ("s", "def", "/sync/tag"): {0: _hold_sample(0.5, after=0.25)},
        },
        [raw, "s"],
    )
    window = {
        "window_s": 1.0,
        "requests": 100,
        "connection_s": 2.0,
        "hold_ms": 20.0,
        "capacity": 15,
        "ceiling_rps": 750.0,
        "pools": [],
    }
    loaded = summarize_under_load(
        {("server", "s", "read", "/sync/tag", level): [{"rps": 100.0, "hold": window}] * 2 for level in (8, 32, 64)},
        holds,
    )
    tp = {
        "plan": {"levels": [8], "rounds": 1, "seconds": 0.1, "hold_requests": 20},
        "apps": [],
        "cells": [],
        "errors": [],
        "load_average": {"before": [0, 0, 0], "after": [0, 0, 0]},
        "duration_s": 1,
        "clients": {},
        "hold_settings": {"warmup": 3, "pools": [5, 20], "tolerance": 0.05, "duration_s": 0.1},
        "hold": holds,
        "hold_under_load": loaded,
    }
    text = "\n".join(throughput_section(tp))
    assert "### Connection hold time" in text and "Little's law" in text
    assert (
        "| `s` | `def` | `/sync/tag` | 0.500 [0.500, 0.500] | 5.00 [5.00, 5.00] | 20 % | 25 % | 10,000 | 40,000 |"
        in text
    )
    # only the highest concurrency above the pool (15) is shown
    assert (
        "| `s` | `/sync/tag` | 64 | 15 | 20.000 [20.000, 20.000] | 0.500 | 2.0 | 750 | 100 | 0.13 | yes (2 of 2) |"
        in text
    )
    assert "| `s` | `/sync/tag` | 32 |" not in text
    assert throughput_section(tp) == throughput_section(copy.deepcopy(tp))
