"""The statistics of the cost side: medians with intervals, ranges, quartiles, and ratios to the baselines.

Every timing is a median over rounds, shown with its spread, and preferably as a
ratio to a baseline measured in the same run, round by round, so that the
machine's drift between rounds cancels out. The sweep, the hold time, the
session cost and the instruction count all summarise through these.
"""

from __future__ import annotations

import math
import statistics

from experiments.throughput.baselines import NO_DB, RAW

BASELINES = (("vs_raw", RAW), ("vs_nodb", NO_DB))  # the result key of the ratio to each baseline


def median_interval(values: list[float], confidence: float = 0.95) -> dict:
    """Median over rounds and a distribution-free interval for it, from order statistics.

    With n rounds, the true median lies between the k-th lowest and the k-th highest
    value with probability 1 - 2·P(Bin(n, ½) < k), whatever the distribution: k is the
    largest with at least `confidence`. Below 6 rounds even the full range falls short
    (5 rounds: 94 %, 3 rounds: 75 %); it is used anyway, and `confidence` records what
    it really covers. `indistinguishable` when the interval holds 1 (for a ratio).
    """
    n, ordered = len(values), sorted(values)

    def covers(k: int) -> float:
        return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n

    k = 1
    while k + 1 <= n // 2 and covers(k + 1) >= confidence:
        k += 1
    low, high = ordered[k - 1], ordered[n - k]
    return {
        "median": statistics.median(values),
        "low": low,
        "high": high,
        "confidence": round(covers(k), 4),
        "indistinguishable": low <= 1 <= high,
    }


def interval(values: list[float]) -> dict:
    """median_interval() of values that are not ratios (ms): no `indistinguishable`."""
    found = median_interval(values)
    del found["indistinguishable"]
    return found


def value_range(values: list[float]) -> dict:
    """Median, min and max: for counts that barely move (instructions), where an interval would say nothing more."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def median_or_none(values) -> float | None:
    """The median of the values that are not None; None when there are none."""
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def paired_ratios(values: dict, reference: dict | None) -> list[float]:
    """value ÷ reference, round by round (both keyed by round), for the rounds both measured."""
    return [v / reference[r] for r, v in values.items() if reference and r in reference and reference[r] > 0]


def vs_baselines(app: str, values: dict, reference, summarize) -> dict:
    """`vs_raw` and `vs_nodb`: `summarize` of `values`' per-round ratios to each baseline's values in the same rounds
    (`reference(baseline)`: round -> value, or None where not measured); nothing for a baseline against itself."""
    found = {}
    for name, base in BASELINES:
        ratios = paired_ratios(values, reference(base)) if base != app else []
        if ratios:
            found[name] = summarize(ratios)
    return found
