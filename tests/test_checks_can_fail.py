"""Every check flags a known-bad strategy and passes a known-good one; a check that cannot fail is a defect.

A fixture strategy in tests/fixture_strategies/ declares the checks it must be
flagged by (`FLAGGED_BY`) and, where the template cannot pass a check, the
checks it must pass (`GOOD_FOR`).
"""

from __future__ import annotations

import pytest

from experiments.checks import registry
from experiments.rules import judge
from report.results import judged, measured_parts
from tests.running import GOOD, children_left, compare, known_bad, known_good, rows_by_pair

CHECKS = registry()
BAD = sorted((check, name) for check, names in known_bad().items() for name in names)


def rows_for(check: str, request) -> dict:
    """The fixture run that measured `check`: on PostgreSQL when it needs a server."""
    return request.getfixturevalue("server_fixture_run" if CHECKS[check].needs_server else "fixture_run")


def test_every_check_has_a_known_bad_strategy():
    assert set(known_bad()) == set(CHECKS), "declare the new check in a fixture strategy's FLAGGED_BY"


@pytest.mark.parametrize(("check", "strategy"), BAD)
def test_check_flags_known_bad(request, check, strategy):
    row = rows_for(check, request)[(strategy, check)]
    assert row["outcome"] == "failed", row
    failed = [m for kind, m in measured_parts(row).items() if judged(row, kind)["outcome"] == "failed"]
    assert failed and all(judge(CHECKS[check], m) == "failed" for m in failed)


GOOD_PAIRS = sorted((check, name) for check, names in known_good().items() for name in names)


def test_every_check_has_a_known_good_strategy():
    assert all(known_good()[check] for check in CHECKS), "declare GOOD_FOR in a fixture for a check the template fails"


@pytest.mark.parametrize(("check", "strategy"), GOOD_PAIRS)
def test_check_passes_known_good(request, check, strategy):
    row = rows_for(check, request)[(strategy, check)]
    assert row["outcome"] == "passed", row


def test_server_checks_are_skipped_on_sqlite(fixture_strategies, tmp_path):
    server_checks = [c for c in CHECKS.values() if c.needs_server]
    args = [arg for c in server_checks for arg in ("--check", c.id)]
    done = compare(tmp_path, "--strategies-dir", str(fixture_strategies), "--strategy", GOOD, *args, "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = rows_by_pair(tmp_path)
    for c in server_checks:
        assert rows[(GOOD, c.id)]["outcome"] == "skipped"
        assert "--db postgresql" in rows[(GOOD, c.id)]["reason"]


def test_undeclared_routes_are_skipped_with_the_reason(fixture_strategies, tmp_path):
    done = compare(tmp_path, "--strategies-dir", str(fixture_strategies), "--strategy", "threadlocal_never_removed",
                   "--check", "lost_writes", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    row = rows_by_pair(tmp_path)[("threadlocal_never_removed", "lost_writes")]
    assert row["outcome"] == "skipped"
    assert "/sync/write not served as `def` endpoints: not what this fixture is for" in row["reason"]
    assert (
        row["kinds"]["async"]["reason"]
        == "/async/write not served as `async def` endpoints: not what this fixture is for"
    )


def test_a_check_judges_each_kind_of_endpoint_on_its_own_numbers(fixture_run):
    """The fixture's `def` endpoints get a session each, its `async def` ones share one: one verdict per kind."""
    row = fixture_run[("one_session_for_async_endpoints", "lost_writes")]
    assert row["kinds"]["def"]["outcome"] == "passed", row
    assert (
        row["kinds"]["async"]["outcome"] == "failed"
        and row["kinds"]["async"]["metrics"]["rows_from_failed_requests"] > 0
    )
    assert row["outcome"] == "failed"  # the row as a whole: its worst kind


def test_a_thread_local_race_is_caught_in_every_round(fixture_run):
    """Each round of the threadpool burst catches the session handed to a second request, not only some runs."""
    row = fixture_run[("threadlocal_filled_in_dependency", "isolation_threadpool")]
    metrics = judged(row, "def")["metrics"]
    assert metrics["rounds"] == 3 and metrics["requests"] == 3 * metrics["threadpool_tokens"] * 2.5
    assert metrics["shared_concurrently"] > 0 and "per round of 100: " in row["evidence"]


def test_a_shared_session_is_counted_not_just_flagged(fixture_run):
    """Numbers, not a boolean: nearly every request saw a foreign tag, all on one session."""
    metrics = judged(fixture_run[("one_global_session", "isolation_async")], "async")["metrics"]
    assert metrics["foreign_tag_seen"] > metrics["requests"] // 2
    assert metrics["distinct_sessions"] == 1


def test_a_strategy_that_hangs_its_own_requests_fails_with_them_counted(fixture_run):
    """Sessions leaked per request exhaust the pool; the requests left waiting are the finding, not an error."""
    row = fixture_run[("task_session_removed_in_middleware", "carryover_sequential")]
    assert row["outcome"] == "failed", row
    assert sum(m.get("unanswered_requests", 0) for m in measured_parts(row).values()) >= 1
    assert "no answer within" in row["evidence"] and "connections checked out" in row["evidence"]


def test_servers_and_child_interpreters_are_gone_afterwards(server_fixture_run, fixture_run, tmp_path_factory):
    """uvicorn, its reload workers and the shutdown check's interpreters: none outlives its check."""
    assert children_left(under=tmp_path_factory.getbasetemp()) == []


def test_timing_checks_ran_pinned_to_a_core_and_say_which(fixture_run):
    import os

    timed = [row for (_, check), row in fixture_run.items() if CHECKS[check].exclusive and row["outcome"] != "skipped"]
    assert timed, "the fixture run measured no timing check"
    assert all(row["conditions"]["cpu"] in os.sched_getaffinity(0) for row in timed), timed
    untimed = [row for (_, check), row in fixture_run.items() if not CHECKS[check].exclusive]
    assert not any("cpu" in row.get("conditions", {}) for row in untimed)
