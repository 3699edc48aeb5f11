"""known-bad: a yield dependency that closes its session only on the happy path

Must be flagged by cleanup_on_error: `db = SessionLocal(); yield db; db.close()`
has no try/finally and no `with`, so when the endpoint raises, FastAPI throws
the exception in at `yield` and `close()` never runs: the session keeps its
connection and the flushed row's open transaction. Nothing references the
session afterwards, yet it is not freed: the exception's traceback keeps it in
a reference cycle, so only the cyclic garbage collector reclaims it (with
SQLAlchemy's "garbage collector is trying to clean up non-checked-in
connection" warning), whenever that happens to run; the check does not force it.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
AsyncSessionLocal = async_sessionmaker(create_async_engine(os.environ["ASYNC_DATABASE_URL"]))
FLAGGED_BY = ("cleanup_on_error",)
app = FastAPI()
UNSUPPORTED = {
    "/sync/tag": "not what this fixture is for",
    "/async/tag": "not what this fixture is for",
    "/same": "not what this fixture is for",
    "/sync/model": "not what this fixture is for",
    "/sync/user": "not what this fixture is for",
    "/sync/conflict": "not what this fixture is for",
    "/async/conflict": "not what this fixture is for",
}


def get_db():
    db = SessionLocal()
    yield db
    db.close()


async def get_async_db():
    db = AsyncSessionLocal()
    yield db
    await db.close()


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return probes.write(db, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: AsyncSession = Depends(get_async_db)):
    return await probes.write_async(db, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
