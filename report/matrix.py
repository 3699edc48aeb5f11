"""results/MATRIX.md: the same checks in several environments (`nox -s matrix`), and every verdict that differs.

The page is a pure function of the cells' results documents. A difference is put on a
version boundary only where the verdict is a step function of one version across the
cells that measured it (every cell below the boundary one verdict, every cell above the
other), and it is explained only by a change listed in CHANGES that lies on that
boundary; where none does, the page says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from report.markdown import SYMBOLS, cell, key_numbers, table
from report.render import lock
from report.results import ResultsError, by_pair, load, per_kind

MEASURED = ("passed", "failed")


@dataclass(frozen=True)
class Change:
    """A behaviour change in a release, as its release notes state it, worded for what the checks measure."""

    package: str  # as in the results' environment packages ("fastapi", "starlette")
    version: str  # the first release with the change
    what: str


# From FastAPI's release notes (read through 0.141.1) and Starlette's (through 1.3.1):
# the changes to dependency teardown, request-scoped state and middleware that the checks can see.
NOTES_READ = {"fastapi": "0.141.1", "starlette": "1.3.1"}
CHANGES = (
    Change(
        "starlette",
        "0.24.0",
        "middleware instances are created once, when the first request arrives "
        "(a library that opens its engine in a middleware's `__init__` opens it then)",
    ),
    Change(
        "fastapi",
        "0.74.0",
        "the code before and after `yield` in a dependency runs in the request's "
        "`contextvars` context, and `yield` dependencies can catch the endpoint's exceptions",
    ),
    Change(
        "fastapi",
        "0.82.0",
        "the exit code of `yield` dependencies runs without the threadpool's capacity limiter, "
        "so closing a session can no longer deadlock behind requests waiting for a thread "
        "(FastAPI #3205, PR #5122)",
    ),
    Change(
        "fastapi",
        "0.106.0",
        "the exit code of `yield` dependencies runs before the response is sent (it ran "
        "after): a session closed or committed there is done before the client has the "
        'answer, and an exception raised there reaches the exception handlers; "using '
        'resources from dependencies with yield in background tasks is no longer supported", '
        "and a `StreamingResponse` reads through a session already closed (SQLAlchemy 2 "
        "reopens it, on a connection nobody returns)",
    ),
    Change(
        "fastapi",
        "0.110.0",
        "a `yield` dependency that catches an exception must raise it again, as in plain "
        "Python (a breaking change for dependencies that caught one and did not)",
    ),
    Change(
        "fastapi",
        "0.118.0",
        "the exit code of `yield` dependencies runs after the response is sent again "
        "(reverting 0.106): a session closed there is still open, its connection checked "
        "out, when the client already has the answer, a commit placed there is not yet "
        "visible when the client has it, and one failing there cannot change the status "
        "code; a stream or a background task keeps the session, and its connection, until "
        'it ends ("the StreamingResponse would not be able to use that session while '
        'streaming data because the session would have already been closed", PR #14099)',
    ),
    Change(
        "fastapi",
        "0.121.0",
        '`Depends(scope=...)`: `scope="function"` runs a `yield` dependency\'s exit code '
        'right after the endpoint returns, before the response; the default (`"request"`) '
        'after it; a stream or background task served by a `scope="function"` session '
        "finds it closed, as on 0.106 to 0.117",
    ),
    Change("fastapi", "0.121.1", 'fix: `Depends(func, scope="function")` on parameterless (top-level) dependencies'),
)


def _version(text) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _dimensions(env: dict) -> dict[str, Version | None]:
    """Every version a cell states: Python's and each recorded package's."""
    return {
        "python": _version(env.get("python")),
        **{name: _version(v) for name, v in (env.get("packages") or {}).items()},
    }


def boundaries(verdicts: dict[str, str], envs: dict[str, dict]) -> list[tuple[str, Version, Version]]:
    """(name, last version with one value, first with the other) for each version the value steps along once.

    `verdicts`: cell -> outcome (or any other value compared between cells, e.g. the key numbers).
    """
    found = []
    names = dict.fromkeys(name for c in verdicts for name in _dimensions(envs[c]))
    for name in names:
        seen: dict[Version, set[str]] = {}
        for c, verdict in verdicts.items():
            version = _dimensions(envs[c]).get(name)
            if version is None:
                break
            seen.setdefault(version, set()).add(verdict)
        else:
            steps = sorted(seen.items())
            flips = [i for i in range(1, len(steps)) if steps[i][1] != steps[i - 1][1]]
            if all(len(v) == 1 for v in seen.values()) and len(flips) == 1:
                found.append((name, steps[flips[0] - 1][0], steps[flips[0]][0]))
    return found


def explain(found: list[tuple[str, Version, Version]], changes=CHANGES) -> tuple[str, str]:
    """The boundary in words, and the known changes on it (or a plain statement that none is known)."""
    if not found:
        return "none: the verdict is not a step along any one version", "No known change explains it."
    where = "; ".join(f"{name} {low} → {high}" for name, low, high in found)
    known = [c for name, low, high in found for c in changes if c.package == name and low < Version(c.version) <= high]
    if known:
        return where, " ".join(f"{c.package} {c.version}: {c.what}." for c in known)
    past = [name for name, _, high in found if name in NOTES_READ and high > Version(NOTES_READ[name])]
    unread = f" (release notes read up to {', '.join(f'{n} {NOTES_READ[n]}' for n in past)})" if past else ""
    return where, f"No known behaviour change lies on this boundary{unread}."


def _difference(strategy: str, check: dict, rows: dict, values: dict[str, str], envs: dict) -> list[str]:
    """A table row: each cell's mark and key numbers, the boundary `values` step along, and its explanation."""
    where, why = explain(boundaries(values, envs))
    if check.get("exclusive") and "No known" in why:
        why += " Its numbers are timings: a re-run of the cells tells noise from a change."
    marks = [
        " ".join(filter(None, [SYMBOLS[row["outcome"]], per_kind(row, lambda m: key_numbers(m, check.get("key", [])))]))
        if row
        else SYMBOLS[None]
        for row in rows.values()
    ]
    return [f"`{strategy}`", f"`{check['id']}`", *marks, cell(where), cell(why)]


