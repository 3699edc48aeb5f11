"""Instructions per request under valgrind: CPU work is counted, waiting is not, a count repeats, no valgrind is said.

No timing assertions: instruction counts, compared between twins that differ in
one thing (tests/bench_strategies/: a middleware doing nothing, sleeping 5 ms, or
a fixed amount of arithmetic), on the cheapest route (`/nodb`) to keep this short.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest

from experiments.throughput.instructions import PLANS, _cases, summarize
from report.instructions import settled
from report.render import render
from tests.running import ROOT, compare, processes_mentioning

BENCH = ROOT / "tests" / "bench_strategies"
TWIN, SLEEPS, WORKS = "awake_twin", "slowed_5ms", "busy_work"
SMALL = ["--no-checks", "--throughput", "off", "--instructions", "full", "--instruction-kinds", "nodb",
         "--instruction-levels", "1", "--instruction-repeats", "3", "--instruction-requests", "5"]


def _require_valgrind() -> None:
    """Skip where valgrind is not installed, except in CI, whose .ci/run installs it."""
    if not shutil.which("valgrind") and not os.environ.get("CI"):
        pytest.skip("valgrind is not installed (Debian: apt-get install valgrind)")


def _count(out, *args) -> dict:
    done = compare(out, "--strategies-dir", str(BENCH), *SMALL, *args, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not processes_mentioning(str(out)), "a valgrind process outlived the run"
    return json.loads((out / "results.json").read_text())


def _cell(doc, app) -> dict:
    (cell,) = [c for c in doc["instructions"]["cells"] if c["app"] == app]
    return cell


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    _require_valgrind()
    out = tmp_path_factory.mktemp("instructions")
    return _count(out), out


def test_every_app_is_counted_with_a_spread_and_ratios(counted):
    doc, _ = counted
    part = doc["instructions"]
    assert not part["errors"], part["errors"]
    assert {c["app"] for c in part["cells"]} == {TWIN, SLEEPS, WORKS, "baseline:no_database", "baseline:raw_connection"}
    for c in part["cells"]:
        spread = c["per_request"]
        assert c["repeats"] == 3 and 0 < spread["min"] <= spread["median"] <= spread["max"], c
        assert c["app"].startswith("baseline:") or (c["vs_raw"]["min"] <= c["vs_raw"]["median"] <= c["vs_raw"]["max"])
    assert part["conditions"]["hash_seed"] == "0"


def test_cpu_work_counts_more_than_its_twin(counted):
    doc, _ = counted
    works, twin = _cell(doc, WORKS), _cell(doc, TWIN)
    assert works["per_request"]["min"] > twin["per_request"]["max"] and settled(works, twin), (works, twin)


def test_sleeping_is_not_ranked_costlier_than_its_twin(counted):
    doc, _ = counted
    sleeps, twin = _cell(doc, SLEEPS), _cell(doc, TWIN)
    assert sleeps["per_request"]["min"] <= twin["per_request"]["max"], (sleeps, twin)


def test_a_second_count_of_one_app_agrees_within_the_stated_spread(counted, tmp_path):
    first, _ = counted
    again = _cell(_count(tmp_path, "--strategy", TWIN), TWIN)["per_request"]
    before = _cell(first, TWIN)["per_request"]
    assert before["min"] <= again["max"] and again["min"] <= before["max"], (before, again)


def test_report_has_the_section_and_its_plot(counted):
    doc, out = counted
    report = (out / "REPORT.md").read_text()
    assert report == render(doc)
    assert "## CPU cost per request" in report and "](instructions.png)" in report
    assert (out / "instructions.png").read_bytes().startswith(b"\x89PNG")


def test_without_valgrind_the_report_says_so(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no valgrind on it; the harness runs its own interpreter by path
    done = subprocess.run([sys.executable, "-m", "experiments", "--out", str(tmp_path), "--strategies-dir", str(BENCH),
                           "--strategy", TWIN, *SMALL], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert "valgrind is not installed" in doc["instructions"]["unavailable"]
    assert "apt-get install valgrind" in (tmp_path / "REPORT.md").read_text()


def test_ctrl_c_while_counting_keeps_results_and_leaves_no_process(tmp_path):
    _require_valgrind()
    cmd = [sys.executable, "-m", "experiments", "--out", str(tmp_path), "--strategies-dir", str(BENCH), "--strategy", TWIN, *SMALL]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            for line in proc.stdout:
                if "counted under valgrind" in line:
                    break
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130
        finally:
            proc.kill()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["complete"] is False and "instructions" in doc["note"]
    assert not processes_mentioning(str(tmp_path))


def test_per_request_subtracts_the_empty_batch_and_ratios_pair_repeats():
    """(I(N) - I(0)) / N per repeat; a ratio divides counts of the same repeat."""
    plan = replace(PLANS["quick"], kinds=("nodb",), requests=10)
    apps = [SimpleNamespace(id=a) for a in ("baseline:no_database", "baseline:raw_connection", "s")]
    per_request = {"baseline:no_database": 1e6, "baseline:raw_connection": 2e6, "s": 3e6}
    counts = {case["id"]: 5e5 + (per_request[case["app"]] * (1 + case["repeat"]) * 10 if case["requests"] else 0)
              for case in _cases([[a.id, ""] for a in apps], asdict(plan))}
    cells = {c["app"]: c for c in summarize(counts, plan, apps)}
    assert cells["s"]["per_request"] == {"median": 6e6, "min": 3e6, "max": 9e6}
    assert cells["s"]["per_repeat"] == [3e6, 6e6, 9e6] and cells["s"]["empty_batch"] == 5e5
    assert cells["s"]["vs_raw"] == {"median": 1.5, "min": 1.5, "max": 1.5}
    assert cells["s"]["vs_nodb"]["median"] == 3.0 and "vs_nodb" not in cells["baseline:no_database"]
