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

from fastapi import Depends, FastAPI
from sqlmodel import Session, create_engine

REQUIRES = ("sqlmodel>=0.0.14",)

database_url = os.environ["DATABASE_URL"]
connect_args = {"check_same_thread": False} if database_url.startswith("sqlite") else {}
engine = create_engine(database_url, connect_args=connect_args)


def get_session():
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

app = FastAPI()
