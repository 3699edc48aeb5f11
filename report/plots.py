"""The report's figures, drawn from the results document with matplotlib (Agg: no display needed).

Kept apart from render(), which stays a pure function of the document: the CLI
calls write() next to REPORT.md, and the report links the files by the names
report.throughput.figures() gives.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from report import instructions  # noqa: E402
from report.throughput import KIND_TITLES, MODES, figures, series  # noqa: E402


def _label(app: str, path: str, baselines: set[str]) -> str:
    return f"{app} {path}" if app in baselines else app


def _throughput(ax, cells: list[dict], baselines: set[str]) -> None:
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # more series than the default 10 colours
    for (app, path), group in series(cells).items():
        x = [c["concurrency"] for c in group]
        y = [c["rps"]["median"] for c in group]
        spread = [[c["rps"]["median"] - c["rps"]["q1"] for c in group], [c["rps"]["q3"] - c["rps"]["median"] for c in group]]
        ax.errorbar(x, y, yerr=spread, marker="o", capsize=3, linestyle="--" if app in baselines else "-",
                    label=_label(app, path, baselines))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("requests/s (median, IQR)")


def _latency(ax, cells: list[dict], baselines: set[str]) -> None:
    top = max(c["concurrency"] for c in cells)
    group = [c for c in cells if c["concurrency"] == top]
    names = [_label(c["app"], c["path"], baselines) for c in group]
    for i, q in enumerate((50, 90, 99)):
        ax.barh([n + i * 0.27 for n in range(len(group))], [c[f"p{q}_ms"] for c in group], height=0.27, label=f"p{q}")
    ax.set_yticks([n + 0.27 for n in range(len(group))], names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency ms at {top} concurrent clients (median over rounds)")


def write(doc: dict, out: Path) -> list[Path]:
    """Draw every figure of the document into `out`; nothing for a part it does not have."""
    return _throughput_figures(doc, out) + _instruction_figure(doc, out)


def _throughput_figures(doc: dict, out: Path) -> list[Path]:
    tp = doc.get("throughput")
    if not tp:
        return []
    baselines = {a["id"] for a in tp["apps"] if a["baseline"]}
    written = []
    for name, mode, what in figures(tp):
        kinds = [k for k in KIND_TITLES if any(c["mode"] == mode and c["kind"] == k for c in tp["cells"])]
        fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 5), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            cells = [c for c in tp["cells"] if c["mode"] == mode and c["kind"] == kind]
            (_throughput if what == "throughput" else _latency)(ax, cells, baselines)
            ax.set_title(kind, fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="best")
        fig.suptitle(f"{what}: {MODES[mode]}", fontsize=9)
        fig.tight_layout()
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
    fig, axes = plt.subplots(len(levels), len(kinds), figsize=(6 * len(kinds), (0.3 * tallest + 1.2) * len(levels)),
                             squeeze=False)
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
