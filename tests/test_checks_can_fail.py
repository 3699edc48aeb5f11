"""Every check flags a known-bad strategy and passes a known-good one; a check that cannot fail is a defect."""

from __future__ import annotations

import pytest

from experiments.checks import registry
from tests.running import GOOD

# check id -> the fixture strategy (tests/fixture_strategies/) it must flag
MUST_FLAG = {
    "isolation_async": "one_global_session",
    "isolation_threadpool": "one_global_session",
    "carryover_sequential": "threadlocal_never_removed",
    "same_session_in_request": "contextvar_in_sync_dependency",
    "lost_writes": "one_global_session",
}


def test_every_check_has_a_known_bad_strategy():
    assert set(MUST_FLAG) == set(registry()), "add the new check's known-bad fixture to MUST_FLAG"


@pytest.mark.parametrize("check", sorted(MUST_FLAG))
def test_check_flags_known_bad(fixture_run, check):
    row = fixture_run[(MUST_FLAG[check], check)]
    assert row["outcome"] == "failed", row
    assert not registry()[check].passes(row["metrics"])


@pytest.mark.parametrize("check", sorted(MUST_FLAG))
def test_check_passes_known_good(fixture_run, check):
    row = fixture_run[(GOOD, check)]
    assert row["outcome"] == "passed", row


def test_undeclared_routes_are_skipped_with_the_reason(fixture_run):
    row = fixture_run[("threadlocal_never_removed", "lost_writes")]
    assert row["outcome"] == "skipped"
    assert "/sync/write not served: not what this fixture is for" in row["reason"]


def test_a_shared_session_is_counted_not_just_flagged(fixture_run):
    """Numbers, not a boolean: nearly every request saw a foreign tag, all on one session."""
    metrics = fixture_run[("one_global_session", "isolation_async")]["metrics"]
    assert metrics["foreign_tag_seen"] > metrics["requests"] // 2
    assert metrics["distinct_sessions"] == 1
