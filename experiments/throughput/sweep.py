"""Throughput and latency per strategy, as ratios to two baselines measured in the same run.

On 2 shared cores a number alone swings 15-40 % from run to run, so nothing here
is read alone: every app (the strategies and the baselines in
experiments/baselines/) runs in a long-lived process of its own, and each round
visits every (route, concurrency) cell with the apps in a fresh random order, so
that a strategy and the baselines it is divided by are measured side by side.
A ratio is taken per round, and the report gives the median over rounds with a
distribution-free interval (`median_interval`); an interval containing 1 reads
"indistinguishable". Rounds, not longer measurements, are what narrow it: the
full plan has 7, so that its interval covers 98 %, and two runs of the same
machine should then overlap on nearly every ratio.

Modes: `inprocess` (the app behind httpx's ASGI transport, client and app in one
process: framework + session cost only) and `server` (uvicorn on loopback, loaded
by wrk when installed, else by a Python load generator in a process of its own).
Every process gets its own process group and a hard timeout, and is killed when
its mode ends, also on Ctrl-C. An app that fails gets an `errors` entry with the
reason; the others are still measured.

Connection hold time (hold.py): in-process, each round ends with a batch of
sequential requests per app and tag path (`Sweep._hold`, apps in a fresh random
order), summarised like the ratios (`summarize_hold`: per-round medians, the
ratio to the raw connection per round, `median_interval` over rounds); in server
mode the uvicorn worker's readings around each measurement give the hold under
load and the ceiling the pool implies (`summarize_under_load`).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

from experiments.harness import discovery, preflight
from experiments.harness.postgres import Cluster, free_port
from experiments.harness.processes import exit_reason, finishing_on_interrupt, kill_group
from experiments.harness.serving import Database
from experiments.throughput import baselines, hold, session_cost, stats
from experiments.throughput.baselines import NO_DB, RAW
from report.format import HoldRow, LoadHoldRow, Throughput, ThroughputCell

# route kind -> (paths in order of preference, method, query string)
KINDS = {
    "read": (("/sync/tag", "/async/tag"), "GET", "?tag=bench&delay=0&query=true"),
    "write": (("/sync/write", "/async/write"), "POST", "?key={key}&fail=false&delay=0"),
    "nodb": (("/nodb",), "GET", ""),
}
START_TIMEOUT_S = 30
# On top of a measurement's own length before its process is declared hung: over loopback, more than the
# Python load generator's 10 s request timeout; in-process, where nothing times a request out, 5 s past the
# end (7 times the slowest p99 seen here, 0.73 s for async writes at 64) is a request that is not coming back.
SLACK_S = 10
INPROCESS_SLACK_S = 5
# A hold batch is sequential requests: a generous bound per request (the slowest seen here take ~10 ms), plus slack.
HOLD_S_PER_REQUEST = 0.5
SNAPSHOT_TIMEOUT_S = 5  # the server's hold reading is answered by a thread of its own, even while the app is busy
# Little's law makes the server's own req/s × hold per request ≤ capacity exactly; the load generator's req/s is
# counted over its own window (a little shorter than the server's readings', and without the requests still in
# flight when it stopped), hence a tolerance.
CEILING_TOLERANCE = 0.05
WRK_LUA = """
local n, prefix, template = 0, os.getenv("SB_PREFIX"), os.getenv("SB_PATH")
request = function()
  n = n + 1
  return wrk.format(os.getenv("SB_METHOD"), (string.gsub(template, "{key}", prefix .. "-" .. n)))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('SB{"requests": %d, "errors": %d, "elapsed_s": %f, "p50_ms": %f, "p90_ms": %f, "p99_ms": %f}\\n',
    summary.requests - e.status, e.status + e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3))
