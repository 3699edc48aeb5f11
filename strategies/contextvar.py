"""`ContextVar` session set in middleware (fastapi-sqlalchemy)

fastapi-sqlalchemy's way: a `DBSessionMiddleware` opens a session per request
and puts it in a `ContextVar`; code anywhere reads it as `db.session`, no
`Depends` needed. https://github.com/mfreeborn/fastapi-sqlalchemy ; proposed in
https://github.com/fastapi/fastapi/issues/726
"""

import os
from contextvars import ContextVar

from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware

_session: ContextVar[Session | None] = ContextVar("_session", default=None)
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database


class MissingSessionError(RuntimeError):
    pass


class DBSessionMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, db_url: str, var: ContextVar = _session):
        super().__init__(app)
        self.sessionmaker = sessionmaker(create_engine(db_url))
        self.var = var

    async def dispatch(self, request, call_next):
        token = self.var.set(self.sessionmaker())
        try:
            return await call_next(request)
        finally:
            self.var.get().close()
            self.var.reset(token)


class DB:
    def __init__(self, var: ContextVar = _session):
        self.var = var

    @property
    def session(self) -> Session:
        session = self.var.get()
        if session is None:
            raise MissingSessionError("no session in this context; is DBSessionMiddleware installed?")
        return session


db = DB()

app = FastAPI()
app.add_middleware(DBSessionMiddleware, db_url=os.environ["DATABASE_URL"])

# `db.session` where the session is used: a stream or a task reads the ContextVar when it runs.
SESSION_FROM = lambda: db.session  # noqa: E731
SECOND_SESSION_FROM = None

# An app with a second database (SECOND_DATABASE_URL): its own ContextVar, set by its own middleware.
if SECOND_DATABASE_URL:
    _second_session: ContextVar[Session | None] = ContextVar("_second_session", default=None)
    second_db = DB(_second_session)
    app.add_middleware(DBSessionMiddleware, db_url=SECOND_DATABASE_URL, var=_second_session)
    SECOND_SESSION_FROM = lambda: second_db.session  # noqa: E731
