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
session manually, as `FastSQLA` handles it automatically", so the endpoints leave
the commit to the library. `Session` is `Depends(new_session,
scope="function")`: on FastAPI 0.121+ the commit runs before the response is sent.
"""

import os

from fastapi import FastAPI
from fastsqla import Session, lifespan, open_session  # noqa: F401 (Session: `async def get_hero(session: Session)`)

REQUIRES = ("fastsqla>=0.9",)

os.environ["sqlalchemy_url"] = os.environ["ASYNC_DATABASE_URL"]

app = FastAPI(lifespan=lifespan)

COMMITS_AFTER_ENDPOINT = True
# "To the contrary of the Session dependency which can only be used in endpoints, `open_session` can be used
# anywhere such as in background tasks" (`fastsqla.open_session`'s docstring).
BACKGROUND_SESSION = open_session
