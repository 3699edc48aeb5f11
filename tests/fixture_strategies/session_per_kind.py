"""known-good: a sync `Session` from a `def` dependency for `def` endpoints, an `AsyncSession` for `async def` ones

Must pass sync_io_on_loop: the sync session is opened, used and closed in the
threadpool, and the async one's driver calls are awaited.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
AsyncSessionLocal = async_sessionmaker(create_async_engine(os.environ["ASYNC_DATABASE_URL"]), expire_on_commit=False)
GOOD_FOR = ("sync_io_on_loop",)
app = FastAPI()


def get_db():
    with SessionLocal() as session:
        yield session


async def get_async_db():
    async with AsyncSessionLocal() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
AsyncSessionDep = Annotated[AsyncSession, Depends(get_async_db)]
