"""The sweep's shared shapes: what a run measures (Plan) and what it measures it on (App), for sweep.py and
workers.py alike, so that neither imports the other's module for them."""

from __future__ import annotations

from dataclasses import dataclass

from experiments.harness import discovery


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    rounds: int
    seconds: float  # per measurement (wrk rounds it up to whole seconds)
    warmup_s: float
    modes: tuple[str, ...]
    benchmark_rounds: int  # session cost: pytest-benchmark rounds per app, path and repeat
    hold_requests: int = 20  # connection hold time: sequential in-process requests per app, tag path and round
    answers_only: bool = False  # after the checks, only what What to use orders by cost (and the baselines)


@dataclass(frozen=True)
class App:
    id: str
    strategy: discovery.Strategy
    baseline: bool

    def describe(self) -> dict:
        return {"id": self.id, "label": self.strategy.label, "baseline": self.baseline}
