"""Async engine in lifespan, `AsyncSession` `yield` dependency

The asyncio form of the lifespan pattern: `create_async_engine` when the app
starts, `await engine.dispose()` when it stops; the
`async_sessionmaker(expire_on_commit=False)` travels as lifespan state and an
`async def` dependency opens one `AsyncSession` per request from it.
sm-Fifteen in https://github.com/fastapi/fastapi/issues/726 ; Starlette
lifespan state: https://www.starlette.io/lifespan/ ;
https://fastapi.tiangolo.com/advanced/events/ ; SQLAlchemy asyncio:
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
    yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_db(request: Request):
    async with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_db)]
