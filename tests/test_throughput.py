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

from experiments.throughput.sweep import median_interval, summarize
from report.__main__ import main as report_main
from report.render import render
from tests.running import ROOT, TEMPLATE, compare, processes_mentioning

SLOWED = ROOT / "tests" / "bench_strategies" / "slowed_5ms.py"
GOOD, SLOW, BROKEN = "session_per_request", "slowed_5ms", "broken"
BASELINES = {"baseline:no_database", "baseline:raw_connection"}
SHORT = ["--no-checks", "--throughput", "quick", "--levels", "1,8", "--rounds", "2", "--seconds", "0.1",
         "--session-cost-rounds", "3",
         "--instructions", "off"]  # counted in tests/test_instructions.py


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
    samples = {("inprocess", app, "nodb", "/nodb", 8): [{**sample, "rps": r} for r in rps] for app, rps in rounds.items()}
    (cell,) = [c for c in summarize(samples, ("inprocess",)) if c["app"] == "s"]
    assert cell["vs_raw"] == {"median": 0.5, "low": 0.5, "high": 0.5, "confidence": 0.5, "indistinguishable": False}
    assert cell["vs_nodb"]["median"] == 0.125
