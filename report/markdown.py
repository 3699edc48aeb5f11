"""What every part of the report shares: outcome marks, kind names, table cells, tables, the measured strategies."""

from __future__ import annotations

SYMBOLS = {
    "passed": "✅",
    "failed": "❌",
    "error": "⚠️",
    "skipped": "➖",
    None: "—",
}  # an outcome as the report shows it
KIND_NAMES = {"def": "`def`", "async": "`async def`"}  # the kinds of endpoint a row's `kinds` judge apart
MEASURED = ("passed", "failed", "error")  # outcomes of a check that ran on the strategy (not skipped, not unrun)


def ready(strategies: list[dict]) -> list[dict]:
    """The strategies the import preflight let through (the rest are listed apart, with their reason); an
    ablation's variants are read only by its own table (answers.ablation)."""
    return [s for s in strategies if s.get("preflight", "ready") == "ready" and not s.get("ablation_of")]


def cell(value) -> str:
    """Text safe inside a table cell."""
    if value is None:
        return ""
    if isinstance(value, float):
        value = round(value, 3)
    return str(value).replace("|", "\\|").replace("\n", " ")


def key_numbers(metrics: dict, keys: list[str]) -> str:
    """`rows_missing=0 rows_from_failed_requests=10`: the numbers a verdict mostly rests on (the runner's progress
    lines)."""
    return " ".join(f"{k}={cell(metrics[k])}" for k in keys if k in metrics)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
