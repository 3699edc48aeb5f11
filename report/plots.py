"""The report's figures, drawn from the results document with matplotlib (Agg: no display needed).

Kept apart from render(), which stays a pure function of the document: the CLI
calls write() next to REPORT.md, and the report links the files by the names
report.throughput.figures() gives.

Every app keeps one colour and marker in every panel of every figure
(`styles`, from the document's list of apps); the baselines are black and grey
and dashed (hatched bars), apart from the strategies' solid lines. Only the
answers (the rows What to use can quote) get a hue: the other strategies are
drawn muted, so that the eye finds what it came for. One legend per figure
names every line and bar of every panel.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from report import answers, instructions  # noqa: E402
from report.throughput import KIND_TITLES, MODES, figures, series  # noqa: E402

# tab10 without its grey (kept for a baseline): nine hues, no light/dark pair of one hue. Past nine strategies a
# hue comes back with another marker and a dash-dot line (hatched bars).
COLOURS = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]
CYCLE_STYLES = ["-", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*", "d", "H", "8"]
BASELINE_COLOURS = ["black", "dimgrey"]
BASELINE_MARKERS = ["x", "+"]
MUTED = dict(color="#c4c4c4", marker=".", linestyle="-", linewidth=0.8)  # a strategy that answers no kind of app
# A baseline serves every route kind: its line on the `async def` route is dotted, on the others dashed.
ASYNC_PREFIX = "/async/"


def styles(tp: dict, answering: set[str]) -> dict[str, dict]:
    """app id -> matplotlib keywords (color, marker, linestyle), the same in every figure of this document: a hue
    for each baseline and each strategy in `answering`, MUTED for the others."""
    found, strategies, baselines = {}, 0, 0
    for app in tp["apps"]:
        if app["baseline"]:
            found[app["id"]] = dict(
                color=BASELINE_COLOURS[baselines % 2], marker=BASELINE_MARKERS[baselines % 2], linestyle="--"
            )
            baselines += 1
        elif app["id"] in answering:
            found[app["id"]] = dict(
                color=COLOURS[strategies % len(COLOURS)],
                marker=MARKERS[strategies % len(MARKERS)],
                linestyle=CYCLE_STYLES[strategies // len(COLOURS) % len(CYCLE_STYLES)],
            )
            strategies += 1
        else:
            found[app["id"]] = MUTED
    return found


def _on(style: dict, path: str, baselines: set[str], app: str) -> dict:
    """The app's style on `path`: a baseline's line is dotted on an `async def` route."""
    return {**style, "linestyle": ":"} if app in baselines and path.startswith(ASYNC_PREFIX) else style


def _throughput(ax, cells: list[dict], look: dict, baselines: set[str]) -> None:
    for (app, path), group in series(cells).items():
        x = [c["concurrency"] for c in group]
        y = [c["rps"]["median"] for c in group]
        spread = [
            [c["rps"]["median"] - c["rps"]["q1"] for c in group],
            [c["rps"]["q3"] - c["rps"]["median"] for c in group],
        ]
        ax.errorbar(x, y, yerr=spread, capsize=3, **_on(look[app], path, baselines, app))
    ax.set_xscale("log", base=2)
    levels = sorted({c["concurrency"] for c in cells})
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("requests/s (median, IQR)")


def _latency(ax, cells: list[dict], look: dict, baselines: set[str]) -> None:
    """Per app at the highest level: a bar to p50 in the app's colour, a whisker on to p99 with p90 marked;
    sorted by p50, the fastest on top."""
    top = max(c["concurrency"] for c in cells)
    group = sorted((c for c in cells if c["concurrency"] == top), key=lambda c: c["p50_ms"], reverse=True)
    for y, c in enumerate(group):
        colour = look[c["app"]]["color"]
        hatch = _hatch(look[c["app"]])
        ax.barh(y, c["p50_ms"], color=colour, hatch=hatch, edgecolor="white" if hatch else colour)
        ax.plot([c["p50_ms"], c["p99_ms"]], [y, y], color=colour, linewidth=1.2)
        ax.plot(c["p90_ms"], y, marker="|", markersize=10, color=colour)
        ax.plot(c["p99_ms"], y, marker=look[c["app"]]["marker"], color=colour)
    names = [f"{c['app']} {c['path']}" if c["app"] in baselines else c["app"] for c in group]
    ax.set_yticks(range(len(group)), names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency ms at {top} concurrent clients (median over rounds)")


def _hatch(style: dict) -> str | None:
    """Bars of baselines are hatched //, those of strategies past the ninth (dash-dot lines) dotted."""
    return {"--": "//", "-.": ".."}.get(style["linestyle"])


