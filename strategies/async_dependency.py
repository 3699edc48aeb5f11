"""`AsyncSession` `yield` dependency

The asyncio form of the docs' dependency: `create_async_engine`,
`async_sessionmaker(expire_on_commit=False)` and an `async def` dependency that
yields one `AsyncSession` per request to `async def` endpoints. SQLAlchemy
asyncio docs: https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html ;
the common FastAPI async SQL guides build on it.
"""

import os

from fastapi import BackgroundTasks, Depends, FastAPI
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

engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")  # set when the app has a second database

app = FastAPI()


async def get_db():
    async with SessionLocal() as session:
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
    SecondSessionLocal = async_sessionmaker(create_async_engine(SECOND_DATABASE_URL), expire_on_commit=False)

    async def get_second_db():
        async with SecondSessionLocal() as session:
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
