"""The markdown report: a pure function of the results document (no clock, no files, doc order throughout)."""

from __future__ import annotations

from report import instructions, throughput
from report.claims import CLAIMS, judge
from report.results import by_pair, key_number, verdict_metrics

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


def short_labels(checks: list[dict]) -> dict[str, str]:
    """A column label per check for the matrix: the initials of its id's words (`isolation_async` -> IA), numbered
    where two would be alike."""
    labels, taken = {}, set()
    for check in checks:
        base = "".join(word[:1] for word in check["id"].split("_")).upper() or "?"
        label, n = base, 1
        while label in taken:
            n += 1
            label = f"{base}{n}"
        taken.add(label)
        labels[check["id"]] = label
    return labels


def key_numbers(metrics: dict, keys: list[str]) -> str:
    """`rows_missing=0 rows_from_failed_requests=10`: the numbers a verdict mostly rests on (the runner's progress
    lines)."""
    return " ".join(f"{k}={cell(metrics[k])}" for k in keys if k in metrics)


def pools(conditions: dict | None) -> str:
    """`QueuePool(5+0, 1 s)` per engine the app used, ⚠️ where it was not the declared pool."""
    found = []
    for e in (conditions or {}).get("engines", []):
        size = f"{e['pool_size']}+{e['max_overflow']}, {e['pool_timeout']:g} s" if "pool_size" in e else ""
        found.append(f"{'⚠️ ' if e.get('as_declared') is False else ''}{e['class']}({size})")
    return ", ".join(found)


def check_section(check: dict, strategies: list[dict], found: dict) -> list[str]:
    rows = [found.get((s["id"], check["id"]), {}) for s in strategies]
    names = list(dict.fromkeys(name for row in rows for name in row.get("metrics") or {}))
    declared = check.get("pool")
    body = []
    for s, row in zip(strategies, rows):
        metrics = row.get("metrics") or {}
        text = row.get("evidence") or row.get("reason") or ("" if row else "not run")
        conditions = [pools(row.get("conditions"))] if declared else []
        body.append([f"`{cell(s['id'])}`", MARKS[row.get("outcome")], *conditions,
                     *(cell(metrics.get(n)) for n in names), cell(text)])
    bound = check.get("request_bound_s")
    harness = (f"; and, as for every check, a request left unanswered for {bound:g} s (or not sent once the app had "
               "stopped answering) fails it" if bound else "")
    pool = (f"**Pool**: {', '.join(f'{k}={v:g}' for k, v in declared.items())}, the default of every queue pool the "
            "app creates; the pools each app really ran with are in the table (⚠️ where an engine chose its own)."
            if declared else None)
    return [
        f"## {check['title']} (`{check['id']}`)",
        "",
        f"**Measures**: {check.get('measures', '')}",
        "",
        f"**Why it matters**: {check.get('why', '')}",
        "",
        f"**Rule**: {check.get('rule', '')}{harness}",
        "",
        *([pool, ""] if pool else []),
        *table(["Strategy", "Outcome", *(["Pools as run"] if declared else []), *map(cell, names), "Evidence"], body),
        "",
    ]


def strategy_line(s: dict, rows: list[dict]) -> str:
    """`- id: label (file; fastapi-sqla 4.0.1); warned: ...` for the environment block."""
    versions = "; ".join(f"{name} {version or 'not installed'}" for name, version in (s.get("versions") or {}).items())
    warned = sorted({w for r in rows for w in r.get("warnings", [])} | set(s.get("import_warnings", [])))
    where = "; ".join(filter(None, [f"`{s.get('file') or s.get('module')}`", versions]))
    return f"- `{s['id']}`: {s.get('label', '')} ({where})" + (f"; warned: {cell('; '.join(warned))}" if warned else "")


