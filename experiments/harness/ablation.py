"""The ablation: each ingredient a strategy declares, switched off on its own and measured like any other row.

A module declares what each of its lines is for, as the text of the line and the module's text without it (or a
list of such pairs, for one ingredient written in two places):

    INGREDIENTS = {"pool_pre_ping=True": ("create_engine(URL, pool_pre_ping=True)", "create_engine(URL)")}

A variant is the module with that one edit, written into the run's output (not a copy kept in the tree), labelled
"`<id>` without `<ingredient>`" and carrying `ABLATION_OF = (id, ingredient)`, so that the report pairs each of its
failures with the line it lacks: line → checks that fail without it → the key number.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from experiments.harness import discovery
from experiments.harness.discovery import ContractError, Strategy


def ingredients(path: Path) -> tuple[dict[str, list[tuple[str, str]]], str]:
    """The module's INGREDIENTS, read without importing it ({} when it declares none), and its source without
    that declaration (whose texts would otherwise be edited too)."""
    source = path.read_text()
    try:
        tree = ast.parse(source, str(path))
    except (SyntaxError, ValueError):  # the preflight says so, in its row's one line
        return {}, source
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "INGREDIENTS" for t in node.targets):
            lines = source.splitlines(keepends=True)
            rest = "".join(lines[: node.lineno - 1] + lines[node.end_lineno :])
            declared = ast.literal_eval(node.value)
            return {str(k): [v] if isinstance(v[0], str) else list(v) for k, v in declared.items()}, rest
    return {}, source


def variants(strategies: list[Strategy], directory: Path) -> list[Strategy]:
    """One strategy per ingredient of each of `strategies`, its module written into `directory`."""
    found = []
    for strategy in strategies:
        declared, source = ingredients(strategy.path)
        for label, edits in declared.items():
            edited = source
            for line, without in edits:
                if source.count(line) != 1:
                    raise ContractError(
                        f"{strategy.file}: INGREDIENTS[{label!r}]: {line!r} is not in the module exactly once; "
                        "copy the text from the module"
                    )
                edited = edited.replace(line, without)
            slug = re.sub(r"\W+", "_", label).strip("_").lower()[:40]
            path = directory / f"{strategy.id}__without_{slug}.py"
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f'"""`{strategy.id}` without `{label}`"""\n\nABLATION_OF = ({strategy.id!r}, {label!r})\n\n' + edited
            )
            found.append(discovery.at(path))
    return found
