"""Full-stack FastAPI template: module-level SQLModel engine, `get_db` yield dependency, commits in CRUD, routers under /api/v1

The backend of https://github.com/fastapi/full-stack-fastapi-template at commit
68adb40d37425f6f8668ec7e5a054500d045e43e, copied from backend/app/core/db.py,
backend/app/api/deps.py, backend/app/crud.py, backend/app/models.py,
backend/app/api/main.py, backend/app/api/routes/items.py and backend/app/main.py:

    engine = create_engine(str(settings.DATABASE_URL))          # core/db.py, at import

    def get_db() -> Generator[Session]:                          # api/deps.py
        with Session(engine) as session:
            yield session

    SessionDep = Annotated[Session, Depends(get_db)]

    def get_current_user(session: SessionDep, token: TokenDep) -> User:
        ...
        user = session.get(User, token_data.sub)

    app.include_router(api_router, prefix=settings.API_V1_STR)  # main.py; API_V1_STR = "/api/v1"

No lifespan: the engine is never disposed, and the container runs `fastapi run --workers 4`
(backend/Dockerfile), each worker importing the module. The CRUD functions and the endpoints
commit themselves (`session.add(...); session.commit(); session.refresh(...)`), so the probes
commit in the endpoint. Tables are SQLModel `table=True` models declared at import (models.py);
`Note` maps the harness's table the same way, while the probe bodies use their own mapping of it.
Left out as not session handling: settings (pydantic-settings), the JWT decoding in
`get_current_user` (its query stays), CORS, Sentry and the frontend.
"""

import os
from collections.abc import Generator
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlmodel import Field, Session, SQLModel, create_engine

from experiments import probes

REQUIRES = ("sqlmodel>=0.0.39",)  # backend/pyproject.toml

API_V1_STR = "/api/v1"  # settings.API_V1_STR (core/config.py)

# core/db.py
engine = create_engine(os.environ["DATABASE_URL"])


# models.py: shared properties, then the database model ("database table inferred from class name";
# named here, since the harness created it as `notes`)
class NoteBase(SQLModel):
    key: str = Field(unique=True, max_length=64)


class Note(NoteBase, table=True):
    __tablename__ = "notes"
    id: int | None = Field(default=None, primary_key=True)


# api/deps.py
def get_db() -> Generator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_current_user(session: SessionDep) -> int:
    return probes.current_user(session)


CurrentUser = Annotated[int, Depends(get_current_user)]


def load_user(session: SessionDep) -> int:
    return probes.session_key(session)


# api/routes/*.py: one router per resource, with its prefix
sync_router = APIRouter(prefix="/sync", tags=["sync"])
async_router = APIRouter(prefix="/async", tags=["async"])
router = APIRouter(tags=["probes"])


@sync_router.get("/tag")
def sync_tag(session: SessionDep, tag: str, delay: float, query: bool):
    return probes.tag(session, tag, delay, query)


@async_router.get("/tag")
async def async_tag(session: SessionDep, tag: str, delay: float, query: bool):
    return await probes.tag_async(session, tag, delay, query)


@router.get("/same")
def same(session: SessionDep, user: Annotated[int, Depends(load_user)]):
    return probes.same_session(user, session)


@sync_router.post("/write")
def sync_write(*, session: SessionDep, key: str, fail: bool, delay: float):
    return probes.write(session, key, fail, delay)


@async_router.post("/write")
async def async_write(*, session: SessionDep, key: str, fail: bool, delay: float):
    return await probes.write_async(session, key, fail, delay)


@sync_router.post("/created", response_model=probes.NoteOut)
def sync_created(*, session: SessionDep, key: str):
    return probes.create(session, key)


@async_router.post("/created", response_model=probes.NoteOut)
async def async_created(*, session: SessionDep, key: str):
    return await probes.create_async(session, key)


@router.get("/nodb")
def nodb():
    return probes.no_database()


@sync_router.get("/model", response_model=probes.NoteOut)
def sync_model(session: SessionDep, delay: float):
    return probes.load_note(session, delay)


@sync_router.get("/user")
def sync_user(current_user: CurrentUser, delay: float):
    return probes.greet(current_user, delay)


@sync_router.post("/conflict")
def sync_conflict(*, session: SessionDep, key: str):
    result = probes.add_conflicting(session, key)
    session.commit()
    return result


@async_router.post("/conflict")
async def async_conflict(*, session: SessionDep, key: str):
    result = probes.add_conflicting(session, key)
    session.commit()
    return result


@sync_router.get("/stream")
def sync_stream(session: SessionDep, chunks: int, delay: float):
    return StreamingResponse(probes.stream(session, chunks, delay), media_type="application/x-ndjson")


@async_router.get("/stream")
async def async_stream(session: SessionDep, chunks: int, delay: float):
    return StreamingResponse(probes.stream_async(session, chunks, delay), media_type="application/x-ndjson")


@sync_router.post("/background")
def sync_background(*, session: SessionDep, key: str, tasks: BackgroundTasks):
    tasks.add_task(probes.write_later, session, key)
    return {"key": key}


@async_router.post("/background")
async def async_background(*, session: SessionDep, key: str, tasks: BackgroundTasks):
    tasks.add_task(probes.write_later_async, session, key)
    return {"key": key}


# api/main.py
api_router = APIRouter()
api_router.include_router(sync_router)
api_router.include_router(async_router)
api_router.include_router(router)

# main.py
app = FastAPI(openapi_url=f"{API_V1_STR}/openapi.json")
app.include_router(api_router, prefix=API_V1_STR)