def _zeros(metrics: dict, keys: list[str]) -> str:
    """Which key numbers are 0: what the rules turn on, and what count noise (9 or 10 connections) leaves alone."""
    return " ".join(f"{k}{'=0' if not metrics[k] else '>0'}" for k in keys if k in metrics)


def _counts(doc: dict) -> str:
    tally = {o: 0 for o in SYMBOLS if o}
    for row in by_pair(doc["results"]).values():
        tally[row["outcome"]] += 1
    return " ".join(f"{SYMBOLS[o]}{n}" for o, n in tally.items() if n)


def versions(cells: list[tuple[str, dict | None]]) -> list[str]:
    """One column per cell: Python, every recorded package, the lock, the run."""
    docs = [doc for _, doc in cells if doc]
    packages = list(dict.fromkeys(p for doc in docs for p in doc["environment"].get("packages") or {}))

    def row(label, get):
        return [label, *(cell(get(doc)) if doc else "not run" for _, doc in cells)]

    rows = [row("Python", lambda d: d["environment"].get("python"))]
    rows += [row(p, lambda d, p=p: (d["environment"].get("packages") or {}).get(p) or "—") for p in packages]
    rows += [
        row("lock", lambda d: lock(d["environment"].get("lock"))),
        row("git", lambda d: (d["environment"].get("git_sha") or "")[:12]),
        row("started", lambda d: d["environment"].get("started_at")),
        row("rows", lambda d: _counts(d) + ("" if d.get("complete") else " (INCOMPLETE)")),
    ]
    return table(["", *(f"`{name}`" for name, _ in cells)], rows)


