"""known-bad: the template's lifespan engine without `pool_pre_ping`

Must be flagged by dropped_connections: after the server ends the pooled
connections, the pool hands a dead one to the next request, which fails.
"""

import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

FLAGGED_BY = ("dropped_connections",)
UNSUPPORTED = {
    path: "not what this fixture is for" for path in probes.ROUTES if path not in ("/sync/tag", "/async/tag")
}


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"])
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db, scope="function")]


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: SessionDep):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: SessionDep):
    return await probes.tag_async(db, tag, delay, query)
