"""Counting what SQLAlchemy does inside the app, without touching the strategy's code.

Listeners on the `Pool` and `Session` classes see every engine and session the
strategy creates, whatever it calls them, so a check can ask "how many
connections were checked out when the response went out" or "how many sessions
did a request that needs none create". `small_pool` sets the pool every engine
gets unless the strategy chose its own.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pytest
import sqlalchemy
import sqlalchemy.ext.asyncio
from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool


@dataclass
class Counts:
    sessions_created: int = 0
    checkouts: int = 0  # connections handed out by any pool
    checked_out: int = 0  # handed out and not yet returned, now
    peak_checked_out: int = 0


@contextmanager
def watch() -> Iterator[Counts]:
    """Count sessions created and pool checkouts/checkins, in every engine, while the block runs."""
    counts = Counts()
    lock = threading.Lock()  # checkouts happen on threadpool threads as well as the loop's

    def on_checkout(*_):
        with lock:
            counts.checkouts += 1
            counts.checked_out += 1
            counts.peak_checked_out = max(counts.peak_checked_out, counts.checked_out)

    def on_checkin(*_):
        with lock:
            counts.checked_out -= 1

    original_init = Session.__init__

    def counting_init(self, *args, **kwargs):
        with lock:
            counts.sessions_created += 1
        original_init(self, *args, **kwargs)

    event.listen(Pool, "checkout", on_checkout)
    event.listen(Pool, "checkin", on_checkin)
    Session.__init__ = counting_init  # AsyncSession builds a Session too, so it is counted once
    try:
        yield counts
    finally:
        Session.__init__ = original_init
        event.remove(Pool, "checkout", on_checkout)
        event.remove(Pool, "checkin", on_checkin)


def small_pool(monkeypatch: pytest.MonkeyPatch, **pool) -> None:
    """Make `pool` (e.g. pool_size=5, max_overflow=0, pool_timeout=3) the default of every engine created
    after this call, sync or async; settings a strategy passes itself win."""
    for module, name in ((sqlalchemy, "create_engine"), (sqlalchemy.ext.asyncio, "create_async_engine")):
        create = getattr(module, name)

        def with_defaults(url, *args, _create=create, **kwargs):
            if "poolclass" in kwargs:  # the strategy chose its pool (NullPool, StaticPool…): leave it alone
                return _create(url, *args, **kwargs)
            return _create(url, *args, **{**pool, **kwargs})

        monkeypatch.setattr(module, name, with_defaults)
