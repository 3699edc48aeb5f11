"""Do connections live exactly as long as the app that opened them?

The thread's lifetime claims: an engine created at import is never disposed,
so every `uvicorn --reload`, every re-import in a test runner or notebook and
every shutdown leaves its pooled connections to be dropped by the operating
system (or kept open for good); an engine created in lifespan and disposed at
shutdown leaves nothing. The server's own counters are the evidence.
"""

from __future__ import annotations

import anyio
import httpx

from experiments.checks import Check, measures
from experiments.harness import discovery, instruments
from experiments.harness.serving import serve, to_served_paths
from experiments.harness.standalone import run_to_exit, send_traffic, uvicorn_reload
from experiments.rules import Rule, Term, any_positive, zero

TAG_ROUTES = ("/sync/tag", "/async/tag")
RELOADS = 3
SETTLE_S = 1.0  # how long the server may take to notice a closed connection


async def settled(measure) -> int:
    """`measure()` once it stops changing (two equal readings 100 ms apart), or after SETTLE_S."""
    last = measure()
    with anyio.move_on_after(SETTLE_S):
        while True:
            await anyio.sleep(0.1)
            now = measure()
            if now == last:
                break
            last = now
    return last


RELOAD_SERVER = Check(
    id="reload_server",
    title="`uvicorn --reload` leaves no connection behind",
    column="uvicorn --reload",
    whole_app=True,
    measures=(
        f"the strategy runs under a real `uvicorn --reload`; {RELOADS} times, 5 overlapping requests per tag route "
        "open pooled connections, then the module is edited and uvicorn restarts its worker (SIGTERM, lifespan "
        "shutdown). PostgreSQL counts, after each restart and after the server stops: backends still connected from "
        "the old worker (opened before the edit), and `pg_stat_database.sessions_abandoned` (connections dropped "
        "without a clean close)"
    ),
    why=(
        '"engines created at import leak across `uvicorn --reload`"; the thread\'s case for creating the engine in '
        "a startup/lifespan hook and disposing of it at shutdown"
    ),
    rule=zero("sessions_abandoned", "backends_left", note="nothing outlives the worker that opened it"),
    severity="leak",
    permanent=any_positive("backends_left"),
    key=("sessions_abandoned", "backends_left"),
    routes=TAG_ROUTES,
    timeout_s=120,
    needs_server=True,
)


@measures(RELOAD_SERVER)
async def test_reload_server(strategy, app_module, routes, database, record, tmp_path):
    paths = sorted(routes)
    abandoned_per_restart, left_per_restart, failed = [], [], 0
    start = database.activity()["sessions_abandoned"]
    async with uvicorn_reload(strategy, database.environ, tmp_path) as server:
        hooks = to_served_paths(app_module.app)  # the copy uvicorn serves has the same routes
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, event_hooks=hooks) as client:
            for _ in range(RELOADS):
                failed += await send_traffic(client, paths)
                edited = database.activity()
                await server.touch()
                # Only backends opened before the edit are the old worker's: the new one may connect while it
                # starts (fastapi-sqla and FastSQLA query in their startup).
                left_per_restart.append(
                    await settled(
                        lambda: database.server.activity(database.name, opened_before=edited["clock"])[
                            "backends_opened_before"
                        ]
                    )
                )
                abandoned_per_restart.append(
                    await settled(lambda: database.activity()["sessions_abandoned"]) - edited["sessions_abandoned"]
                )
            failed += await send_traffic(client, paths)
    left_after_stop = await settled(database.connections)
    total = await settled(lambda: database.activity()["sessions_abandoned"]) - start
    metrics = {
        "reloads": RELOADS,
        "requests_failed": failed,
        "sessions_abandoned": total,
        "abandoned_per_restart": abandoned_per_restart,
        "backends_after_each_restart": left_per_restart,
        "backends_after_stop": left_after_stop,
        "backends_left": max([*left_per_restart, left_after_stop]),
    }
    record(metrics, (
        f"{RELOADS} reloads of `uvicorn --reload` on {', '.join(paths)}: {total} connections abandoned in all "
        f"({abandoned_per_restart} per restart, {total - sum(abandoned_per_restart)} at the final stop); the old "
        f"worker's backends still connected after each restart {left_per_restart}, any after the server stopped "
        f"{left_after_stop}; "
        f"{failed} requests failed."
    ))  # fmt: skip


