"""What to use: for each kind of app, the strategies that pass every check that concerns it, from the rows alone.

A check of endpoints judges each kind (`def`, `async def`) on its own numbers
(a row's `kinds`); a check of the whole app (reload, shutdown, `/nodb`)
concerns every app. An app with only `def` endpoints is served by a strategy
that passes every `def` verdict and every whole-app one it can be measured on;
likewise for `async def`; an app with both needs both. Nothing here reads a
strategy's name: the order is the rows' outcomes, then the measured cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from report import instructions, throughput
from report.format import SEVERITIES
from report.markdown import KIND_NAMES, MEASURED, SYMBOLS, cell, ready, table
from report.results import by_pair, judged, key_number, verdict_keys

APPS = {  # the kinds of app a reader has -> the kinds of endpoint (probes.KINDS) it has
    "def": ("An app whose endpoints are all `def`", ("def",)),
    "async": ("An app whose endpoints are all `async def`", ("async",)),
    "both": ("An app with `def` and `async def` endpoints", ("def", "async")),
}
NEXT_BEST = 3  # strategies shown after the clean ones, fewest failures first
HAZARD_SHARE = 0.5  # a check more than this share of a kind's strategies fail: that kind's hazard, not one pattern's


def skipped_everywhere(doc: dict, found: dict) -> list[str]:
    """Checks this run measured on no strategy (e.g. a server-only one on SQLite): said once, not per strategy."""
    measured = ready(doc["strategies"])
    return [
        c["id"]
        for c in doc["checks"]
        if measured and all(found.get((s["id"], c["id"]), {}).get("outcome") == "skipped" for s in measured)
    ]


@dataclass(frozen=True)
class Verdict:
    check: str
    kind: str | None  # None: a check of the whole app
    row: dict  # the row, or the part of it that judges `kind`; {} when not run


def verdicts(doc: dict, found: dict, strategy: str, kinds: tuple[str, ...]) -> list[Verdict]:
    """Every verdict on `strategy` that concerns an app with endpoints of `kinds`."""
    out = []
    for check in doc["checks"]:
        row = found.get((strategy, check["id"]), {})
        if check.get("kinds"):
            out += [Verdict(check["id"], k, judged(row, k)) for k in kinds if k in check["kinds"]]
        else:
            out.append(Verdict(check["id"], None, row))
    return out


def serves(found_verdicts: list[Verdict], kind: str) -> bool:
    """A strategy serves a kind of endpoint unless every check of that kind run on it skipped it."""
    mine = [v for v in found_verdicts if v.kind == kind]
    return not mine or any(v.row.get("outcome") in MEASURED for v in mine)


def name(v: Verdict, kinds: tuple[str, ...]) -> str:
    """`pool_exhaustion`, with the kind of endpoint where the app has two."""
    return f"`{v.check}`" + (f" ({KIND_NAMES[v.kind]})" if v.kind and len(kinds) > 1 else "")


def _against(vs: list[Verdict]) -> list[Verdict]:
    return [v for v in vs if v.row.get("outcome") not in ("passed", "skipped")]


def _severities(doc: dict) -> dict[str, str]:
    return {c["id"]: c.get("severity", "nuisance") for c in doc["checks"]}


def severity(v: Verdict, severities: dict) -> int:
    """How bad a failed verdict is: its check's severity, worst (0) first, as report.format.SEVERITIES orders them."""
    return list(SEVERITIES).index(severities.get(v.check, "nuisance"))


def _failure_line(v: Verdict, kinds: tuple[str, ...], keys: dict, severities: dict, lacks: dict) -> str:
    if v.row.get("outcome") == "failed":
        lasting = "permanent" if v.row.get("permanent") else "recovers"
        fix = lacks.get((v.check, v.kind))
        return (
            f"  - ❌ {name(v, kinds)}: {cell(key_number(v.row, keys[v.check]))} ({severities.get(v.check)}, {lasting})"
            + (f"; the answer fails it too without {', '.join(f'`{line}`' for line in fix)}" if fix else "")
        )
    return f"  - {SYMBOLS[v.row.get('outcome')]} {name(v, kinds)}: {cell(v.row.get('reason') or 'not run')}"


