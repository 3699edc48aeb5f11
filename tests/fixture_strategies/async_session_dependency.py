"""known-good: an AsyncSession from an `async def` yield dependency in `async def` endpoints

Must pass event_loop_blocking: queries and pool checkouts are awaited, so a
request waiting for a connection yields the loop to the requests that will
give one back.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from experiments import probes

SessionLocal = async_sessionmaker(create_async_engine(os.environ["ASYNC_DATABASE_URL"]), expire_on_commit=False)
GOOD_FOR = ("event_loop_blocking",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in ("/sync/tag", "/same", "/sync/write", "/async/write", "/sync/model", "/sync/user", "/sync/conflict",
                 "/async/conflict")
}  # fmt: skip


async def get_db():
    async with SessionLocal() as session:
        yield session


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: AsyncSession = Depends(get_db)):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/nodb")
async def nodb():
    return probes.no_database()
