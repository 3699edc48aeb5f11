"""known-bad: `async_scoped_session(scopefunc=current_task)` removed in an `@app.middleware("http")`

Must be flagged by carryover_sequential, with its requests left unanswered
counted: `@app.middleware("http")` is a BaseHTTPMiddleware, which runs the
endpoint in another task, so `remove()` in the middleware finds no session for
its own task and the endpoint's session, with its connection, is never
returned. Once the pool (5 + 10 overflow) is used up, the next request waits
for a connection nobody will give back.
"""

import os
from asyncio import current_task

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker, create_async_engine

from experiments import probes

FLAGGED_BY = ("carryover_sequential",)
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in (
        "/sync/tag",
        "/same",
        "/sync/write",
        "/async/write",
        "/sync/model",
        "/sync/user",
        "/sync/conflict",
        "/async/conflict",
    )
}

engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
Session = async_scoped_session(async_sessionmaker(engine, expire_on_commit=False), scopefunc=current_task)
app = FastAPI()


@app.middleware("http")
async def remove_session(request: Request, call_next):
    try:
        return await call_next(request)
    finally:
        await Session.remove()


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(Session(), tag, delay, query)


@app.get("/nodb")
async def nodb():
    return probes.no_database()