def matrix(strategies: list[dict], checks: list[dict], found: dict) -> list[str]:
    """Marks only, one short column per check, failures and errors counted per strategy; the legend under it."""
    labels = short_labels(checks)
    body = []
    for s in strategies:
        outcomes = [found.get((s["id"], c["id"]), {}).get("outcome") for c in checks]
        body.append([f"`{cell(s['id'])}`", str(outcomes.count("failed")), str(outcomes.count("error")),
                     *(MARKS[o] for o in outcomes)])
    return [
        *table(["Strategy", "Failed", "Errors", *(labels[c["id"]] for c in checks)], body),
        "",
        "✅ passed, ❌ failed, ⚠️ error (could not measure), ➖ skipped, — not run. Columns:",
        "",
        *(f"- **{labels[c['id']]}** `{c['id']}`: {c['title']}" for c in checks),
        "",
    ]


def not_measured(strategies: list[dict], checks: list[dict], found: dict) -> list[str]:
    """The errors and skips behind the matrix: one line per strategy the import preflight kept from every check
    (its one reason), then one line per check and reason."""
    whole: dict[tuple, list[str]] = {}
    for s in strategies:
        if s.get("preflight", "ready") != "ready":
            row = next((found[s["id"], c["id"]] for c in checks if (s["id"], c["id"]) in found), {})
            whole.setdefault((s["preflight"], row.get("reason") or "no reason given"), []).append(s["id"])
    measured = [s for s in strategies if s.get("preflight", "ready") == "ready"]
    groups: dict[tuple, list[str]] = {}
    for c in checks:
        for s in measured:
            row = found.get((s["id"], c["id"]), {})
            if row.get("outcome") in ("error", "skipped"):
                groups.setdefault((row["outcome"], c["id"], row.get("reason") or "no reason given"), []).append(s["id"])
    if not whole and not groups:
        return []
    out = ["Not measured:", ""]
    for (outcome, reason), ids in whole.items():
        out.append(f"- {MARKS[outcome]} every check for {', '.join(f'`{i}`' for i in ids)}: {reason}")
    for (outcome, check, reason), ids in groups.items():
        who = "every strategy" if len(ids) == len(measured) > 1 else ", ".join(f"`{i}`" for i in ids)
        out.append(f"- {MARKS[outcome]} `{check}` for {who}: {reason}")
    return out + [""]


def _cost_text(cost: dict | None, cpu: dict | None = None) -> str:
    wall = f"× raw connection {throughput.span(cost)}" if cost else "cost not measured"
    return wall + (f"; instructions × raw connection {cpu['median']:.2f} ({cpu['min']:.2f}–{cpu['max']:.2f})"
                   if cpu else "")


def _cost_definition(mode: str | None, costs: dict) -> str:
    if not mode:
        return "Cost was not measured in this run (`--throughput off`), so nothing here is ordered by it."
    first = next(iter(costs.values()), {"levels": []})
    coverage = min((c["covers"] for c in costs.values()), default=0)
    return (
        f"**Cost** is × raw connection on the read route ({throughput.KIND_TITLES['read']}; "
        f"{throughput.MODES[mode].split(' (')[0].lower()} mode): the geometric mean over the concurrency levels "
        f"({', '.join(map(str, first['levels']))}) of the median per-round ratio of the strategy's req/s to the "
        f"raw-connection baseline's on the same path. 1.00 is as fast as a pooled connection with no ORM session; "
        f"higher is cheaper. In brackets, the geometric means of the per-level interval ends: a band that holds the "
        f"geometric mean of the true medians with at least {coverage * 100:.0f} % probability"
        + (" (too few rounds to promise anything: run `--throughput full`)" if coverage < 0.5 else "")
        + ". ≈ marks a band that overlaps the one above it: this run does not order those two."
    )


