"""`AsyncSession` `yield` dependency

The asyncio form of the docs' dependency: `create_async_engine`,
`async_sessionmaker(expire_on_commit=False)` and an `async def` dependency that
yields one `AsyncSession` per request to `async def` endpoints. SQLAlchemy
asyncio docs: https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html ;
the common FastAPI async SQL guides build on it.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")  # set when the app has a second database

app = FastAPI()


async def get_db():
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_db)]

# An app with a second database (ASYNC_SECOND_DATABASE_URL): a session for each, from its own dependency.
SECOND_SESSION = None
if SECOND_DATABASE_URL:
    SecondSessionLocal = async_sessionmaker(create_async_engine(SECOND_DATABASE_URL), expire_on_commit=False)

    async def get_second_db():
        async with SecondSessionLocal() as session:
            yield session

    SECOND_SESSION = Annotated[AsyncSession, Depends(get_second_db)]
