"""known-bad: a sync `Session` opened and closed in an `async def` dependency

Must be flagged by sync_io_on_loop on `def` endpoints too: the endpoint's
queries run in the threadpool, but the dependency's teardown closes the
session on the event loop, a ROLLBACK and a pool reset there per request.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
FLAGGED_BY = ("sync_io_on_loop",)
app = FastAPI()


async def get_db():
    with SessionLocal() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]
