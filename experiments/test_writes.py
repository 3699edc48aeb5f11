"""Do acknowledged writes survive concurrent requests, some of which fail?

The thread's sharpest risk: when requests share a session, one request's
rollback discards another's pending rows, and one request's commit can save a
failed request's half-written row. Writers and failing writers run together.
"""

from __future__ import annotations

from experiments.checks import Check, measures
from experiments.rules import zero

WRITERS = 50
FAILING = 10  # interleaved: every sixth request writes a row, then raises instead of committing
DELAY_S = 0.05

LOST_WRITES = Check(
    id="lost_writes",
    title="Acknowledged writes are all there, failed ones are not",
    column="writes kept",
    measures=(
        f"{WRITERS} concurrent requests each add a row, sleep {DELAY_S * 1000:.0f} ms and commit, while "
        f"{FAILING} more add a row and raise; afterwards the harness counts rows over its own connection: "
        "rows acknowledged with 2xx but missing, rows of failed requests that were committed anyway, writers "
        "that got an error"
    ),
    why=(
        "\"one request's rollback silently discards others' writes\" when a session is shared "
        "(global `scoped_session` under `async def`); the thread's argument for per-request sessions"
    ),
    rule=zero("rows_missing", "rows_from_failed_requests", "writer_errors"),
    severity="data",
    key=("rows_missing", "rows_from_failed_requests"),
    routes=("/sync/write", "/async/write"),
)


@measures(LOST_WRITES)
async def test_lost_writes(served, record, database):
    total = WRITERS + FAILING
    fails = [i % 6 == 5 for i in range(total)]
    metrics = dict.fromkeys(("writes_acknowledged", "rows_missing", "rows_from_failed_requests", "writer_errors"), 0)
    per_route = []
    for path in sorted(served.routes):
        keys = [f"{path}-{i}" for i in range(total)]
        responses = await served.concurrently(
            total,
            lambda i: served.client.post(path, params={"key": keys[i], "fail": fails[i], "delay": DELAY_S}),
        )
        acked = [k for k, r, f in zip(keys, responses, fails) if not f and r.is_success]
        failed_keys = [k for k, f in zip(keys, fails) if f]
        present = database.keys_present(keys)
        missing = len(set(acked) - present)
        phantom = len(set(failed_keys) & present)
        metrics["writes_acknowledged"] += len(acked)
        metrics["rows_missing"] += missing
        metrics["rows_from_failed_requests"] += phantom
        metrics["writer_errors"] += WRITERS - len(acked)
        per_route.append(
            f"{path}: {missing} of {len(acked)} acknowledged rows missing, {phantom} of {FAILING} failed requests' rows committed"
        )
    record(metrics, "; ".join(per_route) + f"; {metrics['writer_errors']} writers got an error.")
