"""known-bad: a thread-local scoped_session that is never removed

Must be flagged by carryover_sequential: the next request on a thread gets the
previous request's session, its info and its open transaction. And by
testability: the endpoint calls the registry itself, so no dependency override
can hand it a test's session.
"""

import os

from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from experiments import probes

Session = scoped_session(sessionmaker(create_engine(os.environ["DATABASE_URL"])))
FLAGGED_BY = ("carryover_sequential", "testability")
app = FastAPI()
UNSUPPORTED = {
    "/async/tag": "not what this fixture is for",
    "/same": "not what this fixture is for",
    "/sync/write": "not what this fixture is for",
    "/async/write": "not what this fixture is for",
}


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    return probes.tag(Session(), tag, delay, query)


@app.get("/nodb")
def nodb():
    return probes.no_database()