def _legend(tp: dict, look: dict, what: str, mode: str) -> list:
    """Every app drawn in this figure, then what the line styles or the bar parts mean."""
    drawn = dict.fromkeys(c["app"] for c in tp["cells"] if c["mode"] == mode)
    order = [a["id"] for a in tp["apps"] if a["id"] in drawn]
    muted = [a for a in order if look[a] is MUTED]
    order = [a for a in order if look[a] is not MUTED]
    others = f"{len(muted)} other strateg{'ies' if len(muted) != 1 else 'y'} (no answer)"
    if what == "throughput":
        handles = [Line2D([], [], label=a, **look[a]) for a in order]
        handles += [Line2D([], [], label=others, **MUTED)] if muted else []
        return handles + [
            Line2D([], [], color="grey", linestyle="--", label="baseline on a `def` route (/sync/…, /nodb)"),
            Line2D([], [], color="grey", linestyle=":", label="baseline on an `async def` route (/async/…)"),
        ]
    handles = [Patch(facecolor=look[a]["color"], hatch=_hatch(look[a]), edgecolor="white", label=a) for a in order]
    handles += [Patch(facecolor=MUTED["color"], label=others)] if muted else []
    return handles + [
        Patch(facecolor="grey", label="bar: p50"),
        Line2D([], [], color="grey", marker="|", markersize=10, linestyle="-", label="tick: p90"),
        Line2D([], [], color="grey", marker="o", linestyle="-", label="the app's marker: p99"),
    ]


def write(doc: dict, out: Path) -> list[Path]:
    """Draw every figure of the document into `out`; nothing for a part it does not have."""
    return _throughput_figures(doc, out) + _instruction_figure(doc, out)


def _throughput_figures(doc: dict, out: Path) -> list[Path]:
    tp = doc.get("throughput")
    if not tp:
        return []
    baselines = {a["id"] for a in tp["apps"] if a["baseline"]}
    look = styles(tp, set(answers.candidates(doc)))
    written = []
    for name, mode, what in figures(tp):
        kinds = [k for k in KIND_TITLES if any(c["mode"] == mode and c["kind"] == k for c in tp["cells"])]
        fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds) + 3, 5), squeeze=False, layout="constrained")
        for ax, kind in zip(axes[0], kinds):
            cells = [c for c in tp["cells"] if c["mode"] == mode and c["kind"] == kind]
            (_throughput if what == "throughput" else _latency)(ax, cells, look, baselines)
            ax.set_title(
                KIND_TITLES[kind].split(":")[0] + f" ({', '.join(sorted({c['path'] for c in cells}))})", fontsize=9
            )
            ax.grid(True, which="both", alpha=0.3)
        fig.legend(handles=_legend(tp, look, what, mode), loc="outside right upper", fontsize=7)
        fig.suptitle(f"{what}: {MODES[mode]}", fontsize=9)
        path = Path(out) / name
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _instruction_figure(doc: dict, out: Path) -> list[Path]:
    """Instructions per request: a panel per route kind (columns) and concurrency (rows), cheapest on top."""
    part = doc.get("instructions") or {}
    if not part.get("cells"):
        return []
    baselines = {a["id"] for a in part["apps"] if a["baseline"]}
    groups = instructions.groups(part["cells"])  # the tables' order
    kinds = list(dict.fromkeys(kind for kind, _ in groups))
    levels = sorted({level for _, level in groups})
    tallest = max(map(len, groups.values()))
    fig, axes = plt.subplots(
        len(levels), len(kinds), figsize=(6 * len(kinds), (0.3 * tallest + 1.2) * len(levels)), squeeze=False
    )
    for (kind, level), group in groups.items():
        ax = axes[levels.index(level)][kinds.index(kind)]
        counts = [c["per_request"] for c in group]
        medians = [x["median"] / 1e6 for x in counts]
        spread = [[(x["median"] - x["min"]) / 1e6 for x in counts], [(x["max"] - x["median"]) / 1e6 for x in counts]]
        colours = ["lightgrey" if c["app"] in baselines else "tab:blue" for c in group]
        ax.barh(range(len(group)), medians, xerr=spread, color=colours, capsize=2)
        ax.set_yticks(range(len(group)), [f"{c['app']} {c['path']}" for c in group], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{kind}, {level} client{'s' if level > 1 else ''}", fontsize=10)
        ax.set_xlabel("M instructions per request (median, range)", fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in axes.flat:
        if not ax.has_data():
            ax.set_visible(False)
    fig.suptitle("CPU cost per request, counted under valgrind (grey: the baselines)", fontsize=9)
    fig.tight_layout()
    path = Path(out) / instructions.FIGURE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
