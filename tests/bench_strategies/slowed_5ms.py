"""The template's session per request plus 5 ms of blocking sleep per request

An instrument of the throughput and instruction tests: the wall-clock measurement
must rank it slowest by a clear margin, and the instruction count must not rank it
costlier than `awake_twin` (the same app without the sleep): sleeping is waiting,
not CPU work. Try it with `nox -s bench -- --strategies-dir tests/bench_strategies`.
"""

import time

from tests.bench_strategies._middleware import template_with


def five_ms_of_sleep():
    time.sleep(0.005)  # blocks the event loop, like CPU work would, but executes almost no instructions


app, SessionDep = template_with(five_ms_of_sleep)
