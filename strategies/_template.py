"""My pattern: one line, the label of this strategy in the report

Say where the pattern comes from: the docs page, the issue thread, the library.
`nox -s new -- NAME` copies this file to strategies/NAME.py. The module is the
pattern and nothing else: the harness adds the probe routes, each taking its
session from `SessionDep` (experiments/harness/mount.py lists what else a
pattern can declare: a getter, a route class, a sub-application).
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker


# The engine lives as long as the app; `pool_pre_ping` replaces a connection the server dropped.
@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"], pool_pre_ping=True)
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


app = FastAPI(lifespan=lifespan)

# What the pattern needs installed (PEP 508); where unmet, its rows are skipped with the reason.
REQUIRES = ("fastapi>=0.121",)  # Depends(scope=...)


# scope="function" closes the session when the endpoint returns, before the response is sent.
def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]
