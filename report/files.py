"""A run's report on disk: REPORT.md and its plots, written next to each other from the results document.

`python -m experiments` writes them at the end of a run and `python -m report` again from a results file; both
link MATRIX.md where one sits beside them.
"""

from __future__ import annotations

from pathlib import Path

from report import plots
from report.render import render


def write(doc: dict, directory: Path, extra: list[str] | None = None) -> Path:
    """Write REPORT.md (with `extra` sections) and its plots into `directory`; the report's path."""
    report = directory / "REPORT.md"
    plots.write(doc, directory)
    report.write_text(render(doc, extra or [], matrix_link=(directory / "MATRIX.md").exists()))
    return report
