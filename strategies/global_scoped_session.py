"""Global `scoped_session`, `remove()` in HTTP middleware

A thread-local `scoped_session` registry at module level, called directly
wherever a session is needed, and `Session.remove()` after each request: the
Flask teardown habit ported to FastAPI. SQLAlchemy "Contextual/Thread-local
Sessions": https://docs.sqlalchemy.org/en/20/orm/contextual.html ; the question
that opens FastAPI issue #726: https://github.com/fastapi/fastapi/issues/726
"""

import os

from fastapi import FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

engine = create_engine(os.environ["DATABASE_URL"])
Session = scoped_session(sessionmaker(engine))
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database

app = FastAPI()


@app.middleware("http")
async def remove_session(request: Request, call_next):
    try:
        return await call_next(request)
    finally:
        Session.remove()


# The registry: endpoints call `Session()`; a stream or a task is handed the registry itself and calls it when it runs.
SESSION_FROM = Session
SECOND_SESSION_FROM = None

# An app with a second database (SECOND_DATABASE_URL): a registry for it, removed the same way.
if SECOND_DATABASE_URL:
    SecondSession = scoped_session(sessionmaker(create_engine(SECOND_DATABASE_URL)))
    SECOND_SESSION_FROM = SecondSession

    @app.middleware("http")
    async def remove_second_session(request: Request, call_next):
        try:
            return await call_next(request)
        finally:
            SecondSession.remove()
