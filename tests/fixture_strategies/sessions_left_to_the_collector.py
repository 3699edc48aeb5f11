"""known-bad: the template's lifespan engine, and sessions nobody closes

Must be flagged by reload_in_process, in every run: a session is a reference
cycle, so its connection goes back only when the garbage collector happens to
run, which the check pauses.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

FLAGGED_BY = ("reload_in_process",)


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"])
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request) -> Session:
    return request.state.sessionmaker()  # never closed


SessionDep = Annotated[Session, Depends(get_db)]
