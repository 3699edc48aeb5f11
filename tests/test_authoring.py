"""`nox -s new` hands out a template that passes the contract; `nox -s check` says exactly what is missing."""

from __future__ import annotations

import subprocess
import sys

from experiments.harness import authoring
from experiments.probes import ROUTES
from tests.running import ALIAS, FIXTURES, ROOT, TEMPLATE, template_with


def _check(path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.harness.authoring", "check", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_new_writes_the_template_and_it_passes_the_contract(tmp_path, capsys):
    assert authoring.new("my_pattern", tmp_path) == 0
    written = tmp_path / "my_pattern.py"
    assert written.read_text() == TEMPLATE.read_text()
    assert "nox -s check --" in capsys.readouterr().out
    done = _check(written)
    assert done.returncode == 0, done.stdout
    assert done.stdout.count("served") == len(ROUTES)


def test_check_finds_the_routes_of_included_routers_and_mounted_apps():
    """No probe route of this fixture is on the app itself: each is found under its router's prefix or mount."""
    done = _check(FIXTURES / "routes_on_routers.py")
    assert done.returncode == 0, done.stdout
    assert "MISSING" not in done.stdout and done.stdout.startswith("GET ")


def test_new_refuses_to_overwrite_or_a_bad_name(tmp_path, capsys):
    (tmp_path / "taken.py").write_text("")
    assert authoring.new("taken", tmp_path) == 2
    assert authoring.new("not-a-name", tmp_path) == 2
    assert "exists already" in capsys.readouterr().err


def test_check_names_the_missing_routes_and_the_fix(tmp_path):
    """Without a session alias the harness cannot add the probe routes: each is missing, and the fix is named."""
    broken = tmp_path / "no_source.py"
    broken.write_text(template_with((ALIAS, 'SessionDep = Depends(get_db, scope="function")')))
    done = _check(broken)
    assert done.returncode == 1
    assert "POST  /sync/write   MISSING" in done.stdout
    last = done.stdout.splitlines()[-1]
    assert "no_source.py: no route GET /sync/tag" in last and "declare where its endpoints get their session" in last


def test_check_reports_an_import_failure_in_one_line(tmp_path):
    broken = tmp_path / "typo.py"
    broken.write_text("from fastapi import FastAPl\n")
    done = _check(broken)
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL ") and "typo.py: import failed (line 1): ImportError" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
