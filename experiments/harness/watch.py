"""Bounds on a check's in-process traffic: a request that never comes back is a finding, not a hung check.

A strategy can hang its own requests (a leaked pool, a deadlock across
threadpool threads). Each request a check sends through `serving.serve(...,
watch=)` runs in a task of its own and the caller waits `bound_s`. Past that,
slow is told from stuck by what the process does: while it keeps computing (a
library rendering a traceback in a threadpool thread on 2 shared cores took 7
to 12 s), the request is waited for a window at a time, up to `SLOW_CAP` bounds
in all; once the process sits idle, the caller gets a stand-in 504 response
marked `UNANSWERED`, the request is counted with the state of the app's pools
and event loop at that moment, and the check fails. So the same behaviour gets
the same verdict however loaded the machine is. After `STALLED_AFTER`
unanswered requests in a row the app has stopped answering: later requests are
not sent (counted too), so a sequential check does not wait out one bound per
request. A loop that stops running altogether cannot time anything out; a
watchdog thread notices and hands `on_blocked` a reason naming what was in
flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import httpx

REQUEST_BOUND_S = 10.0  # in-process, the slowest p99 seen is 0.73 s; a request unanswered after 10 s is stuck
STALLED_AFTER = 2  # unanswered requests in a row after which the app counts as no longer answering
LOOP_BLOCKED_S = 15.0  # well inside every check's own limit (45 s and up); at most half of a --timeout given
TICK_S = 0.05
BUSY_WINDOW_S = 1.0  # how long each look at the process's CPU time lasts, the first one ending at the bound
BUSY_SHARE = 0.1  # CPU seconds per second that count as computing: an idle app, this watch included, uses under 1%
SLOW_CAP = 3  # bounds a computing request is waited for in all; past that it is unanswered all the same
UNANSWERED = "x-sessionbench-unanswered"  # header of the stand-in response


@dataclass
class Watch:
    """What one check's traffic left unanswered; `state()` describes the app's pools at a given moment."""

    state: Callable[[], str] = lambda: ""
    on_blocked: Callable[[str, float, int], None] | None = None  # (reason, seconds, requests in flight), called from
    # the watchdog thread; expected not to return
    bound_s: float = REQUEST_BOUND_S
    busy_window_s: float = BUSY_WINDOW_S
    loop_blocked_s: float = LOOP_BLOCKED_S
    unanswered: list[dict] = field(default_factory=list)
    not_sent: int = 0
    sent: int = 0  # requests handed to the app so far
    in_flight: dict[int, str] = field(default_factory=dict)
    phase: str = "starting"  # starting, serving, stopping: where a blocked loop was stuck
    _in_a_row: int = 0
    _last_tick: float = field(default_factory=time.monotonic)

    @property
    def stalled(self) -> bool:
        return self._in_a_row >= STALLED_AFTER

    def metrics(self) -> dict:
        """Numbers for the row: empty when every request was answered."""
        if not (self.unanswered or self.not_sent):
            return {}
        return {"unanswered_requests": len(self.unanswered), "requests_not_sent": self.not_sent}

    def evidence(self) -> str:
        """One sentence on what went unanswered, with the pool and loop state when the first one timed out."""
        if not (self.unanswered or self.not_sent):
            return ""
        first = self.unanswered[0]
        later = (
            f"; {self.not_sent} later requests were not sent (the app had stopped answering)" if self.not_sent else ""
        )
        return (
            f"{len(self.unanswered)} requests got no answer within {self.bound_s:g} s (first: request "
            f"{first['number']} of the check, {first['request']}, {first['at_s']:.1f} s in; {first['state'] or 'no engine connected'}; event loop "
            f"{first['loop']}){later}."
        )

    async def answered_in_time(self, done: anyio.Event) -> bool:
        """Wait `bound_s` for `done`, and on while the process computes, up to SLOW_CAP bounds: slow is not stuck.

        The last window of the bound is the first look, so a request that is stuck is judged at the bound itself."""
        started, window = time.monotonic(), min(self.busy_window_s, self.bound_s)
        with anyio.move_on_after(self.bound_s - window):
            await done.wait()
        while not done.is_set() and time.monotonic() < started + SLOW_CAP * self.bound_s:
            cpu = time.process_time()
            with anyio.move_on_after(window):
                await done.wait()
            if time.process_time() - cpu < BUSY_SHARE * window:
                break
        return done.is_set()

    def loop_state(self) -> str:
        late = time.monotonic() - self._last_tick - TICK_S
        return "responsive" if late < 1 else f"last ran {late:.1f} s ago"

    async def ticker(self) -> None:
        while True:
            self._last_tick = time.monotonic()
            await anyio.sleep(TICK_S)

    def watchdog(self, stop: threading.Event) -> None:
        """Thread body: when the loop has not run for LOOP_BLOCKED_S, say what was in flight and hand it over."""
        while not stop.wait(0.5):
            silent = time.monotonic() - self._last_tick
            if silent > self.loop_blocked_s and self.on_blocked is not None:
                flying = list(self.in_flight.values())
                what = (
                    f"{len(flying)} requests in flight ({', '.join(sorted(set(flying)))})"
                    if flying
                    else f"no request in flight (while {self.phase})"
                )
                self.on_blocked(
                    f"the event loop was blocked for {silent:.0f} s with {what}; "
                    f"{self.state() or 'no engine connected'}",
                    silent,
                    len(flying),
                )
                return


class BoundedTransport(httpx.AsyncBaseTransport):
    """Runs each request in its own task of `tasks` and waits for it at most `watch.bound_s`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, tasks: anyio.abc.TaskGroup, watch: Watch, started: float):
        self.inner, self.tasks, self.watch, self.started = inner, tasks, watch, started

    def _stand_in(self, request: httpx.Request, why: str) -> httpx.Response:
        return httpx.Response(504, headers={UNANSWERED: "1"}, json={"detail": why}, request=request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        watch, what = self.watch, f"{request.method} {request.url.path}"
        if watch.stalled:
            watch.not_sent += 1
            return self._stand_in(request, "not sent: the app had stopped answering")
        done, box = anyio.Event(), {}
        watch.sent += 1
        number = watch.sent

        async def send() -> None:
            watch.in_flight[id(box)] = what
            try:
                box["response"] = await self.inner.handle_async_request(request)
            except Exception as exc:  # handed to the caller, as the transport would have
                box["error"] = exc
            finally:
                watch.in_flight.pop(id(box), None)
                done.set()

        self.tasks.start_soon(send)
        if not await watch.answered_in_time(done):
            watch._in_a_row += 1
            watch.unanswered.append(
                {
                    "request": what,
                    "number": number,
                    "at_s": time.monotonic() - self.started,
                    "state": watch.state(),
                    "loop": watch.loop_state(),
                }
            )
            return self._stand_in(request, f"no answer within {watch.bound_s:g} s")
        watch._in_a_row = 0
        if "error" in box:
            raise box["error"]
        return box["response"]


def answered(response: httpx.Response) -> bool:
    """False for the stand-in of a request that got no answer (or was not sent)."""
    return UNANSWERED not in response.headers
