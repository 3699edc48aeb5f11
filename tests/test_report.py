"""The report: golden rendering, the results file's round trip and errors, claim verdicts, the CLI."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from experiments.checks import NEEDS_SERVER, registry
from experiments.harness import discovery
from report import answers, claims, plots, thread_claims
from report.locks import LOCK_VARIABLE, lock_state
from report.render import not_measured, render
from report.results import SCHEMA, ResultsError, ResultsFile, by_pair, combine, judged, load
from tests.running import ROOT

GOLDEN = ROOT / "tests" / "golden" / "REPORT.md"


@pytest.fixture
def doc() -> dict:
    """Two strategies × two checks, one row of each outcome, an interrupted run."""
    return {
        "schema": SCHEMA,
        "complete": False,
        "note": "interrupted by SIGINT after 4 of 10 rows",
        "environment": {
            "python": "3.11.7",
            "implementation": "CPython",
            "packages": {"fastapi": "0.121.0", "sqlalchemy": "2.0.36", "asgi-lifespan": None},
            "database": {"backend": "sqlite", "version": "3.45.1"},
            "cpu_count": 2,
            "platform": "Linux-6.1-x86_64",
            "git_sha": "a7c6598",
            "started_at": "2025-01-02T03:04:05+00:00",
            "command": "nox -s compare",
            "lock": {
                "file": "locks/default.txt",
                "sha256": "0123456789abcdef" * 4,
                "pins": 45,
                "differ": {"fastapi": {"locked": "0.121.1", "installed": "0.121.0"}},
            },
        },
        "strategies": [
            {
                "id": "global_scoped_session",
                "label": "A global thread-local scoped_session",
                "module": "strategies.global_scoped_session",
                "file": "strategies/global_scoped_session.py",
            },
            {
                "id": "yield_dependency",
                "label": "A session per request from a yield dependency",
                "module": "strategies.yield_dependency",
                "file": "strategies/yield_dependency.py",
            },
            {
                "id": "lifespan_dependency",
                "label": "`AsyncSession` `yield` dependency, engine in lifespan",
                "module": "strategies.lifespan_dependency",
                "file": "strategies/lifespan_dependency.py",
                "requires": ["a-library>=1.0"],
                "versions": {"a-library": "1.2"},
                "import_warnings": ["DeprecationWarning: old API (lib.py:3)"],
                "pattern": {
                    "def": "def get_db(request: Request):\n    with request.state.sessionmaker() as session:\n"
                    "        yield session"
                },
            },
        ],
        "checks": [
            {
                "id": "isolation_async",
                "title": "Concurrent `async def` requests each get their own session",
                "measures": "50 concurrent tag-sleep-read requests",
                "why": "coroutines are not threads",
                "rule": "passed when foreign_tag_seen = 0",
                "key": ["foreign_tag_seen"],
                "routes": ["/async/tag"],
                "timeout_s": 60.0,
                "column": "concurrent isolation",
                "kinds": ["async"],
            },
            {
                "id": "same_session_in_request",
                "title": "A dependency and its endpoint share one session",
                "measures": "20 concurrent requests",
                "why": "a request can span threads",
                "rule": "passed when mismatched = 0",
                "key": ["mismatched"],
                "routes": ["/same"],
                "timeout_s": 60.0,
                "pool": {"pool_size": 5, "max_overflow": 0, "pool_timeout": 1.0},
                "request_bound_s": 10.0,
                "column": "one session",
                "kinds": ["def", "async"],
            },
        ],
        "results": [
            {
                "strategy": "global_scoped_session",
                "check": "isolation_async",
                "outcome": "failed",
                "metrics": {"requests": 50, "foreign_tag_seen": 49, "distinct_sessions": 1},
                "evidence": "49 of 50 requests read back another request's tag | one session.",
                "duration_s": 0.8,
            },
            {
                "strategy": "global_scoped_session",
                "check": "same_session_in_request",
                "outcome": "error",
                "reason": "IllegalStateChangeError at session.py:12: already closing",
                "duration_s": 0.1,
            },
            {
                "strategy": "yield_dependency",
                "check": "isolation_async",
                "outcome": "passed",
                "metrics": {"requests": 50, "foreign_tag_seen": 0, "ratio": 1.23456},
                "evidence": "0 of 50 requests read back another request's tag.",
                "duration_s": 0.7,
            },
            {
                "strategy": "yield_dependency",
                "check": "same_session_in_request",
                "outcome": "skipped",
                "reason": "/same not served: no dependency takes the session",
                "duration_s": 0.0,
            },
            {
                "strategy": "lifespan_dependency",
                "check": "isolation_async",
                "outcome": "passed",
                "metrics": {"requests": 50, "foreign_tag_seen": 0},
                "evidence": "0 of 50.",
                "duration_s": 0.7,
            },
            combine(
                [
                    {
                        "strategy": "lifespan_dependency",
                        "check": "same_session_in_request",
                        "kind": "def",
                        "outcome": "passed",
                        "metrics": {"mismatched": 0},
                        "evidence": "0 of 20.",
                        "duration_s": 0.3,
                        "conditions": {
                            "pool": {"pool_size": 5, "max_overflow": 0, "pool_timeout": 1.0},
                            "as_declared": False,
                            "engines": [
                                {
                                    "driver": "sqlite",
                                    "database": "a.db",
                                    "class": "QueuePool",
                                    "pool_size": 5,
                                    "max_overflow": 0,
                                    "pool_timeout": 1.0,
                                    "as_declared": True,
                                },
                                {
                                    "driver": "sqlite",
                                    "database": "b.db",
                                    "class": "QueuePool",
                                    "pool_size": 20,
                                    "max_overflow": 0,
                                    "pool_timeout": 1.0,
                                    "as_declared": False,
                                },
                            ],
                        },
                    },
                    {
                        "strategy": "lifespan_dependency",
                        "check": "same_session_in_request",
                        "kind": "async",
                        "outcome": "skipped",
                        "reason": "/same not served as `async def` endpoints: served by a `def` endpoint",
                        "duration_s": 0.1,
                    },
                ]
            ),
        ],
        "throughput": throughput_part(["global_scoped_session", "yield_dependency", "lifespan_dependency"]),
    }


def _ratio(median: float) -> dict:
    return {
        "median": median,
        "low": median * 0.9,
        "high": median * 1.1,
        "confidence": 0.9688,
        "indistinguishable": median * 0.9 <= 1 <= median * 1.1,
    }


def throughput_part(strategies: list[str]) -> dict:
    """A quick plan's worth of cells: read and nodb at levels 1 and 8, strategy i at ratio 0.9 - 0.05 i to raw."""
    baselines = ["baseline:no_database", "baseline:raw_connection"]
    cells = []
    for kind, path in (("read", "/sync/tag"), ("read", "/async/tag"), ("nodb", "/nodb")):
        for level in (1, 8):
            for i, app in enumerate(baselines + strategies):
                ratio = {"baseline:no_database": 1.5, "baseline:raw_connection": 1.0}.get(app, 0.9 - 0.05 * (i - 2))
                rps = 1000 * ratio
                cell = {
                    "mode": "inprocess",
                    "app": app,
                    "kind": kind,
                    "path": path,
                    "concurrency": level,
                    "rounds": 5,
                    "rps": {"median": rps, "q1": rps * 0.95, "q3": rps * 1.05, "min": rps * 0.9, "max": rps * 1.1},
                    "p50_ms": level / ratio,
                    "p90_ms": 2 * level / ratio,
                    "p99_ms": 3 * level / ratio,
                    "errors": 0,
                    "client_cpu": 0.9,
                }
                if app != "baseline:raw_connection":
                    cell["vs_raw"] = _ratio(ratio)
                if app != "baseline:no_database":
                    cell["vs_nodb"] = _ratio(ratio / 1.5)
                cells.append(cell)
    return {
        "plan": {
            "levels": [1, 8],
            "rounds": 5,
            "seconds": 0.08,
            "warmup_s": 0.02,
            "modes": ["inprocess"],
            "benchmark_rounds": 10,
        },
        "apps": [{"id": a, "label": a, "baseline": a in baselines} for a in baselines + strategies],
        "clients": {"inprocess": "httpx.AsyncClient over ASGITransport"},
        "server": None,
        "load_average": {"before": [0.5, 0.4, 0.3], "after": [1.5, 0.8, 0.4]},
        "cells": cells,
        "errors": [],
        "duration_s": 42.0,
    }


