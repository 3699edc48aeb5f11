"""`async_scoped_session` keyed on the current task

A global `async_scoped_session` registry with `scopefunc=asyncio.current_task`,
called directly in routes; an app-level `async` yield dependency awaits
`Session.remove()` in the request's own task. SQLAlchemy docs, "Using asyncio
scoped session":
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#using-asyncio-scoped-session
"""

import os
from asyncio import current_task

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker, create_async_engine

from experiments import probes

UNSUPPORTED = {
    "/sync/tag": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/write": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/model": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/user": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/conflict": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/stream": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/background": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/created": "an AsyncSession cannot be used from a `def` endpoint",
    "/sync/write2": "an AsyncSession cannot be used from a `def` endpoint",
}

engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
Session = async_scoped_session(async_sessionmaker(engine, expire_on_commit=False), scopefunc=current_task)
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")  # set when the app has a second database
SecondSession = None
if SECOND_DATABASE_URL:
    SecondSession = async_scoped_session(
        async_sessionmaker(create_async_engine(SECOND_DATABASE_URL), expire_on_commit=False), scopefunc=current_task
    )


async def remove_session():
    try:
        yield
    finally:
        await Session.remove()
        if SecondSession is not None:
            await SecondSession.remove()


app = FastAPI(dependencies=[Depends(remove_session)])


async def load_user() -> int:
    return probes.session_key(Session())


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return await probes.tag_async(Session(), tag, delay, query)


@app.get("/same")
async def same(user: int = Depends(load_user)):
    return probes.same_session(user, Session())


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return await probes.write_async(Session(), key, fail, delay)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


@app.post("/async/conflict")
async def async_conflict(key: str):
    result = probes.add_conflicting(Session(), key)
    await Session().commit()
    return result


# Session() inside the stream and the task: they look up their task's session when they run, as code
# calling the global registry does.
async def stream(chunks: int, delay: float):
    async for chunk in probes.stream_async(Session(), chunks, delay):
        yield chunk


async def write_later(key: str):
    await probes.write_later_async(Session(), key)


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float):
    return StreamingResponse(stream(chunks, delay), media_type="application/x-ndjson")


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_later, key)
    return {"key": key}


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str):
    return await probes.create_async(Session(), key)


# An app with a second database (ASYNC_SECOND_DATABASE_URL): a registry for each, removed together.
if SecondSession is not None:

    @app.post("/async/write2")
    async def async_write2(key: str, fail: bool, delay: float):
        return await probes.write_both_async(Session(), SecondSession(), key, fail, delay)
