"""The template's session per request plus a fixed amount of CPU work per request

An instrument of the instruction tests: 20 000 iterations of Python arithmetic in
a middleware (about a million instructions, a millisecond or two) must count
more instructions per request than `awake_twin`, the same app without them.
"""

from tests.bench_strategies._middleware import template_with


def busy():
    sum(i * i for i in range(20_000))


app, SessionDep = template_with(busy)