def what_to_use(doc: dict, found: dict) -> list[str]:
    """The strategies that pass every check they can serve, cheapest first; then every other one's failures."""
    strategies, checks = doc["strategies"], doc["checks"]
    keys = {c["id"]: verdict_metrics(c) for c in checks}
    mode, costs = throughput.read_costs(doc.get("throughput") or {})
    level, cpu = instructions.read_costs(doc.get("instructions") or {})
    absent = {s["id"]: s for s in strategies if s.get("preflight", "ready") != "ready"}  # not installed, or no import
    strategies = [s for s in strategies if s["id"] not in absent]
    rows = {s["id"]: [(c["id"], found.get((s["id"], c["id"]), {})) for c in checks] for s in strategies}
    against = {i: [(c, r) for c, r in rs if r.get("outcome") not in ("passed", "skipped")] for i, rs in rows.items()}
    everywhere = [c["id"] for c in checks if strategies
                  and all(found.get((s["id"], c["id"]), {}).get("outcome") == "skipped" for s in strategies)]

    def fails(i: str) -> int:
        return sum(r.get("outcome") == "failed" for _, r in against[i])

    cheapest = sorted(rows, key=lambda i: -costs[i]["median"] if i in costs else 0)
    clean = [i for i in cheapest if not against[i]]
    others = sorted((i for i in cheapest if against[i]), key=fails)
    out = ["## What to use", "",
           "From this run's rows alone: first the strategies that pass every check they could be measured on "
           "(no ❌, no ⚠️, nothing unrun; their ➖ skips named), cheapest first; then every other strategy, fewest "
           "failures first, each failure with its key number.", "", "### Passes every check it can serve", ""]
    if not clean:
        out.append("None: every strategy failed a check, or could not be measured on one, in this run.")
    previous = None
    for i in clean:
        skipped = [c for c, r in rows[i] if r.get("outcome") == "skipped" and c not in everywhere]
        overlap = previous and i in costs and costs[i]["high"] >= costs[previous]["low"]
        note = f"; ➖ {', '.join(f'`{c}`' for c in skipped)}" if skipped else ""
        out.append(f"- {'≈ ' if overlap else ''}`{i}`: {_cost_text(costs.get(i), cpu.get(i))}{note}")
        previous = i if i in costs else previous
    out += ["", "### Every other strategy", ""]
    if not others:
        out.append("None.")
    for i in others:
        unmeasured = len(against[i]) - fails(i)
        out.append(f"- `{i}`: {fails(i)} failed" + (f", {unmeasured} not measured" if unmeasured else "")
                   + f"; {_cost_text(costs.get(i), cpu.get(i))}")
        for c, r in against[i]:
            if r.get("outcome") == "failed":
                out.append(f"  - ❌ `{c}`: {cell(key_number(r, keys[c]))}")
            else:
                out.append(f"  - {MARKS[r.get('outcome')]} `{c}`: {cell(r.get('reason') or 'not run')}")
    out += ["", _cost_definition(mode, costs)]
    if everywhere:
        out[-1] += " Not measured for any strategy in this run: " + ", ".join(f"`{c}`" for c in everywhere) + "."
    if cpu:
        out[-1] += (f" **Instructions × raw connection** (read route, {level} client{'s' * (level != 1)}) is the "
                    "CPU work per request against the raw-connection baseline's, median and range over repeats "
                    "(below: CPU cost per request): lower is cheaper; it does not see time spent waiting, so it "
                    "does not enter this order.")
    if absent:
        out += ["", "### Not measured in this environment", ""]
        out += [f"- `{i}`: {s['preflight']}: {cell(next((r.get('reason') for r in doc['results'] if r['strategy'] == i), ''))}"
                for i, s in absent.items()]
    return out + [""]


VERDICTS = {"supported": "✅ supported", "refuted": "❌ refuted", "partly": "◐ partly", "untested": "· untested"}
HOLDS = {True: "✓", False: "✗", None: "·"}


def claims_section(doc: dict) -> list[str]:
    keys = {c["id"]: verdict_metrics(c) for c in doc["checks"]}
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
    out += ["## Verdicts", "", *matrix(strategies, checks, found), *not_measured(strategies, checks, found)]
    out += what_to_use(doc, found)
    out += ["## Environment", "", *environment(doc["environment"], matrix_link), "", "Strategies:", ""]
    out += [strategy_line(s, [r for r in rows if r["strategy"] == s["id"]]) for s in strategies]
    out += [""]
    for check in checks:
        out += check_section(check, strategies, found)
    if doc.get("throughput"):
        out += throughput.section(doc["throughput"])
    if doc.get("instructions"):
        out += instructions.section(doc["instructions"])
    out += [*extra, *claims_section(doc)]
    return "\n".join(out) + "\n"
