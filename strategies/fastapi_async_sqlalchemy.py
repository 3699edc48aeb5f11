"""fastapi-async-sqlalchemy 0.7.1 (0.8 on Python 3.12+): `SQLAlchemyMiddleware` and its global `db.session` AsyncSession

The asyncio descendant of fastapi-sqlalchemy, written as its README's
"Examples" section shows (https://github.com/h0rn3t/fastapi-async-sqlalchemy):

    app = FastAPI()
    app.add_middleware(
        SQLAlchemyMiddleware,
        db_url="postgresql+asyncpg://user:user@192.168.88.200:5432/primary_db",
        engine_args={ ... },  # "engine arguments example"
    )
    # once the middleware is applied, any route can then access the database session
    # from the global ``db``

    @app.get("/")
    async def get_files():
        result = await db.session.execute(foo.select())

"Note that the session object provided by ``db.session`` is based on the
Python3.7+ ``ContextVar``. This means that each session is linked to the
individual request context in which it was created."

Default settings: `db_url` only (the README's `engine_args` are labelled an
example; without them the engine gets SQLAlchemy's defaults) and
`commit_on_exit=False`, so the endpoints commit (`fastapi_async_sqlalchemy_commit`
is the other setting). In 0.7.1 the middleware is a `BaseHTTPMiddleware` that
builds `async_sessionmaker(expire_on_commit=False)` over an engine it creates in
its `__init__` (when Starlette builds the middleware stack) and never disposes.
0.7.1.post3 is the last release installable on Python 3.11; 0.8 (Python 3.12+) is
a rewrite as a plain ASGI middleware whose README adds "Engines created from
``db_url`` are owned by the middleware and are disposed during the application
shutdown lifespan". The same module measures whichever is installed.
"""

import os

from fastapi import FastAPI
from fastapi_async_sqlalchemy import SQLAlchemyMiddleware, create_middleware_and_session_proxy, db

REQUIRES = ("fastapi-async-sqlalchemy>=0.7",)

app = FastAPI()
app.add_middleware(SQLAlchemyMiddleware, db_url=os.environ["ASYNC_DATABASE_URL"])

# `db.session` where the session is used: a stream or a task reads the library's ContextVar when it runs.
ASYNC_SESSION_FROM = lambda: db.session  # noqa: E731
SECOND_SESSION_FROM = None

# An app with a second database (ASYNC_SECOND_DATABASE_URL), as the README's "Usage of multiple databases" shows:
# a second middleware and its session proxy, made by create_middleware_and_session_proxy().
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")
if SECOND_DATABASE_URL:
    SecondSQLAlchemyMiddleware, second_db = create_middleware_and_session_proxy()
    app.add_middleware(SecondSQLAlchemyMiddleware, db_url=SECOND_DATABASE_URL)
    SECOND_SESSION_FROM = lambda: second_db.session  # noqa: E731