RELOAD_IN_PROCESS = Check(
    id="reload_in_process",
    title="Re-importing the app does not pile up connections",
    column="re-import",
    whole_app=True,
    measures=(
        f"the strategy module is imported {RELOADS + 1} times in one process while the earlier apps stay referenced "
        "(what test runners and notebooks do); each app starts, serves 5 overlapping requests per tag route and "
        "shuts down, with the cyclic garbage collector paused. Counted after each shutdown: connections open to the "
        "database (PostgreSQL backends; on SQLite, file descriptors of this process on the database file)"
    ),
    why=(
        "module-level engines are created again by every import and the old ones are never disposed; the thread's "
        "argument for tying the engine to the app's lifespan"
    ),
    rule=zero("growth", note="no more connections open after the last re-import than after the first import"),
    severity="nuisance",
    key=("growth",),
    routes=TAG_ROUTES,
)


@measures(RELOAD_IN_PROCESS)
async def test_reload_in_process(strategy, app_module, routes, database, record, watch):
    paths, kept, counts, failed = sorted(routes), [], [], 0
    with instruments.collector_paused():  # a session nobody closed keeps its connection until counted, every run
        for i in range(RELOADS + 1):
            module = app_module if i == 0 else discovery.load(strategy)
            kept.append(module)  # the old app stays referenced, as in a notebook or a test session
            async with serve(module.app, routes, watch) as served:
                failed += await send_traffic(served.client, paths)
            counts.append(await settled(database.connections))
    metrics = {"imports": len(kept), "connections_after_each": counts, "growth": counts[-1] - counts[0],
               "requests_failed": failed}  # fmt: skip
    record(metrics, (
        f"Connections open after each of {len(kept)} import–serve–shutdown rounds: {counts} "
        f"(growth {counts[-1] - counts[0]}); {failed} requests failed."
    ))  # fmt: skip


SHUTDOWN = Check(
    id="shutdown",
    title="Shutdown closes every connection, and the process exits cleanly",
    column="shutdown",
    whole_app=True,
    measures=(
        "the app runs in a process of its own: lifespan startup, 5 overlapping requests per tag route, lifespan "
        "shutdown, then the interpreter exits (in Python's dev mode, so that unclosed resources are reported). "
        "Counted: connections still open after shutdown (PostgreSQL backends, or SQLite file descriptors), lines of "
        'trouble on stderr at exit ("Event loop is closed", "Exception ignored", ResourceWarning, garbage-collected '
        "connections), and on PostgreSQL connections abandoned at exit (`sessions_abandoned`)"
    ),
    why=(
        '"async connections cannot close at interpreter exit": an engine that is not disposed while the event loop '
        "still runs leaves its connections to the garbage collector"
    ),
    rule=Rule(
        (
            Term("connections_after_shutdown"),
            Term("exit_trouble_lines"),
            Term("sessions_abandoned_at_exit", optional=True),
        )
    ),
    severity="leak",  # fmt: skip
    key=("connections_after_shutdown", "exit_trouble_lines"),
    routes=TAG_ROUTES,
)


@measures(SHUTDOWN)
async def test_shutdown(strategy, routes, database, record):
    server = database.server
    before = database.activity()["sessions_abandoned"] if server else None
    measured, trouble = await anyio.to_thread.run_sync(
        lambda: run_to_exit(strategy, database.environ, sorted(routes), server and server.admin_url, 60)
    )
    metrics = {**measured, "exit_trouble_lines": len(trouble)}
    if server:
        metrics["sessions_abandoned_at_exit"] = (
            await settled(lambda: database.activity()["sessions_abandoned"]) - before
        )
    shown = f"; first: {trouble[0].strip()[:160]}" if trouble else ""
    abandoned = f"; {metrics['sessions_abandoned_at_exit']} connections abandoned at exit" if server else ""
    record(metrics, (
        f"{measured['connections_while_serving']} connections open while serving, "
        f"{measured['connections_after_shutdown']} still open after lifespan shutdown{abandoned}; "
        f"{len(trouble)} lines of trouble on stderr at exit{shown}."
    ))  # fmt: skip
