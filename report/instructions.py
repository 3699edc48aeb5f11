"""The "CPU cost per request" section: instructions per request under valgrind, a pure function of the results' `instructions` part."""

from __future__ import annotations

from report.throughput import KIND_TITLES

FIGURE = "instructions.png"
BASELINES = {"vs_raw": "raw connection", "vs_nodb": "no database"}
WHAT = (
    "**What an instruction count measures**: the CPU work done in the app's process to serve one request — the "
    "framework, the strategy's session handling, SQLAlchemy, the database driver, and (the same for every app) "
    "httpx's client, all threads together. It does not depend on what else the machine is doing, which is why two "
    "runs agree on it where wall-clock throughput cannot. **What it does not measure**: time spent waiting. A request "
    "that sleeps, waits for a lock, for a connection from the pool or for a database server costs few instructions "
    "while it waits; that cost shows in latency and throughput (the section above), not here. Nor does it count the "
    "kernel's work in system calls, a database server in another process (PostgreSQL), cyclic garbage collection "
    "(switched off while a batch is counted, as pytest-codspeed does), or how long an instruction takes (cache misses, "
    "branch mispredictions): fewer instructions usually means less CPU time, not proportionally so."
)


def _m(value: float) -> str:
    return f"{value / 1e6:.3f} M"


def _spread_m(spread: dict) -> str:
    return f"{_m(spread['median'])} ({spread['min'] / 1e6:.3f}–{spread['max'] / 1e6:.3f})"


def _ratio(spread: dict | None) -> str:
    return f"{spread['median']:.3f} ({spread['min']:.3f}–{spread['max']:.3f})" if spread else ""


def read_costs(part: dict) -> tuple[int | None, dict[str, dict]]:
    """(concurrency, app -> instructions per request × raw connection on the read route, median and range), at the
    lowest concurrency counted: what "What to use" shows next to the wall-clock cost."""
    read = [c for c in part.get("cells", []) if c["kind"] == "read" and c.get("vs_raw")]
    level = min((c["concurrency"] for c in read), default=None)
    return level, {c["app"]: c["vs_raw"] for c in read if c["concurrency"] == level}


