"""`ContextVar` session set in middleware (fastapi-sqlalchemy)

fastapi-sqlalchemy's way: a `DBSessionMiddleware` opens a session per request
and puts it in a `ContextVar`; code anywhere reads it as `db.session`, no
`Depends` needed. https://github.com/mfreeborn/fastapi-sqlalchemy ; proposed in
https://github.com/fastapi/fastapi/issues/726
"""

import os
from contextvars import ContextVar

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.base import BaseHTTPMiddleware

from experiments import probes

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


def load_user() -> int:
    return probes.session_key(db.session)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    return probes.tag(db.session, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(db.session, tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user)):
    return probes.same_session(user, db.session)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float):
    return probes.write(db.session, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(db.session, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user() -> int:
    return probes.current_user(db.session)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float):
    return probes.load_note(db.session, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str):
    result = probes.add_conflicting(db.session, key)
    db.session.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str):
    result = probes.add_conflicting(db.session, key)
    db.session.commit()
    return result


# db.session inside the stream and the task: they read the ContextVar when they run, as code anywhere does.
def stream(chunks: int, delay: float):
    yield from probes.stream(db.session, chunks, delay)


async def stream_async(chunks: int, delay: float):
    async for chunk in probes.stream_async(db.session, chunks, delay):
        yield chunk


def write_later(key: str):
    probes.write_later(db.session, key)


async def write_later_async(key: str):
    await probes.write_later_async(db.session, key)


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
    return probes.create(db.session, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str):
    return await probes.create_async(db.session, key)


# An app with a second database (SECOND_DATABASE_URL): its own ContextVar, set by its own middleware.
if SECOND_DATABASE_URL:
    _second_session: ContextVar[Session | None] = ContextVar("_second_session", default=None)
    second_db = DB(_second_session)
    app.add_middleware(DBSessionMiddleware, db_url=SECOND_DATABASE_URL, var=_second_session)

    @app.post("/sync/write2")
    def sync_write2(key: str, fail: bool, delay: float):
        return probes.write_both(db.session, second_db.session, key, fail, delay)

    @app.post("/async/write2")
    async def async_write2(key: str, fail: bool, delay: float):
        return await probes.write_both_async(db.session, second_db.session, key, fail, delay)
