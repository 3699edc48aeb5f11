"""SQLModel 0.0.50 tutorial: `sqlmodel.create_engine` at import, a `get_session` yield dependency as `SessionDep` type

What FastAPI's "SQL (Relational) Databases" tutorial now teaches, with SQLModel
(https://fastapi.tiangolo.com/tutorial/sql-databases/ , "Create an Engine" and
"Create a Session Dependency"; SQLModel's own "Session with FastAPI Dependency",
https://sqlmodel.tiangolo.com/tutorial/fastapi/session-with-dependency/):

    connect_args = {"check_same_thread": False}
    engine = create_engine(sqlite_url, connect_args=connect_args)

    def get_session():
        with Session(engine) as session:
            yield session

    SessionDep = Annotated[Session, Depends(get_session)]

"Using `check_same_thread=False` allows FastAPI to use the same SQLite database in
different threads." It is a SQLite argument (a PostgreSQL driver rejects it), so
it is passed only when DATABASE_URL is SQLite. The tutorial's
`SQLModel.metadata.create_all(engine)` at startup is left out: the harness has
created the table. `sqlmodel.create_engine` is SQLAlchemy's
`sqlalchemy.engine.create_engine`, reached through its own import path; `Session`
is SQLModel's subclass of SQLAlchemy's.
"""

import os
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlmodel import Session, create_engine

from experiments import probes

REQUIRES = ("sqlmodel>=0.0.14",)

database_url = os.environ["DATABASE_URL"]
connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
engine = create_engine(database_url, connect_args=connect_args)


def get_session():
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

app = FastAPI()


def load_user(session: SessionDep) -> int:
    return probes.session_key(session)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, session: SessionDep):
    return probes.tag(session, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, session: SessionDep):
    return await probes.tag_async(session, tag, delay, query)


@app.get("/same")
def same(user: Annotated[int, Depends(load_user)], session: SessionDep):
    return probes.same_session(user, session)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, session: SessionDep):
    return probes.write(session, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, session: SessionDep):
    return await probes.write_async(session, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(session: SessionDep) -> int:
    return probes.current_user(session)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, session: SessionDep):
    return probes.load_note(session, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: Annotated[int, Depends(current_user)]):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str, session: SessionDep):
    result = probes.add_conflicting(session, key)
    session.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str, session: SessionDep):
    result = probes.add_conflicting(session, key)
    session.commit()
    return result


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, session: SessionDep):
    return StreamingResponse(probes.stream(session, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, session: SessionDep):
    return StreamingResponse(probes.stream_async(session, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, session: SessionDep):
    tasks.add_task(probes.write_later, session, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, session: SessionDep):
    tasks.add_task(probes.write_later_async, session, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, session: SessionDep):
    return probes.create(session, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, session: SessionDep):
    return await probes.create_async(session, key)
