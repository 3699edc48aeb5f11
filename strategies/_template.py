"""My pattern: one line, the label of this strategy in the report

Say where the pattern comes from: the docs page, the issue thread, the library.
`nox -s new -- NAME` copies this file to strategies/NAME.py; files whose name
starts with `_` are not strategies.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes


# The harness sets DATABASE_URL (sync driver) and ASYNC_DATABASE_URL (async driver)
# to a fresh database with the probe table in it, as a deployment would.
# The engine lives as long as the app: created at startup, disposed at shutdown,
# so that reloads and restarts leave no connection behind; `pool_pre_ping` tests a
# pooled connection before handing it out, so that one the server dropped is replaced.
@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


app = FastAPI(lifespan=lifespan)

# Probe routes this pattern cannot serve, with the reason; their checks are skipped.
UNSUPPORTED: dict[str, str] = {}

# What the pattern needs installed (PEP 508); where unmet, its rows are skipped with the reason.
REQUIRES = ("fastapi>=0.121",)  # Depends(scope=...)


# Replace this with your pattern: where the session comes from is what is measured.
# scope="function" (FastAPI >= 0.121) closes the session when the endpoint
# returns, before the response is sent, instead of after it.
def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]


# The routes below are the contract (experiments/probes.py). Keep the paths,
# methods and parameters; change only how each one gets its session.
def load_user(db: SessionDep) -> int:
    """Stands for a dependency that needs the session too ("load the current user")."""
    return probes.session_key(db)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: SessionDep):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: SessionDep):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/same")
def same(user: Annotated[int, Depends(load_user)], db: SessionDep):
    return probes.same_session(user, db)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: SessionDep):
    return probes.write(db, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: SessionDep):
    return await probes.write_async(db, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(db: SessionDep) -> int:
    return probes.current_user(db)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db: SessionDep):
    return probes.load_note(db, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: Annotated[int, Depends(current_user)]):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str, db: SessionDep):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str, db: SessionDep):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db: SessionDep):
    return StreamingResponse(probes.stream(db, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: SessionDep):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db: SessionDep):
    tasks.add_task(probes.write_later, db, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: SessionDep):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db: SessionDep):
    return probes.create(db, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: SessionDep):
    return await probes.create_async(db, key)
