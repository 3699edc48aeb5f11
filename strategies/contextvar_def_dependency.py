"""A `ContextVar` session set in a `def` yield dependency (the caveat the thread warns about)

"The alternative would be ContextVars, those are made to solve these use cases.
But they don't behave exactly the same as thread locals and there are some
caveats." (tiangolo in https://github.com/fastapi/fastapi/issues/726). This is
the caveat, written the way a user moving from `scoped_session` or from
fastapi-sqlalchemy's `db.session` to "a dependency instead of a middleware"
writes it: an app-wide `yield` dependency, a plain `def` like the docs' `get_db`,
opens the session and puts it in a `ContextVar`; code anywhere reads it back with
`get_session()`, no parameter to thread through.

FastAPI runs a `def` dependency in the threadpool, in a copy of the request's
context, and its teardown in yet another copy. FastAPI's former Peewee page
(https://fastapi.tiangolo.com/how-to/sql-databases-peewee/, removed in 0.115.1)
said so: "if the value of the context variable ... was set in that normal `def`
function, it would create a new value that would stay only in that thread of the
threadpool, and the rest of the code (like the *path operation functions*)
wouldn't have access to it", and set its ContextVar from an `async def`
dependency instead. tests/fixture_strategies/
contextvar_in_sync_dependency.py is the minimal form that `same_session_in_request`
must flag; this is the whole app.
"""

import os
from contextvars import ContextVar

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(engine)

_session: ContextVar[Session] = ContextVar("session")


def db_session_scope():
    with SessionLocal() as session:
        token = _session.set(session)
        try:
            yield
        finally:
            _session.reset(token)


def get_session() -> Session:
    """The current request's session."""
    return _session.get()


app = FastAPI(dependencies=[Depends(db_session_scope)])

# `get_session()` where the session is used: a stream or a task reads the ContextVar when it runs.
SESSION_FROM = get_session
