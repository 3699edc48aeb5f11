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
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

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

# provide_session(key), as the FastAPI docs' `ReportingSession` shows. In 1.12.0 two configs of one kind (async, or
# sync) share one `request.state` key (`_make_unique_state_key` looks on `app.state`, where nothing stores them),
# so this returns the request's default-bind session.
SECOND_SESSION = ASYNC_SECOND_SESSION = None
if SECOND_DATABASE_URL:
    SECOND_SESSION = Annotated[Session, Depends(alchemy.provide_session("second_sync"))]
    ASYNC_SECOND_SESSION = Annotated[AsyncSession, Depends(alchemy.provide_session("second"))]