def _worst(vs: list[Verdict], severities: dict) -> str:
    failed = [v for v in _against(vs) if v.row.get("outcome") == "failed"]
    return severities[min(failed, key=lambda v: severity(v, severities)).check] if failed else "none"


def rank(vs: list[Verdict], severities: dict) -> tuple:
    """Least harmful first: the worst failure's severity, then failures that do not go away, then how many."""
    failed = [v for v in _against(vs) if v.row.get("outcome") == "failed"]
    worst = min((severity(v, severities) for v in failed), default=len(SEVERITIES))
    return (-worst, sum(bool(v.row.get("permanent")) for v in failed), len(failed), len(_against(vs)))


def ablation(doc: dict, found: dict, strategy: str, kinds: tuple[str, ...]) -> dict[str, list[Verdict]]:
    """Per ingredient of `strategy` its ablation switched off: the verdicts (on `kinds` and the whole app) that
    fail without it and pass with it."""
    mine = {(v.check, v.kind): v for v in verdicts(doc, found, strategy, kinds)}
    out = {}
    for variant in doc["strategies"]:
        if (variant.get("ablation_of") or [None])[0] == strategy and variant.get("preflight", "ready") == "ready":
            out[variant["ablation_of"][1]] = [
                v
                for v in verdicts(doc, found, variant["id"], kinds)
                if v.row.get("outcome") == "failed"
                and mine.get((v.check, v.kind), Verdict("", None, {})).row.get("outcome") == "passed"
            ]
    return out


def ablation_table(lines: dict[str, list[Verdict]], kinds: tuple[str, ...], keys: dict) -> list[str]:
    """Line → the checks that fail without it → the key number; a line whose removal fails nothing says so."""
    if not lines:
        return []
    rows = [
        [
            f"`{cell(line)}`",
            "; ".join(f"{name(v, kinds)}: {cell(key_number(v.row, keys[v.check]))}" for v in failing)
            or "nothing fails without it in this run: its reason is unmeasured",
        ]
        for line, failing in lines.items()
    ]
    return ["", "  Why each line is there (the same module with that line taken out, measured like any row):", ""] + [
        f"  {line}" for line in table(["Line", "Fails without it"], rows)
    ]


def lacking(lines: dict[str, list[Verdict]]) -> dict[tuple[str, str | None], list[str]]:
    """(check, kind) -> the answer's lines whose removal fails it: what a row failing it lacks."""
    out: dict = {}
    for line, failing in lines.items():
        for v in failing:
            out.setdefault((v.check, v.kind), []).append(line)
    return out


def _quote(strategy: dict, kinds: tuple[str, ...]) -> list[str]:
    """The lines of the strategy module that hand each kind of endpoint its session (recorded by the preflight),
    each block once."""
    blocks = [b for k in kinds for b in ((strategy.get("pattern") or {}).get(k) or "").split("\n\n") if b]
    if not blocks:
        return []
    lines = "\n\n".join(dict.fromkeys(blocks)).splitlines()
    return ["", "  ```python", *(f"  {line}".rstrip() for line in lines), "  ```"]


def cost_text(costs: dict[str, dict], i: str, kinds: tuple[str, ...], cpu: dict | None = None) -> str:
    """The strategy's × raw connection on each kind of route of `kinds` it was measured on."""
    measured = [(k, costs[k][i]) for k in kinds if i in costs.get(k, {})]
    if not measured:
        wall = "cost not measured"
    elif len(kinds) == 1:
        wall = f"× raw connection {throughput.span(measured[0][1])}"
    else:
        wall = "; ".join(f"× raw connection on {KIND_NAMES[k]} routes {throughput.span(c)}" for k, c in measured)
    return wall + (
        f"; instructions × raw connection {cpu['median']:.2f} ({cpu['min']:.2f}–{cpu['max']:.2f})" if cpu else ""
    )


