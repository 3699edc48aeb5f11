"""The template's session per request plus a middleware that does nothing

The twin of `slowed_5ms` and `busy_work`: the same app and middleware, without
the sleep or the work, so that what they add is all that differs.
"""

from tests.bench_strategies._middleware import template_with


def nothing():
    pass


app, SessionDep = template_with(nothing)
