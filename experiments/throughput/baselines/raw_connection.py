"""Raw pooled connection, no ORM session: `engine.connect()` per request running the probes' SQL

The same SELECT of the seed row and the same INSERT + COMMIT as the probes, on a
pooled connection without a `Session`: the floor any session strategy can reach,
so a strategy's ratio to it is what its session management costs.
"""

import os

from fastapi import FastAPI
from sqlalchemy import create_engine, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from experiments.probes import SEED_ROW_ID, Note

engine = create_engine(os.environ["DATABASE_URL"])
async_engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
SEED = select(Note.id, Note.key).where(Note.id == SEED_ROW_ID)

app = FastAPI()


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    if query:
        with engine.connect() as conn:
            conn.execute(SEED).one()
    return {"tag": tag}


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    if query:
        async with async_engine.connect() as conn:
            (await conn.execute(SEED)).one()
    return {"tag": tag}


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float):
    with engine.begin() as conn:
        conn.execute(insert(Note).values(key=key))
    return {"key": key}


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    async with async_engine.begin() as conn:
        await conn.execute(insert(Note).values(key=key))
    return {"key": key}


@app.get("/nodb")
def nodb():
    return {"ok": True}
