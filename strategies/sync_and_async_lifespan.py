"""Sync and async engines in lifespan, a session of each kind

For an app with both kinds of endpoint: a sync engine and an async engine, both
created when the app starts and disposed when it stops, their sessionmakers in
lifespan state; `def` endpoints take a `Session` from a sync `yield`
dependency, `async def` endpoints an `AsyncSession` from an async one. The
lifespan pattern of sm-Fifteen in https://github.com/fastapi/fastapi/issues/726 ;
https://fastapi.tiangolo.com/advanced/events/ ; FastAPI runs `def` code in a
threadpool and `async def` code on the event loop:
https://fastapi.tiangolo.com/async/ ; SQLAlchemy asyncio:
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"])
    async_engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
    yield {
        "sessionmaker": sessionmaker(engine),
        "async_sessionmaker": async_sessionmaker(async_engine, expire_on_commit=False),
    }
    engine.dispose()
    await async_engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


async def get_async_db(request: Request):
    async with request.state.async_sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_db)]
