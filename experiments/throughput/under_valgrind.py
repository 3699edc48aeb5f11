"""The pytest module each instruction-count process runs under valgrind: one test per batch of requests.

instruction_count.py plans the processes and reads their callgrind dumps; this is what runs inside one. The process's
cases come in $SESSIONBENCH_INSTRUCTIONS (apps, plan, repeats); each app is served in-process, kept across its
cases, and pytest-codspeed switches valgrind's collection on around each batch only (a batch of 0 requests first,
which every batch subtracts). `pytest experiments` does not collect it.
"""

from __future__ import annotations

import itertools
import json
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.from_thread
import pytest

from experiments.harness import discovery
from experiments.harness.serving import Database, database_name, serve
from experiments.throughput.baselines import DIR as BASELINES_DIR
from experiments.throughput.instruction_count import cases
from experiments.throughput.routes import KINDS

BATCH_TIMEOUT_S = 120  # under valgrind a request takes ~0.1 s; a batch this late is hung

_RUN = json.loads(os.environ.get("SESSIONBENCH_INSTRUCTIONS", '{"apps": [], "plan": {}, "repeats": []}'))
CASES = cases(_RUN["apps"], _RUN["plan"], _RUN["repeats"])


@dataclass
class Served:
    id: str
    portal: anyio.from_thread.BlockingPortal
    client: object  # httpx.AsyncClient bound to the app
    paths: set[str]  # the paths counted for this app
    stack: ExitStack


class Apps:
    """The app being counted, kept served across its cases; the next one replaces it (lifespan shut down, loop closed)."""

    def __init__(self, db_server, tmp: Path):
        self.db_server, self.tmp = db_server, tmp
        self.current: Served | None = None
        self.failed: dict[str, str] = {}
        self.keys = itertools.count()

    def get(self, app: str, file: str) -> Served:
        if app in self.failed:
            pytest.fail(self.failed[app])
        if self.current and self.current.id == app:
            return self.current
        self.close()
        try:
            self.current = self._start(app, Path(file))
        except Exception as exc:
            self.failed[app] = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            pytest.fail(self.failed[app])
        return self.current

    def _start(self, app: str, file: Path) -> Served:
        name = database_name(f"sb_instr_{os.getpid()}_{app}")  # two processes may count one app
        database = (
            Database.postgresql(self.db_server, name) if self.db_server else Database.sqlite(self.tmp / f"{name}.db")
        )
        with ExitStack() as stack:
            patch = stack.enter_context(pytest.MonkeyPatch.context())
            for key, value in database.environ.items():
                patch.setenv(key, value)
            module = discovery.load(discovery.at(file))
            routes = discovery.served_routes(module.app)
            portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
            served = stack.enter_context(portal.wrap_async_context_manager(serve(module.app, routes)))
            # a strategy is counted on its preferred path of each kind (as in the throughput sweep), a baseline on all
            every = file.parent == BASELINES_DIR
            paths = {
                p
                for candidates, _, _ in KINDS.values()
                for p in [c for c in candidates if c in routes][: None if every else 1]
            }
            return Served(app, portal, served.client, paths, stack.pop_all())

    def close(self) -> None:
        if self.current:
            current, self.current = self.current, None
            current.stack.close()


@pytest.fixture(scope="session")
def apps(db_server, tmp_path_factory):
    held = Apps(db_server, tmp_path_factory.mktemp("instr"))
    yield held
    held.close()


async def batch(client, method: str, url: str, level: int, requests: int, keys) -> None:
    """`requests` requests from `level` clients, each sending its next as soon as the last one answered."""
    todo = iter(range(requests))

    async def user():
        for _ in todo:
            response = await client.request(method, url.format(key=f"k{next(keys):08d}"))
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {url} answered {response.status_code}: {response.text[:100]}")

    with anyio.fail_after(BATCH_TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            for _ in range(level):
                tg.start_soon(user)


@pytest.mark.filterwarnings("default")
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_instructions(codspeed_benchmark, apps, case):
    served = apps.get(case["app"], case["file"])
    if case["path"] is not None and case["path"] not in served.paths:
        pytest.skip(f"{case['path']} is not counted for {case['app']}")
    _, method, query = KINDS[case["kind"] or "nodb"]
    args = (batch, served.client, method, (case["path"] or "/nodb") + query, case["level"])
    if case["requests"]:
        served.portal.call(*args, case["warmup"], apps.keys)
    codspeed_benchmark.pedantic(served.portal.call, (*args, case["requests"], apps.keys), rounds=1)
