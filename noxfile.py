"""Sessions of sessionbench. `nox -l` lists them; `nox -s compare` is the one users run.

Every session installs pinned versions from locks/ into its own virtualenv under .nox/
(reused between runs) and runs from the repository root; the results record which lock
file the environment came from. `nox -s lock` compiles the lock files from pyproject.toml.
Virtualenvs are made by uv when nox was installed with its `uv` extra
(`pipx install 'nox[uv]'`), else by the standard library's venv.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nox

nox.needs_version = ">=2025.10.14"  # download_python
nox.options.default_venv_backend = "uv|venv"
nox.options.download_python = "never"  # interpreters already on the machine only (PATH, pyenv, ...)
nox.options.error_on_missing_interpreters = False  # a matrix cell without its Python is skipped, on CI too
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]
# uv, unlike pip, ignores the system's certificate store unless told; behind a proxy that re-signs TLS it then
# fails ("invalid peer certificate: UnknownIssuer"). The sessions' uv and every uv it starts trust the system's.
os.environ.setdefault("UV_SYSTEM_CERTS", "1")

PROJECT = nox.project.load_toml("pyproject.toml")["project"]
LOCKS = Path("locks")
DEFAULT_LOCK = LOCKS / "default.txt"
RUFF = "ruff==0.17.6"  # the one tool `nox -s lint` installs; moved by hand
DEFAULT_PYTHON = "3.11"  # the oldest Python the project supports; the default lock holds for it and every later one
MATRIX_RESULTS = Path("results/matrix")


@dataclass(frozen=True)
class Cell:
    """One environment of `nox -s matrix`: a Python, a FastAPI release line (a SQLAlchemy one where a group needs
    it), and why it is there."""

    python: str
    fastapi: str | None  # "0.115" takes that line's last release; None the latest release
    why: str
    groups: tuple[str, ...] = ()  # pyproject optional groups only these cells take
    sqlalchemy: str | None = None  # "2.0" takes that line's last release; None the latest the groups allow

    @property
    def name(self) -> str:
        return (
            f"py{self.python}-"
            + (f"fastapi{self.fastapi}" if self.fastapi else "latest")
            + (f"-sqlalchemy{self.sqlalchemy}" if self.sqlalchemy else "")
        )

    @property
    def constraints(self) -> list[str]:
        return [
            f"{package}=={line}.*"
            for package, line in (("fastapi", self.fastapi), ("sqlalchemy", self.sqlalchemy))
            if line
        ]

    @property
    def lock(self) -> Path:
        """The latest FastAPI on the default Python is the default environment itself."""
        if not self.constraints and self.python == DEFAULT_PYTHON and not self.groups:
            return DEFAULT_LOCK
        return LOCKS / "matrix" / f"{self.name}.txt"


# FastAPI releases where the behaviour the checks measure changed (report/matrix.py
# keeps the list of those changes), and every other Python on the latest release.
MATRIX = (
    Cell(
        "3.11",
        "0.115",
        "`yield` dependencies exit before the response is sent (FastAPI 0.106 to 0.117)",
        ("fastapi-sqla",),
    ),
    Cell(
        "3.11",
        "0.120",
        "`yield` dependencies exit after the response again (0.118 to 0.120), no `Depends(scope=...)`",
        ("fastapi-sqla",),
    ),
    Cell("3.11", "0.121", "the first release with `Depends(scope=...)`", ("fastapi-sqla",)),
    Cell("3.11", None, "the default environment, what `nox -s compare` measures"),
    Cell(
        "3.11",
        None,
        "the latest FastAPI on SQLAlchemy 2.0, where fastapi-users-db-sqlalchemy 7.0 installs",
        ("fastapi-users",),
        sqlalchemy="2.0",
    ),
    Cell("3.12", None, "the latest FastAPI on Python 3.12, where fastapi-async-sqlalchemy 0.8 installs"),
    Cell("3.13", None, "the latest FastAPI on Python 3.13"),
)
CELL_ONLY_GROUPS = {group for cell in MATRIX for group in cell.groups}


def install(session: nox.Session, lock: Path) -> None:
    """Exactly the pinned versions of `lock`, hashes checked; the results record the lock file.

    uv, unlike pip, leaves the packages uncompiled; where PYTHONDONTWRITEBYTECODE is set (CI images often set it)
    every check process, and every valgrind process, would then compile FastAPI, SQLAlchemy and pydantic from source.
    """
    if session.venv_backend == "uv":
        session.run_install("uv", "pip", "sync", "--require-hashes", "--compile-bytecode", str(lock), silent=True)
    else:
        session.install("--require-hashes", "-r", str(lock))
    session.env["SESSIONBENCH_LOCK"] = lock.as_posix()


def quiet() -> list[str]:
    return ["--quiet"] if os.environ.get("CI") else []


def run_keeping_exit_2(session: nox.Session, *args: str, **kwargs) -> None:
    """`session.run(*args)`, but an exit 2 (bad input, said in one line) stays 2 through nox, which would make
    every failed command 1."""
    try:
        session.run(*args, **kwargs)
    except nox.command.CommandFailed as failed:
        if failed.return_code == 2:
            raise SystemExit(2) from None
        raise


def interpreter(version: str) -> dict[str, str] | None:
    """The environment in which `python{version}` runs that Python: pyenv's (PYENV_VERSION picks it for the shim),
    else one on PATH that starts; None when there is none."""
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions")
    found = sorted(v.name for v in versions.glob(f"{version}.*") if (v / "bin" / f"python{version}").exists())
    if found:
        return {"PYENV_VERSION": found[-1]}
    on_path = shutil.which(f"python{version}")
    runs = on_path and subprocess.run([on_path, "-c", ""], capture_output=True).returncode == 0
    return {} if runs else None


@nox.session
def compare(session: nox.Session) -> None:
    """Every strategy through every check, then a quick throughput pass; writes results/REPORT.md and results/results.json.

    Arguments after `--` go to `python -m experiments`, e.g.
    `nox -s compare -- --strategy yield_dependency --strategy middleware`; `-- --help` lists them.
    `-- --instructions quick` also counts instructions per request on the read route under valgrind, beside the
    quick pass (Debian: `apt-get install valgrind`; about 1.5 minutes more); `nox -s bench` counts them in full.
    """
    install(session, DEFAULT_LOCK)
    run_keeping_exit_2(session, "python", "-m", "experiments", *quiet(), *session.posargs)


@nox.session
def audit(session: nox.Session) -> None:
    """Your own app as a row beside the built-in ones, without rewriting it; writes results/audit/REPORT.md.

    `nox -s audit -- myapp.main:app --session myapp.deps:get_db --env MYAPP_DATABASE_URL={DATABASE_URL}`: the app is
    imported from, and run in, the folder nox was started in (or `--app-dir DIR`). What it needs is installed next to
    the pinned harness: `--requirements FILE`, else its folder's requirements.txt, else its pyproject.toml's
    dependencies. `--python X.Y` audits it on that Python (on PATH or in pyenv). The other arguments go to
    `python -m experiments --audit` (`-- --help`).
    """
    posargs = list(session.posargs)
    if "--python" in posargs[:-1]:
        at = posargs.index("--python")
        wanted = posargs.pop(at + 1)
        del posargs[at]
        if not session.python and wanted != ".".join(map(str, sys.version_info[:2])):
            env = interpreter(wanted)
            if env is None:
                print(f"error: --python {wanted}: no python{wanted} on PATH or in pyenv; install it, or pick another")
                raise SystemExit(2)
            # nox picks a session's interpreter before it runs: a nested nox on the one asked for, told the app's folder
            if "--app-dir" in posargs[:-1]:  # where the user started nox, not where the nested one starts
                at = posargs.index("--app-dir") + 1
                posargs[at] = str(Path(session.invoked_from, posargs[at]).resolve())
            nested = ["--app-dir", session.invoked_from] if "--app-dir" not in posargs else []
            nox_again = [sys.executable, "-m", "nox", "-f", __file__, "-s", "audit", "--force-python", wanted]
            nox_again += ["--error-on-missing-interpreters", "--", *posargs, *nested]
            run_keeping_exit_2(session, *nox_again, external=True, env=env)
            return
    install(session, DEFAULT_LOCK)
    app_dir = Path(session.invoked_from)
    if "--app-dir" in posargs[:-1]:
        app_dir = app_dir / posargs[posargs.index("--app-dir") + 1]
    requirements = []
    while "--requirements" in posargs[:-1]:
        at = posargs.index("--requirements")
        requirements += ["-r", str(Path(session.invoked_from, posargs[at + 1]))]
        del posargs[at : at + 2]
    if not requirements and (app_dir / "requirements.txt").is_file():
        requirements = ["-r", str(app_dir / "requirements.txt")]
    elif not requirements and (app_dir / "pyproject.toml").is_file():
        requirements = nox.project.load_toml(app_dir / "pyproject.toml").get("project", {}).get("dependencies", [])
    if requirements:
        session.install(*requirements)
    audited = ["--audit", posargs.pop(0)] if posargs and not posargs[0].startswith("-") else []
    where = ["--app-dir", session.invoked_from, "--out", str(Path("results/audit").resolve())]
    run_keeping_exit_2(session, "python", "-m", "experiments", *where, *audited, *quiet(), *posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The full throughput sweep, in-process and over uvicorn (~25 min), then instructions per request under valgrind
    on every route (8-12 min), no correctness checks: writes results/bench/.

    Uses wrk as the load generator when installed (Debian: `apt-get install wrk`), else a Python one; counts
    instructions when valgrind is installed (Debian: `apt-get install valgrind`).
    """
    install(session, DEFAULT_LOCK)
    session.run(
        "python",
        "-m",
        "experiments",
        "--throughput",
        "full",
        "--no-checks",
        "--out",
        "results/bench",
        *quiet(),
        *session.posargs,
    )


