"""Async engine in lifespan with pre-ping, an `AsyncSession` per request that keeps its objects loaded

For apps whose endpoints are all `async def`. The engine lives as long as the
app and is disposed (awaited) when it stops; each request gets its own
`AsyncSession` from an `async def` dependency, so every query, commit and close
is awaited on the event loop instead of blocking it. `expire_on_commit=False`
keeps committed objects loaded: FastAPI reads a returned object after the
endpoint, outside the greenlet an `AsyncSession` does its I/O in.
Written for this project from SQLAlchemy's asyncio docs ("Preventing Implicit
IO when Using AsyncSession", "Dealing with Disconnects") and FastAPI's
"Dependencies with yield" and "Lifespan Events" pages.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

DATABASE_URL = os.environ["ASYNC_DATABASE_URL"]


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_async_engine(DATABASE_URL, pool_pre_ping=True)
    yield {"sessionmaker": async_sessionmaker(engine, expire_on_commit=False)}
    await engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_session(request: Request):
    async with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

INGREDIENTS = {  # each line of the pattern, and the pattern without it, for the ablation
    "pool_pre_ping=True": (
        "create_async_engine(DATABASE_URL, pool_pre_ping=True)",
        "create_async_engine(DATABASE_URL)",
    ),
    "await engine.dispose()": ("    await engine.dispose()\n", ""),
    "expire_on_commit=False": ("async_sessionmaker(engine, expire_on_commit=False)", "async_sessionmaker(engine)"),
    "async with ... as session (closes it)": (
        "async with request.state.sessionmaker() as session:\n        yield session",
        "yield request.state.sessionmaker()",
    ),
}
