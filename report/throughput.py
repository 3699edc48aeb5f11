"""The throughput/latency section of the report: a pure function of the results' `throughput` part."""

from __future__ import annotations

import math

MODES = {
    "inprocess": "In-process (httpx ASGI transport; client and app share one process: framework + session cost)",
    "server": "Real server (uvicorn on loopback, a load generator in its own process)",
}
KIND_TITLES = {
    "read": "read: the tag route with `query=true` (load the seed row), `delay=0`",
    "write": "write: the write route, `fail=false&delay=0`, a unique key per request",
    "nodb": "no database: `GET /nodb`",
}


def figures(tp: dict) -> list[tuple[str, str, str]]:
    """(file name, mode, what) of every plot, next to REPORT.md; report.plots draws them."""
    modes = dict.fromkeys(c["mode"] for c in tp.get("cells", []))
    return [(f"{what}-{mode}.png", mode, what) for mode in modes for what in ("throughput", "latency")]


def series(cells: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Cells of one mode and kind grouped by (app, path), in concurrency order."""
    found: dict[tuple[str, str], list[dict]] = {}
    for c in sorted(cells, key=lambda c: c["concurrency"]):
        found.setdefault((c["app"], c["path"]), []).append(c)
    return found


def interval(ratio: dict | None) -> str:
    if not ratio:
        return ""
    text = f"{ratio['median']:.2f} [{ratio['low']:.2f}, {ratio['high']:.2f}]"
    return f"{text} ≈ (indistinguishable)" if ratio["indistinguishable"] else text


def _errors(c: dict) -> str:
    """The error count, or a plain statement when nothing answered (hung requests are not errors to a load generator)."""
    return f"{c['errors']}, no request completed in any round" if c["rps"]["max"] == 0 else str(c["errors"])


def _cpu(c: dict) -> str:
    server = f" / server {c['server_cpu']:.0%}" if "server_cpu" in c else ""
    return f"{c['client_cpu']:.0%}{server}"


def _geomean(values: list[float]) -> float:
    return 0.0 if any(v <= 0 for v in values) else math.exp(sum(map(math.log, values)) / len(values))


def costs(cells: list[dict], baselines: set[str]) -> dict[str, dict]:
    """Per strategy, its × raw connection summarised over the concurrency levels of `cells` (one mode and kind).

    `median` is the geometric mean over levels of the per-level median ratio; `low` and `high` the geometric
    means of the per-level interval ends. When every level's interval holds its true median, so does this band
    hold their geometric mean: it covers at least 1 - levels × (1 - the per-level coverage) (`covers`).
    """
    found = {}
    for (app, path), group in series(cells).items():
        ratios = [c["vs_raw"] for c in group if c.get("vs_raw")]
        if app in baselines or not ratios:
            continue
        found[app] = {
            "path": path,
            "levels": [c["concurrency"] for c in group if c.get("vs_raw")],
            **{end: _geomean([r[end] for r in ratios]) for end in ("median", "low", "high")},
            "covers": max(0.0, 1 - sum(1 - r["confidence"] for r in ratios)),
        }
    return found


def read_costs(tp: dict) -> tuple[str | None, dict[str, dict[str, dict]]]:
    """(mode, kind of endpoint -> costs) of the read route in the first mode measured (in-process when it was):
    what "What to use" orders by. Each kind's costs are ratios to the raw connection on that kind's route, so
    rows of one kind are only ever compared with each other."""
    modes = [m for m in MODES if any(c["mode"] == m for c in tp.get("cells", []))]
    if not modes:
        return None, {}
    baselines = {a["id"] for a in tp["apps"] if a["baseline"]}
    read = [c for c in tp["cells"] if c["mode"] == modes[0] and c["kind"] == "read"]
    return modes[0], {
        kind: costs([c for c in read if c["path"].startswith("/async/") == (kind == "async")], baselines)
        for kind in ("def", "async")
    }


def span(cost: dict) -> str:
    """`0.64 [0.55, 0.74]`: a cost from costs()."""
    return f"{cost['median']:.2f} [{cost['low']:.2f}, {cost['high']:.2f}]"


def _ranking(cells: list[dict], baselines: set[str]) -> str:
    """Strategies from slowest to fastest by costs(), on each path apart: each against its own path's baseline."""
    paths = list(dict.fromkeys(c["path"] for c in cells))
    ranked = []
    for path in paths:
        found = costs([c for c in cells if c["path"] == path], baselines)
        text = ", ".join(f"`{a}` {span(found[a])}" for a in sorted(found, key=lambda a: found[a]["median"]))
        ranked.append(f"on `{path}`: {text}" if len(paths) > 1 else text)
    return "; ".join(ranked)


def confidence(cells: list[dict]) -> str:
    """The coverage of the ratio intervals, e.g. "98 %" (one value per plan: every kept cell has every round)."""
    found = sorted({c[name]["confidence"] for c in cells for name in ("vs_raw", "vs_nodb") if c.get(name)})
    return " / ".join(f"{x * 100:.0f} %" for x in found) or "no"


def _table(cells: list[dict]) -> list[str]:
    ci = confidence(cells)
    lines = [
        f"| App | Path | Concurrency | req/s median (IQR; min-max) | p50 ms | p90 ms | p99 ms | × raw connection [{ci} CI] "
        f"| × no database [{ci} CI] | Errors | Client CPU |",
        "|" + "---|" * 11,
    ]
    for (app, path), group in series(cells).items():
        for c in group:
            rps = c["rps"]
            lines.append(
                f"| `{app}` | `{path}` | {c['concurrency']} | {rps['median']:.0f} ({rps['q1']:.0f}-{rps['q3']:.0f}; "
                f"{rps['min']:.0f}-{rps['max']:.0f}) | {c['p50_ms']:.2f} | {c['p90_ms']:.2f} | {c['p99_ms']:.2f} "
                f"| {interval(c.get('vs_raw'))} | {interval(c.get('vs_nodb'))} | {_errors(c)} | {_cpu(c)} |"
            )
    return lines


def _session_cost(rows: list[dict]) -> list[str]:
    lines = [
        "### Per-request session set-up and tear-down (pytest-benchmark)",
        "",
        "One in-process request at a time to the tag route: `query=false` opens, tags and closes the session without "
        "SQL; `query=true` adds the connection checkout and the SELECT. µs per request (rounds of 10 sequential "
        "requests), each app benchmarked once per repeat with the apps taking turns: the median over repeats of each "
        "repeat's median, and their range. **Over no database** is `query=false` minus the no-database baseline on the "
        "same path in the same repeat: the strategy's fixed cost per request; a range containing 0 means no "
        "measurable cost. The raw pytest-benchmark data is in `benchmark.json`.",
        "",
        "| App | Path | Session only µs | With SELECT µs | Over no database µs | Repeats |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['app']}` | ⚠️ {r['error']} | | | | |")
            continue
        cells = [_us(r.get(name)) for name in ("session_only", "with_select", "over_no_database")]
        lines.append(f"| `{r['app']}` | `{r['path']}` | {' | '.join(cells)} | {r['repeats']} |")
    return lines + [""]


def _us(spread: dict | None) -> str:
    return f"{spread['median']:.0f} ({spread['min']:.0f} to {spread['max']:.0f})" if spread else ""


HOLD_KINDS = {"def": "`def`", "async": "`async def`"}
HOLD_DEFAULTS = {"warmup": 3, "pools": [5, 20], "tolerance": 0.05}  # for results written before hold_settings


def _ms(spread: dict | None) -> str:
    return f"{spread['median']:.3f} [{spread['low']:.3f}, {spread['high']:.3f}]" if spread else ""


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def _rate(value: float | None) -> str:
    return "no bound" if value is None else f"{value:,.0f}"


def hold_section(tp: dict) -> list[str]:
    """ "Connection hold time": the in-process sequential hold per strategy and kind, and, when the server mode ran,
    the hold under load with the ceiling it implies against the req/s measured."""
    rows = tp.get("hold") or []
    loaded = [r for r in tp.get("hold_under_load") or [] if r["kind"] == "read"]
    if not rows and not loaded:
        return []
    settings = {**HOLD_DEFAULTS, **tp.get("hold_settings", {})}
    pools = [str(n) for n in settings["pools"]]
    out = ["### Connection hold time", ""]
    if rows:
        ci = " / ".join(f"{x * 100:.0f} %" for x in sorted({r["hold_ms"]["confidence"] for r in rows}))
        out += [
            f"How long a request keeps a pooled connection checked out, from SQLAlchemy's pool `checkout` to its "
            f"`checkin` (listened on the `Pool` class, so every engine counts however the strategy made it), on the "
            f"tag route with `query=true`, once per kind of endpoint the app serves it with. In-process, one request "
            f"in flight at a time, so every checkout is the request's own: {tp['plan'].get('hold_requests', 20)} "
            f"requests per app and kind in each of {tp['plan']['rounds']} rounds, after {settings['warmup']} "
            f"unrecorded ones the first time, the apps in a fresh random order every round. **Hold ms** is the median over rounds of "
            f"each round's median request, with its distribution-free {ci} interval; **× raw connection** divides it "
            f"by `baseline:raw_connection`'s on the same path in the same round (above 1: the connection is kept "
            f"longer than a bare `engine.connect()` around the same SELECT needs). **SQL** is the share of the hold "
            f"spent executing statements (`before_cursor_execute` to `after_cursor_execute`); **after response** the "
            f"share after the response's last body message went out: the client already has its answer while the "
            f"connection is still out.",
            "",
            f"What it means: by Little's law the connections in use are, on average, req/s × hold time, and they "
            f"cannot exceed the pool, so a pool of N connections serves at most N ÷ hold req/s, however many cores "
            f"and workers are there. The last columns are that ceiling for a pool of {' and of '.join(pools)}. It is "
            f"an upper bound from a quiet app: under load a request waits for the threadpool, the GIL or the event "
            f"loop while it holds its connection, its hold grows, and the ceiling falls (the server-mode table "
            f"below measures that, when the run had one).",
            "",
            f"| App | Endpoint | Path | Hold ms [{ci} CI] | × raw connection [{ci} CI] | SQL | After response | "
            + " | ".join(f"Ceiling req/s, pool of {n}" for n in pools)
            + " |",
            "|" + "---|" * (7 + len(pools)),
        ]
        for kind in HOLD_KINDS:
            for r in sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["hold_ms"]["median"]):
                out.append(
                    f"| `{r['app']}` | {HOLD_KINDS[kind]} | `{r['path']}` | {_ms(r['hold_ms'])} "
                    f"| {interval(r.get('ratio_to_raw'))} | {_share(r['sql_share'])} "
                    f"| {_share(r['after_response_share'])} | "
                    + " | ".join(_rate(r["ceiling_rps"].get(n)) for n in pools)
                    + " |"
                )
        notes = [
            f"`{r['app']}` {HOLD_KINDS[r['kind']]}: {r['errors']} of {r['requests']} requests failed"
            for r in rows
            if r["errors"]
        ]
        notes += [
            f"`{r['app']}` {HOLD_KINDS[r['kind']]}: up to {r['open_at_end']} connection(s) still checked out "
            f"when a batch ended (counted up to its end)"
            for r in rows
            if r["open_at_end"]
        ]
        out += [""] + ([f"- {n}" for n in notes] + [""] if notes else [])
    if loaded:
        out += _hold_under_load(loaded, settings)
    return out


