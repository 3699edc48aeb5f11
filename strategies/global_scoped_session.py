"""Global `scoped_session`, `remove()` in HTTP middleware

A thread-local `scoped_session` registry at module level, called directly
wherever a session is needed, and `Session.remove()` after each request: the
Flask teardown habit ported to FastAPI. SQLAlchemy "Contextual/Thread-local
Sessions": https://docs.sqlalchemy.org/en/20/orm/contextual.html ; the question
that opens FastAPI issue #726: https://github.com/fastapi/fastapi/issues/726
"""

import os

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import scoped_session, sessionmaker

from experiments import probes

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


def load_user() -> int:
    return probes.session_key(Session())


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    return probes.tag(Session(), tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(Session(), tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user)):
    return probes.same_session(user, Session())


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float):
    return probes.write(Session(), key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(Session(), key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user() -> int:
    return probes.current_user(Session())


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float):
    return probes.load_note(Session(), delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str):
    result = probes.add_conflicting(Session(), key)
    Session().commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str):
    result = probes.add_conflicting(Session(), key)
    Session().commit()
    return result


# The registry itself, not Session(): the stream and the task look up their thread's session when they
# run, as code calling the global registry does.
@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float):
    return StreamingResponse(probes.stream(Session, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float):
    return StreamingResponse(probes.stream_async(Session, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(probes.write_later, Session, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(probes.write_later_async, Session, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str):
    return probes.create(Session(), key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str):
    return await probes.create_async(Session(), key)


# An app with a second database (SECOND_DATABASE_URL): a registry for it, removed the same way.
if SECOND_DATABASE_URL:
    SecondSession = scoped_session(sessionmaker(create_engine(SECOND_DATABASE_URL)))

    @app.middleware("http")
    async def remove_second_session(request: Request, call_next):
        try:
            return await call_next(request)
        finally:
            SecondSession.remove()

    @app.post("/sync/write2")
    def sync_write2(key: str, fail: bool, delay: float):
        return probes.write_both(Session(), SecondSession(), key, fail, delay)

    @app.post("/async/write2")
    async def async_write2(key: str, fail: bool, delay: float):
        return await probes.write_both_async(Session(), SecondSession(), key, fail, delay)
