"""MATRIX.md (report/matrix.py) from synthetic cell documents: versions, differences, boundaries, explanations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from packaging.version import Version

from report import matrix
from report.results import SCHEMA, ResultsFile
from tests.running import ROOT

GOLDEN = ROOT / "tests" / "golden" / "MATRIX.md"

CHECKS = [
    {"id": "cleanup_timing", "title": "t", "key": ["checked_out_at_response"], "exclusive": False},
    {"id": "isolation_async", "title": "t", "key": ["foreign_tag_seen"], "exclusive": False},
    {"id": "event_loop_blocking", "title": "t", "key": ["max_lag_ms"], "exclusive": True},
]
CELLS = {  # name: (python, fastapi, starlette, fastapi-sqla)
    "py3.11-fastapi0.115": ("3.11.7", "0.115.14", "0.46.2", "4.0.1"),
    "py3.11-fastapi0.120": ("3.11.7", "0.120.4", "0.49.3", "4.0.1"),
    "py3.11-latest": ("3.11.7", "0.165.0", "1.10.0", None),
    "py3.12-latest": ("3.12.1", "0.165.0", "1.10.0", None),
}
# (strategy, check): one outcome per cell above, in order
OUTCOMES = {
    ("yield_dependency", "cleanup_timing"): ("passed", "failed", "failed", "failed"),
    ("yield_dependency", "isolation_async"): ("passed",) * 4,
    ("contextvar", "isolation_async"): ("passed", "passed", "passed", "failed"),
    ("middleware", "event_loop_blocking"): ("failed", "passed", "failed", "passed"),
    ("fastapi_sqla", "isolation_async"): ("passed", "passed", "skipped", "skipped"),
    ("lifespan_dependency", "cleanup_timing"): ("passed",) * 4,
    ("lifespan_dependency", "event_loop_blocking"): ("passed",) * 4,
    ("middleware", "cleanup_timing"): ("failed",) * 4,
}
NUMBERS = {  # the key metric per cell where it is not 0 for passed and 20 for failed
    ("lifespan_dependency", "cleanup_timing"): (0, 20, 20, 20),
    ("lifespan_dependency", "event_loop_blocking"): (9, 31, 12, 8),
    ("middleware", "cleanup_timing"): (9, 10, 10, 9),
}


def _row(strategy, check, outcome, i):
    if outcome == "skipped":
        return {"strategy": strategy, "check": check, "outcome": outcome, "reason": "needs fastapi-sqla>=4.0"}
    key = next(c["key"][0] for c in CHECKS if c["id"] == check)
    value = NUMBERS[strategy, check][i] if (strategy, check) in NUMBERS else 20 * (outcome == "failed")
    return {"strategy": strategy, "check": check, "outcome": outcome, "metrics": {key: value}, "evidence": "e"}


def _doc(i: int, name: str) -> dict:
    python, fastapi, starlette, sqla = CELLS[name]
    return {
        "schema": SCHEMA,
        "complete": True,
        "environment": {
            "python": python,
            "packages": {"fastapi": fastapi, "starlette": starlette, "fastapi-sqla": sqla},
            "lock": {"file": f"locks/matrix/{name}.txt", "sha256": "ab" * 32, "pins": 50, "differ": {}},
            "git_sha": "a7c6598",
            "started_at": "2025-01-02T03:04:05+00:00",
        },
        "strategies": [{"id": s} for s in dict.fromkeys(s for s, _ in OUTCOMES)],
        "checks": CHECKS,
        "results": [_row(s, c, outcomes[i], i) for (s, c), outcomes in OUTCOMES.items()],
    }


@pytest.fixture
def cells() -> list[tuple[str, dict | None]]:
    return [(name, _doc(i, name)) for i, name in enumerate(CELLS)] + [("py3.13-latest", None)]


def _line(page: str, start: str) -> str:
    return next(line for line in page.splitlines() if line.startswith(start))


def test_versions_name_every_cell(cells):
    page = matrix.render(cells)
    assert _line(page, "| Python |") == "| Python | 3.11.7 | 3.11.7 | 3.11.7 | 3.12.1 | not run |"
    assert _line(page, "| fastapi-sqla |") == "| fastapi-sqla | 4.0.1 | 4.0.1 | — | — | not run |"
    assert "`locks/matrix/py3.11-fastapi0.115.txt` (sha256 abababababab), its 50 pins installed" in page
    assert "Not run: `py3.13-latest`" in page


def test_a_step_on_a_known_change_gets_its_sentence(cells):
    row = _line(matrix.render(cells), "| `yield_dependency` | `cleanup_timing` |")
    assert "✅ checked_out_at_response=0 | ❌ checked_out_at_response=20 |" in row
    assert "fastapi 0.115.14 → 0.120.4; starlette 0.46.2 → 0.49.3" in row
    assert "fastapi 0.118.0: the exit code of `yield` dependencies runs after the response is sent again" in row


def test_a_step_on_no_known_change_says_so(cells):
    row = _line(matrix.render(cells), "| `contextvar` | `isolation_async` |")
    assert "python 3.11.7 → 3.12.1 | No known behaviour change lies on this boundary. |" in row


def test_no_step_is_no_boundary_and_timings_are_flagged(cells):
    row = _line(matrix.render(cells), "| `middleware` | `event_loop_blocking` |")
    assert "none: the verdict is not a step along any one version | No known change explains it." in row
    assert "Its numbers are timings" in row


def test_rows_missing_in_some_cells_are_listed_not_compared(cells):
    page = matrix.render(cells)
    assert "| `fastapi_sqla` |" not in page
    assert "- `fastapi_sqla` in `py3.11-latest`, `py3.12-latest`: ➖ `isolation_async`: needs fastapi-sqla>=4.0" in page
    assert (
        "Of the strategy × check pairs measured in every cell, 3 have the same verdict everywhere, 1 the same "
        "verdict with a key number that is 0 in some cells and not in others, 3 a different verdict."
    ) in page


def test_same_verdict_with_a_number_turning_zero_is_shown_but_not_count_noise_or_timings(cells):
    page = matrix.render(cells)
    shifted = page[page.index("## Same verdict, a key number turns 0 or not") :]
    row = _line(shifted, "| `lifespan_dependency` | `cleanup_timing` |")
    assert "✅ checked_out_at_response=0 | ✅ checked_out_at_response=20 |" in row and "fastapi 0.118.0" in row
    assert "| `middleware` | `cleanup_timing` |" not in page  # 9 or 10, never 0
    assert "`event_loop_blocking`" not in shifted


def test_render_matches_golden(cells):
    """The whole page, held to a file (SESSIONBENCH_UPDATE_GOLDEN=1 rewrites it; read the diff before committing)."""
    page = matrix.render(cells)
    if os.environ.get("SESSIONBENCH_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(page)
    assert page == GOLDEN.read_text()


def test_boundary_past_the_release_notes_read_says_so():
    found = [("fastapi", Version("0.141.1"), Version("0.165.0"))]
    assert matrix.explain(found, changes=()) == (
        "fastapi 0.141.1 → 0.165.0",
        "No known behaviour change lies on this boundary (release notes read up to fastapi 0.141.1).",
    )


def test_equal_versions_with_different_verdicts_are_no_step():
    envs = {"a": {"python": "3.11.7"}, "b": {"python": "3.11.7"}, "c": {"python": "3.12.1"}}
    assert matrix.boundaries({"a": "passed", "b": "failed", "c": "failed"}, envs) == []
    assert matrix.boundaries({"a": "passed", "b": "passed", "c": "failed"}, envs) == [
        ("python", Version("3.11.7"), Version("3.12.1"))
    ]


def test_cli_writes_the_page_with_links_to_the_cells(cells, tmp_path):
    for name, doc in cells:
        if doc:
            results = ResultsFile(
                tmp_path / "matrix" / name / "results.json", doc["environment"], doc["strategies"], doc["checks"]
            )
            for row in doc["results"]:
                results.add(row)
            results.finish(complete=True)
    out = tmp_path / "MATRIX.md"
    args = [arg for name, _ in cells for arg in ("--cell", name)]
    proc = subprocess.run(
        [sys.executable, "-m", "report.matrix", tmp_path / "matrix", *args, "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == matrix.render(cells)


def test_a_skipped_library_row_names_the_pinned_environments_that_install_it():
    """Read from the lock files, each for its own Python: fastapi-sqla pins FastAPI below 0.142, FastSQLA needs 3.12."""
    from experiments.harness.preflight import where_measured

    sqla = where_measured(("fastapi-sqla>=4.0", "fastapi<0.142"))
    assert '`nox -s "matrix(py3.11-fastapi0.115)"`' in sqla and "latest" not in sqla and "compare" not in sqla, sqla
    fastsqla = where_measured(("fastsqla>=0.9",))
    assert "py3.12-latest" in fastsqla and "py3.11" not in fastsqla, fastsqla
    assert "add it to pyproject.toml" in where_measured(("a-library-nobody-installed>=1",))


def test_cells_run_apart_merge_into_the_same_page(cells, tmp_path):
    """CI runs each cell as a job of its own (.github/workflows/matrix.yml) and merges the cells' directories."""
    together, merged = tmp_path / "together", tmp_path / "merged"
    for i, (name, doc) in enumerate(d for d in cells if d[1]):
        for root in (together, tmp_path / f"job{i}"):
            (root / name).mkdir(parents=True)
            (root / name / "results.json").write_text(json.dumps(doc))
        shutil.copytree(tmp_path / f"job{i}" / name, merged / name)
    names = [arg for name, _ in cells for arg in ("--cell", name)]
    for root in (together, merged):
        assert matrix.main([str(root), *names, "--out", str(root / "MATRIX.md")]) == 0
    assert (merged / "MATRIX.md").read_text() == (together / "MATRIX.md").read_text()
