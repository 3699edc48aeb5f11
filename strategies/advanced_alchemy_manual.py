"""advanced-alchemy 1.12 FastAPI extension, `commit_mode="manual"`: its middleware closes the session after the response

Written as its FastAPI docs' "Basic Setup" and "Dependency Injection" sections show
(https://advanced-alchemy.litestar.dev/latest/usage/frameworks/fastapi.html, the repository's
docs/usage/frameworks/fastapi.rst, https://github.com/litestar-org/advanced-alchemy; PyPI 1.12.0):

    alchemy_config = SQLAlchemyAsyncConfig(
        connection_string="sqlite+aiosqlite:///test.sqlite",
        session_config=AsyncSessionConfig(expire_on_commit=False),
        create_all=True,
        commit_mode="autocommit",
    )
    app = FastAPI()
    alchemy = AdvancedAlchemy(config=alchemy_config, app=app)

    DatabaseSession = Annotated[AsyncSession, Depends(alchemy.provide_session())]

    author_router = APIRouter()
    ...
    app.include_router(author_router)

with `commit_mode="manual"`, the config's default: the endpoints commit, and the
middleware rolls back what is left. `def` endpoints get a sync `Session` from a second
config, as the Starlette docs' "Multiple Binds" show (`SQLAlchemySyncConfig(...,
bind_key="reporting")` next to the async default) and `provide_session(key)` takes it.
`create_all=True` is left out: its metadata is advanced-alchemy's own model registry,
which holds no table here (the harness has created the probe table).

What the library does with it (1.12.0 source): `init_app` creates each config's engine
at import and adds one `SessionMiddleware` per config, and wraps the app's lifespan so
that shutdown disposes the engines. `provide_session()` returns a plain `def` that
creates the session on first use and keeps it on `request.state`; the middleware, a
pure ASGI one, commits or rolls it back and closes it once the app has returned, after
the response (and any background task) has been sent.
"""

import os
from typing import Annotated

from advanced_alchemy.extensions.fastapi import (
    AdvancedAlchemy,
    AsyncSessionConfig,
    SQLAlchemyAsyncConfig,
    SQLAlchemySyncConfig,
)
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from experiments import probes

REQUIRES = ("advanced-alchemy>=1.12",)

COMMIT_MODE = "manual"
configs = [
    SQLAlchemyAsyncConfig(
        connection_string=os.environ["ASYNC_DATABASE_URL"],
        session_config=AsyncSessionConfig(expire_on_commit=False),
        commit_mode=COMMIT_MODE,
    ),
    SQLAlchemySyncConfig(connection_string=os.environ["DATABASE_URL"], bind_key="sync", commit_mode=COMMIT_MODE),
]
# An app with a second database (SECOND_DATABASE_URL, ASYNC_SECOND_DATABASE_URL): one more bind key for each driver.
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")
if SECOND_DATABASE_URL:
    configs += [
        SQLAlchemyAsyncConfig(
            connection_string=os.environ["ASYNC_SECOND_DATABASE_URL"],
            session_config=AsyncSessionConfig(expire_on_commit=False),
            bind_key="second",
            commit_mode=COMMIT_MODE,
        ),
        SQLAlchemySyncConfig(connection_string=SECOND_DATABASE_URL, bind_key="second_sync", commit_mode=COMMIT_MODE),
    ]

app = FastAPI()
alchemy = AdvancedAlchemy(config=configs, app=app)

DatabaseSession = Annotated[AsyncSession, Depends(alchemy.provide_session())]
SyncDatabaseSession = Annotated[Session, Depends(alchemy.provide_session("sync"))]

router = APIRouter()


def load_user(db_session: SyncDatabaseSession) -> int:
    return probes.session_key(db_session)


@router.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db_session: SyncDatabaseSession):
    return probes.tag(db_session, tag, delay, query)


@router.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db_session: DatabaseSession):
    return await probes.tag_async(db_session, tag, delay, query)


@router.get("/same")
def same(user: Annotated[int, Depends(load_user)], db_session: SyncDatabaseSession):
    return probes.same_session(user, db_session)


@router.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db_session: SyncDatabaseSession):
    return probes.write(db_session, key, fail, delay)


@router.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db_session: DatabaseSession):
    return await probes.write_async(db_session, key, fail, delay)


@router.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db_session: SyncDatabaseSession):
    return probes.create(db_session, key)


@router.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db_session: DatabaseSession):
    return await probes.create_async(db_session, key)


@router.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(db_session: SyncDatabaseSession) -> int:
    return probes.current_user(db_session)


@router.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db_session: SyncDatabaseSession):
    return probes.load_note(db_session, delay)


@router.get("/sync/user")
def sync_user(delay: float, user: Annotated[int, Depends(current_user)]):
    return probes.greet(user, delay)


# "manual": the endpoint commits; what it leaves uncommitted the middleware rolls back.
@router.post("/sync/conflict")
def sync_conflict(key: str, db_session: SyncDatabaseSession):
    result = probes.add_conflicting(db_session, key)
    db_session.commit()
    return result


@router.post("/async/conflict")
async def async_conflict(key: str, db_session: DatabaseSession):
    result = probes.add_conflicting(db_session, key)
    await db_session.commit()
    return result


@router.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db_session: SyncDatabaseSession):
    return StreamingResponse(probes.stream(db_session, chunks, delay), media_type="application/x-ndjson")


@router.get("/async/stream")
async def async_stream(chunks: int, delay: float, db_session: DatabaseSession):
    return StreamingResponse(probes.stream_async(db_session, chunks, delay), media_type="application/x-ndjson")


@router.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db_session: SyncDatabaseSession):
    tasks.add_task(probes.write_later, db_session, key)
    return {"key": key}


@router.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db_session: DatabaseSession):
    tasks.add_task(probes.write_later_async, db_session, key)
    return {"key": key}


# provide_session(key), as the FastAPI docs' `ReportingSession` shows. In 1.12.0 two configs of one kind (async, or
# sync) share one `request.state` key (`_make_unique_state_key` looks on `app.state`, where nothing stores them),
# so this returns the request's default-bind session.
if SECOND_DATABASE_URL:
    SecondSession = Annotated[AsyncSession, Depends(alchemy.provide_session("second"))]
    SyncSecondSession = Annotated[Session, Depends(alchemy.provide_session("second_sync"))]

    @router.post("/sync/write2")
    def sync_write2(key: str, fail: bool, delay: float, db_session: SyncDatabaseSession, second: SyncSecondSession):
        return probes.write_both(db_session, second, key, fail, delay)

    @router.post("/async/write2")
    async def async_write2(key: str, fail: bool, delay: float, db_session: DatabaseSession, second: SecondSession):
        return await probes.write_both_async(db_session, second, key, fail, delay)


app.include_router(router)