def cost_definition(mode: str | None, costs: dict, level, cpu: dict) -> str:
    """How the cost beside each strategy is read."""
    if not mode:
        text = (
            "Cost was not measured in this run (`--throughput off`, or no strategy passed every check of a kind "
            "of app), so nothing here is ordered by it."
        )
    else:
        every = [c for by_app in costs.values() for c in by_app.values()]
        first = next(iter(every), {"levels": []})
        coverage = min((c["covers"] for c in every), default=0)
        text = (
            f"**Cost** is × raw connection on the read route ({throughput.KIND_TITLES['read']}; "
            f"{throughput.MODES[mode].split(' (')[0].lower()} mode): the geometric mean over the concurrency levels "
            f"({', '.join(map(str, first['levels']))}) of the median per-round ratio of the strategy's req/s to the "
            f"raw-connection baseline's on the same path. 1.00 is as fast as a pooled connection with no ORM "
            f"session; higher is cheaper. In brackets, the geometric means of the per-level interval ends: a band "
            f"that holds the geometric mean of the true medians with at least {coverage * 100:.0f} % probability"
            + (" (too few rounds to promise anything: run `--throughput full`)" if coverage < 0.5 else "")
            + ". Two bands that overlap are not ordered by this run: the report says so beside the second. Each "
            "kind of app is ordered by the cost on its own kind of route, against the baseline on that route (an "
            "app with both kinds: its `def` route)."
        )
    if cpu:
        text += (
            f" **Instructions × raw connection** (read route, {level} client{'s' * (level != 1)}) is the "
            "CPU work per request against the raw-connection baseline's, median and range over repeats "
            "(below: CPU cost per request): lower is cheaper; it does not see time spent waiting, so it "
            "does not enter this order."
        )
    return text


def clean_for(doc: dict, found: dict, kinds: tuple[str, ...]) -> list[str]:
    """The strategies that serve `kinds` of endpoint and pass every check concerning them, in the results' order."""
    ids = [s["id"] for s in ready(doc["strategies"])]
    return [
        i
        for i in ids
        for vs in [verdicts(doc, found, i, kinds)]
        if all(serves(vs, k) for k in kinds) and not _against(vs)
    ]


def candidates(doc: dict) -> list[str]:
    """The strategies that pass every check concerning some kind of app: those What to use orders by cost."""
    found = by_pair(doc["results"])
    clean = {i for _, kinds in APPS.values() for i in clean_for(doc, found, kinds)}
    return [s["id"] for s in ready(doc["strategies"]) if s["id"] in clean]


