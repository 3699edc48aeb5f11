"""Engine in lifespan, `async def` dependency holding a pool-sized semaphore

lifespan_dependency's pattern with a guard against pool exhaustion: the
lifespan sizes an `anyio.Semaphore` to the engine's pool (`pool.size()`, read
from the engine it created; overflow connections stay free) and the `async def` dependency
holds it for the session's whole life, so that requests beyond the pool's
capacity wait on the event loop instead of in a threadpool thread blocked on
the pool. `def` and `async def` endpoints alike get the sync `Session`.
Lifespan pattern: sm-Fifteen in https://github.com/fastapi/fastapi/issues/726 ;
the deadlock it guards against (threadpool threads all blocked on an exhausted
pool): https://github.com/fastapi/fastapi/issues/3205 and
https://github.com/fastapi/fastapi/discussions/6628 ; the semaphore:
https://anyio.readthedocs.io/en/stable/synchronization.html#semaphores ; the
pool's capacity: https://docs.sqlalchemy.org/en/20/core/pooling.html
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database


@asynccontextmanager
async def lifespan(app: FastAPI):
    engines = {"": create_engine(os.environ["DATABASE_URL"])}
    if SECOND_DATABASE_URL:
        engines["second_"] = create_engine(SECOND_DATABASE_URL)
    state = {}
    for prefix, engine in engines.items():
        state[f"{prefix}sessionmaker"] = sessionmaker(engine)
        state[f"{prefix}semaphore"] = anyio.Semaphore(engine.pool.size())
    yield state
    for engine in engines.values():
        engine.dispose()


app = FastAPI(lifespan=lifespan)


async def get_db(request: Request):
    async with request.state.semaphore:
        with request.state.sessionmaker() as session:
            yield session


SessionDep = Annotated[Session, Depends(get_db)]


# An app with a second database (SECOND_DATABASE_URL): a session for each, each under its own pool's semaphore.
async def get_second_db(request: Request):
    async with request.state.second_semaphore:
        with request.state.second_sessionmaker() as session:
            yield session


SECOND_SESSION = Annotated[Session, Depends(get_second_db)] if SECOND_DATABASE_URL else None
