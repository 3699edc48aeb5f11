"""The markdown report: a pure function of the results document (no clock, no files, doc order throughout)."""

from __future__ import annotations

from report import throughput
from report.claims import CLAIMS, judge
from report.results import by_pair

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


def lock(state: dict | None) -> str:
    """Which lock file pinned the environment, and whether the installed versions are its pins."""
    if not state:
        return "none (not installed from a lock file by nox)"
    differ = state.get("differ") or {}
    pins = state.get("pins")
    agree = (f"{len(differ)} of its {pins} pins differ: " + ", ".join(
        f"{name} {v['installed'] or 'missing'} installed, {v['locked']} locked" for name, v in differ.items())
        if differ else f"its {pins} pins installed")
    return f"`{state['file']}` (sha256 {(state.get('sha256') or '')[:12]}), {agree}"


def environment(env: dict, matrix_link: bool = False) -> list[str]:
    db = env.get("database") or {}
    packages = ", ".join(f"{name} {version or 'not installed'}" for name, version in (env.get("packages") or {}).items())
    items = [
        ("Python", " ".join(filter(None, [env.get("python"), env.get("implementation")]))),
        ("Packages", packages),
        ("Lock", lock(env["lock"]) if "lock" in env else None),
        ("Database", " ".join(filter(None, [db.get("backend"), db.get("version")]))),
        ("CPUs", env.get("cpu_count")),
        ("Platform", env.get("platform")),
        ("Git", env.get("git_sha")),
        ("Started", env.get("started_at")),
        ("Command", f"`{env['command']}`" if env.get("command") else None),
    ]
    if matrix_link:
        items.append(("Other versions", "[MATRIX.md](MATRIX.md): the checks across FastAPI releases and Pythons"))
    return [f"- {name}: {value if value not in (None, '') else 'unknown'}" for name, value in items]


def key_numbers(metrics: dict, keys: list[str]) -> str:
    """`rows_missing=0 rows_from_failed_requests=10`: the numbers a verdict mostly rests on."""
    return " ".join(f"{k}={cell(metrics[k])}" for k in keys if k in metrics)


def summary_cell(row: dict, keys: list[str]) -> str:
    mark = MARKS[row.get("outcome")]
    if row.get("outcome") not in ("passed", "failed"):
        return mark
    return f"{mark} {key_numbers(row.get('metrics') or {}, keys)}"


def check_section(check: dict, strategies: list[dict], found: dict) -> list[str]:
    rows = [found.get((s["id"], check["id"]), {}) for s in strategies]
    names = list(dict.fromkeys(name for row in rows for name in row.get("metrics") or {}))
    body = []
    for s, row in zip(strategies, rows):
        metrics = row.get("metrics") or {}
        text = row.get("evidence") or row.get("reason") or ("" if row else "not run")
        body.append([f"`{cell(s['id'])}`", MARKS[row.get("outcome")], *(cell(metrics.get(n)) for n in names), cell(text)])
    return [
        f"## {check['title']} (`{check['id']}`)",
        "",
        f"**Measures**: {check.get('measures', '')}",
        "",
        f"**Why it matters**: {check.get('why', '')}",
        "",
        f"**Rule**: {check.get('rule', '')}",
        "",
        *table(["Strategy", "Outcome", *map(cell, names), "Evidence"], body),
        "",
    ]


def claims_section(rows: list[dict]) -> list[str]:
    body = []
    for claim in CLAIMS:
        verdict, lines = judge(claim, rows)
        body.append([f"“{cell(claim.quote)}” ({cell(claim.who)})", f"**{verdict}**", "<br>".join(map(cell, lines))])
    return [
        "## Claims from the thread",
        "",
        "Each claim of FastAPI #726 against the rows that would bear it out: supported when every row has the "
        "outcome the claim needs, refuted when every row has the opposite one, mixed otherwise; skipped rows (a check "
        "that does not apply, e.g. a server-side check on SQLite) are left out, and a missing or errored row makes "
        "it not measured.",
        "",
        *table(["Claim", "Verdict", "Evidence"], body),
    ]


def render(doc: dict, extra: list[str] = (), matrix_link: bool = False) -> str:
    """The whole report; `extra` lines (e.g. report.agreement's section) go after the throughput section;
    `matrix_link`: a MATRIX.md (report/matrix.py) lies next to it."""
    strategies, checks, rows = doc["strategies"], doc["checks"], doc["results"]
    found = by_pair(rows)
    out = ["# sessionbench: how FastAPI apps manage SQLAlchemy sessions", ""]
    banner = [] if doc.get("complete") else [
        "> **⚠️ INCOMPLETE run**: the run did not finish; only the rows written before it stopped are shown, "
        "and cells marked — were not measured."]
    if doc.get("note"):
        banner += [">"] * bool(banner) + [f"> Note: {doc['note']}"]
    out += banner + [""] * bool(banner)
    out += ["## Environment", "", *environment(doc["environment"], matrix_link), "", "Strategies:", ""]
    out += [f"- `{s['id']}`: {s.get('label', '')} (`{s.get('file') or s.get('module')}`)" for s in strategies]
    out += ["", "## Summary", ""]
    out += ["How to read: ✅ passed, ❌ failed, ⚠️ error, ➖ skipped, — not run; a measured cell also shows "
            "the check's key metric as name=value.", ""]
    matrix = [[f"`{cell(s['id'])}`", *(summary_cell(found.get((s["id"], c["id"]), {}), c.get("key", [])) for c in checks)]
              for s in strategies]
    out += table(["Strategy", *(f"`{cell(c['id'])}`" for c in checks)], matrix)
    trouble = [found[s["id"], c["id"]] for s in strategies for c in checks
               if found.get((s["id"], c["id"]), {}).get("outcome") in ("error", "skipped")]
    if trouble:
        out += ["", "Errors and skips:", ""]
        out += [f"- {MARKS[r['outcome']]} `{r['strategy']}` × `{r['check']}`: {r.get('reason', 'no reason given')}" for r in trouble]
    out += [""]
    for check in checks:
        out += check_section(check, strategies, found)
    if doc.get("throughput"):
        out += throughput.section(doc["throughput"])
    out += [*extra, *claims_section(rows)]
    return "\n".join(out) + "\n"
