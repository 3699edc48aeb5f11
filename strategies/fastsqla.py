"""FastSQLA 0.9 (Python 3.12+): its `lifespan` owns the async engine, the `Session` dependency commits

A row because it is the maintained library of the pattern the thread converges
on: the engine lives in the app's lifespan and is disposed at shutdown, and a
dependency opens one session per request (0.9.22 released 2026-10; async-only;
by an author of fastapi-sqla). Written as its README's
"Quick Example" shows (https://github.com/hadrien/FastSQLA):

    app = FastAPI(lifespan=lifespan)

    @app.get("/heros/{hero_id}", response_model=Item[HeroModel])
    async def get_hero(hero_id: int, session: Session):
        hero = await session.get(Hero, hero_id)

run with `sqlalchemy_url=sqlite+aiosqlite:///db.sqlite?check_same_thread=false
uvicorn example:app`: `fastsqla.lifespan` builds the engine with
`async_engine_from_config` from the `sqlalchemy_*` environment variables, so the
app sets `sqlalchemy_url` from the contract's ASYNC_DATABASE_URL (the README's
SQLite query parameter is already SQLAlchemy 2's default for file databases).
"Session lifecycle management: session is commited on request success or
rollback on failure", and the `Session` docstring advises "avoid committing the
session manually, as `FastSQLA` handles it automatically", so the conflict route
leaves the commit to the library. `Session` is `Depends(new_session,
scope="function")`: on FastAPI 0.121+ the commit runs before the response is sent.
"""

import os
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastsqla import Session, lifespan, open_session

from experiments import probes

REQUIRES = ("fastsqla>=0.9",)

UNSUPPORTED = {
    "/sync/tag": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/model": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/user": "fastsqla's Session is an AsyncSession, which a `def` dependency cannot await",
    "/sync/conflict": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/stream": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/background": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
    "/sync/created": "fastsqla's Session is an AsyncSession, which a `def` endpoint cannot await",
}

os.environ["sqlalchemy_url"] = os.environ["ASYNC_DATABASE_URL"]

app = FastAPI(lifespan=lifespan)


async def load_user(session: Session) -> int:
    return probes.session_key(session)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, session: Session):
    return await probes.tag_async(session, tag, delay, query)


@app.get("/same")
async def same(user: Annotated[int, Depends(load_user)], session: Session):
    return probes.same_session(user, session)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, session: Session):
    return await probes.write_async(session, key, fail, delay, commit=False)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


# The library commits when the endpoint has returned: the pattern's place for the commit.
@app.post("/async/conflict")
async def async_conflict(key: str, session: Session):
    return probes.add_conflicting(session, key)


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, session: Session):
    return StreamingResponse(probes.stream_async(session, chunks, delay), media_type="application/x-ndjson")


# "To the contrary of the Session dependency which can only be used in endpoints, `open_session` can be used
# anywhere such as in background tasks" (`fastsqla.open_session`'s docstring).
async def write_in_own_session(key: str) -> None:
    async with open_session() as session:
        await probes.write_later_async(session, key)


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks):
    tasks.add_task(write_in_own_session, key)
    return {"key": key}


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, session: Session):
    return await probes.create_async(session, key, commit=False)
