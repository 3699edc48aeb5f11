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


def environment(env: dict) -> list[str]:
    db = env.get("database") or {}
    packages = ", ".join(f"{name} {version or 'not installed'}" for name, version in (env.get("packages") or {}).items())
    items = [
        ("Python", " ".join(filter(None, [env.get("python"), env.get("implementation")]))),
        ("Packages", packages),
        ("Database", " ".join(filter(None, [db.get("backend"), db.get("version")]))),
        ("CPUs", env.get("cpu_count")),
        ("Platform", env.get("platform")),
        ("Git", env.get("git_sha")),
        ("Started", env.get("started_at")),
        ("Command", f"`{env['command']}`" if env.get("command") else None),
    ]
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


VERDICTS = {"supported": "✅ supported", "refuted": "❌ refuted", "partly": "◐ partly", "untested": "· untested"}
HOLDS = {True: "✓", False: "✗", None: "·"}


def claims_section(doc: dict) -> list[str]:
    keys = {c["id"]: c.get("key", []) for c in doc["checks"]}
    judged = [(claim, judge(claim, doc["results"], keys)) for claim in CLAIMS]
    counts = ", ".join(f"{sum(v.verdict == name for _, v in judged)} {name}" for name in VERDICTS)
    out = [
        "## Claims from the thread",
        "",
        f"Every claim of FastAPI #726, quoted with who made it ({counts}). Each is tested by expectations on "
        "named rows (an outcome, a rule on a metric, or two strategies compared on one check) in two parts: what "
        "the claim predicts for the patterns it is about, and the **contrast**, what its alternatives must show "
        "for those rows to single the claim out (an async-only claim needs sync engines to behave otherwise). "
        "**Refuted**: none of the claim's own expectations holds. **Partly**: some hold and some do not, the "
        "contrast's included; the checks that disagree are named. **Supported**: all hold, the contrast is "
        "measured and no row is missing or errored. **Untested**: nothing of the claim was measured, or nothing "
        "disagrees but the rest of the evidence is missing. Skipped rows (a check that does not apply, e.g. a "
        "server-only one on SQLite) and metrics a run does not record are left out, with one exception: where a "
        "claim says a strategy cannot do something (\"unserved\"), the strategy's own declaration that it cannot "
        "serve the check's routes is the finding, quoted in its words. ✓ holds, ✗ does not, · not measured.",
        "",
        *table(["#", "Claim", "Who", "Verdict", "Checks that disagree"],
               [[str(n), f"“{cell(claim.quote)}”", cell(claim.who), VERDICTS[v.verdict],
                 ", ".join(f"`{c}`" for c in v.disagree)] for n, (claim, v) in enumerate(judged, 1)]),
        "",
    ]
    for n, (claim, v) in enumerate(judged, 1):
        out += [f"**{n}. {VERDICTS[v.verdict]}**" + (f": {claim.note}" if claim.note else ""), ""]
        if not claim.says:
            out += ["- nothing in sessionbench measures this yet", ""]
            continue
        out += [f"- claim: {HOLDS[f.holds]} {f.text}" for f in v.says]
        out += [f"- contrast: {HOLDS[f.holds]} {f.text}" for f in v.contrast] + [""]
    return out


def render(doc: dict, extra: list[str] = ()) -> str:
    """The whole report; `extra` lines (e.g. report.agreement's section) go after the throughput section."""
    strategies, checks, rows = doc["strategies"], doc["checks"], doc["results"]
    found = by_pair(rows)
    out = ["# sessionbench: how FastAPI apps manage SQLAlchemy sessions", ""]
    banner = [] if doc.get("complete") else [
        "> **⚠️ INCOMPLETE run**: the run did not finish; only the rows written before it stopped are shown, "
        "and cells marked — were not measured."]
    if doc.get("note"):
        banner += [">"] * bool(banner) + [f"> Note: {doc['note']}"]
    out += banner + [""] * bool(banner)
    out += ["## Environment", "", *environment(doc["environment"]), "", "Strategies:", ""]
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
    out += [*extra, *claims_section(doc)]
    return "\n".join(out) + "\n"
