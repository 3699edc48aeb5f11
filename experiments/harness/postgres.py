"""PostgreSQL for the experiments: a throwaway cluster of our own, or a server the user names.

Several findings only exist on a real server (backends left idle in transaction,
`pg_stat_database.sessions_abandoned`, pool exhaustion against `max_connections`),
so SQLite is not enough. A throwaway cluster (initdb into a temp dir, loopback
only, no fsync) needs nothing set up and leaves nothing behind: it is always
stopped and deleted, also on Ctrl-C. Either way callers get an object with
`admin_url`, `version` and `fresh_database(name)`, and do not care which it is.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

CONNECT_TIMEOUT_S = 5
START_TIMEOUT_S = 30
UNPRIVILEGED_USER = "postgres"  # the server refuses to run as root
DEBIAN_ROOT = Path("/usr/lib/postgresql")  # /usr/lib/postgresql/<major>/bin
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")


ACTIVITY_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = :name) AS backends,
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = :name AND backend_start < COALESCE(CAST(:opened_before AS timestamptz), 'infinity'))
         AS backends_opened_before,
       (SELECT count(*) FROM pg_stat_activity
         WHERE datname = :name AND state LIKE 'idle in transaction%') AS idle_in_transaction,
       (SELECT sessions_abandoned FROM pg_stat_database WHERE datname = :name) AS sessions_abandoned,
       clock_timestamp() AS clock
"""


TERMINATE_SQL = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE datname = :name AND pid <> pg_backend_pid()
"""


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl, postgres) on this machine."""


class DatabaseUnreachable(Exception):
    """A user-supplied PostgreSQL URL we could not connect to."""

    def __init__(self, url: str, reason: str):
        self.url = _masked(url)
        self.reason = " ".join(reason.split())  # psycopg's messages span several lines
        super().__init__(
            f"cannot connect to PostgreSQL at {self.url} ({self.reason}); "
            "start the server or correct the URL (or leave it out to use a throwaway cluster)"
        )


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL server we may create databases on: throwaway (`directory` set) or the user's."""

    admin_url: str  # postgresql+psycopg://…, a role that may CREATE/DROP DATABASE
    version: str  # e.g. "15.18"
    directory: Path | None = None  # the throwaway cluster's temp dir (data, socket, log)

    def fresh_database(self, name: str) -> tuple[str, str]:
        """Drop database `name` (kicking out its connections) and create it empty: (sync_url, async_url)."""
        engine = _engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            quoted = engine.dialect.identifier_preparer.quote(name)
            with engine.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))  # PostgreSQL 13+
                conn.execute(text(f"CREATE DATABASE {quoted}"))
        finally:
            engine.dispose()
        url = make_url(self.admin_url).set(database=name)
        return (
            url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
            url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
        )

    def terminate(self, name: str) -> int:
        """End every backend connected to database `name` (`pg_terminate_backend`), as a server restart or an idle
        timeout would; how many there were."""
        engine = _engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                return conn.scalar(text(TERMINATE_SQL), {"name": name})
        finally:
            engine.dispose()

    def activity(self, name: str, opened_before: datetime | None = None) -> dict:
        """What the server itself counts for database `name`, read fresh (not from a cached stats snapshot).

        backends: client connections open now; backends_opened_before: of them, those
        opened before `opened_before` (a `clock` reading; all when None); idle_in_transaction:
        those left inside a transaction; sessions_abandoned: connections ever dropped
        without a clean close (the client died or never said goodbye), PostgreSQL 14+;
        clock: the server's time of the reading.
        """
        engine = _engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_stat_clear_snapshot()"))
                row = conn.execute(text(ACTIVITY_SQL), {"name": name, "opened_before": opened_before}).one()
        finally:
            engine.dispose()
        return dict(row._mapping)


