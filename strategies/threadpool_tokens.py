"""Engine in lifespan, threadpool tokens set to the pool's capacity

lifespan_dependency's pattern (one database) plus, in the lifespan, the threadpool's tokens
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


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"])
    anyio.to_thread.current_default_thread_limiter().total_tokens = engine.pool.size() + engine.pool._max_overflow
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
