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
import time
from dataclasses import asdict, replace
from types import SimpleNamespace

import pytest

from experiments.throughput.instruction_count import PER_APP_S, PLANS, START_S, _counts, cases, summarize
from report.instructions import settled
from report.render import render
from tests.running import ROOT, compare, processes_mentioning

BENCH = ROOT / "tests" / "bench_strategies"
TWIN, AGAIN, SLEEPS, WORKS, BROKEN = "awake_twin", "awake_twin_again", "slowed_5ms", "busy_work", "broken"
SMALL = [
    "--no-checks",
    "--throughput",
    "off",
    "--instruction-kinds",
    "nodb",
    "--instruction-levels",
    "1",
    "--instruction-requests",
    "5",
]


def _require_valgrind() -> None:
    """Skip where valgrind is not installed, except in CI, whose .ci/run installs it."""
    if not shutil.which("valgrind") and not os.environ.get("CI"):
        pytest.skip("valgrind is not installed (Debian: apt-get install valgrind)")


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """The full plan, cut down: two repeats, each a process per share; the twin and its copy land in different ones."""
    _require_valgrind()
    strategies, out = tmp_path_factory.mktemp("bench"), tmp_path_factory.mktemp("instructions")
    for name in (TWIN, SLEEPS, WORKS):
        shutil.copy(BENCH / f"{name}.py", strategies)
    shutil.copy(BENCH / f"{TWIN}.py", strategies / f"{AGAIN}.py")
    (strategies / f"{BROKEN}.py").write_text("import a_module_that_does_not_exist\n")
    done = compare(
        out,
        "--strategies-dir",
        str(strategies),
        *SMALL,
        "--instructions",
        "full",
        "--instruction-repeats",
        "2",
        timeout=400,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not processes_mentioning(str(out)), "a valgrind process outlived the run"
    return json.loads((out / "results.json").read_text()), out


def _cell(doc, app) -> dict:
    (cell,) = [c for c in doc["instructions"]["cells"] if c["app"] == app]
    return cell


def test_every_app_is_counted_with_a_spread_and_ratios_but_a_broken_one(counted):
    doc, _ = counted
    part = doc["instructions"]
    (error,) = part["errors"]
    assert error["app"] == BROKEN and "a_module_that_does_not_exist" in error["reason"], part["errors"]
    assert error["reason"].startswith("import preflight: "), error
    assert {c["app"] for c in part["cells"]} == {
        TWIN,
        AGAIN,
        SLEEPS,
        WORKS,
        "baseline:no_database",
        "baseline:raw_connection",
    }
    for c in part["cells"]:
        spread = c["per_request"]
        assert c["repeats"] == 2 and 0 < spread["min"] <= spread["median"] <= spread["max"], c
        assert c["app"].startswith("baseline:") or c["vs_raw"]["min"] <= c["vs_raw"]["median"] <= c["vs_raw"]["max"]
    assert part["conditions"]["PYTHONHASHSEED"] == "0"


def test_cpu_work_counts_more_than_its_twin(counted):
    doc, _ = counted
    works, twin = _cell(doc, WORKS), _cell(doc, TWIN)
    assert works["per_request"]["min"] > twin["per_request"]["max"], (works, twin)
    assert settled(works, twin, doc["instructions"]["tolerance"])


def test_sleeping_is_not_ranked_costlier_than_its_twin(counted):
    doc, _ = counted
    sleeps, twin = _cell(doc, SLEEPS), _cell(doc, TWIN)
    costlier = sleeps["per_request"]["median"] > twin["per_request"]["median"]
    assert not (costlier and settled(sleeps, twin, doc["instructions"]["tolerance"])), (sleeps, twin)


def test_the_same_app_counted_in_other_processes_agrees_within_the_tolerance(counted):
    doc, _ = counted
    twin, again = _cell(doc, TWIN)["per_request"], _cell(doc, AGAIN)["per_request"]
    assert abs(again["median"] / twin["median"] - 1) <= doc["instructions"]["tolerance"], (twin, again)


def test_report_has_the_section_and_its_plot(counted):
    doc, out = counted
    report = (out / "REPORT.md").read_text()
    assert report == render(doc)
    assert "## CPU cost per request" in report and "](instructions.png)" in report
    assert (out / "instructions.png").read_bytes().startswith(b"\x89PNG")


def _quick(out, **kwargs):
    cmd = [
        sys.executable,
        "-m",
        "experiments",
        "--out",
        str(out),
        "--strategies-dir",
        str(BENCH),
        "--strategy",
        TWIN,
        *SMALL,
        "--instructions",
        "quick",
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_without_valgrind_the_report_says_so(tmp_path):
    with _quick(tmp_path, env={**os.environ, "PATH": str(tmp_path)}) as proc:  # no valgrind on PATH
        assert proc.wait(timeout=120) == 0, proc.stdout.read()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert "valgrind is not installed" in doc["instructions"]["unavailable"]
    assert "apt-get install valgrind" in (tmp_path / "REPORT.md").read_text()


def _first_batch_counted(proc, out) -> None:
    """Wait until the count has counted a batch: a callgrind dump of a finished batch, read as the count reads its
    results (`_counts`), is in its scratch directory, so valgrind runs this run's count, and the count is not done
    (its other batches are still to come). Bounded by the count's own allowance for a process to start and count its
    first app: a run that gets there no sooner is hung, and the test fails saying so instead of waiting for ever."""
    work, bound = out / ".work" / "instructions", START_S + PER_APP_S
    deadline = time.monotonic() + bound
    while True:
        try:
            if _counts(work):
                return
        except OSError:  # a dump went away between listing and reading it: not counted yet, look again
            pass
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before counting a batch:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no batch counted under valgrind within {bound} s; see {out / 'logs' / 'instructions'}")
        time.sleep(0.1)


def test_ctrl_c_while_counting_keeps_results_and_leaves_no_process(tmp_path):
    _require_valgrind()
    with _quick(tmp_path) as proc:
        try:
            _first_batch_counted(proc, tmp_path)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 130, proc.stdout.read()
        finally:
            proc.kill()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["complete"] is False and "instructions" in doc["note"], doc.get("note")
    assert not processes_mentioning(str(tmp_path))


@pytest.mark.parametrize("apart", [True, False], ids=["repeats-apart", "repeats-in-one-process"])
def test_per_request_subtracts_the_empty_batch_and_ratios_pair_repeats(apart):
    """(I(N) - I(0)) / N per repeat, I(0) being the empty batch of the repeat's process; a ratio divides counts of the
    same repeat."""
    plan = replace(PLANS["quick"], kinds=("nodb",), requests=10, repeats=3, repeats_apart=apart)
    apps = [SimpleNamespace(id=a) for a in ("baseline:no_database", "baseline:raw_connection", "s")]
    per_request = {"baseline:no_database": 1e6, "baseline:raw_connection": 2e6, "s": 3e6}
    counts = {}
    for repeat in range(3):
        switching = 5e5 * (1 + (repeat if apart else 0))  # what counting costs besides the requests, per process
        for case in cases([[a.id, ""] for a in apps], asdict(plan), [repeat]):
            counts[case["id"]] = switching + (per_request[case["app"]] * (1 + repeat) * 10 if case["requests"] else 0)
    cells = {c["app"]: c for c in summarize(counts, plan, apps)}
    assert cells["s"]["per_request"] == {"median": 6e6, "min": 3e6, "max": 9e6}
    assert cells["s"]["per_repeat"] == [3e6, 6e6, 9e6]
    assert cells["s"]["empty_batch"]["max"] == (1.5e6 if apart else 5e5)
    assert cells["s"]["vs_raw"] == {"median": 1.5, "min": 1.5, "max": 1.5}
    assert cells["s"]["vs_nodb"]["median"] == 3.0 and "vs_nodb" not in cells["baseline:no_database"]


def test_one_process_counts_one_empty_batch_per_app_and_level():
    plan = replace(PLANS["quick"], kinds=("read",), levels=(1, 8), repeats=2, repeats_apart=False)
    planned = cases([["s", ""]], asdict(plan), [0, 1])
    assert [c["id"] for c in planned if not c["requests"]] == ["s-c1-r0-empty", "s-c8-r0-empty"]


def test_a_difference_is_settled_only_beyond_the_spread_and_the_tolerance():
    def cell(median, low, high):
        return {"per_request": {"median": median, "min": low, "max": high}}

    assert settled(cell(100, 99, 101), cell(110, 109, 111), 0.02)
    assert not settled(cell(100, 99, 101), cell(101.5, 101.2, 101.8), 0.02)  # apart, but within what a second run moves
    assert not settled(cell(100, 90, 110), cell(108, 105, 111), 0.02)  # beyond the tolerance, ranges overlap
