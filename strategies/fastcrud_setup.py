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
from typing import Annotated

from fastapi import Depends, FastAPI
from fastcrud import crud_router
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker

from experiments import probes

REQUIRES = ("fastcrud>=0.23",)


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


SessionDep = Annotated[AsyncSession, Depends(get_session)]  # the README's `Depends(get_session)`


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
