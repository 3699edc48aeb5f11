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
rollbacked if any exception occurred", so the endpoints leave the commit to the
library. Configuration is environment variables: "The only required key is
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

import fastapi_sqla
from fastapi import FastAPI
from fastapi_sqla import Session  # noqa: F401 (the endpoints' session: `def example(session: Session)`)

REQUIRES = ("fastapi-sqla>=4.0", "fastapi<0.142")

os.environ["sqlalchemy_url"] = os.environ["DATABASE_URL"]


@asynccontextmanager
async def lifespan(app: FastAPI):
    await fastapi_sqla.startup()
    yield


app = FastAPI(lifespan=lifespan)
fastapi_sqla.setup_middlewares(app)

COMMITS_AFTER_ENDPOINT = True  # "committed before the response is returned"
# "When needing a session outside of a path operation, like when using FastAPI background tasks, use
# `fastapi_sqla.open_session` context manager" (README, "Using a context manager").
BACKGROUND_SESSION = fastapi_sqla.open_session