def _hold_under_load(rows: list[dict], settings: dict) -> list[str]:
    above = {}
    for r in rows:  # the highest concurrency above the pool, per app and path
        if r["above_pool"]:
            above[r["app"], r["path"]] = max(above.get((r["app"], r["path"]), r), r, key=lambda c: c["concurrency"])
    unbounded = sorted({r["app"] for r in rows if r["capacity"] is None})
    out = [
        "#### Hold under load, against the ceiling it implies (real server, read route)",
        "",
        "Over uvicorn, the server itself adds up, during each measurement, the connection-seconds its pools had "
        "checked out and the requests it completed: their ratio is the hold per request under that load. The pool "
        "capacity is pool_size + max_overflow read from the pool the requests used; the ceiling is capacity ÷ hold "
        "(the lowest over the pools, for an app using several). **Within** compares the load generator's req/s with "
        f"the ceiling × {1 + settings['tolerance']:g}, round by round. By Little's law this holds whenever the "
        "accounting is right (the mean connections out cannot exceed the pool), so it checks the instrument, not a "
        "prediction; the tolerance covers the load generator counting over a slightly shorter window than the "
        "server's readings. The telling columns are the hold under load against the quiet in-process one, and "
        "÷ ceiling: near 1, the pool was what capped the throughput. The concurrency shown is the highest one "
        "above the app's pool.",
        "",
    ]
    if above:
        out += [
            "| App | Path | Concurrency | Pool capacity | Hold ms under load [CI] | Sequential hold ms (in-process) "
            "| Mean connections out | Ceiling req/s | Measured req/s | ÷ ceiling | Within |",
            "|" + "---|" * 11,
        ]
        for r in sorted(above.values(), key=lambda r: (r["path"], r["hold_ms"]["median"])):
            quiet = f"{r['sequential_hold_ms']:.3f}" if r.get("sequential_hold_ms") is not None else ""
            within = (
                f"{'yes' if r['within_ceiling'] else 'NO'} ({r['rounds_within']} of {r['rounds_checked']})"
                if r["within_ceiling"] is not None
                else ""
            )
            busy = f"{r['busy_connections']:.1f}" if r["busy_connections"] is not None else ""
            of = f"{r['of_ceiling']:.2f}" if r["of_ceiling"] is not None else ""
            out.append(
                f"| `{r['app']}` | `{r['path']}` | {r['concurrency']} | {r['capacity']} | {_ms(r['hold_ms'])} "
                f"| {quiet} | {busy} | {_rate(r['ceiling_rps'])} | {r['rps']:.0f} | {of} | {within} |"
            )
    else:
        out.append("No read cell was measured at a concurrency above its app's pool: no ceiling to check.")
    if unbounded:
        out += ["", "Pools without a bound (no ceiling): " + ", ".join(f"`{a}`" for a in unbounded) + "."]
    return out + [""]


