"""Running a strategy's app in a process of its own, for what only a process boundary shows.

`uvicorn_reload` serves the strategy under `uvicorn --reload` (a real server
restarting its worker process), and `python -m experiments.harness.standalone PATH`
serves it in-process, shuts it down and lets the interpreter exit, printing
what was left open before exit as JSON: warnings and abandoned connections at
interpreter exit can only be seen from outside. Every child is started with a
hard deadline and killed with its descendants on the way out, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx

from experiments.harness.discovery import ROOT, Strategy
from experiments.harness.postgres import free_port

STARTED = "Application startup complete."
CHILD_MARK = "SESSIONBENCH_CHILD"  # in the environment of every process started here, so leftovers can be found
RELOAD_PACKAGE = "sessionbench_reload"  # the package `uvicorn --reload` imports its copy of the strategy from


def _descendants(pid: int) -> list[int]:
    """Children, grandchildren… of `pid` (Linux /proc; uvicorn's reload worker is a child of its supervisor)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def stop(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM (the graceful path: lifespan shutdown runs), then SIGKILL for it and anything it started."""
    family = _descendants(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    for pid in [proc.pid, *family, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    proc.wait()


def _environ(environ: dict[str, str]) -> dict[str, str]:
    """The app's environment: the database URLs, and the harness importable.

    Never the strategy's own folder: a strategy is often named after the library it uses
    (strategies/fastapi_sqlalchemy.py), and on the path it would shadow that library.
    """
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, **environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", CHILD_MARK: "1"}


class Reloading:
    """A strategy served by `uvicorn --reload` from a copy of its module that `touch()` edits."""

    def __init__(self, proc: subprocess.Popen, source: Path, log: Path, base_url: str):
        self.proc, self.source, self.log, self.base_url = proc, source, log, base_url
        self.touched = 0

    def starts(self) -> int:
        return self.log.read_text(errors="replace").count(STARTED)

    async def wait_started(self, count: int, timeout_s: float) -> None:
        """Until the `count`-th worker has finished its startup (its lifespan ran) and answers."""
        with anyio.fail_after(timeout_s):
            while self.starts() < count:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"uvicorn exited with code {self.proc.returncode}: {self.last_error()}")
                await anyio.sleep(0.05)

    async def touch(self, timeout_s: float = 30) -> None:
        """Edit the module as a developer would save it, and wait for the new worker to be up."""
        self.touched += 1
        before = self.starts()
        with open(self.source, "a") as f:
            f.write(f"\n# sessionbench reload {self.touched}\n")
        await self.wait_started(before + 1, timeout_s)

    def last_error(self) -> str:
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1] if lines else "no output"


@asynccontextmanager
async def uvicorn_reload(strategy: Strategy, environ: dict[str, str], workdir: Path, startup_s: float = 30):
    """Serve a copy of the strategy under `uvicorn --reload` on a free loopback port; stopped on leaving."""
    # The copy lives in a package of its own, so that its module name (RELOAD_PACKAGE.<id>) cannot shadow a
    # top-level module: strategies/fastapi_sqlalchemy.py imports the library fastapi_sqlalchemy.
    app_dir = workdir / "app"
    package = app_dir / RELOAD_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").touch()
    source = package / strategy.path.name
    shutil.copy(strategy.path, source)
    # What uvicorn serves: the copy's app with the probe routes mounted, as every check serves a strategy.
    (package / "served.py").write_text(
        "from pathlib import Path\n\nfrom experiments.harness import discovery\n\n"
        f"app = discovery.load(discovery.at(Path(__file__).with_name({source.name!r}))).app\n"
    )
    port, log = free_port(), workdir / "uvicorn.log"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        f"{RELOAD_PACKAGE}.served:app",
        "--app-dir",
        str(app_dir),
        "--reload",
        "--reload-dir",
        str(app_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "info",
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=workdir, env=_environ(environ), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        server = Reloading(proc, source, log, f"http://127.0.0.1:{port}")
        await server.wait_started(1, startup_s)
        yield server
    finally:
        stop(proc)


# Lines a process prints at exit when something was not closed while it could still be.
EXIT_TROUBLE = re.compile(
    r"Exception ignored|Event loop is closed|ResourceWarning|garbage collector is trying to clean up"
    r"|non-checked-in connection|Task was destroyed|coroutine .* was never awaited"
)


def run_to_exit(
    strategy: Strategy, environ: dict[str, str], routes: list[str], admin_url: str | None, timeout_s: float
) -> tuple[dict, list[str]]:
    """Serve, shut down and exit in a child interpreter: (what it measured before exiting, its exit trouble lines)."""
    argv = [
        sys.executable,
        "-X",
        "dev",
        "-m",
        "experiments.harness.standalone",
        str(strategy.path),
        "--module",
        strategy.module,
        *(arg for route in routes for arg in ("--route", route)),
    ]
    if admin_url:
        argv += ["--admin-url", admin_url]
    proc = subprocess.Popen(argv, cwd=ROOT, env=_environ(environ), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop(proc, grace_s=0)
        raise TimeoutError(f"the app did not start, serve, shut down and exit within {timeout_s:g} s") from None
    finally:
        stop(proc, grace_s=0)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        detail = (err.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the app's process exited with code {proc.returncode}: {detail}")
    return json.loads(lines[-1]), [line for line in err.splitlines() if EXIT_TROUBLE.search(line)]


async def send_traffic(client: httpx.AsyncClient, routes: list[str], concurrency: int = 5) -> int:
    """`concurrency` overlapping requests per tag route, each querying and holding its session a moment:
    enough to open several pooled connections. Returns how many failed."""
    failures = 0

    async def one(route: str, i: int) -> None:
        nonlocal failures
        response = await client.get(route, params={"tag": f"{route}-{i}", "delay": 0.05, "query": True})
        failures += not response.is_success

    async with anyio.create_task_group() as tg:
        for route in routes:
            for i in range(concurrency):
                tg.start_soon(one, route, i)
    return failures


def _main(argv: list[str]) -> None:
    """Child side of run_to_exit: serve in-process, shut down, report what is still open, then exit."""
    from experiments.harness import discovery
    from experiments.harness.postgres import Cluster
    from experiments.harness.serving import Database, serve

    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--module", required=True)
    parser.add_argument("--route", action="append", default=[])
    parser.add_argument("--admin-url")
    args = parser.parse_args(argv)
    strategy = discovery.at(args.path)
    strategy = Strategy(id=strategy.id, path=strategy.path, module=args.module, label=strategy.label)
    url = os.environ["DATABASE_URL"]
    if args.admin_url:
        database = Database(url, os.environ["ASYNC_DATABASE_URL"], server=Cluster(args.admin_url, ""),
                            name=url.rsplit("/", 1)[-1])  # fmt: skip
    else:
        database = Database(url, os.environ["ASYNC_DATABASE_URL"], path=Path(url.removeprefix("sqlite:///")).resolve())
    module = discovery.load(strategy)

    async def serve_and_stop() -> dict:
        async with serve(module.app, set(args.route)) as served:
            failed = await send_traffic(served.client, args.route)
            during = database.connections()
        time.sleep(0.2)  # let the server see closed connections go
        return {"requests_failed": failed, "connections_while_serving": during,
                "connections_after_shutdown": database.connections()}  # fmt: skip

    print(json.dumps(anyio.run(serve_and_stop)), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