def test_render_matches_golden(doc):
    text = render(doc)
    assert render(copy.deepcopy(doc)) == text
    if os.environ.get("SESSIONBENCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_render_complete_run_has_no_banner(doc):
    doc["complete"] = True
    del doc["note"]
    assert "INCOMPLETE" not in render(doc)


def _wide(n_strategies: int = 15, n_checks: int = 15) -> dict:
    """A run of the size the report must stay readable at: every outcome somewhere, long metric walls."""
    strategies = [
        {"id": f"strategy_number_{i}", "label": f"S{i}", "file": f"strategies/s{i}.py"} for i in range(n_strategies)
    ]
    checks = [
        {
            "id": f"check_about_thing_{j}",
            "title": f"Check {j}",
            "measures": "m",
            "why": "w",
            "rule": "r",
            "key": ["bad_things", "other_things"],
        }
        for j in range(n_checks)
    ]
    outcomes = ("passed", "failed", "error", "skipped")
    results = []
    for i, strategy in enumerate(strategies):
        for j, check in enumerate(checks):
            outcome = "passed" if i < 2 else outcomes[(i + j) % 4]
            row = {"strategy": strategy["id"], "check": check["id"], "outcome": outcome}
            if outcome in ("passed", "failed"):
                row |= {
                    "metrics": {"bad_things": (outcome == "failed") * (i + j), "other_things": 3, "more": [1, 2]},
                    "evidence": "a long sentence | with a pipe " * 5,
                }
            else:
                row["reason"] = f"reason {j % 3}"
            results.append(row)
    return {
        "schema": SCHEMA,
        "complete": True,
        "environment": {},
        "strategies": strategies,
        "checks": checks,
        "results": results,
        "throughput": throughput_part([s["id"] for s in strategies]),
    }


def _section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((n for n in range(start, len(lines)) if lines[n].startswith("## ")), len(lines))
    return lines[start:end]


def test_report_answers_first_with_marks_only():
    text = render(_wide())
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## What to use", "## Verdicts", "## Environment"]
    matrix = [line for line in _section(text, "## Verdicts") if line.startswith("| `")]
    assert len(matrix) == 15
    for line in matrix:
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        assert len(cells) == 2 + 15 and all(re.fullmatch(r"✅|❌|⚠️|➖|—|\d+", c) for c in cells), line
    top = "\n".join(_section(text, "## Verdicts") + _section(text, "## What to use"))
    assert "a long sentence" not in top and "other_things" not in top  # the evidence and metric walls come later
    assert "a long sentence" in text and "other_things" in text


def _kinds_doc() -> dict:
    """Four strategies, a check per kind of endpoint, one judging both kinds apart, one of the whole app.

    `sync_only` passes every `def` verdict and serves no `async def` endpoint; `both_kinds` passes everything;
    `blocks_loop` fails the async-only check; `leaks` fails the whole-app one."""
    checks = [
        {"id": "pool_burst", "title": "Burst", "rule": "passed when errors = 0", "key": ["errors"], "kinds": ["def"]},
        {"id": "loop_lag", "title": "Lag", "rule": "passed when lag = 0", "key": ["lag"], "kinds": ["async"]},
        {"id": "writes", "title": "Writes", "rule": "passed when lost = 0", "key": ["lost"], "kinds": ["def", "async"]},
        {"id": "reload", "title": "Reload", "rule": "passed when growth = 0", "key": ["growth"], "kinds": []},
    ]
    ids = ["sync_only", "both_kinds", "blocks_loop", "leaks"]
    strategies = [
        {
            "id": i,
            "label": f"label of {i}",
            "file": f"strategies/{i}.py",
            "pattern": {"def": f"def get_db():  # {i}\n    yield session", "async": f"async def get_db():  # {i}"},
        }
        for i in ids
    ]

    def part(outcome: str, key: str, value: int = 0) -> dict:
        return (
            {"outcome": outcome, "metrics": {key: value}, "evidence": "e"}
            if outcome != "skipped"
            else {"outcome": "skipped", "reason": "not served"}
        )

    def row(strategy: str, check: str, **kinds: dict) -> dict:
        return combine([{"strategy": strategy, "check": check, "kind": k, **p} for k, p in kinds.items()])

    results = [
        row("sync_only", "pool_burst", **{"def": part("passed", "errors")}),
        row("sync_only", "loop_lag", **{"async": part("skipped", "lag")}),
        row("sync_only", "writes", **{"def": part("passed", "lost"), "async": part("skipped", "lost")}),
        row("both_kinds", "pool_burst", **{"def": part("passed", "errors")}),
        row("both_kinds", "loop_lag", **{"async": part("passed", "lag")}),
        row("both_kinds", "writes", **{"def": part("passed", "lost"), "async": part("passed", "lost")}),
        row("blocks_loop", "pool_burst", **{"def": part("passed", "errors")}),
        row("blocks_loop", "loop_lag", **{"async": part("failed", "lag", 600)}),
        row("blocks_loop", "writes", **{"def": part("passed", "lost"), "async": part("passed", "lost")}),
        row("leaks", "pool_burst", **{"def": part("passed", "errors")}),
        row("leaks", "loop_lag", **{"async": part("passed", "lag")}),
        row("leaks", "writes", **{"def": part("passed", "lost"), "async": part("failed", "lost", 3)}),
        *(
            {
                "strategy": i,
                "check": "reload",
                "outcome": "failed" if i == "leaks" else "passed",
                "metrics": {"growth": 15 if i == "leaks" else 0},
                "evidence": "e",
            }
            for i in ids
        ),
    ]
    return {
        "schema": SCHEMA,
        "complete": True,
        "environment": {},
        "strategies": strategies,
        "checks": checks,
        "results": results,
        "throughput": throughput_part(ids),
    }


def _answer(text: str, app: str) -> list[str]:
    lines = _section(text, "## What to use")
    start = lines.index(f"### {answers.APPS[app][0]}")
    end = next(n for n in range(start + 1, len(lines)) if lines[n].startswith(("### ", "**Cost**", "Cost was")))
    return lines[start:end]


def _listed(lines: list[str]) -> list[str]:
    """The clean strategies an answer names, in order."""
    return [line.split("`")[1] for line in lines if line.startswith(("- **`", "- ≈ **`"))]


def test_each_kind_of_app_gets_the_strategies_that_pass_every_check_concerning_it():
    text = render(_kinds_doc())
    assert _listed(_answer(text, "def")) == ["sync_only", "both_kinds", "blocks_loop"]  # cheapest first
    assert _listed(_answer(text, "async")) == ["both_kinds"]
    assert _listed(_answer(text, "both")) == ["both_kinds"]
    both = "\n".join(_answer(text, "both"))
    assert "- `blocks_loop`: 1 failed" in both and "❌ `loop_lag` (`async def`): lag=600 (nuisance, recovers)" in both
    assert "❌ `writes` (`async def`): lost=3" in both and "❌ `reload`: growth=15" in both
    assert "Cannot serve it (no check measured it on `def` and `async def` endpoints): `sync_only`." in both
    assert "❌ `writes`: lost=3" in "\n".join(_answer(text, "async"))  # one kind: no kind named


def test_an_answer_quotes_the_lines_that_make_the_difference():
    text = render(_kinds_doc())
    both = _answer(text, "both")
    quoted = both[both.index("  ```python") + 1 : both.index("  ```")]
    assert quoted == ["  def get_db():  # both_kinds", "      yield session", "", "  async def get_db():  # both_kinds"]
    assert "```python" not in "\n".join(_section(text, "## What to use")[:3])


def test_a_check_most_strategies_fail_on_one_kind_is_named_a_hazard_with_the_rows_that_pass():
    doc = _kinds_doc()
    for row in doc["results"]:
        if row["check"] == "loop_lag" and row["strategy"] != "both_kinds":
            row["kinds"]["async"] = {"outcome": "failed", "metrics": {"lag": 500}, "evidence": "e"}
    doc["strategies"].append({"id": "also_blocks", "label": "l", "file": "f"})
    doc["results"].append(
        combine(
            [
                {
                    "strategy": "also_blocks",
                    "check": "loop_lag",
                    "kind": "async",
                    "outcome": "failed",
                    "metrics": {"lag": 500},
                    "evidence": "e",
                }
            ]
        )
    )
    lines = answers.hazards(doc, by_pair(doc["results"]))
    assert len([line for line in lines if line.startswith("- ")]) == 1
    assert "On `async def` endpoints, 4 of the 5 strategies measured fail `loop_lag`" in lines[-2]
    assert "Passed by `both_kinds`." in lines[-2]
    assert answers.hazards(_kinds_doc(), by_pair(_kinds_doc()["results"])) == []  # 1 of 3: no hazard


def test_clean_strategies_by_cost_overlapping_bands_marked():
    doc = _wide(6, 4)
    doc["results"] = [r for r in doc["results"] if r["strategy"] != "strategy_number_5"]  # never run
    lines = _answer(render(doc), "def")
    clean = [line for line in lines if line.startswith("- **`")]
    # strategy i runs at 0.9 - 0.05 i of the raw connection: number 0 is the cheaper
    assert _listed(clean) == ["strategy_number_0", "strategy_number_1"]
    assert "0.90 [0.81, 0.99]" in clean[0] and "indistinguishable in cost" not in clean[0]
    assert clean[1].endswith("(indistinguishable in cost from the one above in this run)")  # 0.85's band overlaps


def test_no_clean_strategy_and_no_throughput_are_said():
    doc = _wide(4, 3)
    del doc["throughput"]
    doc["results"] = [r | {"outcome": "failed", "metrics": {"bad_things": 1}} for r in doc["results"]]
    lines = answers.section(doc, by_pair(doc["results"]))
    assert "No strategy passes every check that concerns this kind of app in this run." in lines
    assert any(
        "not measured in this run (`--throughput off`, or no strategy passed every check" in line for line in lines
    )
    app = doc["strategies"][0]["id"]
    doc["instructions"] = {
        "cells": [{"app": app, "kind": "read", "concurrency": 1, "vs_raw": {"median": 1.25, "min": 1.24, "max": 1.26}}]
    }
    lines = answers.section(doc, by_pair(doc["results"]))
    assert any(
        line.startswith(f"- `{app}`:") and "instructions × raw connection 1.25 (1.24–1.26)" in line for line in lines
    )
    assert any("**Instructions × raw connection** (read route, 1 client)" in line for line in lines)


def test_a_strategy_not_installed_here_is_not_called_clean():
    """All its rows skipped by the import preflight (REQUIRES unmet): listed apart, never as passing everything."""
    doc = _wide(3, 2)
    absent = doc["strategies"][0]
    absent["preflight"] = "skipped"
    doc["results"] = [
        r
        if r["strategy"] != absent["id"]
        else {**r, "outcome": "skipped", "reason": "needs a-library>=1 (installed here: none)"}
        for r in doc["results"]
    ]
    lines = answers.section(doc, by_pair(doc["results"]))
    assert not any(f"`{absent['id']}`" in line for line in lines if line.startswith(("- **`", "- ≈ **`")))
    assert f"Not measured in this environment: `{absent['id']}` (skipped); the reasons are under the verdicts." in lines
    skips = not_measured(doc["strategies"], doc["checks"], by_pair(doc["results"]))
    assert f"- ➖ every check for `{absent['id']}`: needs a-library>=1 (installed here: none)" in skips
    assert sum(absent["id"] in line for line in skips) == 1, skips


def test_rows_per_kind_combine_into_one_judged_by_the_worst():
    def part(kind, outcome, **metrics):
        return {"strategy": "s", "check": "c", "kind": kind, "outcome": outcome, "metrics": metrics, "evidence": kind}

    row = combine(
        [
            part("def", "passed", lost=0, wall_s=1.5, blocked=False),
            part("async", "failed", lost=3, wall_s=0.5, blocked=True),
        ]
    )
    assert row["outcome"] == "failed" and "metrics" not in row  # one kind's count added to another's is neither
    assert row["evidence"] == "def: def async: async" and judged(row, "async")["metrics"]["lost"] == 3
    skipped = {"strategy": "s", "check": "c", "kind": "async", "outcome": "skipped", "reason": "no route"}
    row = combine([part("def", "passed", lost=0), skipped])
    assert row["outcome"] == "passed" and judged(row, "async")["outcome"] == "skipped" and judged(row, None) is row
    assert combine([{**skipped, "kind": "def", "unsupported": True}, {**skipped, "unsupported": True}])["unsupported"]


@pytest.mark.parametrize(
    "first_line", ["`AsyncSession` `yield` dependency", "Engine in lifespan, `yield`", "  plain words  "]
)
def test_labels_keep_their_backticks(tmp_path, first_line):
    module = tmp_path / "some_strategy.py"
    module.write_text(f'"""{first_line}\n\nMore words.\n"""\n')
    assert discovery.at(module).label == first_line.strip()


def test_plot_styles_colour_the_answers_and_baselines_and_mute_the_rest():
    tp = _wide()["throughput"]
    strategies = [a["id"] for a in tp["apps"] if not a["baseline"]]
    answering, others = set(strategies[:12]), strategies[12:]
    look = plots.styles(tp, answering)
    assert len({(look[a]["color"], look[a]["marker"]) for a in answering}) == len(answering)
    assert all(look[a] is plots.MUTED for a in others)
    baseline_colours = {look[a["id"]]["color"] for a in tp["apps"] if a["baseline"]}
    assert baseline_colours == {"black", "dimgrey"} and not baseline_colours & {look[a]["color"] for a in strategies}
    assert plots.styles(copy.deepcopy(tp), answering) == look
    for what in ("throughput", "latency"):
        labels = [h.get_label() for h in plots._legend(tp, look, what, "inprocess")]
        assert set(labels) >= {a["id"] for a in tp["apps"] if a["id"] not in others}
        assert f"{len(others)} other strategies (no answer)" in labels


def test_render_links_the_matrix_when_asked(doc):
    assert "[MATRIX.md](MATRIX.md)" in render(doc, matrix_link=True)
    assert "MATRIX.md" not in render(doc)


def test_lock_state_names_the_file_its_hash_and_what_differs(tmp_path, monkeypatch):
    lock = tmp_path / "lock.txt"
    lock.write_text(
        "# header\n"
        f"pytest=={pytest.__version__} \\\n    --hash=sha256:00\n    # via x\n"
        "fastapi==0.0.1 \\\n    --hash=sha256:00\n"
        "colorama==0.4.6 ; sys_platform == 'no such platform' \\\n    --hash=sha256:00\n"
    )
    monkeypatch.delenv(LOCK_VARIABLE, raising=False)
    assert lock_state() is None
    monkeypatch.setenv(LOCK_VARIABLE, str(lock))
    state = lock_state()
    assert state["file"] == str(lock) and state["sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()
    assert state["pins"] == 2  # colorama's marker does not hold here
    assert state["differ"] == {"fastapi": {"locked": "0.0.1", "installed": metadata.version("fastapi")}}


def _write(path: Path, doc: dict) -> None:
    results = ResultsFile(path, doc["environment"], doc["strategies"], doc["checks"])
    for row in doc["results"]:
        results.add(row)
    results.attach("throughput", doc["throughput"])
    results.finish(complete=False, note=doc["note"])


def test_results_round_trip(doc, tmp_path):
    path = tmp_path / "results.json"
    _write(path, doc)
    assert load(path) == doc


@pytest.mark.parametrize(
    "content, says",
    [(None, "no such file"), ("{not json", "not JSON"), (json.dumps({"schema": 99}), "schema 99")],
)
def test_load_errors_name_the_file(tmp_path, content, says):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ResultsError) as excinfo:
        load(path)
    message = str(excinfo.value)
    assert str(path) in message and says in message and "\n" not in message


def _row(strategy, check, outcome, **metrics):
    extra = {"reason": "r"} if outcome in ("error", "skipped") else {"metrics": metrics, "evidence": f"{outcome} here"}
    return {"strategy": strategy, "check": check, "outcome": outcome, **extra}


# What the claim says about s1, and what s2 (its alternative) must show for s1's row to single the claim out.
CLAIM = claims.Claim(
    "q", "who", says=(claims.Expect("s1", "c1", "failed"),), contrast=(claims.Expect("s2", "c1", "passed"),)
)


@pytest.mark.parametrize(
    "outcomes, verdict, disagree",
    [
        (("failed", "passed"), "supported", []),
        (("passed", "passed"), "refuted", ["c1"]),
        (("passed", "failed"), "refuted", ["c1"]),
        (("failed", "failed"), "partly", ["c1"]),  # the alternative shows it too: never supported
        (("failed", "error"), "untested", []),
        (("failed", None), "untested", []),
        (("failed", "skipped"), "untested", []),  # its own row holds, but nothing tells it from the alternative
        (("skipped", "passed"), "untested", []),
        ((None, None), "untested", []),
    ],
)
def test_judge(outcomes, verdict, disagree):
    rows = [_row(s, "c1", o) for s, o in zip(("s1", "s2"), outcomes) if o]
    got = claims.judge(CLAIM, rows)
    assert (got.verdict, got.disagree) == (verdict, disagree)
    assert [f.holds for f in got.says + got.contrast] == [
        {"failed": True, "passed": False}.get(outcomes[0]),
        {"passed": True, "failed": False}.get(outcomes[1]),
    ]
    assert got.says[0].text.startswith(f"`s1` × `c1`: {outcomes[0] or 'not run'}")


def test_skipped_rows_do_not_block_support_but_missing_ones_do():
    claim = claims.Claim(
        "q",
        "who",
        says=(claims.Expect("s1", "c1", "failed"), claims.Expect("s1", "c2", "failed")),
        contrast=(claims.Expect("s2", "c1", "passed"),),
    )
    rows = [_row("s1", "c1", "failed"), _row("s2", "c1", "passed")]
    assert claims.judge(claim, rows + [_row("s1", "c2", "skipped")]).verdict == "supported"
    assert claims.judge(claim, rows + [_row("s1", "c2", "error")]).verdict == "untested"
    assert claims.judge(claim, rows).verdict == "untested"
    assert claims.judge(claim, rows + [_row("s1", "c2", "passed")]).verdict == "partly"


@pytest.mark.parametrize(
    "want, metrics, holds",
    [
        ("responses_sent_before_cleanup > 0", {"responses_sent_before_cleanup": 20}, True),
        ("responses_sent_before_cleanup > 0", {"responses_sent_before_cleanup": 0}, False),
        ("sessions_per_request = 0", {"sessions_per_request": 0.0}, True),
        ("threads < requests", {"threads": 1, "requests": 50}, True),
        ("threads < requests", {"threads": 50, "requests": 50}, False),
        ("sessions_abandoned_at_exit = 0", {"connections_after_shutdown": 5}, None),  # not recorded on SQLite
        ("threads < requests", {"threads": 1}, None),
    ],
)
def test_metric_rules(want, metrics, holds):
    finding = claims.Expect("s1", "c1", want).evaluate({("s1", "c1"): _row("s1", "c1", "passed", **metrics)}, {})
    assert finding.holds is holds and not finding.missing
    assert want in finding.text


def test_a_rule_that_is_neither_outcome_nor_metric_is_refused():
    with pytest.raises(ValueError, match="metric > 0"):
        claims.Expect("s1", "c1", "fails")


@pytest.mark.parametrize(
    "same, metric, values, holds",
    [
        (True, None, ("passed", "passed"), True),
        (True, None, ("passed", "failed"), False),
        (False, None, ("passed", "failed"), True),
        (True, "m", (0.0, 1.0), False),
        (False, "m", (0.0, 1.0), True),
    ],
)
def test_compare(same, metric, values, holds):
    compare = claims.Compare("c1", ("s1", "s2"), same=same, metric=metric)
    rows = (
        [_row(s, "c1", v) for s, v in zip(("s1", "s2"), values)]
        if metric is None
        else [_row(s, "c1", "passed", m=v) for s, v in zip(("s1", "s2"), values)]
    )
    assert compare.evaluate(by_pair(rows), {}).holds is holds


def test_a_declared_unserved_skip_is_the_finding_only_where_the_claim_says_so():
    """A route the strategy declared it cannot serve (`unsupported` on the row) bears on "cannot" claims; an optional
    route left out, or a check needing a server, bears on nothing."""
    expect = claims.Expect("lib", "multiple_databases", "failed or unserved")
    declared = {
        **_row("lib", "multiple_databases", "skipped"),
        "unsupported": True,
        "reason": "/sync/write2 not served: one global sessionmaker, bound to DATABASE_URL",
    }
    needs_server = {**_row("lib", "multiple_databases", "skipped"), "reason": NEEDS_SERVER}
    assert expect.evaluate(by_pair([declared]), {}).holds is True
    assert expect.evaluate(by_pair([needs_server]), {}).holds is None
    left_out = {
        **_row("lib", "multiple_databases", "skipped"),
        "unsupported": False,
        "reason": "/sync/write2 not served: an optional route (two databases), left out",
    }
    assert expect.evaluate(by_pair([left_out]), {}).holds is None
    assert claims.Expect("lib", "multiple_databases", "passed").evaluate(by_pair([declared]), {}).holds is None


def _claim(words: str) -> claims.Claim:
    [found] = [c for c in thread_claims.CLAIMS if words in c.quote]
    return found


def _rows(outcomes: dict[tuple[str, str], str], metrics: dict | None = None) -> list[dict]:
    return [_row(s, c, o, **(metrics or {}).get((s, c), {})) for (s, c), o in outcomes.items()]


def test_async_shutdown_claim_is_not_supported_when_sync_engines_leave_connections_too():
    claim = _claim("can't asynchoneously close")
    module_level = ("async_dependency", "async_scoped_session", "yield_dependency", "middleware")
    left = {(s, "shutdown"): {"connections_after_shutdown": 5, "exit_trouble_lines": 0} for s in module_level}
    both_fail = claims.judge(claim, _rows({(s, "shutdown"): "failed" for s in module_level}, left))
    assert (both_fail.verdict, both_fail.disagree) == ("partly", ["shutdown"])
    sync_pass = {
        **{(s, "shutdown"): "failed" for s in module_level[:2]},
        **{(s, "shutdown"): "passed" for s in module_level[2:]},
    }
    assert claims.judge(claim, _rows(sync_pass, left)).verdict == "supported"


def test_contextmanager_and_middleware_differ_where_they_differ():
    claim = _claim("almost exactly equivalent")
    pair = ("yield_dependency", "middleware")
    outcomes = {(s, c): "passed" for s in pair for c in thread_claims.EVERY_CHECK}
    outcomes[("middleware", "sessions_nobody_needed")] = "failed"
    metrics = {
        ("yield_dependency", "sessions_nobody_needed"): {"sessions_per_request": 0.0},
        ("middleware", "sessions_nobody_needed"): {"sessions_per_request": 1.0},
        ("yield_dependency", "cleanup_timing"): {"responses_sent_before_cleanup": 20},
        ("middleware", "cleanup_timing"): {"responses_sent_before_cleanup": 0},
    }
    got = claims.judge(claim, _rows(outcomes, metrics))
    assert (got.verdict, got.disagree) == ("partly", ["sessions_nobody_needed", "cleanup_timing"])
    assert any("sessions_per_request 0 vs 1" in f.text for f in got.says)


# Ids this round's plan adds on other branches (checks: the harness; strategies: the library and ContextVar work).
# The claims name them already; delete an id here once it exists.
THREAD = {"acnebs", "sm-Fifteen", "dmontagu", "tiangolo"}


def test_claims_name_known_ids():
    strategies, checks = {s.id for s in discovery.discover()}, set(registry())
    for claim in thread_claims.CLAIMS:
        for strategy, check in claim.pairs:
            assert strategy in strategies and check in checks, (claim.quote, strategy, check)


def test_every_claim_is_quoted_attributed_and_tested_or_said_untested():
    assert len(thread_claims.CLAIMS) >= 13
    assert len({c.quote for c in thread_claims.CLAIMS}) == len(thread_claims.CLAIMS)
    for claim in thread_claims.CLAIMS:
        assert claim.who in THREAD and claim.quote
        assert claim.says or claim.note, f"{claim.quote!r}: no expectation and no word on why nothing measures it"
        assert claims.judge(claim, []).verdict == "untested"


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "report", *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_cli_writes_report(doc, tmp_path):
    path = tmp_path / "results.json"
    _write(path, doc)
    proc = _cli(path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "REPORT.md")
    assert (tmp_path / "REPORT.md").read_text() == render(doc)


def test_cli_missing_file(tmp_path):
    proc = _cli(tmp_path / "nope.json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and str(tmp_path / "nope.json") in proc.stderr


def test_against_says_which_source_changed_under_a_verdict_that_moved():
    from report import agreement

    def run(check_hash: str, outcomes: dict[str, str]) -> dict:
        return {
            "checks": [{"id": "lost_writes", "source_hash": check_hash}],
            "strategies": [{"id": s, "source_hash": s} for s in outcomes],
            "results": [{"strategy": s, "check": "lost_writes", "outcome": o} for s, o in outcomes.items()],
        }

    this = run("a", {"kept": "passed", "moved": "failed"})
    assert agreement.verdicts(this, run("a", {"kept": "passed", "moved": "passed"})) == [
        {"strategy": "moved", "check": "lost_writes", "this": "failed", "other": "passed",
         "why": "same sources: the behaviour, the versions or the machine changed"}
    ]  # fmt: skip
    (changed,) = agreement.verdicts(this, run("b", {"moved": "passed"}))
    assert changed["why"] == "the check's source changed"
    without = run("a", {"moved": "passed"})
    del without["checks"][0]["source_hash"]
    assert agreement.verdicts(this, without)[0]["why"].startswith("unknown")


def test_the_first_answer_shows_why_each_line_is_there_and_what_others_lack():
    """An ablation variant of the answer failing a check names that line beside the check; a row failing the same
    check is told it lacks the line; variants are no rows of their own elsewhere in the report."""
    doc = _kinds_doc()
    doc["checks"][2]["severity"] = "data"
    doc["strategies"].append(
        {"id": "both_kinds__without_x", "label": "v", "file": "v.py", "ablation_of": ["both_kinds", "the close"]}
    )
    doc["results"] += [
        {**copy.deepcopy(r), "strategy": "both_kinds__without_x"}
        for r in doc["results"]
        if r["strategy"] == "both_kinds"
    ]
    variant = next(r for r in doc["results"] if r["strategy"] == "both_kinds__without_x" and r["check"] == "writes")
    variant["kinds"]["async"] = {"outcome": "failed", "metrics": {"lost": 2}, "evidence": "e", "permanent": True}
    text = render(doc)
    both = "\n".join(_answer(text, "both"))
    assert "| `the close` | `writes` (`async def`): lost=2 |" in both
    assert "- `leaks` (`def` and `async def`): fails 1 data, 1 nuisance; lacks `the close` of `both_kinds`." in text
    assert text.count("both_kinds__without_x") == 0


def test_a_warning_several_strategies_raised_is_said_once():
    doc = _kinds_doc()
    doc["strategies"][0]["import_warnings"] = ["DeprecationWarning: old (x.py:1)", "UserWarning: mine (a.py:2)"]
    doc["strategies"][1]["import_warnings"] = ["DeprecationWarning: old (x.py:1)"]
    text = render(doc)
    assert text.count("DeprecationWarning: old (x.py:1)") == 1
    assert "- DeprecationWarning: old (x.py:1): `sync_only`, `both_kinds`" in text
    assert "warned: UserWarning: mine (a.py:2)" in text


def test_an_audited_app_is_answered_for_its_own_kind_with_what_it_does_not_use(doc):
    """Its own section names its kind of endpoint (not every kind the probes served), the features the checks
    exercised that it lacks, and the pool it declares beside the pool a check that measured it sets."""
    own = {"app": "myapp.main:app", "kinds": ["async"], "routes_taking_the_session": 3, "streams": False}
    own |= {"background_tasks": True}
    pool = {"class": "QueuePool", "pool_pre_ping": False, "pool_size": 5, "max_overflow": 10, "pool_timeout": 30.0}
    doc["strategies"][0]["own"] = {**own, "pools": [pool]}
    text = "\n".join(answers.yours(doc, by_pair(doc["results"]), {}))
    assert "### Your app: `myapp.main:app`" in text
    assert "are `async def` (3 routes), so it is an app whose endpoints are all `async def`" in text
    assert "a streamed response (`streaming`)" in text and "background task" not in text
    assert "QueuePool 5 + 10, 30 s timeout, pre-ping off" in text and "`same_session_in_request` 5 + 0, 1 s" in text
    assert "`isolation_async` 5" not in text  # it sets no pool
    assert "`isolation_async`: foreign_tag_seen=49" in text and "`same_session_in_request`" in text
