"""The sweep's samples summarised for the results file: throughput cells, hold rows, and hold under load.

Medians and intervals over rounds, and ratios to the baselines per round, come from stats.py; this module says
which samples make a cell and what a cell holds (report.format's ThroughputCell, HoldRow, LoadHoldRow).
"""

from __future__ import annotations

import statistics

from experiments.harness import discovery
from experiments.throughput import hold, stats
from experiments.throughput.baselines import RAW
from experiments.throughput.routes import KINDS
from report.format import HoldRow, LoadHoldRow, ThroughputCell

# Little's law makes the server's own req/s × hold per request ≤ capacity exactly; the load generator's req/s is
# counted over its own window (a little shorter than the server's readings', and without the requests still in
# flight when it stopped), hence a tolerance.
CEILING_TOLERANCE = 0.05


def summarize(samples: dict, modes: tuple[str, ...]) -> list[ThroughputCell]:
    """One cell per (mode, app, kind, path, level): medians over rounds, spread, ratios to the baselines per round."""
    cells = []
    for (mode, app, kind, path, level), rounds in samples.items():
        rps = [s["rps"] for s in rounds]
        q1, q3 = stats.quartiles(rps)
        cell: ThroughputCell = {
            "mode": mode,
            "app": app,
            "kind": kind,
            "path": path,
            "concurrency": level,
            "rounds": len(rounds),
            "rps": {"median": statistics.median(rps), "q1": q1, "q3": q3, "min": min(rps), "max": max(rps)},
            **{f"p{q}_ms": statistics.median(s[f"p{q}_ms"] for s in rounds) for q in (50, 90, 99)},
            "errors": sum(s["errors"] for s in rounds),
            "client_cpu": statistics.median(s["client_cpu_s"] / s["elapsed_s"] for s in rounds),
        }
        if "server_cpu_s" in rounds[0]:
            cell["server_cpu"] = statistics.median(s["server_cpu_s"] / s["elapsed_s"] for s in rounds)
        cell |= stats.vs_baselines(
            app,
            dict(enumerate(s["rps"] for s in rounds)),
            lambda base: _rps_by_round(samples.get((mode, base, kind, path, level))),
            stats.median_interval,
        )
        cells.append(cell)
    order = {m: i for i, m in enumerate(modes)}
    return sorted(cells, key=lambda c: (order[c["mode"]], list(KINDS).index(c["kind"])))


def _rps_by_round(rounds: list[dict] | None) -> dict | None:
    return dict(enumerate(s["rps"] for s in rounds)) if rounds else None


def summarize_hold(samples: dict, order: list[str]) -> list[HoldRow]:
    """One row per (app, kind, path) of the in-process hold batches (hold.batch() samples by round).

    `hold_ms` is the median over rounds of each round's median per-request hold, with median_interval()'s interval;
    `ratio_to_raw` the same of the per-round ratio to the raw connection's on the same path in the same round; the
    shares are medians over rounds of each round's share of its whole hold time; `ceiling_rps` is what the median
    hold allows a pool of each size in hold.POOLS (None: nothing held, no bound).
    """
    rows: list[HoldRow] = []
    for (app, kind, path), by_round in samples.items():
        rounds = list(by_round.values())
        spread = stats.interval([s["hold_ms"] for s in rounds])
        raw = {r: s["hold_ms"] for r, s in samples.get((RAW, kind, path), {}).items()} if app != RAW else None
        ratios = stats.paired_ratios({r: s["hold_ms"] for r, s in by_round.items()}, raw)
        rows.append(
            {
                "app": app,
                "kind": kind,
                "path": path,
                "rounds": len(rounds),
                "requests": sum(s["requests"] for s in rounds),
                "errors": sum(s["errors"] for s in rounds),
                "hold_ms": spread,
                "ratio_to_raw": stats.median_interval(ratios) if ratios else None,
                "sql_share": stats.median_or_none(s["sql_share"] for s in rounds),
                "after_response_share": stats.median_or_none(s["after_response_share"] for s in rounds),
                "checkouts_per_request": statistics.median(s["checkouts_per_request"] for s in rounds),
                "open_at_end": max(s["open_at_end"] for s in rounds),
                "ceiling_rps": hold.ceilings(spread["median"]),
            }
        )
    kinds, position = list(discovery.PATTERN_ROUTES), {a: i for i, a in enumerate(order)}
    return sorted(rows, key=lambda r: (kinds.index(r["kind"]), position.get(r["app"], len(position)), r["path"]))


def summarize_under_load(samples: dict, sequential: list[HoldRow]) -> list[LoadHoldRow]:
    """Server mode: per cell whose requests used a pool, the hold per request under load (the server's readings
    around each measurement, hold.window()), the pool capacity, the ceiling capacity ÷ hold, and whether the load
    generator's req/s stayed within it (× 1 + CEILING_TOLERANCE) in every round. `sequential_hold_ms` is the
    in-process sequential hold of the same app and path, when this run measured it."""
    quiet = {(r["app"], r["path"]): r["hold_ms"]["median"] for r in sequential}
    rows: list[LoadHoldRow] = []
    for (mode, app, kind, path, level), rounds in samples.items():
        readings = [(s["rps"], s["hold"]) for s in rounds if s.get("hold")]
        if mode != "server" or not any(h["connection_s"] > 0 for _, h in readings):
            continue
        capacities = [h["capacity"] for _, h in readings if h["connection_s"] > 0]
        capacity = max(set(capacities), key=capacities.count)  # the same every round, unless a pool came and went
        bounded = [(rps, h["ceiling_rps"]) for rps, h in readings if h["ceiling_rps"]]
        within = [rps <= ceiling * (1 + CEILING_TOLERANCE) for rps, ceiling in bounded]
        rows.append(
            {
                "app": app,
                "kind": kind,
                "path": path,
                "concurrency": level,
                "rounds": len(rounds),
                "capacity": capacity,
                "above_pool": capacity is not None and level > capacity,
                "hold_ms": stats.interval([h["hold_ms"] for _, h in readings if h["hold_ms"] is not None]),
                "sequential_hold_ms": quiet.get((app, path)),
                "busy_connections": stats.median_or_none(
                    h["connection_s"] / h["window_s"] for _, h in readings if h["window_s"] > 0
                ),
                "ceiling_rps": stats.median_or_none(c for _, c in bounded),
                "rps": statistics.median(rps for rps, _ in readings),
                "of_ceiling": stats.median_or_none(rps / c for rps, c in bounded),
                "rounds_within": sum(within),
                "rounds_checked": len(within),
                "within_ceiling": all(within) if within else None,
                "tolerance": CEILING_TOLERANCE,
            }
        )
    return sorted(rows, key=lambda r: (list(KINDS).index(r["kind"]), r["app"], r["path"], r["concurrency"]))
