"""known-bad: sessions that expire what they commit, and endpoints that return the committed object

Must be flagged by objects_after_commit: both sessionmakers keep SQLAlchemy's
default `expire_on_commit=True`. On the `async def` route the `AsyncSession`
commits, then FastAPI reads the expired object for its response model on the
event loop, outside the session's greenlet: `MissingGreenlet`, a 500 for a row
that was written. On the `def` route the sync `Session` answers 200, after a
SELECT per object to reload what the commit expired.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
AsyncSessionLocal = async_sessionmaker(create_async_engine(os.environ["ASYNC_DATABASE_URL"]))
FLAGGED_BY = ("objects_after_commit",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for" for path in probes.ROUTES if path not in ("/sync/created", "/async/created")
}


def get_db():
    with SessionLocal() as session:
        yield session


async def get_async_db():
    async with AsyncSessionLocal() as session:
        yield session


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db: Session = Depends(get_db)):
    return probes.create(db, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: AsyncSession = Depends(get_async_db)):
    return await probes.create_async(db, key)
