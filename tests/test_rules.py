"""A rule is data: one object gives the verdict, its words and the metrics it reads; `judge` is pure."""

from __future__ import annotations

import pytest

from experiments.checks import registry
from experiments.rules import Rule, Term, any_positive, judge, permanent
from report.format import FAILED, PASSED, SEVERITIES

CHECKS = registry()


def test_a_rule_says_what_it_judges_and_in_words():
    rule = Rule((Term("max_lag_ms", "<", 200), Term("routes_overridable", "=", "routes")), "why")
    assert rule.words() == "passed when max_lag_ms < 200 and routes_overridable = routes: why"
    assert rule.metrics == ("max_lag_ms", "routes_overridable", "routes")
    assert rule({"max_lag_ms": 10, "routes_overridable": 2, "routes": 2})
    assert not rule({"max_lag_ms": 10, "routes_overridable": 1, "routes": 2})


def test_judge_reads_only_the_numbers():
    check = CHECKS["lost_writes"]
    clean = {"rows_missing": 0, "rows_from_failed_requests": 0, "writer_errors": 0}
    assert judge(check, clean) == PASSED
    assert judge(check, {**clean, "rows_missing": 1}) == FAILED
    assert judge(check, {**clean, "unanswered_requests": 2}) == FAILED  # the harness's own rule, under every check
    assert judge(check, {"loop_blocked_s": 9.0}) == FAILED  # the check's numbers were never measured


def test_a_failure_that_does_not_go_away_is_told_apart():
    check = CHECKS["pool_exhaustion"]
    assert not permanent(check, {"server_errors": 45, "recovery_failed": 0})
    assert permanent(check, {"server_errors": 45, "recovery_failed": 6})
    assert permanent(check, {"server_errors": 0, "unanswered_requests": 55})
    assert any_positive("a", "b").words() == "permanent when a > 0 or b > 0"


@pytest.mark.parametrize("check", CHECKS.values(), ids=list(CHECKS))
def test_every_check_declares_a_severity_and_a_rule_over_its_metrics(check):
    assert check.severity in SEVERITIES
    assert check.rule.words().startswith("passed when ")
