"""known-good: endpoints take a sessionmaker from a dependency, and use-case classes open their sessions from it

Must pass testability and rollback_tests: the dependency hands out a
`sessionmaker` (an `async_sessionmaker` to the `async def` endpoints), so a
test overrides it with a sessionmaker of its own (bound, to roll back, to a
connection inside its transaction). A session in its place would not do: the
use cases call what they are given to open one.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
AsyncSessionLocal = async_sessionmaker(create_async_engine(os.environ["ASYNC_DATABASE_URL"]), expire_on_commit=False)
GOOD_FOR = ("testability", "rollback_tests")
app = FastAPI()


def get_sessionmaker() -> sessionmaker:
    return SessionLocal


def get_async_sessionmaker() -> async_sessionmaker:
    return AsyncSessionLocal


Sessions = Annotated[sessionmaker, Depends(get_sessionmaker)]
AsyncSessions = Annotated[async_sessionmaker, Depends(get_async_sessionmaker)]


class Notes:
    """The use cases: each opens a session of its own from the sessionmaker it was given."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def tag(self, tag: str, delay: float, query: bool) -> dict:
        with self.sessions() as session:
            return probes.tag(session, tag, delay, query)

    def write(self, key: str, fail: bool, delay: float) -> dict:
        with self.sessions() as session:
            return probes.write(session, key, fail, delay)


class AsyncNotes:
    """The same use cases on an `async_sessionmaker`."""

    def __init__(self, sessions: async_sessionmaker):
        self.sessions = sessions

    async def tag(self, tag: str, delay: float, query: bool) -> dict:
        async with self.sessions() as session:
            return await probes.tag_async(session, tag, delay, query)

    async def write(self, key: str, fail: bool, delay: float) -> dict:
        async with self.sessions() as session:
            return await probes.write_async(session, key, fail, delay)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, sessions: Sessions):
    return Notes(sessions).tag(tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, sessions: AsyncSessions):
    return await AsyncNotes(sessions).tag(tag, delay, query)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, sessions: Sessions):
    return Notes(sessions).write(key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, sessions: AsyncSessions):
    return await AsyncNotes(sessions).write(key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
