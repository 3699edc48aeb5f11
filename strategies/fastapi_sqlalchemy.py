"""fastapi-sqlalchemy 0.2.1 (mfreeborn): `DBSessionMiddleware` and its global `db.session` ContextVar

The library the thread names ("How about this kind of pattern
https://github.com/mfreeborn/fastapi-sqlalchemy similar to the way it works in
flask?", FastAPI issue #726). Written as its README, "Usage inside of a route",
shows it:

    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, db_url="sqlite://")

    # once the middleware is applied, any route can then access the database session
    # from the global ``db``

    @app.get("/users")
    def get_users():
        users = db.session.query(User).all()

"Note that the session object provided by ``db.session`` is based on the
Python3.7+ ``ContextVar``. This means that each session is linked to the
individual request context in which it was created."

Default settings (`commit_on_exit=False`), so the endpoints commit. The engine
is created inside the middleware's `__init__` (when Starlette builds the
middleware stack, at the first event the app receives) and never disposed; the
middleware is a `BaseHTTPMiddleware`. Last release 0.2.1 (2020).
"""

import os

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_sqlalchemy import DBSessionMiddleware, db

from experiments import probes

REQUIRES = ("fastapi-sqlalchemy>=0.2",)
# Its middleware keeps one module-level sessionmaker and `db.session` reads one ContextVar: a second
# DBSessionMiddleware replaces the first's sessionmaker, and no second session can be had in a request.
ONE_DATABASE = (
    "fastapi-sqlalchemy holds one module-level sessionmaker (`_Session`) behind `db.session`; "
    "a second DBSessionMiddleware replaces it"
)
UNSUPPORTED = {"/sync/write2": ONE_DATABASE, "/async/write2": ONE_DATABASE}

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