def answer(doc: dict, found: dict, app: str, costs: dict, cpu: dict) -> list[str]:
    """The section for one kind of app: clean strategies cheapest first, quoted; the next best; who cannot serve it."""
    title, kinds = APPS[app]
    keys = verdict_keys(doc)
    everywhere = skipped_everywhere(doc, found)
    by_id = {s["id"]: s for s in ready(doc["strategies"])}
    found_verdicts = {i: verdicts(doc, found, i, kinds) for i in by_id}
    serving = [i for i, vs in found_verdicts.items() if all(serves(vs, k) for k in kinds)]
    own = costs.get(kinds[0], {})  # ordered by the cost on its first kind's route, against that kind's baseline
    cheapest = sorted(serving, key=lambda i: _order(doc, found, i, kinds, own))
    clean = [i for i in cheapest if not _against(found_verdicts[i])]

    def fails(i: str) -> int:
        return sum(v.row.get("outcome") == "failed" for v in _against(found_verdicts[i]))

    severities = _severities(doc)
    rest = sorted(
        (i for i in cheapest if _against(found_verdicts[i])), key=lambda i: rank(found_verdicts[i], severities)
    )
    # Quoted whole: the first answer, and each answer measured line by line (its ablation, under its quote).
    tables = {i: table for i in clean if (table := ablation(doc, found, i, kinds))}
    quoted = [*clean[:1], *tables]
    lines = next(iter(tables.values()), {})
    lacks = lacking(lines)
    out = [f"### {title}", ""]
    if not clean:
        out.append("No strategy passes every check that concerns this kind of app in this run.")
    previous = None
    for i in clean:  # those quoted, with their ablation; the others, which pass as much, named
        skipped = [
            name(v, kinds) for v in found_verdicts[i] if v.row.get("outcome") == "skipped" and v.check not in everywhere
        ]
        overlap = previous in own and i in own and own[i]["high"] >= own[previous]["low"]
        overlap = overlap and own[previous]["high"] >= own[i]["low"]
        note = f"; ➖ {', '.join(dict.fromkeys(skipped))}" if skipped else ""
        out.append(
            f"- **`{i}`**: {by_id[i].get('label', '')}; {cost_text(costs, i, kinds, cpu.get(i))}"
            + (" (indistinguishable in cost from the one above in this run)" if overlap else "")
            + note
        )
        if i in quoted:
            out += [*_quote(by_id[i], kinds), *ablation_table(tables.get(i, {}), kinds, keys)]
        previous = i if i in own else previous
    if rest:
        out += ["", "Next best:" if clean else "Closest:", ""]
    for i in rest[:NEXT_BEST]:
        against = sorted(_against(found_verdicts[i]), key=lambda v: severity(v, severities))
        unmeasured = len(against) - fails(i)
        out.append(
            f"- `{i}`: {fails(i)} failed"
            + (f", {unmeasured} not measured" if unmeasured else "")
            + f"; {cost_text(costs, i, kinds, cpu.get(i))}"
        )
        out += [_failure_line(v, kinds, keys, severities, lacks) for v in against]
    if len(rest) > NEXT_BEST:
        out.append(
            f"- {len(rest) - NEXT_BEST} more, least harmful first (worst failure's severity, then failures that do "
            "not go away, then how many): "
            + ", ".join(f"`{i}` ({fails(i)}, worst: {_worst(found_verdicts[i], severities)})" for i in rest[NEXT_BEST:])
        )
    if cannot := [i for i in found_verdicts if i not in serving]:
        out += [
            "",
            "Cannot serve it (no check measured it on "
            + " and ".join(KIND_NAMES[k] for k in kinds)
            + " endpoints): "
            + ", ".join(f"`{i}`" for i in cannot)
            + ".",
        ]
    return out + [""]


def hazards(doc: dict, found: dict) -> list[str]:
    """A check most strategies fail on one kind of endpoint: one sentence naming the rows that pass it."""
    out = []
    for check in doc["checks"]:
        for kind in check.get("kinds") or ():
            outcomes = {
                s["id"]: judged(found.get((s["id"], check["id"]), {}), kind).get("outcome")
                for s in ready(doc["strategies"])
            }
            passed = [i for i, o in outcomes.items() if o == "passed"]
            failed = [i for i, o in outcomes.items() if o == "failed"]
            measured = len(passed) + len(failed)
            if measured >= 4 and len(failed) > HAZARD_SHARE * measured:
                out.append(
                    f"- On {KIND_NAMES[kind]} endpoints, {len(failed)} of the {measured} strategies measured fail "
                    f"`{check['id']}` ({check['title']}): a hazard of that kind of endpoint, not of one pattern. "
                    + (f"Passed by {', '.join(f'`{i}`' for i in passed)}." if passed else "No strategy passes it.")
                )
    if not out:
        return []
    return [
        "### Hazards of a kind of endpoint",
        "",
        f"Checks that more than {HAZARD_SHARE:.0%} of the strategies measured on one kind of endpoint fail "
        "(at least 4 measured): what passes them does something the others do not.",
        "",
        *out,
        "",
    ]


def scope(doc: dict) -> str:
    """What the answers hold for: the database and its drivers, and the versions they were measured on."""
    env = doc.get("environment") or {}
    db, packages = env.get("database") or {}, env.get("packages") or {}
    drivers = ", ".join(
        f"{driver}{f' {packages[driver]}' if packages.get(driver) else ''} ({kind})"
        for kind, driver in (db.get("drivers") or {}).items()
    )
    versions = ", ".join(f"{p} {packages.get(p) or '?'}" for p in ("fastapi", "starlette", "sqlalchemy"))
    return (
        f"**Measured on** {db.get('backend', '?')} {db.get('version', '')}".rstrip()
        + (f" through {drivers}" if drivers else "")
        + f", with {versions} on Python {env.get('python', '?')}: another database, driver or release may differ "
        "([docs/matrix.md](docs/matrix.md) runs the checks across FastAPI releases)."
    )


