"""Sessions of sessionbench. `nox -l` lists them; `nox -s compare` is the one users run.

Every session installs the dependencies pinned in pyproject.toml into its own
virtualenv (reused between runs) and runs from the repository root.
"""

import os

import nox

nox.needs_version = ">=2024.4.15"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

PROJECT = nox.project.load_toml("pyproject.toml")["project"]
LIBRARIES = PROJECT["optional-dependencies"]["libraries"]  # what the library strategies measure


@nox.session
def compare(session: nox.Session) -> None:
    """Every strategy through every check, then a quick throughput pass; writes results/REPORT.md and results/results.json.

    Beside the quick pass, instructions per request on the read route are counted under valgrind when it is
    installed (Debian: `apt-get install valgrind`); `-- --instructions off` skips that.
    Arguments after `--` go to `python -m experiments`, e.g.
    `nox -s compare -- --strategy yield_dependency --strategy middleware`; `-- --help` lists them.
    """
    session.install(*PROJECT["dependencies"], *LIBRARIES)
    quiet = ["--quiet"] if os.environ.get("CI") else []
    session.run("python", "-m", "experiments", *quiet, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The full throughput sweep, in-process and over uvicorn (~25 min), then instructions per request under valgrind
    on every route (8-12 min), no correctness checks: writes results/bench/.

    Uses wrk as the load generator when installed (Debian: `apt-get install wrk`), else a Python one; counts
    instructions when valgrind is installed (Debian: `apt-get install valgrind`).
    """
    session.install(*PROJECT["dependencies"], *LIBRARIES)
    quiet = ["--quiet"] if os.environ.get("CI") else []
    session.run("python", "-m", "experiments", "--throughput", "full", "--no-checks", "--out", "results/bench",
                *quiet, *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Re-render results/REPORT.md from results/results.json without measuring again.

    `nox -s report -- results/bench/results.json --against OTHER/results.json` adds which throughput ratios
    the two runs agree on (overlapping intervals), and prints the count.
    """
    session.install(*PROJECT["dependencies"])
    session.run("python", "-m", "report", *session.posargs)


@nox.session
def new(session: nox.Session) -> None:
    """Start a strategy from the template: `nox -s new -- my_pattern` writes strategies/my_pattern.py."""
    session.install(*PROJECT["dependencies"])
    session.run("python", "-m", "experiments.harness.authoring", "new", *session.posargs)


@nox.session
def check(session: nox.Session) -> None:
    """Validate a strategy's contract in seconds: `nox -s check -- strategies/my_pattern.py`."""
    session.install(*PROJECT["dependencies"], *LIBRARIES)
    session.run("python", "-m", "experiments.harness.authoring", "check", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own tests: every check must fail a known-bad strategy and pass a known-good one."""
    session.install(*PROJECT["dependencies"])
    session.run("python", "-m", "pytest", *session.posargs)
