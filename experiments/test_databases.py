"""Two databases in one request: does each write land in its own database, per request, cleaned up on error?

sm-Fifteen's objection to fastapi-sqlalchemy in #726: "it limits you to a single
database connection (I need to connect to at least 3 on one of the projects I'm
developping)". The two-database routes are optional: a strategy that cannot
serve them says why in `UNSUPPORTED`, and that reason is the finding.
"""

from __future__ import annotations

import anyio

from experiments.checks import Check, measures
from experiments.probes import keys_in_both
from experiments.rules import any_positive, zero

WRITERS = 20
FAILING = 5  # interleaved with the writers: every fifth request writes to both databases, then raises
DELAY_S = 0.05

MULTIPLE_DATABASES = Check(
    id="multiple_databases",
    title="Two databases in one request: each write lands in its own database",
    column="two databases",
    measures=(
        f"{WRITERS} concurrent requests per two-database write route (`def` and `async def`, whichever the strategy "
        f"serves) each add a row to the first database and one to the second, through the session the strategy gives "
        f"for each, sleep {DELAY_S * 1000:.0f} ms and commit both, while {FAILING} more add both rows and raise. "
        "Afterwards, over the harness's own connection to each database: acknowledged rows missing from their "
        "database, rows found in the other database, failed requests' rows present, transactions left open in either "
        "database, and whether a later write succeeds"
    ),
    why=(
        "\"it limits you to a single database connection (I need to connect to at least 3 on one of the projects I'm "
        'developping)" (sm-Fifteen on fastapi-sqlalchemy, #726): an app with several databases needs a session per '
        "database per request, each bound to its own engine and cleaned up with the request"
    ),
    rule=zero(
        "rows_missing", "rows_in_wrong_database", "rows_from_failed_requests", "transactions_left_open", "writer_errors"
    ),
    severity="data",
    permanent=any_positive("transactions_left_open"),  # fmt: skip
    key=("rows_in_wrong_database", "rows_missing"),
    routes=("/sync/write2", "/async/write2"),
    second_database=True,
)


@measures(MULTIPLE_DATABASES)
async def test_multiple_databases(served, record, database, second_database):
    total = WRITERS + FAILING
    fails = [i % 5 == 4 for i in range(total)]
    metrics = dict.fromkeys(("writes_acknowledged", "rows_missing", "rows_in_wrong_database",
                             "rows_from_failed_requests", "writer_errors", "transactions_left_open"), 0)  # fmt: skip
    per_route = []
    for path in sorted(served.routes):
        keys = [f"{path}-{i}" for i in range(total)]
        responses = await served.concurrently(
            total, lambda i: served.client.post(path, params={"key": keys[i], "fail": fails[i], "delay": DELAY_S})
        )
        both = [k for key in keys for k in keys_in_both(key)]
        first = await anyio.to_thread.run_sync(database.keys_present, both)
        second = await anyio.to_thread.run_sync(second_database.keys_present, both)
        acked = [k for k, r, f in zip(keys, responses, fails) if not f and r.is_success]
        failed = [k for k, f in zip(keys, fails) if f]
        missing = sum(keys_in_both(k)[0] not in first for k in acked) + sum(
            keys_in_both(k)[1] not in second for k in acked
        )
        wrong = sum(keys_in_both(k)[1] in first for k in keys) + sum(keys_in_both(k)[0] in second for k in keys)
        phantom = sum(a in first or b in second for a, b in map(keys_in_both, failed))
        metrics["writes_acknowledged"] += len(acked)
        metrics["rows_missing"] += missing
        metrics["rows_in_wrong_database"] += wrong
        metrics["rows_from_failed_requests"] += phantom
        metrics["writer_errors"] += WRITERS - len(acked)
        per_route.append(
            f"{path}: {missing} of {2 * len(acked)} acknowledged rows missing, {wrong} rows in the other "
            f"database, {phantom} of {FAILING} failed requests left rows"
        )
    left_open = [await anyio.to_thread.run_sync(db.transactions_left_open) for db in (database, second_database)]
    metrics["transactions_left_open"] = sum(left_open)
    later = await served.client.post(sorted(served.routes)[0], params={"key": "later", "fail": False, "delay": 0})
    metrics["writer_errors"] += not later.is_success
    record(
        metrics,
        "; ".join(per_route) + f"; transactions left open in the first and second database: "
        f"{left_open[0]} and {left_open[1]}; {metrics['writer_errors']} writers got an error (a later write "
        f"{'succeeded' if later.is_success else 'failed'}).",
    )
