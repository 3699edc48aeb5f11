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
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, models, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

REQUIRES = ("fastapi-users>=15", "fastapi-users-db-sqlalchemy>=7")


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


# The session the docs' dependencies take, as the probe endpoints take it.
SessionDep = Annotated[AsyncSession, Depends(get_async_session)]
