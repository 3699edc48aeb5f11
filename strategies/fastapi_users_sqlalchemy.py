"""fastapi-users 15 + fastapi-users-db-sqlalchemy 7.0: module-level async engine, `get_async_session` under `get_user_db`

Written as fastapi-users' docs (https://fastapi-users.github.io/fastapi-users/, "Configuration /
Databases / SQLAlchemy") and its example app show (https://github.com/fastapi-users/fastapi-users
15.0.5, docs/configuration/databases/sqlalchemy.md and examples/sqlalchemy/; the adapter is
https://github.com/fastapi-users/fastapi-users-db-sqlalchemy 7.0.0), `app/db.py` (engine, `async_session_maker`, `create_db_and_tables`, `get_async_session`, `get_user_db`: copied
below as the docs write them), then `app/users.py`'s `UserManager`, JWT backend and `FastAPIUsers`, and `app/app.py`'s
lifespan (`await create_db_and_tables()`), its five `include_router` calls and its own
endpoint on `@app.get`. The example `UserManager`'s `on_after_*` hooks, which only print,
are left out. `SQLAlchemyUserDatabase` commits inside its own methods (`create`, `update`,
`delete`: `await self.session.commit()`), so the probe endpoints, which take
`get_async_session` as the docs' dependencies do, commit where they write. The engine is
created at import and never disposed. fastapi-users-db-sqlalchemy 7.0.0 pins
`sqlalchemy<2.1`: it installs only in an environment with SQLAlchemy 2.0.
"""

import os
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, models, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from experiments import probes

REQUIRES = ("fastapi-users>=15", "fastapi-users-db-sqlalchemy>=7")

UNSUPPORTED = {
    "/sync/tag": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/write": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/model": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/user": "get_async_session yields an AsyncSession, which a `def` dependency cannot await",
    "/sync/conflict": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/stream": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/background": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
    "/sync/created": "get_async_session yields an AsyncSession, which a `def` endpoint cannot await",
}

# app/db.py
DATABASE_URL = os.environ["ASYNC_DATABASE_URL"]


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


engine = create_async_engine(DATABASE_URL)
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def create_db_and_tables():
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_async_session)):
    yield SQLAlchemyUserDatabase(session, User)


# app/schemas.py
class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


# app/users.py
SECRET = "SECRET"


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(user_db: SQLAlchemyUserDatabase = Depends(get_user_db)):
    yield UserManager(user_db)


bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


def get_jwt_strategy() -> JWTStrategy[models.UP, models.ID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend = AuthenticationBackend(name="jwt", transport=bearer_transport, get_strategy=get_jwt_strategy)

fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])


# app/app.py
@asynccontextmanager
async def lifespan(app: FastAPI):
    # Not needed if you setup a migration system like Alembic
    await create_db_and_tables()
    yield


app = FastAPI(lifespan=lifespan)

app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"])
app.include_router(fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"])
app.include_router(fastapi_users.get_reset_password_router(), prefix="/auth", tags=["auth"])
app.include_router(fastapi_users.get_verify_router(UserRead), prefix="/auth", tags=["auth"])
app.include_router(fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"])


async def load_user(session: AsyncSession = Depends(get_async_session)) -> int:
    return probes.session_key(session)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, session: AsyncSession = Depends(get_async_session)):
    return await probes.tag_async(session, tag, delay, query)


@app.get("/same")
async def same(user: int = Depends(load_user), session: AsyncSession = Depends(get_async_session)):
    return probes.same_session(user, session)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, session: AsyncSession = Depends(get_async_session)):
    return await probes.write_async(session, key, fail, delay)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, session: AsyncSession = Depends(get_async_session)):
    return await probes.create_async(session, key)


@app.get("/nodb")
async def nodb():
    return probes.no_database()


# Committed where it writes, as the adapter's own methods commit.
@app.post("/async/conflict")
async def async_conflict(key: str, session: AsyncSession = Depends(get_async_session)):
    result = probes.add_conflicting(session, key)
    await session.commit()
    return result


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, session: AsyncSession = Depends(get_async_session)):
    return StreamingResponse(probes.stream_async(session, chunks, delay), media_type="application/x-ndjson")


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, session: AsyncSession = Depends(get_async_session)):
    tasks.add_task(probes.write_later_async, session, key)
    return {"key": key}