end
"""


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    rounds: int
    seconds: float  # per measurement (wrk rounds it up to whole seconds)
    warmup_s: float
    modes: tuple[str, ...]
    benchmark_rounds: int  # session cost: pytest-benchmark rounds per app, path and repeat
    hold_requests: int = 20  # connection hold time: sequential in-process requests per app, tag path and round


PLANS = {
    # The quick plan: one level, no session-cost benchmark (`--instructions quick` counts the CPU per request beside it).
    "quick": Plan(levels=(8,), rounds=4, seconds=0.05, warmup_s=0.02, modes=("inprocess",), benchmark_rounds=0),
    "full": Plan(
        levels=(1, 8, 32, 64), rounds=7, seconds=0.2, warmup_s=0.05, modes=("inprocess", "server"), benchmark_rounds=30
    ),
}


class Failed(Exception):
    """An app could not be measured; the message is the one-line reason for its `errors` entry."""


def add_arguments(parser) -> None:
    group = parser.add_argument_group("throughput (see docs/cost.md)")
    group.add_argument(
        "--throughput",
        choices=["quick", "full", "off"],
        default="quick",
        help="quick (default: in-process, 8 clients, 4 rounds, ~1 min), full (both modes, 4 levels, 7 rounds, "
        "~25 min) or off",
    )
    group.add_argument(
        "--quick", dest="throughput", action="store_const", const="quick", help="same as --throughput quick"
    )
    group.add_argument("--no-checks", action="store_true", help="measure throughput only, run no correctness check")
    group.add_argument(
        "--levels", type=lambda s: tuple(int(x) for x in s.split(",")), help="concurrency levels, e.g. 1,8,32"
    )
    group.add_argument("--rounds", type=int, help="rounds per cell")
    group.add_argument("--seconds", type=float, help="seconds per measurement")
    group.add_argument("--modes", type=lambda s: tuple(s.split(",")), help="inprocess,server")
    group.add_argument(
        "--session-cost-rounds",
        dest="benchmark_rounds",
        type=int,
        help="pytest-benchmark rounds of the per-request session cost (quick: none, full: 30)",
    )
    group.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="client for server mode: wrk when installed (auto), or the Python one",
    )
    group.add_argument(
        "--hold-requests",
        dest="hold_requests",
        type=int,
        help="connection hold time: sequential in-process requests per app, tag path and round "
        "(default 20; 0 turns it off)",
    )


def plan(args) -> Plan | None:
    if args.throughput == "off":
        return None
    chosen = PLANS[args.throughput]
    overrides = {
        k: getattr(args, k) for k in ("levels", "rounds", "seconds", "modes", "benchmark_rounds") if getattr(args, k)
    }
    if getattr(args, "hold_requests", None) is not None:
        overrides["hold_requests"] = args.hold_requests
    return Plan(**{**asdict(chosen), **overrides})


@dataclass(frozen=True)
class App:
    id: str
    strategy: discovery.Strategy
    baseline: bool

    def describe(self) -> dict:
        return {"id": self.id, "label": self.strategy.label, "baseline": self.baseline}


def apps(strategies: list[discovery.Strategy]) -> list[App]:
    found = {s.id: s for s in discovery.discover(baselines.DIR)}
    return [App(NO_DB, found["no_database"], True), App(RAW, found["raw_connection"], True)] + [
        App(s.id, s, False) for s in strategies
    ]


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return f": {lines[-1].strip()}" if lines else ""


class Worker:
    """A child process answering one JSON line per command; its own process group, killed on close."""

    def __init__(self, argv: list[str], env: dict, log: Path):
        self.log = log
        with open(log, "a") as err:  # a restarted process appends to its predecessor's log
            self.proc = subprocess.Popen(
                argv,
                cwd=discovery.ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def answer(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise Failed(f"no answer within {timeout:g} s (process killed)") from None
        if line is None:
            code = self.proc.wait()
            raise Failed(f"its process {exit_reason(code)}{_tail(self.log)}")
        reply = json.loads(line)
        if "error" in reply:
            raise Failed(reply["error"])
        return reply

    def ask(self, command: dict, timeout: float) -> dict:
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died; answer() says how
        return self.answer(timeout)

    def close(self) -> None:
        kill_group(self.proc)


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process, from /proc; 0 where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Target:
    """One app in a process of its own (in-process worker, or uvicorn when `port` is set); `measure()` gives a sample."""

    def __init__(self, app: App, argv: list[str], env: dict, log: Path, port: int | None = None, client=None):
        self.app, self.argv, self.env, self.log, self.port, self.client = app, argv, env, log, port, client
        self.routes: list[str] = []
        self.kinds: dict[str, str] = {}  # kind of endpoint -> tag path served by one (in-process workers say)
        self.served_at: dict[str, str] = {}  # probe path -> the path uvicorn serves it at (server workers say)
        log.write_text("")
        self.worker = Worker(argv, env, log)

    def ready(self, deadline: float) -> None:
        reply = self.worker.answer(max(0.1, deadline - time.monotonic()))
        self.routes, self.kinds, self.served_at = reply["ready"], reply.get("kinds", {}), reply.get("served_at", {})
        if self.port is not None:
            _wait_for_port(self.worker, self.port, deadline)

    def restart(self) -> None:
        """A fresh process on the same database, after a measurement that killed or hung the last one."""
        self.worker.close()
        self.worker = Worker(self.argv, self.env, self.log)
        self.ready(time.monotonic() + START_TIMEOUT_S)

    def close(self) -> None:
        self.worker.close()

    def paths(self, wanted: set[str]) -> dict[str, list[str]]:
        """kind -> paths measured: a strategy's preferred served path; a baseline's every served path in `wanted`."""
        chosen = {}
        for kind, (candidates, _, _) in KINDS.items():
            served = [p for p in candidates if p in self.routes and (not self.app.baseline or p in wanted)]
            if served:
                chosen[kind] = served if self.app.baseline else served[:1]
        return chosen

    def measure(self, method: str, url: str, level: int, plan: Plan, prefix: str) -> dict:
        if self.port is None:
            command = {
                "method": method,
                "url": url,
                "concurrency": level,
                "seconds": plan.seconds,
                "warmup_s": plan.warmup_s,
                "key_prefix": prefix,
            }
            return self.worker.ask(command, plan.seconds + plan.warmup_s + INPROCESS_SLACK_S)
        if self.worker.proc.poll() is not None:
            raise Failed(f"the server exited with code {self.worker.proc.returncode}{_tail(self.log)}")
        reading = self.worker.ask({"hold": "snapshot"}, SNAPSHOT_TIMEOUT_S)
        before = _cpu_of(self.worker.proc.pid)
        path, sep, query = url.partition("?")
        url = self.served_at.get(path, path) + sep + query
        sample = self.client(f"http://127.0.0.1:{self.port}", method, url, level, plan, prefix)
        sample["server_cpu_s"] = round(_cpu_of(self.worker.proc.pid) - before, 4)
        sample["hold"] = hold.window(reading, self.worker.ask({"hold": "snapshot"}, SNAPSHOT_TIMEOUT_S))
        return sample

    def hold(self, path: str, requests: int) -> dict:
        """In-process: a batch of sequential requests on a tag path, timed from the pool's events (hold.Recorder)."""
        command = {"hold": {"url": path + KINDS["read"][2], "requests": requests, "warmup": hold.WARMUP}}
        return self.worker.ask(command, (requests + hold.WARMUP) * HOLD_S_PER_REQUEST + INPROCESS_SLACK_S)


