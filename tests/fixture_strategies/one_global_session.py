"""known-bad: one Session object for the whole app, rolled back when a request fails

Must be flagged by isolation_async, isolation_threadpool, carryover_sequential
and lost_writes: every request shares it, and one request's rollback discards
the rows other requests have added but not yet committed.
"""

import os

from fastapi import FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from experiments import probes

session = Session(create_engine(os.environ["DATABASE_URL"]))
FLAGGED_BY = ("isolation_async", "isolation_threadpool", "lost_writes")
app = FastAPI()
UNSUPPORTED = {"/same": "not what this fixture is for"}


@app.middleware("http")
async def rollback_on_error(request: Request, call_next):
    try:
        return await call_next(request)
    except Exception:
        session.rollback()
        raise


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    return probes.tag(session, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(session, tag, delay, query)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float):
    return probes.write(session, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(session, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
