"""known-bad: a thread-local scoped_session filled in a sync `yield` dependency's setup, removed in its teardown

Must be flagged by isolation_threadpool, in every run: FastAPI runs a sync
dependency's setup and its teardown on threadpool threads that need not be the
same, so `remove()` clears another thread's session, and the thread that ran
the setup hands its session to the next request it serves while the first one
still uses it.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from experiments import probes

ScopedSession = scoped_session(sessionmaker(create_engine(os.environ["DATABASE_URL"])))
FLAGGED_BY = ("isolation_threadpool",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in ("/async/tag", "/same", "/sync/write", "/async/write", "/sync/model", "/sync/user", "/sync/conflict",
                 "/async/conflict")
}  # fmt: skip


def get_db():
    session = ScopedSession()
    try:
        yield session
    finally:
        ScopedSession.remove()


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/nodb")
def nodb():
    return probes.no_database()
