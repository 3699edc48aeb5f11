"""advanced-alchemy 1.12 FastAPI extension, `commit_mode="autocommit"`: its middleware commits after the response

The same library and module as `advanced_alchemy_manual`, with the commit mode its
FastAPI docs' "Basic Setup" uses (https://advanced-alchemy.litestar.dev/latest/usage/frameworks/fastapi.html,
the repository's docs/usage/frameworks/fastapi.rst, https://github.com/litestar-org/advanced-alchemy;
PyPI 1.12.0):

    alchemy_config = SQLAlchemyAsyncConfig(
        connection_string="sqlite+aiosqlite:///test.sqlite",
        session_config=AsyncSessionConfig(expire_on_commit=False),
        create_all=True,
        commit_mode="autocommit",
    )
    app = FastAPI()
    alchemy = AdvancedAlchemy(config=alchemy_config, app=app)

    DatabaseSession = Annotated[AsyncSession, Depends(alchemy.provide_session())]

and its controllers only call the service (`await authors_service.create(data)`), so
the endpoints here only add rows and leave the commit to the extension. In 1.12.0 the
commit is the `SessionMiddleware`'s (a pure ASGI middleware, one per config): once the
app has returned, after the response and any background task have been sent, it
commits when the status was 2xx and rolls back otherwise, and a commit that fails
there is logged at debug level (`"Session commit/rollback failed during middleware
cleanup"`) and swallowed. `def` endpoints get a sync `Session` from a second config, as
the Starlette docs' "Multiple Binds" show; `create_all=True` is left out (its metadata is
advanced-alchemy's own model registry, which holds no table here). The engines are
created at import and disposed by the lifespan the extension wraps around the app's.
A second database is measured on `advanced_alchemy_manual` only: the bind keys do not
depend on the commit mode.
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

app = FastAPI()
alchemy = AdvancedAlchemy(
    config=[
        SQLAlchemyAsyncConfig(
            connection_string=os.environ["ASYNC_DATABASE_URL"],
            session_config=AsyncSessionConfig(expire_on_commit=False),
            commit_mode="autocommit",
        ),
        SQLAlchemySyncConfig(connection_string=os.environ["DATABASE_URL"], bind_key="sync", commit_mode="autocommit"),
    ],
    app=app,
)

DatabaseSession = Annotated[AsyncSession, Depends(alchemy.provide_session())]
SyncDatabaseSession = Annotated[Session, Depends(alchemy.provide_session("sync"))]
COMMITS_AFTER_ENDPOINT = True  # "autocommit": the middleware commits a 2xx response's session
