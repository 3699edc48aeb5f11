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

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_async_sqlalchemy import SQLAlchemyMiddleware, create_middleware_and_session_proxy, db

from experiments import probes

REQUIRES = ("fastapi-async-sqlalchemy>=0.7",)

UNSUPPORTED = {
    "/sync/tag": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/model": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/user": "db.session is an AsyncSession, which a `def` dependency cannot await",
    "/sync/conflict": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/stream": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/background": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/created": "db.session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write2": "db.session is an AsyncSession, which a `def` endpoint cannot await",
}

app = FastAPI()
app.add_middleware(SQLAlchemyMiddleware, db_url=os.environ["ASYNC_DATABASE_URL"])


async def load_user() -> int:
    return probes.session_key(db.session)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(db.session, tag, delay, query)


@app.get("/same")
async def same(user: int = Depends(load_user)):
    return probes.same_session(user, db.session)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(db.session, key, fail, delay)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


@app.post("/async/conflict")
async def async_conflict(key: str):
    result = probes.add_conflicting(db.session, key)
    await db.session.commit()
    return result


# db.session inside the stream and the task: they read the library's ContextVar when they run, as code anywhere does.
async def stream(chunks: int, delay: float):
    async for chunk in probes.stream_async(db.session, chunks, delay):
        yield chunk


async def write_later(key: str):
    await probes.write_later_async(db.session, key)


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float):
    return StreamingResponse(stream(chunks, delay), media_type="application/x-ndjson")


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_later, key)
    return {"key": key}


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str):
    return await probes.create_async(db.session, key)


# An app with a second database (ASYNC_SECOND_DATABASE_URL), as the README's "Usage of multiple databases" shows:
# a second middleware and its session proxy, made by create_middleware_and_session_proxy().
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")
if SECOND_DATABASE_URL:
    SecondSQLAlchemyMiddleware, second_db = create_middleware_and_session_proxy()
    app.add_middleware(SecondSQLAlchemyMiddleware, db_url=SECOND_DATABASE_URL)

    @app.post("/async/write2")
    async def async_write2(key: str, fail: bool, delay: float):
        return await probes.write_both_async(db.session, second_db.session, key, fail, delay)
