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

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

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


def load_user() -> int:
    return probes.session_key(get_session())


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    return probes.tag(get_session(), tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(get_session(), tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user)):
    return probes.same_session(user, get_session())


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float):
    return probes.write(get_session(), key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(get_session(), key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user() -> int:
    return probes.current_user(get_session())


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float):
    return probes.load_note(get_session(), delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str):
    session = get_session()
    result = probes.add_conflicting(session, key)
    session.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str):
    session = get_session()
    result = probes.add_conflicting(session, key)
    session.commit()
    return result


# get_session() inside the stream and the task: they read the ContextVar when they run, as code anywhere does.
def stream(chunks: int, delay: float):
    yield from probes.stream(get_session(), chunks, delay)


async def stream_async(chunks: int, delay: float):
    async for chunk in probes.stream_async(get_session(), chunks, delay):
        yield chunk


def write_later(key: str):
    probes.write_later(get_session(), key)


async def write_later_async(key: str):
    await probes.write_later_async(get_session(), key)


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float):
    return StreamingResponse(stream(chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float):
    return StreamingResponse(stream_async(chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_later, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_later_async, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str):
    return probes.create(get_session(), key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str):
    return await probes.create_async(get_session(), key)
