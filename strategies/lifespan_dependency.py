"""Engine in lifespan, sessionmaker in lifespan state, `yield` dependency

The pattern #726 converges on, modernised: the engine is created when the app
starts and disposed when it stops; the `sessionmaker` travels as lifespan state
and a `yield` dependency opens one session per request from it. sm-Fifteen in
https://github.com/fastapi/fastapi/issues/726 ; lifespan-scoped resources in
https://github.com/fastapi/fastapi/issues/617 ; Starlette lifespan state:
https://www.starlette.io/lifespan/ ; https://fastapi.tiangolo.com/advanced/events/
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database


@asynccontextmanager
async def lifespan(app: FastAPI):
    engines = {"sessionmaker": create_engine(os.environ["DATABASE_URL"])}
    if SECOND_DATABASE_URL:
        engines["second_sessionmaker"] = create_engine(SECOND_DATABASE_URL)
    yield {name: sessionmaker(engine) for name, engine in engines.items()}
    for engine in engines.values():
        engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_second_db(request: Request):
    with request.state.second_sessionmaker() as session:
        yield session


SECOND_SESSION = Annotated[Session, Depends(get_second_db)] if SECOND_DATABASE_URL else None
