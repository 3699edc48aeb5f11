"""fastcrud 0.23: module-level async engine, a `get_session` yield dependency, `crud_router` on the same session

Written as fastcrud's README and docs show, "Using crud_router for Automatic Endpoint
Creation" (https://github.com/benavlabs/fastcrud, https://benavlabs.github.io/fastcrud/,
docs/usage/endpoint.md; PyPI 0.23.0):

    engine = create_async_engine(DATABASE_URL, echo=True)
    async_session = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    async def get_session() -> AsyncGenerator[AsyncSession, None]:
        async with async_session() as session:
            yield session

    async def lifespan(app: FastAPI):
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield

    app = FastAPI(lifespan=lifespan)

    item_router = crud_router(session=get_session, model=Item, create_schema=ItemCreateSchema,
                              update_schema=ItemUpdateSchema, path="/items", tags=["Items"])
    app.include_router(item_router)

on the probe table's model. The lifespan is a bare async generator, as written there
(FastAPI wraps it in `asynccontextmanager`); it creates the tables and never disposes
the engine. `echo=True` is left out: it logs every statement, a
development switch that would make the cost sections measure logging. `crud_router`'s
endpoints take `get_session` and commit inside the CRUD calls (`FastCRUD.create(...,
commit=True)` by default), and the README's "Using FastCRUD in User-Defined FastAPI
Endpoints" takes `db: AsyncSession = Depends(get_session)`, so the probe endpoints take it
that way and commit where they write.
"""

import os
from collections.abc import AsyncGenerator

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastcrud import crud_router
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker

from experiments import probes

REQUIRES = ("fastcrud>=0.23",)

UNSUPPORTED = {
    "/sync/tag": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/model": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/user": "get_session yields an AsyncSession, which a `def` dependency cannot await",
    "/sync/conflict": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/stream": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/background": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/created": "get_session yields an AsyncSession, which a `def` endpoint cannot await",
}


class NoteCreateSchema(BaseModel):
    key: str


class NoteUpdateSchema(BaseModel):
    key: str


# Database setup (Async SQLAlchemy)
DATABASE_URL = os.environ["ASYNC_DATABASE_URL"]
engine = create_async_engine(DATABASE_URL)
async_session = sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


# Database session dependency
async def get_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session() as session:
        yield session


# Create tables before the app start
async def lifespan(app: FastAPI):
    async with engine.begin() as conn:
        await conn.run_sync(probes.Base.metadata.create_all)
    yield


# FastAPI app
app = FastAPI(lifespan=lifespan)

# CRUD router setup
note_router = crud_router(
    session=get_session,
    model=probes.Note,
    create_schema=NoteCreateSchema,
    update_schema=NoteUpdateSchema,
    path="/notes",
    tags=["Notes"],
)

app.include_router(note_router)


async def load_user(db: AsyncSession = Depends(get_session)) -> int:
    return probes.session_key(db)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: AsyncSession = Depends(get_session)):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/same")
async def same(user: int = Depends(load_user), db: AsyncSession = Depends(get_session)):
    return probes.same_session(user, db)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: AsyncSession = Depends(get_session)):
    return await probes.write_async(db, key, fail, delay)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: AsyncSession = Depends(get_session)):
    return await probes.create_async(db, key)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


# Committed where it writes, as the CRUD calls commit.
@app.post("/async/conflict")
async def async_conflict(key: str, db: AsyncSession = Depends(get_session)):
    result = probes.add_conflicting(db, key)
    await db.commit()
    return result


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: AsyncSession = Depends(get_session)):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: AsyncSession = Depends(get_session)):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}
