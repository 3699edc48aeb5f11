"""The markdown report: a pure function of the results document (no clock, no files, doc order throughout)."""

from __future__ import annotations

from report import answers, instructions, throughput
from report.claims import judge
from report.markdown import KIND_NAMES, MEASURED, SYMBOLS, cell, ready, table
from report.results import by_pair, judged, verdict_keys
from report.thread_claims import CLAIMS


def lock(state: dict | None) -> str:
    """Which lock file pinned the environment, and whether the installed versions are its pins."""
    if not state:
        return "none (not installed from a lock file by nox)"
    differ = state.get("differ") or {}
    pins = state.get("pins")
    agree = (
        f"{len(differ)} of its {pins} pins differ: "
        + ", ".join(
            f"{name} {v['installed'] or 'missing'} installed, {v['locked']} locked" for name, v in differ.items()
        )
        if differ
        else f"its {pins} pins installed"
    )
    return f"`{state['file']}` (sha256 {(state.get('sha256') or '')[:12]}), {agree}"


def environment(env: dict, matrix_link: bool = False) -> list[str]:
    db = env.get("database") or {}
    packages = ", ".join(
        f"{name} {version or 'not installed'}" for name, version in (env.get("packages") or {}).items()
    )
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


def pools(conditions: dict | None) -> str:
    """`QueuePool(5+0, 1 s)` per engine the app used (`, pre-ping` where it pings before checkout), ⚠️ where it was
    not the declared pool."""
    found = []
    for e in (conditions or {}).get("engines", []):
        size = [f"{e['pool_size']}+{e['max_overflow']}, {e['pool_timeout']:g} s"] if "pool_size" in e else []
        settings = ", ".join(size + ["pre-ping"] * bool(e.get("pool_pre_ping")))
        found.append(f"{'⚠️ ' if e.get('as_declared') is False else ''}{e['class']}({settings})")
    return ", ".join(found)


def check_section(check: dict, strategies: list[dict], found: dict) -> list[str]:
    """What the check measures and its rule, then a line per strategy (per strategy and kind of endpoint, for a
    check that judges each kind on its own numbers) with every metric and the evidence."""
    parts = []
    for s in strategies:
        row = found.get((s["id"], check["id"]), {})
        kinds = row.get("kinds") or {}
        parts += [(f"`{cell(s['id'])}` ({KIND_NAMES[k]})", part) for k, part in kinds.items()]
        parts += [] if kinds else [(f"`{cell(s['id'])}`", row)]
    names = list(dict.fromkeys(name for _, part in parts for name in part.get("metrics") or {}))
    declared = check.get("pool")
    body = []
    for label, row in parts:
        metrics = row.get("metrics") or {}
        text = row.get("evidence") or row.get("reason") or ("" if row else "not run")
        conditions = [pools(row.get("conditions"))] if declared else []
        body.append(
            [label, SYMBOLS[row.get("outcome")], *conditions, *(cell(metrics.get(n)) for n in names), cell(text)]
        )
    bound, cap = check.get("request_bound_s"), check.get("request_cap_s")
    slow = f" with the app idle ({cap:g} s while it computes)" if cap else ""
    harness = (
        f"; and, as for every check, a request left unanswered for {bound:g} s{slow} (or not sent once the app "
        "had stopped answering) fails it"
        if bound
        else ""
    )
    pool = (
        f"**Pool**: {', '.join(f'{k}={v:g}' for k, v in declared.items())}, the default of every queue pool the "
        "app creates; the pools each app really ran with are in the table (⚠️ where an engine chose its own)."
        if declared
        else None
    )
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


def warnings_of(s: dict, rows: list[dict]) -> set[str]:
    return {w for r in rows for w in r.get("warnings", [])} | set(s.get("import_warnings", []))


def strategy_line(s: dict, rows: list[dict], shared: set[str] = frozenset()) -> str:
    """`- id: label (file; fastapi-sqla 4.0.1); warned: ...` for the environment block; a warning in `shared` is
    said once, under the list (shared_warnings)."""
    versions = "; ".join(f"{name} {version or 'not installed'}" for name, version in (s.get("versions") or {}).items())
    warned = sorted(warnings_of(s, rows) - shared)
    where = "; ".join(filter(None, [f"`{s.get('file') or s.get('module')}`", versions]))
    return f"- `{s['id']}`: {s.get('label', '')} ({where})" + (f"; warned: {cell('; '.join(warned))}" if warned else "")


def shared_warnings(strategies: list[dict], rows: list[dict]) -> dict[str, list[str]]:
    """Each warning more than one strategy raised -> those strategies: said once, not once per strategy."""
    found: dict[str, list[str]] = {}
    for s in strategies:
        for w in warnings_of(s, [r for r in rows if r["strategy"] == s["id"]]):
            found.setdefault(w, []).append(s["id"])
    return {w: ids for w, ids in sorted(found.items()) if len(ids) > 1}


SCOPES = {**{kind: f"{name} endpoints" for kind, name in KIND_NAMES.items()}, None: "The app as a whole"}


