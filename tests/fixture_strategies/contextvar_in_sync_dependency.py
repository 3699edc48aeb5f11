"""known-bad: the session put in a ContextVar by a sync dependency

Must be flagged by same_session_in_request: a `def` dependency runs in a copy
of the context, so the endpoint never sees the value it set.
"""

import os
from contextvars import ContextVar

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
current: ContextVar[Session | None] = ContextVar("current", default=None)
FLAGGED_BY = ("same_session_in_request",)
app = FastAPI()
UNSUPPORTED = {
    "/sync/tag": "not what this fixture is for",
    "/async/tag": "not what this fixture is for",
    "/sync/write": "not what this fixture is for",
    "/async/write": "not what this fixture is for",
}


def open_session():
    with SessionLocal() as session:
        current.set(session)
        yield session


def db() -> Session:
    return current.get() or SessionLocal()


def load_user(session: Session = Depends(open_session)) -> int:
    return probes.session_key(session)


@app.get("/same")
def same(user: int = Depends(load_user)):
    return probes.same_session(user, db())


@app.get("/nodb")
def nodb():
    return probes.no_database()