def section(tp: dict) -> list[str]:
    plan, cells = tp["plan"], tp["cells"]
    baselines = {a["id"] for a in tp["apps"] if a["baseline"]}
    out = [
        "## Throughput and latency",
        "",
        f"Every strategy and two baselines, `baseline:no_database` (no database at all) and `baseline:raw_connection` "
        f"(a pooled `engine.connect()` per request running the same SQL, no ORM session), measured in the same run: "
        f"concurrency {', '.join(map(str, plan['levels']))}, {plan['rounds']} rounds of {plan['seconds']:g} s per cell "
        f"after a warm-up round, apps in a fresh random order in every cell of every round. Closed loop: each of the "
        f"N clients sends its next request when the last one answered. req/s counts successful responses.",
        "",
        "How to read: **× raw connection** is the strategy's req/s divided by the raw-connection baseline's in the "
        f"same round and cell; the median over rounds, with a distribution-free {confidence(cells)} confidence interval "
        f"for it: the k-th lowest to the k-th highest per-round ratio, k the largest that still covers 95 % "
        f"(below 6 rounds, the whole range, which covers less: 5 rounds 94 %, 3 rounds 75 %). An interval "
        "containing 1 is marked ≈ (indistinguishable): the difference is within this machine's noise. "
        "Client CPU is the load generator's CPU time per second of measurement (in-process: client and app together).",
        "",
        f"Load average before/after: {' '.join(f'{x:.2f}' for x in tp['load_average']['before'])} / "
        f"{' '.join(f'{x:.2f}' for x in tp['load_average']['after'])}; measured in {tp['duration_s']:g} s.",
        "",
    ]
    if tp["errors"]:
        out += ["Could not measure:", ""]
        out += [f"- ⚠️ `{e['app']}` ({e['mode']}): {e['reason']}" for e in tp["errors"]] + [""]
    pictures = {(mode, what): name for name, mode, what in figures(tp)}
    for mode in dict.fromkeys(c["mode"] for c in cells):
        here = [c for c in cells if c["mode"] == mode]
        out += [f"### {MODES[mode]}", "", f"Client: {tp['clients'].get(mode, 'unknown')}."]
        if mode == "server" and tp.get("server"):
            out += ["", f"Server: {tp['server']}."]
        out += [
            "",
            f"![Throughput vs concurrency, {mode}]({pictures[mode, 'throughput']})",
            f"![Latency percentiles, {mode}]({pictures[mode, 'latency']})",
            "",
        ]
        for kind, title in KIND_TITLES.items():
            of_kind = [c for c in here if c["kind"] == kind]
            if of_kind:
                out += [
                    f"#### {title}",
                    "",
                    "Slowest to fastest (geometric mean over levels of × raw connection "
                    f"[geometric means of the interval ends]): {_ranking(of_kind, baselines)}",
                    "",
                    *_table(of_kind),
                    "",
                ]
    out += hold_section(tp)
    if tp.get("session_cost"):
        out += _session_cost(tp["session_cost"])
    return out
