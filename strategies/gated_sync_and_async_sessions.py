"""Sync and async engines in lifespan with pre-ping: a gated `Session` for `def` endpoints, an `AsyncSession` for `async def` ones

For apps with both kinds of endpoint: each kind gets the session whose I/O
fits where it runs. `def` endpoints run in the threadpool and get a sync
`Session`, opened and closed in a `def` dependency behind a pool-sized gate
that makes the others wait on the event loop, for at most ADMISSION_TIMEOUT_S,
then answers 503 with Retry-After. `async def` endpoints get an `AsyncSession`
that awaits its I/O and keeps its objects loaded after commit. Both engines
live as long as the app. Written for this project: gated_sync_session and
async_session_lifespan in one app.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"]
ASYNC_DATABASE_URL = os.environ["ASYNC_DATABASE_URL"]
ADMISSION_TIMEOUT_S = 30


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(DATABASE_URL, pool_pre_ping=True)
    async_engine = create_async_engine(ASYNC_DATABASE_URL, pool_pre_ping=True)
    yield {
        "sessionmaker": sessionmaker(engine),
        "gate": anyio.Semaphore(engine.pool.size()),
        "async_sessionmaker": async_sessionmaker(async_engine, expire_on_commit=False),
    }
    engine.dispose()
    await async_engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_async_session(request: Request):
    async with request.state.async_sessionmaker() as session:
        yield session


AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_session)]


async def admitted(request: Request):
    try:
        with anyio.fail_after(ADMISSION_TIMEOUT_S):
            await request.state.gate.acquire()
    except TimeoutError:
        raise HTTPException(503, "the database is busy", headers={"Retry-After": "1"}) from None
    try:
        yield
    finally:
        request.state.gate.release()


def get_session(request: Request, _: Annotated[None, Depends(admitted)]):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

INGREDIENTS = {  # each line of the pattern, and the pattern without it, for the ablation
    "pool_pre_ping=True": [
        ("create_engine(DATABASE_URL, pool_pre_ping=True)", "create_engine(DATABASE_URL)"),
        ("create_async_engine(ASYNC_DATABASE_URL, pool_pre_ping=True)", "create_async_engine(ASYNC_DATABASE_URL)"),
    ],
    "engine.dispose(), await async_engine.dispose()": [
        ("    engine.dispose()\n", ""),
        ("    await async_engine.dispose()\n", ""),
    ],
    "the gate, Depends(admitted)": (", _: Annotated[None, Depends(admitted)]", ""),
    "expire_on_commit=False": (
        "async_sessionmaker(async_engine, expire_on_commit=False)",
        "async_sessionmaker(async_engine)",
    ),
}