def _wait_for_port(worker: Worker, port: int, deadline: float) -> None:
    """uvicorn binds once the app's lifespan has started: a connection that succeeds means ready."""
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise Failed(f"the server exited with code {worker.proc.returncode} while starting{_tail(worker.log)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    worker.close()
    raise Failed(f"the server did not listen within {START_TIMEOUT_S} s (process killed)")


def wrk_client(script: Path):
    def measure(base_url: str, method: str, url: str, level: int, plan: Plan, prefix: str) -> dict:
        env = {**os.environ, "SB_PREFIX": prefix, "SB_PATH": url, "SB_METHOD": method}
        seconds = max(1, round(plan.seconds))
        argv = ["wrk", "-t1", f"-c{level}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base_url]
        cpu = _children_cpu()
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + SLACK_S)
        except subprocess.TimeoutExpired:
            raise Failed(f"wrk gave no result within {seconds + SLACK_S} s") from None
        found = [line[2:] for line in done.stdout.splitlines() if line.startswith("SB{")]
        if not found:
            raise Failed(f"wrk failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-200:]}")
        sample = json.loads(found[0])
        sample["rps"] = sample["requests"] / sample["elapsed_s"]
        sample["client_cpu_s"] = round(_children_cpu() - cpu, 4)
        return sample

    return measure


def python_client(worker: Worker):
    def measure(base_url: str, method: str, url: str, level: int, plan: Plan, prefix: str) -> dict:
        command = {
            "base_url": base_url,
            "method": method,
            "url": url,
            "concurrency": level,
            "seconds": plan.seconds,
            "warmup_s": plan.warmup_s,
            "key_prefix": prefix,
        }
        try:
            return worker.ask(command, plan.seconds + plan.warmup_s + SLACK_S)
        except Failed as exc:
            raise RuntimeError(f"the Python load generator failed: {exc}") from None  # not the app's fault: stop

    return measure


def summarize(samples: dict, modes: tuple[str, ...]) -> list[ThroughputCell]:
    """One cell per (mode, app, kind, path, level): medians over rounds, spread, ratios to the baselines per round."""
    cells = []
    for (mode, app, kind, path, level), rounds in samples.items():
        rps = [s["rps"] for s in rounds]
        q1, q3 = stats.quartiles(rps)
        cell: ThroughputCell = {
            "mode": mode,
            "app": app,
            "kind": kind,
            "path": path,
            "concurrency": level,
            "rounds": len(rounds),
            "rps": {"median": statistics.median(rps), "q1": q1, "q3": q3, "min": min(rps), "max": max(rps)},
            **{f"p{q}_ms": statistics.median(s[f"p{q}_ms"] for s in rounds) for q in (50, 90, 99)},
            "errors": sum(s["errors"] for s in rounds),
            "client_cpu": statistics.median(s["client_cpu_s"] / s["elapsed_s"] for s in rounds),
        }
        if "server_cpu_s" in rounds[0]:
            cell["server_cpu"] = statistics.median(s["server_cpu_s"] / s["elapsed_s"] for s in rounds)
        cell |= stats.vs_baselines(
            app,
            dict(enumerate(s["rps"] for s in rounds)),
            lambda base: _rps_by_round(samples.get((mode, base, kind, path, level))),
            stats.median_interval,
        )
        cells.append(cell)
    order = {m: i for i, m in enumerate(modes)}
    return sorted(cells, key=lambda c: (order[c["mode"]], list(KINDS).index(c["kind"])))


def _rps_by_round(rounds: list[dict] | None) -> dict | None:
    return dict(enumerate(s["rps"] for s in rounds)) if rounds else None


def summarize_hold(samples: dict, order: list[str]) -> list[HoldRow]:
    """One row per (app, kind, path) of the in-process hold batches (hold.batch() samples by round).

    `hold_ms` is the median over rounds of each round's median per-request hold, with median_interval()'s interval;
    `ratio_to_raw` the same of the per-round ratio to the raw connection's on the same path in the same round; the
    shares are medians over rounds of each round's share of its whole hold time; `ceiling_rps` is what the median
    hold allows a pool of each size in hold.POOLS (None: nothing held, no bound).
    """
    rows: list[HoldRow] = []
    for (app, kind, path), by_round in samples.items():
        rounds = list(by_round.values())
        spread = stats.interval([s["hold_ms"] for s in rounds])
        raw = {r: s["hold_ms"] for r, s in samples.get((RAW, kind, path), {}).items()} if app != RAW else None
        ratios = stats.paired_ratios({r: s["hold_ms"] for r, s in by_round.items()}, raw)
        rows.append(
            {
                "app": app,
                "kind": kind,
                "path": path,
                "rounds": len(rounds),
                "requests": sum(s["requests"] for s in rounds),
                "errors": sum(s["errors"] for s in rounds),
                "hold_ms": spread,
                "ratio_to_raw": stats.median_interval(ratios) if ratios else None,
                "sql_share": stats.median_or_none(s["sql_share"] for s in rounds),
                "after_response_share": stats.median_or_none(s["after_response_share"] for s in rounds),
                "checkouts_per_request": statistics.median(s["checkouts_per_request"] for s in rounds),
                "open_at_end": max(s["open_at_end"] for s in rounds),
                "ceiling_rps": hold.ceilings(spread["median"]),
            }
        )
    kinds, position = list(discovery.PATTERN_ROUTES), {a: i for i, a in enumerate(order)}
    return sorted(rows, key=lambda r: (kinds.index(r["kind"]), position.get(r["app"], len(position)), r["path"]))


def summarize_under_load(samples: dict, sequential: list[HoldRow]) -> list[LoadHoldRow]:
    """Server mode: per cell whose requests used a pool, the hold per request under load (the server's readings
    around each measurement, hold.window()), the pool capacity, the ceiling capacity ÷ hold, and whether the load
    generator's req/s stayed within it (× 1 + CEILING_TOLERANCE) in every round. `sequential_hold_ms` is the
    in-process sequential hold of the same app and path, when this run measured it."""
    quiet = {(r["app"], r["path"]): r["hold_ms"]["median"] for r in sequential}
    rows: list[LoadHoldRow] = []
    for (mode, app, kind, path, level), rounds in samples.items():
        readings = [(s["rps"], s["hold"]) for s in rounds if s.get("hold")]
        if mode != "server" or not any(h["connection_s"] > 0 for _, h in readings):
            continue
        capacities = [h["capacity"] for _, h in readings if h["connection_s"] > 0]
        capacity = max(set(capacities), key=capacities.count)  # the same every round, unless a pool came and went
        bounded = [(rps, h["ceiling_rps"]) for rps, h in readings if h["ceiling_rps"]]
        within = [rps <= ceiling * (1 + CEILING_TOLERANCE) for rps, ceiling in bounded]
        rows.append(
            {
                "app": app,
                "kind": kind,
                "path": path,
                "concurrency": level,
                "rounds": len(rounds),
                "capacity": capacity,
                "above_pool": capacity is not None and level > capacity,
                "hold_ms": stats.interval([h["hold_ms"] for _, h in readings if h["hold_ms"] is not None]),
                "sequential_hold_ms": quiet.get((app, path)),
                "busy_connections": stats.median_or_none(
                    h["connection_s"] / h["window_s"] for _, h in readings if h["window_s"] > 0
                ),
                "ceiling_rps": stats.median_or_none(c for _, c in bounded),
                "rps": statistics.median(rps for rps, _ in readings),
                "of_ceiling": stats.median_or_none(rps / c for rps, c in bounded),
                "rounds_within": sum(within),
                "rounds_checked": len(within),
                "within_ceiling": all(within) if within else None,
                "tolerance": CEILING_TOLERANCE,
            }
        )
    return sorted(rows, key=lambda r: (list(KINDS).index(r["kind"]), r["app"], r["path"], r["concurrency"]))


def _database(app: App, mode: str, server: Cluster | None, scratch: Path) -> Database:
    name = re.sub(r"\W", "_", f"sb_tp_{mode}_{app.id}").lower()[:63]
    return Database.postgresql(server, name) if server else Database.sqlite(scratch / f"{name}.db")


class Sweep:
    """One throughput run: starts the targets of a mode, runs the rounds, records samples and errors."""

    def __init__(self, plan: Plan, apps: list[App], server: Cluster | None, out: Path, say, loadgen: str):
        self.plan, self.apps, self.server, self.say = plan, apps, server, say
        self.logs = out / "logs" / "throughput"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.samples: dict = {}
        self.hold_samples: dict = {}  # (app, kind, path) -> {round: hold.batch() sample}
        self.hold_s = 0.0  # wall time of the hold batches, all rounds
        self.errors: list[dict] = []
        self.clients: dict[str, str] = {}
        self.loadgen = "wrk" if loadgen == "wrk" or (loadgen == "auto" and shutil.which("wrk")) else "python"

    def _error(self, mode: str, app: App, reason: str) -> None:
        self.errors.append({"mode": mode, "app": app.id, "reason": reason})
        self.say(f"  {mode} × {app.id}: ERROR: {reason}")

    def _start(self, mode: str, stack: ExitStack, scratch: Path) -> list[Target]:
        """Start every app of this mode at once (startup is not measured), then wait for each to be ready."""
        client = self._client(stack, scratch) if mode == "server" else None
        started = []
        for app in self.apps:
            try:
                env = {**os.environ, **_database(app, mode, self.server, scratch).environ}
            except Exception as exc:  # a database that cannot be created for one app costs that app only
                self._error(mode, app, f"could not create its database: {type(exc).__name__}: {exc}")
                continue
            log = self.logs / f"{mode}-{app.id.replace(':', '-')}.log"
            if mode == "inprocess":
                target = Target(
                    app,
                    [sys.executable, "-m", "experiments.throughput.traffic", "inprocess", str(app.strategy.path)],
                    env,
                    log,
                )
            else:
                port = free_port()
                argv = [
                    sys.executable,
                    "-m",
                    "experiments.throughput.traffic",
                    "serve",
                    str(app.strategy.path),
                    str(port),
                ]
                target = Target(app, argv, env, log, port, client)
            stack.callback(target.close)
            started.append(target)
        ready, deadline = [], time.monotonic() + START_TIMEOUT_S
        for target in started:
            try:
                target.ready(deadline)
                ready.append(target)
            except Failed as exc:
                target.close()
                self._error(mode, target.app, str(exc))
        return ready

    def _client(self, stack: ExitStack, scratch: Path):
        if self.loadgen == "wrk":
            script = scratch / "sessionbench.lua"
            script.write_text(WRK_LUA)
            version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10).stdout.split("[")[0]
            self.clients["server"] = f"{version.strip()} (-t1), in its own process"
            return wrk_client(script)
        worker = Worker(
            [sys.executable, "-m", "experiments.throughput.traffic", "remote"],
            dict(os.environ),
            self.logs / "loadgen.log",
        )
        stack.callback(worker.close)
        worker.answer(START_TIMEOUT_S)
        self.clients["server"] = (
            "Python httpx load generator (experiments.throughput.traffic remote), in its own process"
        )
        return python_client(worker)

    def _cells(self, targets: list[Target]) -> list[tuple[Target, str, str, str]]:
        """(target, kind, method, path) for every path each app is measured on."""
        wanted = {p for t in targets if not t.app.baseline for paths in t.paths(set()).values() for p in paths}
        return [(t, kind, KINDS[kind][1], p) for t in targets for kind, paths in t.paths(wanted).items() for p in paths]

    def mode(self, mode: str) -> None:
        self.clients.setdefault(mode, "httpx ASGI transport, in the app's process")
        scratch = Path(tempfile.mkdtemp(prefix="sessionbench-tp-"))
        try:
            with ExitStack() as stack:
                targets = self._start(mode, stack, scratch)
                cells = self._cells(targets)
                self.say(
                    f"  {mode}: {len(targets)} apps ready, {len(cells)} app × route pairs, "
                    f"{len(self.plan.levels)} levels, {self.plan.rounds} rounds (+1 warm-up)"
                )
                failed: set = set()  # apps, and (app, path, level) cells, that broke: not measured again
                for round in range(-1, self.plan.rounds):  # round -1 warms every app and route up, and is dropped
                    self._round(mode, round, cells, failed)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _round(self, mode: str, round: int, cells: list, failed: set) -> None:
        levels = self.plan.levels[-1:] if round < 0 else self.plan.levels
        paths = list(dict.fromkeys((kind, method, path) for _, kind, method, path in cells))
        for kind, method, path in paths:
            for level in levels:
                here = [
                    t
                    for t, k, _, p in cells
                    if (k, p) == (kind, path) and not {t.app.id, (t.app.id, path, level)} & failed
                ]
                random.Random(f"{mode}-{round}-{path}-{level}").shuffle(here)
                for target in here:
                    prefix = f"{mode[0]}{round}c{level}{path.replace('/', '')}"  # unique keys across cells
                    try:
                        sample = target.measure(method, path + KINDS[kind][2], level, self.plan, prefix)
                    except Failed as exc:
                        failed.add((target.app.id, path, level))
                        self._error(mode, target.app, f"{method} {path} at {level} concurrent: {exc}")
                        self._restart(mode, target, failed)
                        continue
                    if round >= 0:
                        self.samples.setdefault((mode, target.app.id, kind, path, level), []).append(sample)
        if mode == "inprocess" and round >= 0 and self.plan.hold_requests > 0:
            self._hold(mode, round, cells, failed)
        self.say(f"  {mode} round {round + 1}/{self.plan.rounds} done" if round >= 0 else f"  {mode} warm-up done")

    def _hold(self, mode: str, round: int, cells: list, failed: set) -> None:
        """Connection hold time: every app's batch of sequential requests on each tag path whose endpoint is of its
        kind, kind by kind, the apps in a fresh random order each round (so a strategy and the raw connection it is
        divided by are measured seconds apart)."""
        targets, started = list(dict.fromkeys(t for t, *_ in cells)), time.monotonic()
        for kind in discovery.PATTERN_ROUTES:
            here = [t for t in targets if kind in t.kinds and not {t.app.id, (t.app.id, "hold", kind)} & failed]
            random.Random(f"{mode}-{round}-hold-{kind}").shuffle(here)
            for target in here:
                path = target.kinds[kind]
                try:
                    sample = target.hold(path, self.plan.hold_requests)
                except Failed as exc:
                    failed.add((target.app.id, "hold", kind))
                    self._error(mode, target.app, f"hold time, GET {path} sequential: {exc}")
                    self._restart(mode, target, failed)
                    continue
                self.hold_samples.setdefault((target.app.id, kind, path), {})[round] = sample
        self.hold_s += time.monotonic() - started

    def _restart(self, mode: str, target: Target, failed: set) -> None:
        try:
            target.restart()
        except Failed as exc:
            failed.add(target.app.id)
            self._error(mode, target.app, f"could not be restarted, no further measurement: {exc}")


