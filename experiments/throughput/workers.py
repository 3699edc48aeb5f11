"""The measuring processes as the sweep sees them: the line protocol, one app under load, and the load generators.

A `Worker` is a child process (python -m experiments.throughput.traffic) that answers one JSON line per command,
in a process group of its own so that a hung one is killed with whatever it started. A `Target` is one app in
such a process, in-process or behind uvicorn, and `measure()` returns one sample; over loopback the load comes
from wrk (`wrk_client`, with WRK_LUA) or from a Python load generator in a worker of its own (`python_client`).
CPU is read from /proc for the server and from the resource module for wrk.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import socket
import subprocess
import threading
import time
from pathlib import Path

from experiments.harness import discovery
from experiments.harness.processes import exit_reason, kill_group
from experiments.throughput import hold
from experiments.throughput.plan import App, Plan
from experiments.throughput.routes import KINDS

START_TIMEOUT_S = 30
# On top of a measurement's own length before its process is declared hung: over loopback, more than the
# Python load generator's 10 s request timeout; in-process, where nothing times a request out, 5 s past the
# end (7 times the slowest p99 seen here, 0.73 s for async writes at 64) is a request that is not coming back.
SLACK_S = 10
INPROCESS_SLACK_S = 5
# A hold batch is sequential requests: a generous bound per request (the slowest seen here take ~10 ms), plus slack.
HOLD_S_PER_REQUEST = 0.5
SNAPSHOT_TIMEOUT_S = 5  # the server's hold reading is answered by a thread of its own, even while the app is busy
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


class Failed(Exception):
    """An app could not be measured; the message is the one-line reason for its `errors` entry."""


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

    def paths(self, wanted: set[str], every: bool = False) -> dict[str, list[str]]:
        """kind -> paths measured: a strategy's preferred served path (`every`: each it serves, so that each kind
        of endpoint has its cost); a baseline's every served path in `wanted`."""
        chosen = {}
        for kind, (candidates, _, _) in KINDS.items():
            served = [p for p in candidates if p in self.routes and (not self.app.baseline or p in wanted)]
            if served:
                chosen[kind] = served if self.app.baseline or every else served[:1]
        return chosen

    def measure(self, method: str, url: str, level: int, plan: Plan, prefix: str) -> dict:
        if self.port is None:
            command = load(method, url, level, plan, prefix)
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


def load(method: str, url: str, level: int, plan: Plan, prefix: str) -> dict:
    """The command a traffic worker loads an app with: `level` clients on `url` for the plan's seconds."""
    return {
        "method": method,
        "url": url,
        "concurrency": level,
        "seconds": plan.seconds,
        "warmup_s": plan.warmup_s,
        "key_prefix": prefix,
    }


def python_client(worker: Worker):
    def measure(base_url: str, method: str, url: str, level: int, plan: Plan, prefix: str) -> dict:
        command = {"base_url": base_url, **load(method, url, level, plan, prefix)}
        try:
            return worker.ask(command, plan.seconds + plan.warmup_s + SLACK_S)
        except Failed as exc:
            raise RuntimeError(f"the Python load generator failed: {exc}") from None  # not the app's fault: stop

    return measure