def existing_server(url: str) -> Cluster:
    """The server at a user-supplied `postgresql://…` URL; DatabaseUnreachable if it does not answer."""
    try:
        parsed = make_url(re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url.strip()))
    except ArgumentError as exc:
        raise DatabaseUnreachable(url, f"not a URL: {exc}") from None
    if parsed.drivername != "postgresql+psycopg":
        raise DatabaseUnreachable(url, "not a postgresql:// URL")
    admin_url = parsed.render_as_string(hide_password=False)
    try:
        version = _server_version(admin_url)
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).split("(Background on this error")[0]
        raise DatabaseUnreachable(url, reason) from exc
    return Cluster(admin_url=admin_url, version=version)


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A new PostgreSQL cluster in a temp dir on 127.0.0.1; stopped and deleted on leaving, whatever happens."""
    bindir = find_bindir()
    runas = _unprivileged_user()
    directory = Path(tempfile.mkdtemp(prefix="sessionbench-pg-"))
    data = directory / "data"
    log = directory / "server.log"
    try:
        if runas is not None:
            os.chown(directory, runas.pw_uid, runas.pw_gid)
        _run(
            runas,
            directory,
            [
                bindir / "initdb",
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )
        port = free_port()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# sessionbench: throwaway, loopback only, speed over durability\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{directory}'\n"
                "fsync = off\n"
                "full_page_writes = off\n"
                "synchronous_commit = off\n"
                "max_connections = 200\n"
            )
        _run(
            runas,
            directory,
            [bindir / "pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-s", "-D", data, "-l", log],
            log=log,
        )
        admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        yield Cluster(admin_url=admin_url, version=_server_version(admin_url), directory=directory)
    finally:
        try:
            _stop(runas, bindir, data)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def find_bindir() -> Path:
    """Where initdb, pg_ctl and postgres are: `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin, PATH."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    versions = sorted(DEBIAN_ROOT.glob("*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True)
    candidates.extend(versions)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in REQUIRED_BINARIES):
            return bindir
    raise PostgresNotFound(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found via pg_config, "
        f"{DEBIAN_ROOT}/*/bin or PATH: apt-get install postgresql"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (-1,)


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


def _engine(url: str, **kwargs):
    # named so that the instruments tell the harness's connections from the app's
    return create_engine(
        url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}, logging_name="sessionbench-harness", **kwargs
    )


def _server_version(admin_url: str) -> str:
    engine = _engine(admin_url)
    try:
        with engine.connect() as conn:
            full = conn.scalar(text("SHOW server_version"))  # "15.18 (Debian 15.18-1.pgdg120+1)"
    finally:
        engine.dispose()
    return full.split()[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise PostgresNotFound(
            f"PostgreSQL will not run as root and there is no user {UNPRIVILEGED_USER!r}: "
            "apt-get install postgresql (or useradd postgres)"
        ) from None


def _run(
    runas: pwd.struct_passwd | None,
    cwd: Path,
    argv: list,
    log: Path | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as `runas`, in a session of its own (Ctrl-C in the terminal reaches only us)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    user_kwargs = {}
    if runas is not None:
        user_kwargs = {"user": runas.pw_uid, "group": runas.pw_gid, "extra_groups": []}
        env.update(HOME=runas.pw_dir, USER=runas.pw_name, LOGNAME=runas.pw_name)
    argv = [str(a) for a in argv]
    # The postmaster that pg_ctl forks sends its output to the log file, so these pipes close when pg_ctl exits.
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        timeout=timeout,
        **user_kwargs,
    )
    if check and done.returncode != 0:
        detail = (done.stdout + done.stderr).strip()
        if log is not None and log.exists():
            detail += "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(
            f"{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''} failed (exit {done.returncode}):\n{detail}"
        )
    return done


def _stop(runas: pwd.struct_passwd | None, bindir: Path, data: Path) -> None:
    """Stop the cluster in `data` now, then kill whatever of it is still alive. Never raises."""
    postmaster = _postmaster_pid(data)
    if postmaster is not None or (data / "postmaster.pid").exists():
        try:
            _run(
                runas,
                data.parent,
                [bindir / "pg_ctl", "stop", "-m", "immediate", "-w", "-t", "10", "-s", "-D", data],
                check=False,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            pass
    # pg_ctl may have failed, timed out, or been interrupted before the pid file was written:
    # kill the postmaster (its own process group, with its backends) and anything naming our data dir.
    leftovers = set(_pids_mentioning(str(data)))
    if postmaster is not None and _alive(postmaster):
        leftovers.add(postmaster)
    for pid in leftovers:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in leftovers) and time.monotonic() < deadline:
        time.sleep(0.05)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Still running? A zombie waiting for init to reap it counts as dead."""
    if not Path("/proc/self").exists():  # not Linux: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _pids_mentioning(needle: str) -> Iterator[int]:
    """Processes whose command line contains `needle` (Linux; nothing elsewhere)."""
    me = os.getpid()
    encoded = needle.encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if encoded in cmdline.read_bytes() and int(cmdline.parent.name) != me:
                yield int(cmdline.parent.name)
        except (OSError, ValueError):
            continue
