"""`yield` dependency, module-level engine (the current FastAPI docs)

FastAPI's "SQL (Relational) Databases" tutorial: the engine and `sessionmaker`
are created at import; a dependency opens a session, yields it and closes it
after the request. https://fastapi.tiangolo.com/tutorial/sql-databases/
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(engine)
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database

app = FastAPI()


def get_db():
    with SessionLocal() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]

# An app with a second database (SECOND_DATABASE_URL): a session for each, from its own dependency.
SECOND_SESSION = None
if SECOND_DATABASE_URL:
    SecondSessionLocal = sessionmaker(create_engine(SECOND_DATABASE_URL))

    def get_second_db():
        with SecondSessionLocal() as session:
            yield session

    SECOND_SESSION = Annotated[Session, Depends(get_second_db)]
