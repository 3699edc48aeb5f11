"""fastapi-async-sqlalchemy 0.7.1 (0.8 on Python 3.12+) with `commit_on_exit=True`: the middleware commits

The same library and module as `fastapi_async_sqlalchemy`, with the one setting
its middleware offers for "unit of work" apps: `SQLAlchemyMiddleware(...,
commit_on_exit=True)` commits the request's session when the endpoint returns and
rolls it back when it raised, so the endpoints only add rows. In 0.7.1 it is a
keyword of the middleware's `__init__` (its README does not show it) passed to
`DBSession.__aexit__`, which awaits `session.commit()` once `call_next` has
returned. The 0.8 README documents it, under "Request transactions and
streaming responses":

    When ``SQLAlchemyMiddleware(..., commit_on_exit=True)`` manages a normal
    non-streaming HTTP request, the request session is committed before
    ``http.response.start`` is forwarded to the ASGI server. If commit, rollback,
    or close fails, the failure happens before a successful response is reported to
    the client.

Everything else as in `fastapi_async_sqlalchemy`: the README's
`app.add_middleware(SQLAlchemyMiddleware, db_url=...)` with `db_url` only, and the
global `db.session` (https://github.com/h0rn3t/fastapi-async-sqlalchemy).
"""

import os

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_async_sqlalchemy import SQLAlchemyMiddleware, create_middleware_and_session_proxy, db

from experiments import probes

REQUIRES = ("fastapi-async-sqlalchemy>=0.7",)

UNSUPPORTED = {
    "/sync/tag": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/model": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/user": "db.session is an AsyncSession, which a `def` dependency cannot await",
    "/sync/conflict": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/stream": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/background": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/created": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write2": "db.session is an AsyncSession, which a `def` endpoint cannot await",
}

app = FastAPI()
app.add_middleware(SQLAlchemyMiddleware, db_url=os.environ["ASYNC_DATABASE_URL"], commit_on_exit=True)


async def load_user() -> int:
    return probes.session_key(db.session)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(db.session, tag, delay, query)


@app.get("/same")
async def same(user: int = Depends(load_user)):
    return probes.same_session(user, db.session)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(db.session, key, fail, delay, commit=False)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


# The endpoint leaves the commit to the middleware, which is what commit_on_exit is for.
@app.post("/async/conflict")
async def async_conflict(key: str):
    return probes.add_conflicting(db.session, key)


# db.session inside the stream and the task: they read the library's ContextVar when they run, as code anywhere does.
async def stream(chunks: int, delay: float):
    async for chunk in probes.stream_async(db.session, chunks, delay):
        yield chunk


async def write_later(key: str):
    await probes.write_later_async(db.session, key)


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float):
    return StreamingResponse(stream(chunks, delay), media_type="application/x-ndjson")


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_later, key)
    return {"key": key}


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str):
    return await probes.create_async(db.session, key, commit=False)


# An app with a second database (ASYNC_SECOND_DATABASE_URL), as the README's "Usage of multiple databases" shows:
# a second middleware and its session proxy, made by create_middleware_and_session_proxy().
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")
if SECOND_DATABASE_URL:
    SecondSQLAlchemyMiddleware, second_db = create_middleware_and_session_proxy()
    app.add_middleware(SecondSQLAlchemyMiddleware, db_url=SECOND_DATABASE_URL, commit_on_exit=True)

    @app.post("/async/write2")
    async def async_write2(key: str, fail: bool, delay: float):
        return await probes.write_both_async(db.session, second_db.session, key, fail, delay)
