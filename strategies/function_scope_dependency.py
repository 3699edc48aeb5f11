"""Engine in lifespan, `yield` dependency with `scope="function"`

lifespan_dependency's pattern with every use of the session dependency
declared `Depends(get_db, scope="function")` (FastAPI 0.121+): the code after
`yield` (closing the session, returning its connection) runs when the endpoint
returns, before the response is sent, instead of after it. FastAPI docs,
"Early exit and scope":
https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#early-exit-and-scope ;
https://fastapi.tiangolo.com/advanced/advanced-dependencies/#dependencies-with-yield-and-scope ;
release notes: https://fastapi.tiangolo.com/release-notes/#01210 ; lifespan
pattern: sm-Fifteen in https://github.com/fastapi/fastapi/issues/726
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

REQUIRES = ("fastapi>=0.121",)  # Depends(scope=...)

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database


@asynccontextmanager
async def lifespan(app: FastAPI):
    urls = {"sessionmaker": os.environ["DATABASE_URL"], "second_sessionmaker": SECOND_DATABASE_URL}
    engines = {name: create_engine(url) for name, url in urls.items() if url}
    yield {name: sessionmaker(engine) for name, engine in engines.items()}
    for engine in engines.values():
        engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]


# An app with a second database (SECOND_DATABASE_URL): a session for each, from its own dependency.
def get_second_db(request: Request):
    with request.state.second_sessionmaker() as session:
        yield session


SECOND_SESSION = Annotated[Session, Depends(get_second_db, scope="function")] if SECOND_DATABASE_URL else None
