"""known-good: the template's session, with its routes on routers and a mounted sub-application

Written the way apps bigger than one file are (FastAPI's "Bigger Applications -
Multiple Files", https://fastapi.tiangolo.com/tutorial/bigger-applications/ ,
and Netflix Dispatch's `app.mount("/api/v1", app=api)`,
https://github.com/Netflix/dispatch/blob/master/src/dispatch/main.py): no probe
route sits on the app itself. The tag and write routes are on routers nested in
another, included under prefixes (/api/v1/sessions/sync/tag,
/api/v1/rows/sync/write); the conflicts, created rows, streams and background
tasks on a router of a FastAPI sub-application mounted at /internal
(/internal/jobs/sync/conflict); /nodb on a router included without a prefix. The
session is the template's own (an engine in lifespan, a `scope="function"`
dependency), so it must pass what the template passes: the harness finds each
probe route wherever the app serves it and sends the checks' requests there.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

REQUIRES = ("fastapi>=0.121",)  # Depends(scope=...)
GOOD_FOR = (
    "isolation_async",
    "isolation_threadpool",
    "carryover_sequential",
    "same_session_in_request",
    "lost_writes",
    "reload_server",
    "reload_in_process",
    "shutdown",
    "cleanup_on_error",
    "cleanup_timing",
    "background_tasks",
    "sessions_nobody_needed",
    "testability",
    "rollback_tests",
    "objects_after_commit",
)


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"])
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]


# app/routers/sessions.py
sessions = APIRouter(tags=["sessions"])


def load_user(db: SessionDep) -> int:
    return probes.session_key(db)


def current_user(db: SessionDep) -> int:
    return probes.current_user(db)


@sessions.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: SessionDep):
    return probes.tag(db, tag, delay, query)


@sessions.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: SessionDep):
    return await probes.tag_async(db, tag, delay, query)


@sessions.get("/same")
def same(user: Annotated[int, Depends(load_user)], db: SessionDep):
    return probes.same_session(user, db)


@sessions.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db: SessionDep):
    return probes.load_note(db, delay)


@sessions.get("/sync/user")
def sync_user(delay: float, user: Annotated[int, Depends(current_user)]):
    return probes.greet(user, delay)


# app/routers/rows.py
rows = APIRouter(tags=["rows"])


@rows.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: SessionDep):
    return probes.write(db, key, fail, delay)


@rows.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: SessionDep):
    return await probes.write_async(db, key, fail, delay)


# app/routers/jobs.py
jobs = APIRouter(tags=["jobs"])


@jobs.post("/sync/conflict")
def sync_conflict(key: str, db: SessionDep):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@jobs.post("/async/conflict")
async def async_conflict(key: str, db: SessionDep):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@jobs.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db: SessionDep):
    return probes.create(db, key)


@jobs.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: SessionDep):
    return await probes.create_async(db, key)


@jobs.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db: SessionDep):
    return StreamingResponse(probes.stream(db, chunks, delay), media_type="application/x-ndjson")


@jobs.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: SessionDep):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@jobs.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db: SessionDep):
    tasks.add_task(probes.write_later, db, key)
    return {"key": key}


@jobs.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: SessionDep):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}


# app/routers/health.py
health = APIRouter()


@health.get("/nodb")
def nodb():
    return probes.no_database()


# app/main.py
api = APIRouter(prefix="/v1")
api.include_router(sessions, prefix="/sessions")
api.include_router(rows, prefix="/rows")

internal = FastAPI()  # its requests carry the app's lifespan state: a mounted app's own lifespan never runs
internal.include_router(jobs, prefix="/jobs")

app = FastAPI(lifespan=lifespan)
app.include_router(api, prefix="/api")
app.include_router(health)
app.mount("/internal", internal)