FEATURES = {  # what an audited app may not do, though the checks exercise it: (its fact, the check, the words)
    "streams": ("streaming", "a streamed response"),
    "background_tasks": ("background_tasks", "a background task"),
}


def _pool(p: dict) -> str:
    """`QueuePool 5 + 10, 30 s timeout, pre-ping off`."""
    size = f" {p['pool_size']} + {p['max_overflow']}, {p['pool_timeout']:g} s timeout" if "pool_size" in p else ""
    return f"{p['class']}{size}, pre-ping {'on' if p.get('pool_pre_ping') else 'off'}"


def yours(doc: dict, found: dict, costs: dict) -> list[str]:
    """An audited app's own section: its kind of endpoint, so its answer is that kind's only; the features the
    checks exercise that it does not use; the pool it declares beside the pools it was measured under; its failures
    on its kind, each with the answer's line whose removal fails the same check."""
    keys = verdict_keys(doc)
    severities = _severities(doc)
    out = []
    for s in ready(doc["strategies"]):
        own = s.get("own")
        app = next((a for a, (_, kinds) in APPS.items() if own and list(kinds) == sorted(own["kinds"])), None)
        if app is None:
            continue
        title, kinds = APPS[app]
        answer_id, table = _measured_answer(doc, found, kinds, costs)
        against = sorted(_against(verdicts(doc, found, s["id"], kinds)), key=lambda v: severity(v, severities))
        unused = [f"{words} (`{check}`)" for fact, (check, words) in FEATURES.items() if not own.get(fact)]
        imposed = {  # the pools the checks that measured it set (where the app's engine sets none of its own)
            c["id"]: c["pool"]
            for c in doc["checks"]
            if c.get("pool") and found.get((s["id"], c["id"]), {}).get("outcome") in MEASURED
        }
        out += [
            f"### Your app: `{own['app']}`",
            "",
            f"- Its own endpoints that take the session are {' and '.join(KIND_NAMES[k] for k in kinds)} "
            f"({own['routes_taking_the_session']} routes), so it is {title[0].lower()}{title[1:]}: "
            + (
                f"the answer for it is `{answer_id}`."
                if answer_id
                else "no strategy of this run answers it (run it beside the built-in rows, or see "
                "docs/reference/REPORT.md)."
            ),
            "- The checks exercise what it does not use: "
            + (", ".join(unused) if unused else "nothing else")
            + "; a second database is not audited.",
            "- Its engines declare "
            + ("; ".join(_pool(p) for p in own.get("pools", [])) or "a pool the audit could not read")
            + (
                "; the checks that set a pool measured it under theirs: "
                + "; ".join(
                    f"`{c}` {p['pool_size']} + {p['max_overflow']}, {p['pool_timeout']:g} s" for c, p in imposed.items()
                )  # fmt: skip
                if imposed
                else ""
            )
            + ".",
            f"- On its kind: {sum(v.row.get('outcome') == 'failed' for v in against)} failed"
            + (":" if against else ", every other check passed or was skipped."),
            *[_failure_line(v, kinds, keys, severities, lacking(table)) for v in against],
            "",
        ]
    return out


