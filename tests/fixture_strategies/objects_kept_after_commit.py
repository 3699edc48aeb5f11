"""known-good: sessions that keep what they commit, and endpoints that return the committed object

Must pass objects_after_commit: both sessionmakers set `expire_on_commit=False`,
as Kludex advises for FastAPI and Pydantic (sqlalchemy #5811), so the response
model reads the attributes the objects already hold: no SELECT after the commit,
no I/O outside the `AsyncSession`'s greenlet.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]), expire_on_commit=False)
AsyncSessionLocal = async_sessionmaker(create_async_engine(os.environ["ASYNC_DATABASE_URL"]), expire_on_commit=False)
GOOD_FOR = ("objects_after_commit",)
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
