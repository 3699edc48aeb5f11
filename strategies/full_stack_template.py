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
`get_current_user` (its query on `SessionDep` is the harness's `/sync/user`), CORS, Sentry and
the frontend.
"""

import os
from collections.abc import Generator
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlmodel import Field, Session, SQLModel, create_engine

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


# main.py (its `app.include_router(api_router, prefix=API_V1_STR)` holds the endpoints)
app = FastAPI(openapi_url=f"{API_V1_STR}/openapi.json")