def already(doc: dict, found: dict, costs: dict) -> list[str]:
    """If you already use X: each strategy that is no answer for the kinds of endpoint it serves, its failures by
    severity, and the lines of that kind's first answer whose removal fails the same checks (the ablation's table),
    matched by check, never by name."""
    by_id = {s["id"]: s for s in ready(doc["strategies"])}
    severities = _severities(doc)
    measured = {app: _measured_answer(doc, found, kinds, costs) for app, (_, kinds) in APPS.items()}
    out = []
    for i in by_id:
        if by_id[i].get("own"):  # an audited app: its own section (yours) says it, for its own kind
            continue
        app = next((a for a, (_, kinds) in APPS.items() if kinds == _served(doc, found, i)), None)
        if app is None or measured[app][0] is None:
            continue
        kinds = APPS[app][1]
        failed = [v for v in _against(verdicts(doc, found, i, kinds)) if v.row.get("outcome") == "failed"]
        if not failed:
            continue
        answer_id, lacks = measured[app][0], lacking(measured[app][1])
        counts = [
            f"{sum(severities[v.check] == sev for v in failed)} {sev}"
            + (f" ({sum(bool(v.row.get('permanent')) for v in failed if severities[v.check] == sev)} permanent)"
               if any(v.row.get("permanent") for v in failed if severities[v.check] == sev) else "")
            for sev in SEVERITIES
            if any(severities[v.check] == sev for v in failed)
        ]  # fmt: skip
        lines = list(dict.fromkeys(line for v in failed for line in lacks.get((v.check, v.kind), [])))
        out.append(
            f"- `{i}` ({' and '.join(KIND_NAMES[k] for k in kinds)}): fails {', '.join(counts)}"
            + (f"; lacks {', '.join(f'`{line}`' for line in lines)} of `{answer_id}`" if lines else "")
            + "."
        )
    if not out:
        return []
    return [
        "### If you already use one of these",
        "",
        "Each strategy that is not an answer for the endpoints it serves: its failures by severity, and the lines of "
        "that kind's first answer whose removal fails the same checks in the ablation (what it lacks; a failure "
        "no line matches is its own).",
        "",
        *out,
        "",
    ]


def _served(doc: dict, found: dict, strategy: str) -> tuple[str, ...]:
    """The kinds of endpoint a strategy serves, as APPS names them."""
    return tuple(k for k in ("def", "async") if serves(verdicts(doc, found, strategy, (k,)), k))


def _order(doc: dict, found: dict, i: str, kinds: tuple[str, ...], own: dict) -> tuple:
    """Made for exactly this kind of app first (a module that also serves a kind the app lacks carries code it does
    not need), then cheapest first on this kind's route."""
    return (len(_served(doc, found, i)) > len(kinds), -own[i]["median"] if i in own else 0)


def _measured_answer(doc: dict, found: dict, kinds: tuple[str, ...], costs: dict) -> tuple[str | None, dict]:
    """The cheapest answer whose ablation says what each of its lines is for, with that table; else the cheapest
    answer and no table; (None, {}) when nothing answers."""
    own = costs.get(kinds[0], {})
    clean = sorted(clean_for(doc, found, kinds), key=lambda i: _order(doc, found, i, kinds, own))
    return next(((i, t) for i in clean if (t := ablation(doc, found, i, kinds))), (next(iter(clean), None), {}))


def section(doc: dict, found: dict) -> list[str]:
    """`## What to use`: the three answers, the hazards, and how cost is read."""
    mode, costs = throughput.read_costs(doc.get("throughput") or {})
    level, cpu = instructions.read_costs(doc.get("instructions") or {})
    out = [
        "## What to use",
        "",
        "From this run's rows alone, for each kind of app: the strategies that pass every check that concerns it "
        "(the verdicts on its kind of endpoint, and those on the whole app) where they could be measured, those "
        "made for exactly that kind first, then cheapest first, quoted whole where the module is its pattern "
        "alone, with what each of its lines is for; then the next best, least harmful first, each failure with "
        "its severity and key number.",
        "",
        scope(doc),
        "",
        "Severity, worst first: " + "; ".join(f"**{k}**: {v}" for k, v in SEVERITIES.items()) + ". A failure is "
        "*permanent* when it does not go away by itself (the app never recovers, requests hang, connections stay "
        "out), else it *recovers*.",
        "",
    ]
    for app in APPS:
        out += answer(doc, found, app, costs, cpu)
    out += yours(doc, found, costs)
    out += already(doc, found, costs)
    out += hazards(doc, found)
    everywhere = skipped_everywhere(doc, found)
    out += [
        cost_definition(mode, costs, level, cpu)
        + (
            " Not measured for any strategy in this run: " + ", ".join(f"`{c}`" for c in everywhere) + "."
            if everywhere
            else ""
        ),
        "",
    ]
    absent = [s for s in doc["strategies"] if s.get("preflight", "ready") != "ready"]
    if absent:
        out += [
            "Not measured in this environment: "
            + ", ".join(f"`{s['id']}` ({s['preflight']})" for s in absent)
            + "; the reasons are under the verdicts.",
            "",
        ]
    return out
