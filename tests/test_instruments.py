"""The counts the checks past the endpoint rest on: a session reopened after close, and a connection that only
the garbage collector would return, counted the same way every run."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from experiments.harness import instruments


def test_a_session_used_after_close_is_counted_as_reopened(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with instruments.counting() as counts:
        session = Session(engine)
        session.execute(text("select 1"))
        session.close()
        assert counts.reopened_after_close == 0
        session.execute(text("select 1"))  # SQLAlchemy 2 begins again on the closed session
        session.close()
    assert counts.reopened_after_close == 1
    engine.dispose()


def test_a_closed_session_used_again_is_not_reopened_twice(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with instruments.counting() as counts:
        session = Session(engine)
        session.close()
        session.execute(text("select 1"))
        session.commit()
        session.execute(text("select 1"))  # a new transaction on the reopened session, not another reopening
        session.close()
    assert counts.reopened_after_close == 1
    engine.dispose()


def test_a_connection_only_the_collector_returns_stays_counted_while_it_is_paused(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with instruments.counting() as counts:
        with instruments.collector_paused():
            session = Session(engine)
            session.execute(text("select 1"))  # a transaction nobody ends
            del session  # a session is a reference cycle: dropping it returns nothing
            assert counts.checked_out == 1
        assert counts.checked_out == 0  # collected on the way out
    engine.dispose()
