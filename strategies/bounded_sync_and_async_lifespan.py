"""Sync and async engines in lifespan, `def` sessions under a pool-sized semaphore

For an app with both kinds of endpoint, the two patterns this harness's
measurements point to, side by side: `async def` endpoints take an
`AsyncSession` from an async `yield` dependency (as in
async_lifespan_dependency), and `def` endpoints a sync `Session` from an
`async def` dependency that holds an `anyio.Semaphore` sized to the sync
engine's pool for the session's whole life (as in semaphore_dependency), so a
burst larger than the pool waits on the event loop instead of in threadpool
threads blocked on the pool. Both engines are created in lifespan and disposed
at shutdown. sm-Fifteen's lifespan-scoped engine in
https://github.com/fastapi/fastapi/issues/726 ; the pool deadlock the semaphore
avoids: https://github.com/fastapi/fastapi/issues/3205 ; SQLAlchemy asyncio:
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html ; anyio
semaphores: https://anyio.readthedocs.io/en/stable/synchronization.html#semaphores
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database
ASYNC_SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")


@asynccontextmanager
async def lifespan(app: FastAPI):
    urls = {"": os.environ["DATABASE_URL"], "second_": SECOND_DATABASE_URL}
    async_urls = {"async_": os.environ["ASYNC_DATABASE_URL"], "async_second_": ASYNC_SECOND_DATABASE_URL}
    engines = {prefix: create_engine(url) for prefix, url in urls.items() if url}
    async_engines = {prefix: create_async_engine(url) for prefix, url in async_urls.items() if url}
    state = {}
    for prefix, engine in engines.items():
        state[f"{prefix}sessionmaker"] = sessionmaker(engine)
        state[f"{prefix}semaphore"] = anyio.Semaphore(engine.pool.size() + engine.pool._max_overflow)
    for prefix, engine in async_engines.items():
        state[f"{prefix}sessionmaker"] = async_sessionmaker(engine, expire_on_commit=False)
    yield state
    for engine in engines.values():
        engine.dispose()
    for engine in async_engines.values():
        await engine.dispose()


app = FastAPI(lifespan=lifespan)


# `def` endpoints: a sync Session, held under the semaphore of its engine's pool.
async def get_db(request: Request):
    async with request.state.semaphore:
        with request.state.sessionmaker() as session:
            yield session


# `async def` endpoints: an AsyncSession.
async def get_async_db(request: Request):
    async with request.state.async_sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_db)]


# An app with a second database: a session of each kind for it, the sync one under its own pool's semaphore.
async def get_second_db(request: Request):
    async with request.state.second_semaphore:
        with request.state.second_sessionmaker() as session:
            yield session


SECOND_SESSION = Annotated[Session, Depends(get_second_db)] if SECOND_DATABASE_URL else None


async def get_async_second_db(request: Request):
    async with request.state.async_second_sessionmaker() as session:
        yield session


ASYNC_SECOND_SESSION = Annotated[AsyncSession, Depends(get_async_second_db)] if ASYNC_SECOND_DATABASE_URL else None