@nox.session
def reference(session: nox.Session) -> None:
    """Regenerate docs/reference/: the default comparison's REPORT.md and plots, then the same on a throwaway
    PostgreSQL cluster in docs/reference/postgresql/ (~15 min). Commit what changed, with the run's environment."""
    install(session, DEFAULT_LOCK)
    for db, out in (("sqlite", "docs/reference"), ("postgresql", "docs/reference/postgresql")):
        session.run("python", "-m", "experiments", "--db", db, "--out", out, *quiet(), *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Re-render results/REPORT.md from results/results.json without measuring again.

    `nox -s report -- results/bench/results.json --against OTHER/results.json` adds which throughput ratios
    the two runs agree on (overlapping intervals), and prints the count.
    """
    install(session, DEFAULT_LOCK)
    session.run("python", "-m", "report", *session.posargs)


@nox.session
def new(session: nox.Session) -> None:
    """Start a strategy from the template: `nox -s new -- my_pattern` writes strategies/my_pattern.py."""
    install(session, DEFAULT_LOCK)
    session.run("python", "-m", "experiments.harness.authoring", "new", *session.posargs)


@nox.session
def check(session: nox.Session) -> None:
    """Validate a strategy's contract in seconds: `nox -s check -- strategies/my_pattern.py`."""
    install(session, DEFAULT_LOCK)
    session.run("python", "-m", "experiments.harness.authoring", "check", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own tests: every check must fail a known-bad strategy and pass a known-good one."""
    install(session, DEFAULT_LOCK)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff's linter and formatter, configured in pyproject.toml; `nox -s lint -- --fix` rewrites what they can."""
    session.install(RUFF)
    fix = "--fix" in session.posargs
    session.run("ruff", "check", *(["--fix"] if fix else []), ".")
    session.run("ruff", "format", *([] if fix else ["--check", "--diff"]), ".")


@nox.session
@nox.parametrize("python,cell", [nox.param(cell.python, cell, id=cell.name) for cell in MATRIX])
def matrix(session: nox.Session, cell: Cell) -> None:
    """The correctness checks in every cell of MATRIX (FastAPI releases x Pythons): results/matrix/<cell>/, then results/MATRIX.md.

    Each cell has its own virtualenv pinned by its own lock file; a cell whose Python is not
    on this machine is skipped. `nox -s "matrix(py3.12-latest)"` runs one cell (and
    re-renders MATRIX.md from every cell's latest results); arguments after `--` go to
    `python -m experiments`.
    """
    session.notify("matrix_report")
    install(session, cell.lock)
    session.run(
        "python",
        "-m",
        "experiments",
        "--throughput",
        "off",
        "--out",
        str(MATRIX_RESULTS / cell.name),
        *quiet(),
        *session.posargs,
    )


@nox.session
def matrix_report(session: nox.Session) -> None:
    """Render results/MATRIX.md from the cells' results (versions, and every verdict that differs between cells).

    Runs after `nox -s matrix`; REPORT.md, when next to it, is re-rendered with a link to it.
    """
    install(session, DEFAULT_LOCK)
    cells = [arg for cell in MATRIX for arg in ("--cell", cell.name)]
    session.run("python", "-m", "report.matrix", str(MATRIX_RESULTS), *cells, "--out", "results/MATRIX.md")
    if Path("results/results.json").exists():
        session.run("python", "-m", "report", "results/results.json")


@nox.session
def lock(session: nox.Session) -> None:
    """Compile locks/ from pyproject.toml: the default environment and every matrix cell, exact pins with hashes.

    Keeps the pins a lock file already has where pyproject.toml still allows them (add a
    dependency or an optional group, then run this); `nox -s lock -- --upgrade` moves every
    pin to the latest release (or `-- --upgrade-package fastapi`). Commit what changed in locks/.
    """
    if session.venv_backend != "uv":
        session.install("uv")
    uv = " ".join(session.run("uv", "--version", silent=True).split()[:2])
    groups = [g for g in PROJECT.get("optional-dependencies", {}) if g not in CELL_ONLY_GROUPS]
    _compile(
        session,
        uv,
        DEFAULT_LOCK,
        DEFAULT_PYTHON,
        groups,
        [],
        f"the default environment (Python >= {DEFAULT_PYTHON}, the latest FastAPI)",
    )
    for cell in MATRIX:
        if cell.lock != DEFAULT_LOCK:
            _compile(
                session,
                uv,
                cell.lock,
                cell.python,
                [*groups, *cell.groups],
                cell.constraints,
                f"matrix cell {cell.name}: {cell.why}",
            )


def _compile(
    session: nox.Session, uv: str, out: Path, python: str, groups: list[str], constraints: list[str], what: str
) -> None:
    """One lock file, with a header saying what it holds and how it was made."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        *(f"--extra={g}" for g in groups),
        "--universal",
        f"--python-version={python}",
        "--generate-hashes",
    ]
    extra = []
    if constraints:
        constraints_file = Path(session.create_tmp()) / f"{out.stem}.constraints.txt"
        constraints_file.write_text("\n".join(constraints) + "\n")
        extra = ["--constraint", str(constraints_file)]
    # The output file doubles as uv's preferences: existing pins stay unless posargs upgrade them.
    session.run(*command, *extra, "--no-header", "--quiet", "--output-file", str(out), *session.posargs)
    shown = " ".join(command) + (f", constrained to {', '.join(constraints)}" if constraints else "")
    header = [
        f"# sessionbench, {what}.",
        f"# Pinned by `nox -s lock` ({uv}): {shown}",
        "# Refresh with `nox -s lock` (keeps pins pyproject.toml still allows) or `nox -s lock -- --upgrade`.",
    ]
    out.write_text("\n".join(header) + "\n" + out.read_text())
