"""Markdown pieces every part of the report shares: outcome marks, table cells, tables."""

from __future__ import annotations

MARKS = {"passed": "✅", "failed": "❌", "error": "⚠️", "skipped": "➖", None: "—"}


def cell(value) -> str:
    """Text safe inside a table cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        value = round(value, 3)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