def render(cells: list[tuple[str, dict | None]], base: str = "matrix") -> str:
    """MATRIX.md from [(cell name, its results document or None when it did not run)], in the plan's order.

    `base`: where the cells' directories are, relative to MATRIX.md (each has its REPORT.md).
    """
    ran = {name: doc for name, doc in cells if doc}
    envs = {name: doc["environment"] for name, doc in ran.items()}
    found = {name: by_pair(doc["results"]) for name, doc in ran.items()}
    strategies = list(dict.fromkeys(s["id"] for doc in ran.values() for s in doc["strategies"]))
    checks = {c["id"]: c for doc in ran.values() for c in doc["checks"]}
    names = list(ran)

    differ, shifted, unmeasured, same = [], [], [], 0
    for s in strategies:
        for c, check in checks.items():
            rows = {name: found[name].get((s, c)) for name in names}
            verdicts = {name: r["outcome"] for name, r in rows.items() if r and r["outcome"] in MEASURED}
            zeros = {
                name: per_kind(r, lambda m: _zeros(m, check.get("key", [])))
                for name, r in rows.items()
                if name in verdicts
            }
            outcomes = {r["outcome"] if r else None for r in rows.values()}
            if len(set(verdicts.values())) > 1:
                differ.append(_difference(s, check, rows, verdicts, envs))
            elif len(outcomes) > 1 and outcomes - set(MEASURED):
                unmeasured += [(s, c, n, r) for n, r in rows.items() if not r or r["outcome"] not in MEASURED]
            elif len(verdicts) == len(names) and len(set(zeros.values())) > 1 and not check.get("exclusive"):
                shifted.append(_difference(s, check, rows, zeros, envs))
            elif len(verdicts) == len(names):
                same += 1
    header = ["Strategy", "Check", *(f"`{n}`" for n in names), "Boundary", "Known change"]

    out = [
        "# sessionbench across FastAPI releases and Pythons",
        "",
        "The correctness checks (`python -m experiments --throughput off`) in each environment of `nox -s matrix`, "
        "each a virtualenv pinned by its own lock file. Throughput is not compared: it is only comparable "
        f"within one run. Each cell's full report: `{base}/<cell>/REPORT.md`.",
        "",
        "## Versions",
        "",
        *versions(cells),
        "",
        "## Verdicts that differ between cells",
        "",
        f"Of the strategy × check pairs measured in every cell, {same} have the same verdict everywhere, "
        f"{len(shifted)} the same verdict with a key number that is 0 in some cells and not in others, "
        f"{len(differ)} a different verdict. "
        "A difference is put on a version boundary only where every cell below it has one value and every cell above "
        "it the other; the explanation is a change from the release notes that lies on that boundary, or says that "
        "none is known.",
        "",
    ]
    if differ:
        out += table(header, differ)
    else:
        out += ["No verdict differs between the cells." if len(names) > 1 else "Only one cell ran: nothing to compare."]
    if shifted:
        out += [
            "",
            "## Same verdict, a key number turns 0 or not",
            "",
            "A key number that is 0 in some cells and not in others while the verdict stays (counts that only "
            "move, 9 or 10, are run-to-run noise as often as not and are left out, as are timing checks):",
            "",
            *table(header, shifted),
        ]
    if unmeasured:
        out += [
            "",
            "## Not measured in every cell",
            "",
            "Rows measured in some cells but not in others (a library that does not install there, a feature "
            "the FastAPI release lacks), so no difference can be read from them:",
            "",
        ]
        by_cell: dict[tuple, list[str]] = {}
        for s, c, n, r in unmeasured:
            by_cell.setdefault((s, n, r["outcome"] if r else None, (r or {}).get("reason", "no row")), []).append(c)
        groups: dict[tuple, list[str]] = {}  # the same rows for the same reason in several cells: one line
        for (s, n, o, reason), cs in by_cell.items():
            groups.setdefault((s, o, reason, tuple(cs)), []).append(n)
        for (s, o, reason, cs), ns in groups.items():
            which = ", ".join(f"`{c}`" for c in cs) if len(cs) <= 3 else f"{len(cs)} checks"
            out.append(f"- `{s}` in {', '.join(f'`{n}`' for n in ns)}: {SYMBOLS[o]} {which}: {cell(reason)}")
    missing = [name for name, doc in cells if not doc]
    if missing:
        out += [
            "",
            "Not run: "
            + ", ".join(f"`{n}`" for n in missing)
            + " (its Python is not on this machine, or the cell failed before writing results; see nox's output).",
        ]
    out += [
        "",
        "## Known behaviour changes",
        "",
        "What the explanations above are drawn from (release notes read: "
        + ", ".join(f"{n} up to {v}" for n, v in NOTES_READ.items())
        + "):",
        "",
    ]
    out += [f"- {c.package} {c.version}: {c.what}." for c in CHANGES]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m report.matrix", description=__doc__.splitlines()[0])
    parser.add_argument("cells_dir", type=Path, help="the matrix's results directory (one subdirectory per cell)")
    parser.add_argument(
        "--cell",
        action="append",
        default=[],
        help="a cell's name, in the order to show (repeatable; default: every subdirectory)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/MATRIX.md"))
    args = parser.parse_args(argv)
    names = args.cell or sorted(p.name for p in args.cells_dir.iterdir() if (p / "results.json").exists())
    cells = []
    for name in names:
        path = args.cells_dir / name / "results.json"
        try:
            cells.append((name, load(path) if path.exists() else None))
        except ResultsError as exc:
            print(exc, file=sys.stderr)
            return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(cells, base=Path(os.path.relpath(args.cells_dir, args.out.parent)).as_posix()))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