def attach(results, plan: Plan, preflights: list, server: Cluster | None, out: Path, say, loadgen: str) -> bool:
    """Measure the strategies the import preflight found ready and add the `throughput` part to the results, the
    ones it did not listed with its reason; False when interrupted (Ctrl-C or SIGTERM)."""
    strategies = [p.strategy for p in preflights if p.ready]
    say(f"throughput ({', '.join(plan.modes)}): {len(strategies)} strategies and 2 baselines")
    with finishing_on_interrupt(results, lambda exc: f"interrupted by {exc} during the throughput measurement") as stop:
        part = run(plan, strategies, server, out, say, loadgen)
        part["errors"] = [{"mode": "import preflight", **e} for e in preflight.failed(preflights)] + part["errors"]
        results.attach("throughput", part)
    return stop.complete


def run(
    plan: Plan, strategies: list[discovery.Strategy], server: Cluster | None, out: Path, say, loadgen: str
) -> Throughput:
    """Measure every app in every mode of the plan, then the session cost; the `throughput` part of the results."""
    started = time.monotonic()
    chosen = apps(strategies)
    sweep = Sweep(plan, chosen, server, out, say, loadgen)
    load_before = os.getloadavg()
    for mode in plan.modes:
        sweep.mode(mode)
    # A cell that broke in a later round has fewer samples than rounds: keep only cells measured in every round.
    samples = {k: v for k, v in sweep.samples.items() if len(v) == plan.rounds}
    holds = summarize_hold(sweep.hold_samples, [a.id for a in chosen])
    return {
        "plan": asdict(plan),
        "apps": [a.describe() for a in chosen],
        "clients": sweep.clients,
        "server": _server_description() if "server" in plan.modes else None,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cells": summarize(samples, plan.modes),
        "hold_settings": {
            "warmup": hold.WARMUP,
            "pools": list(hold.POOLS),
            "tolerance": CEILING_TOLERANCE,
            "duration_s": round(sweep.hold_s, 1),
        },
        "hold": holds,
        "hold_under_load": summarize_under_load(samples, holds),
        "errors": sweep.errors,
        "session_cost": session_cost.run(chosen, server, out, plan.benchmark_rounds, say)
        if plan.benchmark_rounds
        else [],
        "duration_s": round(time.monotonic() - started, 1),
    }


def _server_description() -> str:
    return f"uvicorn {version('uvicorn')}, one worker, default loop and HTTP implementation, on 127.0.0.1"
