"""Writing a strategy: `new NAME` copies the template, `check PATH` validates the contract in seconds.

    python -m experiments.harness.authoring new my_pattern          (nox -s new -- my_pattern)
    python -m experiments.harness.authoring check strategies/x.py   (nox -s check -- strategies/x.py)

`check` imports the module against a scratch database, as the comparison
would, and says which probe routes are served, declared unsupported, or missing.
Exit status: 0 when the contract holds, 1 when it does not, 2 for bad input.
"""

from __future__ import annotations

import argparse
import keyword
import os
import sys
import tempfile
from pathlib import Path

from experiments.harness import discovery
from experiments.harness.serving import Database
from experiments.probes import KINDS, OPTIONAL, ROUTES, path_kinds

TEMPLATE = discovery.DEFAULT_DIR / "_template.py"


def new(name: str, directory: Path = discovery.DEFAULT_DIR) -> int:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        print(f"error: {name!r} is not a module name; use letters, digits and _ (not leading)", file=sys.stderr)
        return 2
    target = directory / f"{name}.py"
    if target.exists():
        print(f"error: {target} exists already; pick another name or edit it", file=sys.stderr)
        return 2
    target.write_text(TEMPLATE.read_text())
    print(
        f"wrote {target}: give it a label (first docstring line), replace get_db with your pattern, then\n"
        f"  nox -s check -- {target}\n  nox -s compare -- --strategy {name}"
    )
    return 0


def check(path: Path) -> int:
    path = path.resolve()
    if not path.is_file() or path.suffix != ".py":
        print(f"error: {path}: no such strategy module (a .py file)", file=sys.stderr)
        return 2
    strategy = discovery.at(path)
    with tempfile.TemporaryDirectory(prefix="sessionbench-check-") as scratch:
        database = Database.sqlite(Path(scratch) / "check.db")
        os.environ.update({**database.environ, **database.second().environ_as_second})  # the optional routes too
        try:
            module = discovery.load(strategy)
        except discovery.ContractError as exc:
            print(f"FAIL {exc}")
            return 1
    served, declared = discovery.served_routes(module.app), discovery.unsupported(module)
    kinds = {route: kind for kind in KINDS for route in discovery.served_routes(module.app, kind)}
    for route, method in ROUTES.items():
        kind = kinds.get(route)
        unjudged = "" if kind in path_kinds(route) else "; no check judges it as that kind (see probes.PATH_KINDS)"
        state = (
            f"served by {'an `async def`' if kind == 'async' else 'a `def`'} endpoint{unjudged}"
            if route in served
            else f"unsupported: {declared[route]}"
            if route in declared
            else f"optional ({OPTIONAL[route]}): not served"
            if route in OPTIONAL
            else "MISSING"
        )
        print(f"{method:<5} {route:<13} {state}")
    missing = discovery.missing_routes(module, tuple(ROUTES))
    if missing:
        print(f"FAIL {discovery.contract_error(strategy, missing)}")
        return 1
    print(f"ok   {strategy.file}: label {strategy.label!r}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.harness.authoring", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("new", help="copy the template to strategies/NAME.py").add_argument("name")
    commands.add_parser("check", help="validate a strategy module's contract").add_argument("path", type=Path)
    args = parser.parse_args(argv)
    return new(args.name) if args.command == "new" else check(args.path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
