"""Async engine in lifespan, `AsyncSession` `yield` dependency

The asyncio form of the lifespan pattern: `create_async_engine` when the app
starts, `await engine.dispose()` when it stops; the
`async_sessionmaker(expire_on_commit=False)` travels as lifespan state and an
`async def` dependency opens one `AsyncSession` per request from it.
sm-Fifteen in https://github.com/fastapi/fastapi/issues/726 ; Starlette
lifespan state: https://www.starlette.io/lifespan/ ;
https://fastapi.tiangolo.com/advanced/events/ ; SQLAlchemy asyncio:
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html
"""

import os
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from experiments import probes

UNSUPPORTED = {
    "/sync/tag": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/write": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/model": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/user": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/conflict": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/stream": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/background": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/created": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/write2": "an AsyncSession cannot be used from a `def` endpoint",
}

SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")  # set when the app has a second database


@asynccontextmanager
async def lifespan(app: FastAPI):
    engines = {"sessionmaker": create_async_engine(os.environ["ASYNC_DATABASE_URL"])}
    if SECOND_DATABASE_URL:
        engines["second_sessionmaker"] = create_async_engine(SECOND_DATABASE_URL)
    yield {name: async_sessionmaker(engine, expire_on_commit=False) for name, engine in engines.items()}
    for engine in engines.values():
        await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_db(request: Request):
    async with request.state.sessionmaker() as session:
        yield session


async def load_user(db: AsyncSession = Depends(get_db)) -> int:
    return probes.session_key(db)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: AsyncSession = Depends(get_db)):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/same")
async def same(user: int = Depends(load_user), db: AsyncSession = Depends(get_db)):
    return probes.same_session(user, db)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: AsyncSession = Depends(get_db)):
    return await probes.write_async(db, key, fail, delay)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


@app.post("/async/conflict")
async def async_conflict(key: str, db: AsyncSession = Depends(get_db)):
    result = probes.add_conflicting(db, key)
    await db.commit()
    return result


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: AsyncSession = Depends(get_db)):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: AsyncSession = Depends(get_db)):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: AsyncSession = Depends(get_db)):
    return await probes.create_async(db, key)


# An app with a second database (ASYNC_SECOND_DATABASE_URL): a session for each, from its own dependency.
if SECOND_DATABASE_URL:

    async def get_second_db(request: Request):
        async with request.state.second_sessionmaker() as session:
            yield session

    @app.post("/async/write2")
    async def async_write2(
        key: str,
        fail: bool,
        delay: float,
        db: AsyncSession = Depends(get_db),
        second: AsyncSession = Depends(get_second_db),
    ):
        return await probes.write_both_async(db, second, key, fail, delay)
