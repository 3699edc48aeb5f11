"""What does a request get after the server dropped the pool's connections?

A database restart, a failover or an idle timeout ends the server side of every
connection a pool holds; the pool does not know until it uses one. Without
`pool_pre_ping` it hands the dead connection to the next request, which fails,
and SQLAlchemy then invalidates the pool so that later requests reconnect. With
it, the pool tests each connection as it checks it out and replaces a dead one.
"""

from __future__ import annotations

import anyio

from experiments.checks import Check, measures
from experiments.harness.serving import serve
from experiments.harness.watch import answered
from experiments.rules import Rule, Term, zero
from experiments.test_lifetimes import settled

WARM = 5  # overlapping requests that leave connections in the pool
AFTER = 10  # sequential requests after the drop: one at a time, so a failure is the one that drew a dead connection

DROPPED_CONNECTIONS = Check(
    id="dropped_connections",
    title="Requests after the server dropped the pool's connections succeed",
    column="dropped connections",
    measures=(
        f"{WARM} overlapping requests on the tag route of each kind leave connections in the pool; the harness then "
        f"ends every backend of the app's database from its own connection (`pg_terminate_backend`), as a server "
        f"restart or an idle timeout would, and sends {AFTER} sequential requests: how many fail (5xx or no answer), "
        "the first that succeeds, and the `pool_pre_ping` of the engines the app used"
    ),
    why=(
        "sqlmodel #60 and the reports downstream of it: after a database restart or an idle timeout, a pool without "
        "`pool_pre_ping` hands out dead connections and requests fail with `server closed the connection "
        "unexpectedly`"
    ),
    rule=zero(
        "requests_failed",
        note="no client pays for the server's drop. A pool that pings before checkout "
        "(`pool_pre_ping=True`), or one that keeps no connection (NullPool), passes; without either the next request "
        "draws a dead connection and fails, and SQLAlchemy invalidates the pool after it (failed_before_recovery = 1)",
    ),
    severity="errors",
    permanent=Rule(
        (Term("failed_before_recovery", "=", "requests"),), "no request after the drop ever succeeds", verb="permanent"
    ),
    key=("requests_failed", "failed_before_recovery"),
    routes=("/sync/tag", "/async/tag"),
    needs_server=True,
)


@measures(DROPPED_CONNECTIONS)
async def test_dropped_connections(app_module, routes, kind, database, engines, record, watch):
    (path,) = routes
    async with serve(app_module.app, routes, watch) as served:

        async def tag(i: int, delay: float):
            return await served.client.get(path, params={"tag": f"{path}-{i}", "delay": delay, "query": True})

        warm = await served.concurrently(WARM, lambda i: tag(i, 0.05))
        pooled = await settled(database.connections)
        terminated = await anyio.to_thread.run_sync(database.server.terminate, database.name)
        left = await settled(database.connections)
        after = [await tag(WARM + i, 0) for i in range(AFTER)]
    ok = [answered(r) and r.is_success for r in after]
    pinging = {e["pool_pre_ping"] for e in engines.conditions()["engines"]}
    metrics = {
        "warm_failed": sum(not (answered(r) and r.is_success) for r in warm),
        "connections_pooled": pooled,
        "backends_terminated": terminated,
        "backends_left": left,
        "requests": AFTER,
        "requests_failed": ok.count(False),
        "failed_before_recovery": ok.index(True) if True in ok else AFTER,
        "pool_pre_ping": next(iter(pinging)) if len(pinging) == 1 else "both" if pinging else None,
    }
    record(
        metrics,
        f"{terminated} backends ended with {pooled} connections pooled; then {metrics['requests_failed']} of {AFTER} "
        f"sequential requests to {path} failed, {metrics['failed_before_recovery']} of them before the first "
        f"success; the app's pools had pool_pre_ping={metrics['pool_pre_ping']}.",
    )
