"""The harness survives the strategies it judges: broken, hanging and crashing modules cost their own rows only."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from fastapi import FastAPI

from experiments.harness.serving import serve
from experiments.harness.watch import SLOW_CAP, Watch, answered
from tests.running import (
    ALIAS,
    FIXTURES,
    ROOT,
    TEMPLATE,
    compare,
    processes_in_group,
    processes_mentioning,
    rows_by_pair,
    template_with,
)

GOOD = TEMPLATE.read_text()
LIFESPAN_RAISES = template_with(
    (
        '    engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)\n',
        '    raise RuntimeError("cannot reach the database")\n',
    )
)


def with_route(body: str, path: str = "/async/tag") -> str:
    """The template with the probe route at `path` hand-wired to `body`: the harness mounts the others around it."""
    header = "async def" if path.startswith("/async/") else "def"
    return (
        GOOD + f'\n\n@app.get("{path}")\n{header} tag(tag: str, delay: float, query: bool, db: SessionDep):\n{body}\n'
    )


HOSTILE = {
    "good": GOOD,
    "syntax_error": "def broken(:\n",
    "import_error": "import a_module_that_does_not_exist\n",
    "no_app": '"""defines everything but the app"""\nAPP = None\n',
    # No session source, so nothing is mounted: it hand-wires /async/tag only, and GET /same is missing.
    "missing_route": template_with((ALIAS, 'SessionDep = Depends(get_db, scope="function")'))
    + '\n\nfrom experiments import probes\n\n\n@app.get("/async/tag")\n'
    "async def tag(tag: str, delay: float, query: bool, db: Annotated[Session, SessionDep]):\n"
    "    return await probes.tag_async(db, tag, delay, query)\n",
    "lifespan_raises": LIFESPAN_RAISES,
    "crashes": with_route("    import os\n\n    os._exit(3)"),
    "hangs": with_route("    import time\n\n    time.sleep(3600)"),  # blocks the event loop
    "hangs_in_a_thread": with_route("    import time\n\n    time.sleep(3600)", "/sync/tag"),  # the loop keeps running
    "hangs_at_import": "import time\n\ntime.sleep(3600)\n",
    "exits_at_import": "import os\n\nos._exit(7)\n",
    "needs_a_library": '"""needs a library"""\nREQUIRES = ("a-library-nobody-installed>=1.0",)\nimport a_library\n',
    "warns": 'import warnings\n\nwarnings.warn("this API is deprecated", DeprecationWarning)\n' + GOOD,
}
CHECKS = ("isolation_async", "isolation_threadpool", "same_session_in_request")
TIMEOUT_S = 16


def a_library_with_a_pytest_plugin(where: Path) -> Path:
    """An installed distribution whose pytest plugin (autoloaded by entry point) breaks at load, as a library
    under measurement may ship: the check processes must not load it."""
    (where / "broken_plugin.py").write_text('raise RuntimeError("a pytest plugin the harness must not load")\n')
    dist = where / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\nbroken = broken_plugin\n")
    return where


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    strategies = tmp_path_factory.mktemp("hostile-strategies")
    for name, source in HOSTILE.items():
        (strategies / f"{name}.py").write_text(source)
    out = tmp_path_factory.mktemp("hostile-out")
    plugin = a_library_with_a_pytest_plugin(tmp_path_factory.mktemp("site"))
    scratch = tmp_path_factory.mktemp("tmpdir")  # TMPDIR of the run: what its processes leave there is seen
    started = time.monotonic()
    done = compare(out, "--strategies-dir", str(strategies), "--timeout", str(TIMEOUT_S),
                   *(arg for check in CHECKS for arg in ("--check", check)),
                   env={"PYTHONPATH": str(plugin), "TMPDIR": str(scratch)})  # fmt: skip
    return done, rows_by_pair(out), time.monotonic() - started, str(strategies), scratch


def test_run_completes_and_exits_zero(hostile_run):
    done, rows, elapsed, *_ = hostile_run
    assert done.returncode == 0, done.stderr
    assert len(rows) == len(HOSTILE) * len(CHECKS)
    assert elapsed < 2 * TIMEOUT_S + 60 * len(HOSTILE), "bounded by the timeouts, not by the hang"


def test_good_strategy_keeps_its_full_rows(hostile_run):
    _, rows, *_ = hostile_run
    for check in CHECKS:
        assert rows[("good", check)]["outcome"] == "passed"


@pytest.mark.parametrize(
    ("strategy", "check", "says"),
    [
        ("syntax_error", "isolation_async", "syntax_error.py: import failed (line 1): SyntaxError"),
        ("import_error", "isolation_async", "import_error.py: import failed (line 1): ModuleNotFoundError"),
        ("no_app", "same_session_in_request", "no_app.py: defines no `app`"),
        (
            "missing_route",
            "same_session_in_request",
            "missing_route.py: no route GET /same; declare where its endpoints get their session",
        ),
        ("lifespan_raises", "isolation_async", "RuntimeError"),
        ("crashes", "isolation_async", "exited with code 3"),
    ],
)
def test_broken_strategy_gets_a_one_line_error(hostile_run, strategy, check, says):
    _, rows, *_ = hostile_run
    row = rows[(strategy, check)]
    assert row["outcome"] == "error"
    assert says in row["reason"]
    assert "\n" not in row["reason"]


@pytest.mark.parametrize(
    ("strategy", "says"),
    [
        ("hangs_at_import", "hangs_at_import.py: import did not finish within 20 s (process killed)"),
        ("exits_at_import", "exits_at_import.py: the process importing it exited with code 7"),
        ("syntax_error", "syntax_error.py: import failed (line 1): SyntaxError"),
    ],
)
def test_a_module_that_cannot_be_imported_costs_one_preflight_not_a_timeout_per_check(hostile_run, strategy, says):
    _, rows, *_ = hostile_run
    found = [rows[(strategy, check)] for check in CHECKS]
    assert all(row["outcome"] == "error" and says in row["reason"] for row in found), found
    assert all(row["duration_s"] == 0 for row in found), "decided once by the import preflight, before any check"


def test_a_module_whose_requirements_are_missing_is_skipped_with_where_to_measure_it(hostile_run):
    _, rows, *_ = hostile_run
    for check in CHECKS:
        row = rows[("needs_a_library", check)]
        assert row["outcome"] == "skipped", row
        assert "needs a-library-nobody-installed>=1.0 (installed here: none)" in row["reason"]
        assert "no lock file of this repository installs it" in row["reason"], row


def test_a_request_that_never_returns_is_a_finding_not_an_error(hostile_run):
    """The `def` endpoint sleeps for ever in a threadpool thread: the check is failed, with the requests counted."""
    _, rows, *_ = hostile_run
    row = rows[("hangs_in_a_thread", "isolation_threadpool")]
    assert row["outcome"] == "failed", row
    assert row["kinds"]["def"]["metrics"]["unanswered_requests"] > 0
    assert "no answer within 10 s" in row["evidence"] and "event loop responsive" in row["evidence"]


def test_a_loop_blocked_for_good_is_a_finding_not_an_error(hostile_run):
    """The `async def` endpoint sleeps for ever on the event loop: nothing past that can run, and the row fails
    saying how long the loop was blocked and what was in flight."""
    _, rows, *_ = hostile_run
    row = rows[("hangs", "isolation_async")]
    assert row["outcome"] == "failed", row
    metrics = row["kinds"]["async"]["metrics"]
    assert metrics["loop_blocked_s"] >= TIMEOUT_S / 2 and metrics["requests_in_flight"] == 50
    assert "s with 50 requests in flight (GET /async/tag)" in row["evidence"]


def test_a_kind_that_ends_its_process_leaves_the_other_kind_measured(tmp_path):
    """The `def` endpoint never answers, which ends the check process once its row is written; the `async def`
    kind is then measured in a process of its own."""
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "hangs_in_a_thread.py").write_text(HOSTILE["hangs_in_a_thread"])
    done = compare(tmp_path / "out", "--strategies-dir", str(strategies), "--check", "carryover_sequential")
    assert done.returncode == 0, done.stderr
    row = rows_by_pair(tmp_path / "out")[("hangs_in_a_thread", "carryover_sequential")]
    assert row["kinds"]["def"]["outcome"] == "failed" and row["kinds"]["def"]["metrics"]["unanswered_requests"] > 0
    assert row["kinds"]["async"]["outcome"] == "passed", row


def test_warnings_of_the_code_under_measurement_are_shown_not_raised(hostile_run):
    _, rows, *_ = hostile_run
    row = rows[("warns", "isolation_async")]
    assert row["outcome"] == "passed", row
    assert "DeprecationWarning: this API is deprecated (warns.py:3)" in row["warnings"]


def test_breakage_is_confined_to_the_broken_route(hostile_run):
    """A strategy whose /async/tag crashes or hangs still gets measured on /same."""
    _, rows, *_ = hostile_run
    assert rows[("missing_route", "isolation_async")]["outcome"] == "passed"
    assert rows[("crashes", "same_session_in_request")]["outcome"] == "passed"
    assert rows[("hangs", "same_session_in_request")]["outcome"] == "passed"


def test_no_process_survives_the_run(hostile_run):
    *_, strategies, _ = hostile_run
    assert processes_mentioning(strategies) == []


def test_the_run_has_reaped_its_fork_server_when_it_exits(tmp_path):
    """The fork server and the resource tracker are stopped before the run exits, not left to notice it has gone:
    at the moment the run's exit is seen, no process of its group is left, not even one on its way out."""
    run = subprocess.Popen(
        [sys.executable, "-m", "experiments", "--out", str(tmp_path / "out"), "--throughput", "off",
         "--strategy", "yield_dependency", "--check", "same_session_in_request", "--quiet"],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, err = run.communicate(timeout=120)
    left = processes_in_group(run.pid)
    assert run.returncode == 0, err
    assert left == []


def test_no_scratch_directory_survives_a_module_that_exits_or_hangs_at_import(hostile_run):
    *_, scratch = hostile_run
    assert list(scratch.glob("sessionbench-*")) == []


def test_unknown_strategy_exits_nonzero_listing_known_names(tmp_path):
    done = compare(tmp_path, "--strategies-dir", str(FIXTURES), "--strategy", "nope")
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown strategy 'nope'; known: ")
    assert "one_global_session, " in done.stderr and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_second_run_in_the_same_output_directory_is_refused(tmp_path):
    with open(tmp_path / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = compare(tmp_path, "--strategies-dir", str(FIXTURES))
    assert done.returncode == 2
    assert "another run is writing here" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_keeps_its_rows_and_says_incomplete(tmp_path, signum):
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments", "--out", str(tmp_path), "--strategies-dir", str(FIXTURES)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    results = tmp_path / "results.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (results.exists() and json.loads(results.read_text())["results"]):
        time.sleep(0.2)
    proc.send_signal(signum)
    stdout, _ = proc.communicate(timeout=60)
    doc = json.loads(results.read_text())
    assert proc.returncode == 130
    assert doc["complete"] is False and doc["results"]
    assert "INCOMPLETE" in (tmp_path / "REPORT.md").read_text()
    assert "INCOMPLETE" in stdout
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.anyio
async def test_a_request_the_app_keeps_computing_is_slow_not_stuck():
    """Past the bound, a request is waited for while the process computes (up to SLOW_CAP bounds) and is unanswered
    once the process sits idle: the verdict does not hang on how loaded the machine was."""
    app = FastAPI()

    @app.get("/compute")
    def compute(seconds: float):
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            sum(range(1000))
        return {}

    @app.get("/wait")
    async def wait(seconds: float):
        await anyio.sleep(seconds)
        return {}

    bound = 0.2
    watch = Watch(bound_s=bound, busy_window_s=0.05)
    async with serve(app, set(), watch) as served:
        slow = await served.client.get("/compute", params={"seconds": 2 * bound})
        assert answered(slow) and slow.status_code == 200 and watch.unanswered == []
        idle = await served.client.get("/wait", params={"seconds": 10 * bound})
        endless = await served.client.get("/compute", params={"seconds": 3 * SLOW_CAP * bound})
    assert not answered(idle) and not answered(endless)
    assert [u["request"] for u in watch.unanswered] == ["GET /wait", "GET /compute"]
    idle_at, endless_at = (u["at_s"] for u in watch.unanswered)
    assert endless_at - idle_at >= SLOW_CAP * bound, "waited for up to SLOW_CAP bounds while computing"