def verdict_table(strategies: list[dict], checks: list[dict], found: dict) -> list[str]:
    """One table per kind of endpoint and one for the whole app: marks only, a column per check that judges it,
    failures and errors counted per strategy; strategies that serve none of a kind's routes named under it."""
    out = []
    for kind, title in SCOPES.items():
        columns = [c for c in checks if (kind in (c.get("kinds") or ()) if kind else not c.get("kinds"))]
        if not columns:
            continue
        body, unserved = [], []
        for s in ready(strategies):  # the rest: under the tables
            outcomes = [judged(found.get((s["id"], c["id"]), {}), kind).get("outcome") for c in columns]
            if kind and not set(outcomes) & set(MEASURED):
                unserved.append(s["id"])
                continue
            body.append(
                [
                    f"`{cell(s['id'])}`",
                    str(outcomes.count("failed")),
                    str(outcomes.count("error")),
                    *(SYMBOLS[o] for o in outcomes),
                ]
            )
        names = [c.get("column") or c["id"] for c in columns]
        out += [f"### {title}", "", *table(["Strategy", "Failed", "Errors", *names], body), ""]
        out += [", ".join(f"**{n}** `{c['id']}`" for n, c in zip(names, columns)) + ".", ""]
        if unserved:
            out += [f"Measured on no {KIND_NAMES[kind]} endpoint: " + ", ".join(f"`{i}`" for i in unserved) + ".", ""]
    return out + [
        "✅ passed, ❌ failed, ⚠️ error (could not measure), ➖ skipped, — not run. Each check's section "
        "below says what it measures and its rule.",
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
    measured = ready(strategies)
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
        out.append(f"- {SYMBOLS[outcome]} every check for {', '.join(f'`{i}`' for i in ids)}: {reason}")
    for (outcome, check, reason), ids in groups.items():
        who = "every strategy" if len(ids) == len(measured) > 1 else ", ".join(f"`{i}`" for i in ids)
        out.append(f"- {SYMBOLS[outcome]} `{check}` for {who}: {reason}")
    return out + [""]


VERDICTS = {"supported": "✅ supported", "refuted": "❌ refuted", "partly": "◐ partly", "untested": "· untested"}
HOLDS = {True: "✓", False: "✗", None: "·"}


def claims_section(doc: dict) -> list[str]:
    keys = verdict_keys(doc)
    verdicts = [(claim, judge(claim, doc["results"], keys)) for claim in CLAIMS]
    counts = ", ".join(f"{sum(v.verdict == name for _, v in verdicts)} {name}" for name in VERDICTS)
    named = {
        s
        for claim in CLAIMS
        for e in (*claim.says, *claim.contrast)
        for s in getattr(e, "strategies", (getattr(e, "strategy", None),))
    }
    if not named & {r["strategy"] for r in doc["results"]}:  # an audit of one app alone, say
        return ["## Claims from the thread", "", "None of the strategies the claims name ran in this run.", ""]
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
        'claim says a strategy cannot do something ("unserved"), the strategy\'s own declaration that it cannot '
        "serve the check's routes is the finding, quoted in its words. ✓ holds, ✗ does not, · not measured.",
        "",
        *table(
            ["#", "Claim", "Who", "Verdict", "Checks that disagree"],
            [
                [
                    str(n),
                    f"“{cell(claim.quote)}”",
                    cell(claim.who),
                    VERDICTS[v.verdict],
                    ", ".join(f"`{c}`" for c in v.disagree),
                ]
                for n, (claim, v) in enumerate(verdicts, 1)
            ],
        ),
        "",
    ]
    for n, (claim, v) in enumerate(verdicts, 1):
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
    # An ablation's variants are read by What to use's tables alone (answers.ablation), not listed as rows here.
    strategies = [s for s in doc["strategies"] if not s.get("ablation_of")]
    checks, rows = doc["checks"], doc["results"]
    found = by_pair(rows)
    out = ["# sessionbench: how FastAPI apps manage SQLAlchemy sessions", ""]
    banner = (
        []
        if doc.get("complete")
        else [
            "> **⚠️ INCOMPLETE run**: the run did not finish; only the rows written before it stopped are shown, "
            "and cells marked — were not measured."
        ]
    )
    if doc.get("note"):
        banner += [">"] * bool(banner) + [f"> Note: {doc['note']}"]
    out += banner + [""] * bool(banner)
    out += answers.section(doc, found)
    out += ["## Verdicts", "", *verdict_table(strategies, checks, found), *not_measured(strategies, checks, found)]
    out += ["## Environment", "", *environment(doc["environment"], matrix_link), "", "Strategies:", ""]
    shared = shared_warnings(strategies, rows)
    out += [strategy_line(s, [r for r in rows if r["strategy"] == s["id"]], set(shared)) for s in strategies]
    out += [""]
    if shared:
        out += ["Warned by several strategies (said once):", ""]
        out += [f"- {cell(w)}: {', '.join(f'`{i}`' for i in ids)}" for w, ids in shared.items()] + [""]
    for check in checks:
        out += check_section(check, strategies, found)
    if doc.get("throughput"):
        out += throughput.section(doc["throughput"])
    if doc.get("instructions"):
        out += instructions.section(doc["instructions"])
    out += [*extra, *claims_section(doc)]
    return "\n".join(out) + "\n"