def groups(cells: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """Cells by (kind, concurrency), each group cheapest first (by median); report.plots draws the same groups."""
    found: dict[tuple[str, int], list[dict]] = {}
    for c in cells:
        found.setdefault((c["kind"], c["concurrency"]), []).append(c)
    order = list(KIND_TITLES)
    return {
        k: sorted(found[k], key=lambda c: c["per_request"]["median"])
        for k in sorted(found, key=lambda k: (order.index(k[0]), k[1]))
    }


def settled(a: dict, b: dict, tolerance: float) -> bool:
    """Two figures differ beyond their spread (the ranges over repeats do not overlap) and beyond what a second run
    may move a figure (`tolerance`, relative)."""
    x, y = a["per_request"], b["per_request"]
    return (x["max"] < y["min"] or y["max"] < x["min"]) and abs(x["median"] / y["median"] - 1) > tolerance


def label(c: dict, baselines: set[str]) -> str:
    return f"{c['app']} {c['path']}" if c["app"] in baselines else c["app"]


def _chain(group: list[dict], baselines: set[str], tolerance: float) -> str:
    """`a` 1.2 M < `b` 3.4 M ≈ `c` 3.4 M: `<` where the difference is settled, `≈` where it is not."""
    out = f"`{label(group[0], baselines)}` {_m(group[0]['per_request']['median'])}"
    for before, c in zip(group, group[1:]):
        out += (
            f" {'<' if settled(before, c, tolerance) else '≈'} `{label(c, baselines)}` {_m(c['per_request']['median'])}"
        )
    return out


def section(part: dict) -> list[str]:
    out = ["## CPU cost per request (instructions, under valgrind)", ""]
    if part.get("unavailable"):
        return out + [f"Not measured: {part['unavailable']}.", ""]
    plan, tolerance = part["plan"], part["tolerance"]
    baselines = {a["id"] for a in part["apps"] if a["baseline"]}
    where = (
        "each in a valgrind process of its own, the apps in a rotated order: the range is what a second run would see"
        if plan["repeats_apart"]
        else "all in one valgrind process: the range shows batch-to-batch "
        "variation only, narrower than what a second run may show"
    )
    out += [
        f"Instructions executed per request by every strategy and the two baselines, in-process (httpx's ASGI "
        f"transport, lifespan entered, as the checks run them), counted by valgrind's callgrind with collection "
        f"switched on only around each batch of {plan['requests']} requests (pytest-codspeed's instrumentation): "
        f"start-up, imports and lifespan are never counted, every thread is (a `def` endpoint runs in the "
        f"threadpool), and a batch of 0 requests counted the same way is subtracted. Each batch follows "
        f"{part['warmup']} uncounted requests on its path and level. Concurrency "
        f"{', '.join(map(str, plan['levels']))}: N clients, each sending its next request when the last one "
        f"answered, so scheduling and threadpool hops are counted too. {plan['repeats']} repeats per app, path and "
        f"level, {where}.",
        "",
        "How to read: the median over repeats and their range (min–max), in millions of instructions per request. "
        "**× raw connection** and **× no database** divide the app's count by the baseline's on the same path, repeat "
        "by repeat: above 1 means more CPU work per request than the baseline. Tables and bars go from cheapest to "
        f"costliest; in the line above each table `<` marks a settled difference (the ranges do not overlap and the "
        f"medians are more than {tolerance * 100:g} % apart, more than two runs of this harness have differed) and `≈` one "
        "that is not.",
        "",
        WHAT,
        "",
        "Conditions: "
        + "; ".join(f"{k}: {v}" for k, v in part.get("conditions", {}).items())
        + f"; counted in {part['duration_s']:g} s"
        + (f", {part['alongside']}" if part.get("alongside") else "")
        + ".",
        "",
    ]
    if part["errors"]:
        out += ["Could not count:", ""] + [f"- ⚠️ `{e['app']}`: {e['reason']}" for e in part["errors"]] + [""]
    if not part["cells"]:
        return out
    out += [f"![Instructions per request, cheapest first]({FIGURE})", ""]
    for (kind, level), group in groups(part["cells"]).items():
        out += [
            f"### {KIND_TITLES[kind]}; {level} client{'s' if level > 1 else ''}",
            "",
            f"Cheapest to costliest: {_chain(group, baselines, tolerance)}",
            "",
            "| App | Path | Instructions per request, median (range) | × raw connection | × no database |",
            "|---|---|---|---|---|",
        ]
        for c in group:
            out.append(
                f"| `{c['app']}` | `{c['path']}` | {_spread_m(c['per_request'])} | {_ratio(c.get('vs_raw'))} "
                f"| {_ratio(c.get('vs_nodb'))} |"
            )
        out += [""]
    return out


def agreement(doc: dict, other: dict) -> list[dict]:
    """Every instruction figure of both runs: the relative difference of the medians, within the tolerance or not."""

    def figures(d):
        return {
            (c["app"], c["path"], c["concurrency"]): c["per_request"]
            for c in (d.get("instructions") or {}).get("cells", [])
        }

    tolerance = (doc.get("instructions") or {}).get("tolerance", 0)
    theirs = figures(other)
    return [
        {
            "key": key,
            "this": mine,
            "other": theirs[key],
            "difference": mine["median"] / theirs[key]["median"] - 1,
            "agree": abs(mine["median"] / theirs[key]["median"] - 1) <= tolerance,
            "tolerance": tolerance,
        }
        for key, mine in figures(doc).items()
        if key in theirs
    ]


def agreement_summary(rows: list[dict]) -> str:
    if not rows:
        return "no instruction figure in common"
    worst = max(rows, key=lambda r: abs(r["difference"]))
    app, path, level = worst["key"]
    return (
        f"{sum(r['agree'] for r in rows)} of {len(rows)} instruction figures agree within "
        f"{rows[0]['tolerance'] * 100:g} %; "
        f"the largest difference {abs(worst['difference']) * 100:.2f} % (`{app}` `{path}`, {level} client(s))"
    )


def agreement_section(rows: list[dict]) -> list[str]:
    """The run-to-run lines for instruction counts, after report.agreement's section."""
    out = ["### Instructions per request", "", f"{agreement_summary(rows)}.", ""]
    apart = [r for r in rows if not r["agree"]]
    if apart:
        out += ["| App | Path | Concurrency | This run | That run | Difference |", "|---|---|---|---|---|---|"]
        out += [
            f"| `{r['key'][0]}` | `{r['key'][1]}` | {r['key'][2]} | {_spread_m(r['this'])} | {_spread_m(r['other'])} "
            f"| {r['difference']:+.2%} |"
            for r in apart
        ] + [""]
    return out
