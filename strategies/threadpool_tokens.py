"""Engine in lifespan, threadpool tokens set to the pool's capacity

lifespan_dependency's pattern plus, in the lifespan, the threadpool's tokens
(how many `def` endpoints and dependencies run at once) set to the engine's pool
capacity, `pool.size()` plus its overflow, read from the engine it created.
Kludex's FastAPI tips (§2, "Be careful with non-async functions") advise raising
`total_tokens` in the lifespan: https://github.com/Kludex/fastapi-tips ; here
they are matched to the pool. AnyIO's default limiter:
https://anyio.readthedocs.io/en/stable/threads.html#adjusting-the-default-maximum-worker-thread-count ;
lifespan pattern: sm-Fifteen in https://github.com/fastapi/fastapi/issues/726
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database


@asynccontextmanager
async def lifespan(app: FastAPI):
    urls = {"sessionmaker": os.environ["DATABASE_URL"], "second_sessionmaker": SECOND_DATABASE_URL}
    engines = {name: create_engine(url) for name, url in urls.items() if url}
    pool = engines["sessionmaker"].pool
    anyio.to_thread.current_default_thread_limiter().total_tokens = pool.size() + pool._max_overflow
    yield {name: sessionmaker(engine) for name, engine in engines.items()}
    for engine in engines.values():
        engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


# An app with a second database (SECOND_DATABASE_URL): a session for each, from its own dependency.
def get_second_db(request: Request):
    with request.state.second_sessionmaker() as session:
        yield session


SECOND_SESSION = Annotated[Session, Depends(get_second_db)] if SECOND_DATABASE_URL else None
