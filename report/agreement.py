"""Whether two throughput runs agree, ratio by ratio: is a difference in one run real, or would the next run not repeat it?

pyperf's `compare_to` asks the same of two benchmark files. Here the unit is a
ratio to a baseline (mode, app, path, concurrency, baseline): two runs agree on
it when their intervals overlap. `python -m report RESULTS --against OTHER`
adds this section to the report and prints the count.
"""

from __future__ import annotations

from report.throughput import interval

BASELINES = {"vs_raw": "raw connection", "vs_nodb": "no database"}


def _ratios(tp: dict) -> dict[tuple, dict]:
    return {
        (c["mode"], c["app"], c["path"], c["concurrency"], name): c[name]
        for c in tp.get("cells", [])
        for name in BASELINES
        if c.get(name)
    }


def compare(doc: dict, other: dict) -> list[dict]:
    """Every ratio present in both runs, in this run's order, with `agree` (the intervals overlap)."""
    theirs = _ratios(other.get("throughput") or {})
    return [
        {
            "key": key,
            "this": mine,
            "other": theirs[key],
            "agree": mine["low"] <= theirs[key]["high"] and theirs[key]["low"] <= mine["high"],
        }
        for key, mine in _ratios(doc.get("throughput") or {}).items()
        if key in theirs
    ]


def _hashes(doc: dict, part: str) -> dict[str, str | None]:
    return {entry["id"]: entry.get("source_hash") for entry in doc.get(part, [])}


def verdicts(doc: dict, other: dict) -> list[dict]:
    """Every (strategy, check) whose outcome differs between the runs, with why it may: the check's source changed,
    the strategy's, or neither (then the behaviour, the versions or the machine did). A run without hashes (before
    they were recorded) says "unknown"."""
    mine = {(r["strategy"], r["check"]): r["outcome"] for r in doc.get("results", [])}
    theirs = {(r["strategy"], r["check"]): r["outcome"] for r in other.get("results", [])}
    hashes = {part: (_hashes(doc, part), _hashes(other, part)) for part in ("checks", "strategies")}
    found = []
    for (strategy, check), outcome in mine.items():
        if (strategy, check) not in theirs or theirs[(strategy, check)] == outcome:
            continue
        reasons, unknown = [], False
        for name, part, key in (("check", "checks", check), ("strategy", "strategies", strategy)):
            this, that = hashes[part][0].get(key), hashes[part][1].get(key)
            unknown |= this is None or that is None
            if this != that:
                reasons.append(f"the {name}'s source changed")
        if unknown:
            why = "unknown: a run without source hashes"
        else:
            why = "; ".join(reasons) or "same sources: the behaviour, the versions or the machine changed"
        found.append({"strategy": strategy, "check": check, "this": outcome, "other": theirs[(strategy, check)],
                      "why": why})  # fmt: skip
    return found


def verdict_summary(changed: list[dict]) -> str:
    same_source = sum(c["why"].startswith("same sources") for c in changed)
    return (
        f"{len(changed)} verdicts differ, {same_source} of them with the check's and the strategy's sources unchanged"
    )


def summary(rows: list[dict]) -> str:
    return f"{sum(r['agree'] for r in rows)} of {len(rows)} ratios to a baseline agree (overlapping intervals)"


def _run(doc: dict) -> str:
    env = doc.get("environment", {})
    return f"started {env.get('started_at', '?')}, commit {env.get('git_sha', '?')}"


def section(doc: dict, other: dict, other_path: str, rows: list[dict]) -> list[str]:
    """The report's section for `rows` = compare(doc, other)."""
    apart = [r for r in rows if not r["agree"]]
    changed = verdicts(doc, other)
    out = [
        "## Run-to-run agreement",
        "",
        f"This run ({_run(doc)}) against `{other_path}` ({_run(other)}): {summary(rows)}; {verdict_summary(changed)}.",
        "",
    ]
    if changed:
        out += ["| Strategy | Check | This run | That run | Why it may differ |", "|---|---|---|---|---|"]
        out += [f"| `{c['strategy']}` | `{c['check']}` | {c['this']} | {c['other']} | {c['why']} |" for c in changed]
        out.append("")
    if not rows:
        return out + ["The two runs have no ratio in common (different strategies, paths, levels or modes).", ""]
    if not apart:
        return out + ["No ratio moved between the runs by more than the intervals they report.", ""]
    out += [
        "These moved by more than both intervals: a difference between strategies that rests on one of them is not "
        "settled by one run.",
        "",
        "| Mode | App | Path | Concurrency | × baseline | This run | That run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in apart:
        mode, app, path, level, name = r["key"]
        out.append(
            f"| {mode} | `{app}` | `{path}` | {level} | {BASELINES[name]} | {interval(r['this'])} "
            f"| {interval(r['other'])} |"
        )
    return out + [""]
