"""The results file: one JSON document, schema-versioned, rewritten atomically after every row.

A run that crashes or is interrupted leaves a valid file holding every row
measured so far, with `"complete": false`; the report marks it incomplete.
Environment metadata travels with the results (as pyperf does), so a number is
never read apart from the machine and versions that produced it. Its shapes, SCHEMA and
OUTCOMES are declared in report/format.py.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from report.format import (
    ERROR,
    FAILED,
    OUTCOMES,
    PASSED,
    SCHEMA,
    SKIPPED,
    Check,
    Document,
    Environment,
    KindPart,
    Row,
    Strategy,
)
from report.locks import installed, lock_state

PACKAGES = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "pydantic",
    "httpx",
    "anyio",
    "aiosqlite",
    "psycopg",
    "asyncpg",
    "asgi-lifespan",
    "pytest",
    "uvicorn",
    "sqlmodel",
    "fastapi-sqlalchemy",
    "fastapi-async-sqlalchemy",
    "fastapi-sqla",
    "fastapi-utils",
    "fastsqla",
    "advanced-alchemy",
    "fastcrud",
    "fastapi-users",
    "fastapi-users-db-sqlalchemy",
)
ROOT = Path(__file__).resolve().parent.parent


class ResultsError(Exception):
    """The results file cannot be read; the message names the file and the fix."""


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(command: str, database: dict) -> Environment:
    """What was run and on what."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": {name: installed(name) for name in PACKAGES},
        "lock": lock_state(),
        "database": database,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "git_sha": _git_sha(),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
    }


class ResultsFile:
    """Writer for a run in progress."""

    def __init__(self, path: Path, environment: Environment, strategies: list[Strategy], checks: list[Check]):
        self.path = Path(path)
        self.doc: Document = {
            "schema": SCHEMA,
            "complete": False,
            "environment": environment,
            "strategies": strategies,
            "checks": checks,
            "results": [],
        }
        self._write()

    def add(self, row: Row) -> None:
        if row.get("outcome") not in OUTCOMES:
            raise ValueError(f"row outcome must be one of {OUTCOMES}: {row!r}")
        self.doc["results"].append(row)
        self._write()

    def attach(self, key: str, value) -> None:
        """A part of the document beside the rows (e.g. `throughput`), written at once."""
        self.doc[key] = value
        self._write()

    def finish(self, complete: bool, note: str | None = None) -> None:
        self.doc["complete"] = complete
        if note:
            self.doc["note"] = note
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1) + "\n")
        os.replace(tmp, self.path)


def by_pair(rows: list[Row]) -> dict[tuple[str, str], Row]:
    """Rows keyed by (strategy, check); a later row for the same pair wins."""
    return {(r["strategy"], r["check"]): r for r in rows}


PRECEDENCE = (FAILED, ERROR, PASSED, SKIPPED)  # a row's outcome is the first its kinds have


def combine(rows: list[Row]) -> Row:
    """One row from a check's rows per kind of endpoint: each under `kinds`, as measured; the row's own outcome the
    first of PRECEDENCE among them. The kind is part of the row's key from here on: its numbers stay under its kind
    (measured_parts), and a reader that wants one kind's asks for it (judged)."""
    first = rows[0]
    kinds = {r["kind"]: {k: v for k, v in r.items() if k not in ("strategy", "check", "kind")} for r in rows}
    outcomes = {r["outcome"] for r in rows}
    row: Row = {
        "strategy": first["strategy"],
        "check": first["check"],
        "outcome": next(o for o in PRECEDENCE if o in outcomes),
        "kinds": kinds,
    }
    measured = [r for r in rows if "metrics" in r]
    if measured:  # no metrics of the row's own: a count of one kind added to another's is no count of either
        row["evidence"] = " ".join(f"{r['kind']}: {r['evidence']}" for r in measured)
        if conditions := [r["conditions"] for r in measured if r.get("conditions")]:
            verdicts = [c["as_declared"] for c in conditions]
            row["conditions"] = {
                **conditions[0],
                "engines": [e for c in conditions for e in c["engines"]],
                "as_declared": None if None in verdicts else all(verdicts),
            }
    if reasons := [f"{r['kind']}: {r['reason']}" for r in rows if r.get("reason") and "metrics" not in r]:
        row["reason"] = "; ".join(reasons)
    if row["outcome"] == SKIPPED:
        row["unsupported"] = all(r.get("unsupported") for r in rows)
    if warned := sorted({w for r in rows for w in r.get("warnings", [])}):
        row["warnings"] = warned[:10]
    row["duration_s"] = round(sum(r.get("duration_s", 0) for r in rows), 3)
    return row


def measured_parts(row: Row) -> dict[str | None, dict]:
    """The metrics of each kind of endpoint a row measured, never added up ({None: ...} for a check of the whole
    app)."""
    if "kinds" in row:
        return {kind: part["metrics"] for kind, part in row["kinds"].items() if "metrics" in part}
    return {None: row["metrics"]} if "metrics" in row else {}


def per_kind(row: Row, show) -> str:
    """`show(metrics)` of each kind the row measured, `def: …; async: …` where it judged kinds apart."""
    return "; ".join(f"{kind}: {show(m)}" if kind else show(m) for kind, m in measured_parts(row).items())


def judged(row: Row, kind: str | None) -> Row | KindPart:
    """The part of `row` that judges `kind` of endpoint (probes.KINDS): its own row under `kinds`, {} when that
    kind was not measured; the row itself for a check of the whole app, or when `kind` is None."""
    if kind is None or "kinds" not in row:
        return row
    return row["kinds"].get(kind, {})


HARNESS_METRICS = ("unanswered_requests", "requests_not_sent")  # added to any check's row by the harness


def verdict_metrics(check: Check) -> list[str]:
    """The metrics a check's verdict reads: its key metrics, those its rule reads (as the results file records
    them), then the harness's."""
    return list(dict.fromkeys([*check.get("key", []), *check.get("rule_metrics", []), *HARNESS_METRICS]))


def verdict_keys(doc: dict) -> dict[str, list[str]]:
    """Each check's verdict_metrics, by check id."""
    return {c["id"]: verdict_metrics(c) for c in doc["checks"]}


def key_number(row: Row | KindPart, keys: list[str]) -> str:
    """`foreign_tag_seen=49`: the first of a check's key metrics that is not zero (else the first measured); of
    each kind, `def: …; async: …`, for a row that judged kinds apart."""
    if "kinds" in row:
        return per_kind(row, lambda m: key_number({"metrics": m}, keys))
    metrics = row.get("metrics") or {}
    present = [k for k in keys if k in metrics]
    chosen = next((k for k in present if metrics[k] not in (0, False, None, [])), present[0] if present else None)
    if chosen is None:
        return ""
    value = metrics[chosen]
    return f"{chosen}={value:g}" if isinstance(value, float) else f"{chosen}={value}"


def load(path: Path) -> Document:
    """Read and check a results file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file; run `nox -s compare` first") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); re-run `nox -s compare`") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise ResultsError(f"{path}: schema {found!r}, this report reads schema {SCHEMA}; re-run `nox -s compare`")
    missing = {"environment", "strategies", "checks", "results"} - set(doc)
    if missing:
        raise ResultsError(f"{path}: missing {', '.join(sorted(missing))}; re-run `nox -s compare`")
    return doc
