"""Engine in lifespan with pre-ping, a `def` session dependency behind a pool-sized, bounded gate

For apps whose endpoints are all `def`. The engine lives as long as the app;
each request's `Session` is opened and closed in a `def` dependency, so its
I/O, teardown included, runs in the threadpool and never on the event loop.
An `async def` gate in front admits as many requests as the pool has
connections: the others wait on the event loop, holding no threadpool thread,
for at most ADMISSION_TIMEOUT_S, then get 503 with Retry-After.
Written for this project from FastAPI's "Dependencies with yield" and
"Lifespan Events" pages, SQLAlchemy's "Dealing with Disconnects" (pre-ping),
and the pool deadlock of https://github.com/fastapi/fastapi/issues/3205 .
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

DATABASE_URL = os.environ["DATABASE_URL"]
ADMISSION_TIMEOUT_S = 30

UNSUPPORTED = {  # for the harness: this pattern is for `def` endpoints only
    path: "for apps whose endpoints are all `def`: an `async def` endpoint would query through this sync "
    "Session on the event loop (gated_sync_and_async_sessions gives it an AsyncSession)"
    for path in (
        "/async/tag",
        "/async/write",
        "/async/conflict",
        "/async/stream",
        "/async/background",
        "/async/created",
    )
}


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(DATABASE_URL, pool_pre_ping=True)
    yield {"sessionmaker": sessionmaker(engine), "gate": anyio.Semaphore(engine.pool.size())}
    engine.dispose()


app = FastAPI(lifespan=lifespan)


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
    "pool_pre_ping=True": ("create_engine(DATABASE_URL, pool_pre_ping=True)", "create_engine(DATABASE_URL)"),
    "engine.dispose()": ("    engine.dispose()\n", ""),
    "the gate, Depends(admitted)": (", _: Annotated[None, Depends(admitted)]", ""),
    "with ... as session (closes it)": (
        "with request.state.sessionmaker() as session:\n        yield session",
        "yield request.state.sessionmaker()",
    ),
}
