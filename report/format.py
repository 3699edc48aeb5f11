"""The results file's format, declared: every part of the one JSON document a run writes and the report reads.

Types only (nothing checks them at run time): the writers (conftest.py, experiments/) annotate what they build with
these, report/ what it reads; a key added or renamed is changed here first, with SCHEMA bumped when old files no
longer read the same. docs/results-format.md says what each part means.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# The version of the results format. History:
# 1: rows, checks, strategies, environment and the throughput cells
# 2: ratio intervals from order statistics, with their confidence
# 3: rows judged per kind of endpoint
SCHEMA = 3
# The outcome vocabulary, the one place it is spelt: measured and held, measured and broken, could not be measured
# (with the reason), not applicable (with the reason).
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"
OUTCOMES = (PASSED, FAILED, ERROR, SKIPPED)
# What a failed check costs a user, worst first: the report ranks by it before it counts failures.
SEVERITIES = {
    "data": "wrong or lost data",
    "leak": "a connection or transaction never returned",
    "errors": "errors or stalls under load or after a restart",
    "nuisance": "a nuisance in development or tests",
}


class Environment(TypedDict):
    """What was run and on what: interpreter, installed packages, lock file, database, machine, git sha, command."""

    python: str
    implementation: str
    packages: dict[str, str | None]
    lock: dict[str, Any]
    database: dict[str, Any]
    cpu_count: int | None
    platform: str
    git_sha: str | None
    started_at: str
    command: str


class Strategy(TypedDict, total=False):
    """A strategy as Preflight.describe() stores it: the module, what it REQUIRES, what it got, how it imported."""

    id: str
    label: str
    module: str
    file: str
    requires: list[str]
    versions: dict[str, str | None]
    preflight: str  # "ready", "skipped" or "error"
    import_warnings: list[str]
    pattern: dict[str, str]  # per kind of endpoint, the source the report quotes
    source_hash: str  # of the module's file: two runs whose hashes differ measured different code


class Check(TypedDict):
    """A check as Check.describe() stores it: what it measures, the claim, its rule in words, routes, conditions."""

    id: str
    title: str
    measures: str
    why: str
    rule: str  # the rule's own words (experiments/rules.py)
    rule_metrics: list[str]  # the metrics the rule reads
    severity: str  # a key of SEVERITIES
    permanent_when: str | None  # in words: when a failure of it does not go away by itself
    key: list[str]
    routes: list[str]
    timeout_s: float
    needs_server: bool
    pool: dict[str, Any] | None
    exclusive: bool
    second_database: bool
    column: str
    kinds: list[str]
    request_bound_s: float
    request_cap_s: NotRequired[float]  # waited for this long while the app computes (older results: absent)
    source_hash: str  # of the experiments module that measures and judges it


class Conditions(TypedDict):
    """The pool a check declared, every engine the app connected through with the pool it had, and whether they agree."""

    pool: dict[str, Any] | None
    engines: list[dict[str, Any]]
    as_declared: bool | None
    cpu: NotRequired[int]  # the core a timing check's process was pinned to


class KindPart(TypedDict, total=False):
    """A row's measurement of one kind of endpoint, under the row's `kinds`: a Row without strategy, check and kind."""

    outcome: str  # one of OUTCOMES
    reason: str  # why nothing was measured (error, skipped)
    unsupported: bool  # skipped: the strategy declared the routes it cannot serve
    metrics: dict[str, Any]
    evidence: str
    permanent: bool  # failed, and the failure does not go away by itself (the check's `permanent_when`)
    conditions: Conditions
    warnings: list[str]
    duration_s: float


class Row(KindPart, total=False):
    """One strategy × check outcome (`results`); a check judged per kind keeps each kind's part under `kinds`."""

    strategy: str
    check: str
    kind: str  # the kind of endpoint (probes.KINDS) this row judges, in a check process's row before combine()
    kinds: dict[str, KindPart]


class Interval(TypedDict, total=False):
    """stats.median_interval(): the median over rounds and an order-statistics interval for it, with its confidence;
    `indistinguishable` (the interval holds 1) only for a ratio."""

    median: float
    low: float
    high: float
    confidence: float
    indistinguishable: bool


class Range(TypedDict):
    """stats.value_range(): median, min and max, for counts that barely move."""

    median: float
    min: float
    max: float


class ThroughputCell(TypedDict, total=False):
    """One (mode, app, kind, path, level) of the throughput sweep: medians over rounds and ratios to the baselines."""

    mode: str
    app: str
    kind: str
    path: str
    concurrency: int
    rounds: int
    rps: dict[str, float]  # median, q1, q3, min, max
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    client_cpu: float
    server_cpu: float  # server mode only
    vs_raw: Interval
    vs_nodb: Interval


class HoldRow(TypedDict):
    """The in-process connection hold of one (app, kind, path), over rounds (`throughput.hold`)."""

    app: str
    kind: str
    path: str
    rounds: int
    requests: int
    errors: int
    hold_ms: Interval
    ratio_to_raw: Interval | None  # None for the baseline itself
    sql_share: float | None
    after_response_share: float | None
    checkouts_per_request: float
    open_at_end: int
    ceiling_rps: dict[str, float | None]  # pool size -> req/s the median hold allows


class LoadHoldRow(TypedDict):
    """The hold of one server-mode cell that used a pool, against its pool's ceiling (`throughput.hold_under_load`)."""

    app: str
    kind: str
    path: str
    concurrency: int
    rounds: int
    capacity: int | None  # None: an unbounded pool
    above_pool: bool
    hold_ms: Interval
    sequential_hold_ms: float | None
    busy_connections: float | None
    ceiling_rps: float | None
    rps: float
    of_ceiling: float | None
    rounds_within: int
    rounds_checked: int
    within_ceiling: bool | None
    tolerance: float


class Throughput(TypedDict):
    """The `throughput` part: the plan, the apps, the sweep's cells, the hold rows, errors and session cost."""

    plan: dict[str, Any]
    apps: list[dict[str, Any]]
    clients: Any
    server: str | None
    load_average: dict[str, Any]
    cells: list[ThroughputCell]
    hold_settings: dict[str, Any]
    hold: list[HoldRow]
    hold_under_load: list[LoadHoldRow]
    errors: list[dict[str, Any]]
    session_cost: list[dict[str, Any]]
    duration_s: float


class InstructionCell(TypedDict, total=False):
    """One (app, kind, path, level) of the instruction count: per request over repeats, and ratios to the baselines."""

    app: str
    kind: str
    path: str
    concurrency: int
    repeats: int
    per_request: Range
    per_repeat: list[float]
    empty_batch: Range
    vs_raw: Range
    vs_nodb: Range


class Instructions(TypedDict, total=False):
    """The `instructions` part: the plan and apps, then either why nothing was counted or the cells and errors."""

    plan: dict[str, Any]
    warmup: int
    apps: list[dict[str, Any]]
    unavailable: str
    conditions: dict[str, str]
    tolerance: float
    cells: list[InstructionCell]
    errors: list[dict[str, Any]]
    duration_s: float
    alongside: str


class Document(TypedDict, total=False):
    """The whole results file: schema, whether the run completed (a note when not), environment, strategies, checks,
    the rows, and the cost side's parts when measured."""

    schema: int
    complete: bool
    note: str
    environment: Environment
    strategies: list[Strategy]
    checks: list[Check]
    results: list[Row]
    throughput: Throughput
    instructions: Instructions
