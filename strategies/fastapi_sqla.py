"""fastapi-sqla 4.0 (dialoguemd): `startup()` in lifespan, `setup_middlewares`, the `Session` dependency

Written as its README's "Setup the app AsyncContextManager (recommended)" and
"Getting an sqla session / Using dependency injection" sections show
(https://github.com/dialoguemd/fastapi-sqla):

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await fastapi_sqla.startup()
        yield

    app = FastAPI(lifespan=lifespan)
    fastapi_sqla.setup_middlewares(app)

    @router.get("/example")
    def example(session: Session):

"The SQLAlchemy session is committed before the response is returned or
rollbacked if any exception occurred", so the conflict routes leave the commit to
the library. Configuration is environment variables: "The only required key is
`sqlalchemy_url`"; every `sqlalchemy_*` variable becomes a keyword of the engine
(`engine_from_config`). The app sets `sqlalchemy_url` from the contract's
DATABASE_URL, as a deployment would. The README's SQLite example appends
`?check_same_thread=false`; SQLAlchemy 2 already sets it for file databases.

The default key gets a sync engine here (DATABASE_URL), so the `async def`
routes take the sync `Session` too, as in the other sync strategies; the
library's `AsyncSession` needs the default key (or a second one) on an async
driver. The engine is created by `startup()` and never disposed (the library has
no shutdown hook); `setup_middlewares` builds one more at import, only to read its
dialect. It pins `fastapi<0.142`, ships a pytest plugin (`pytest11` entry point,
which imports alembic, installed only with its `pytest-plugin` extra) and warns
at import under pydantic 2 (`class Config`).
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

import fastapi_sqla
from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_sqla import Session

from experiments import probes

REQUIRES = ("fastapi-sqla>=4.0", "fastapi<0.142")

os.environ["sqlalchemy_url"] = os.environ["DATABASE_URL"]


@asynccontextmanager
async def lifespan(app: FastAPI):
    await fastapi_sqla.startup()
    yield


app = FastAPI(lifespan=lifespan)
fastapi_sqla.setup_middlewares(app)


def load_user(session: Session) -> int:
    return probes.session_key(session)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, session: Session):
    return probes.tag(session, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, session: Session):
    return await probes.tag_async(session, tag, delay, query)


@app.get("/same")
def same(user: Annotated[int, Depends(load_user)], session: Session):
    return probes.same_session(user, session)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, session: Session):
    return probes.write(session, key, fail, delay, commit=False)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, session: Session):
    return await probes.write_async(session, key, fail, delay, commit=False)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(session: Session) -> int:
    return probes.current_user(session)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, session: Session):
    return probes.load_note(session, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: Annotated[int, Depends(current_user)]):
    return probes.greet(user, delay)


# The library commits before the response is returned: the pattern's place for the commit.
@app.post("/sync/conflict")
def sync_conflict(key: str, session: Session):
    return probes.add_conflicting(session, key)


@app.post("/async/conflict")
async def async_conflict(key: str, session: Session):
    return probes.add_conflicting(session, key)


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, session: Session):
    return StreamingResponse(probes.stream(session, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, session: Session):
    return StreamingResponse(probes.stream_async(session, chunks, delay), media_type="application/x-ndjson")


# "When needing a session outside of a path operation, like when using FastAPI background tasks, use
# `fastapi_sqla.open_session` context manager" (README, "Using a context manager").
def write_in_own_session(key: str) -> None:
    with fastapi_sqla.open_session() as session:
        probes.write_later(session, key)


async def write_in_own_session_async(key: str) -> None:
    with fastapi_sqla.open_session() as session:
        await probes.write_later_async(session, key)


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_in_own_session, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_in_own_session_async, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, session: Session):
    return probes.create(session, key, commit=False)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, session: Session):
    return await probes.create_async(session, key, commit=False)
