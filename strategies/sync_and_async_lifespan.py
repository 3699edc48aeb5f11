"""Sync and async engines in lifespan, a session of each kind

For an app with both kinds of endpoint: a sync engine and an async engine, both
created when the app starts and disposed when it stops, their sessionmakers in
lifespan state; `def` endpoints take a `Session` from a sync `yield`
dependency, `async def` endpoints an `AsyncSession` from an async one. The
lifespan pattern of sm-Fifteen in https://github.com/fastapi/fastapi/issues/726 ;
https://fastapi.tiangolo.com/advanced/events/ ; FastAPI runs `def` code in a
threadpool and `async def` code on the event loop:
https://fastapi.tiangolo.com/async/ ; SQLAlchemy asyncio:
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html
"""

import os
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database
ASYNC_SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")


@asynccontextmanager
async def lifespan(app: FastAPI):
    engines = {"sessionmaker": create_engine(os.environ["DATABASE_URL"])}
    async_engines = {"async_sessionmaker": create_async_engine(os.environ["ASYNC_DATABASE_URL"])}
    if SECOND_DATABASE_URL:
        engines["second_sessionmaker"] = create_engine(SECOND_DATABASE_URL)
    if ASYNC_SECOND_DATABASE_URL:
        async_engines["async_second_sessionmaker"] = create_async_engine(ASYNC_SECOND_DATABASE_URL)
    yield {
        **{name: sessionmaker(engine) for name, engine in engines.items()},
        **{name: async_sessionmaker(engine, expire_on_commit=False) for name, engine in async_engines.items()},
    }
    for engine in engines.values():
        engine.dispose()
    for engine in async_engines.values():
        await engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


async def get_async_db(request: Request):
    async with request.state.async_sessionmaker() as session:
        yield session


def load_user(db: Session = Depends(get_db)) -> int:
    return probes.session_key(db)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: AsyncSession = Depends(get_async_db)):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user), db: Session = Depends(get_db)):
    return probes.same_session(user, db)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return probes.write(db, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: AsyncSession = Depends(get_async_db)):
    return await probes.write_async(db, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(db: Session = Depends(get_db)) -> int:
    return probes.current_user(db)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db: Session = Depends(get_db)):
    return probes.load_note(db, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str, db: Session = Depends(get_db)):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str, db: AsyncSession = Depends(get_async_db)):
    result = probes.add_conflicting(db, key)
    await db.commit()
    return result


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db: Session = Depends(get_db)):
    return StreamingResponse(probes.stream(db, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: AsyncSession = Depends(get_async_db)):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(probes.write_later, db, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: AsyncSession = Depends(get_async_db)):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db: Session = Depends(get_db)):
    return probes.create(db, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: AsyncSession = Depends(get_async_db)):
    return await probes.create_async(db, key)


# An app with a second database: a session of each kind for it, from its own dependency.
if SECOND_DATABASE_URL:

    def get_second_db(request: Request):
        with request.state.second_sessionmaker() as session:
            yield session

    @app.post("/sync/write2")
    def sync_write2(
        key: str, fail: bool, delay: float, db: Session = Depends(get_db), second: Session = Depends(get_second_db)
    ):
        return probes.write_both(db, second, key, fail, delay)


if ASYNC_SECOND_DATABASE_URL:

    async def get_async_second_db(request: Request):
        async with request.state.async_second_sessionmaker() as session:
            yield session

    @app.post("/async/write2")
    async def async_write2(
        key: str,
        fail: bool,
        delay: float,
        db: AsyncSession = Depends(get_async_db),
        second: AsyncSession = Depends(get_async_second_db),
    ):
        return await probes.write_both_async(db, second, key, fail, delay)
