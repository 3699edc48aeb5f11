"""`AsyncSession` `yield` dependency

The asyncio form of the docs' dependency: `create_async_engine`,
`async_sessionmaker(expire_on_commit=False)` and an `async def` dependency that
yields one `AsyncSession` per request to `async def` endpoints. SQLAlchemy
asyncio docs: https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html ;
the common FastAPI async SQL guides build on it.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from experiments import probes

UNSUPPORTED = {
    "/sync/tag": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/write": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/model": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/user": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/conflict": "an AsyncSession cannot be used from a `def` endpoint",
}

engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)

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
