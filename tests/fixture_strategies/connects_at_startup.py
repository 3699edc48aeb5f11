"""known-good: engine in lifespan that queries once at startup ("fail early") and is disposed at shutdown

Must pass reload_server: after each restart the new worker already holds the
connection its startup opened, which is not one the old worker left behind.
fastapi-sqla and FastSQLA start this way.
"""

import os
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

GOOD_FOR = ("reload_server",)
UNSUPPORTED = {
    "/same": "not what this fixture is for",
    "/sync/write": "not what this fixture is for",
    "/async/write": "not what this fixture is for",
    "/sync/model": "not what this fixture is for",
    "/sync/user": "not what this fixture is for",
    "/sync/conflict": "not what this fixture is for",
    "/async/conflict": "not what this fixture is for",
}


@asynccontextmanager
async def lifespan(app: FastAPI):
    engine = create_engine(os.environ["DATABASE_URL"])
    with engine.connect() as connection:  # the connection goes back to the pool and stays open
        connection.execute(text("SELECT 1"))
    yield {"sessionmaker": sessionmaker(engine)}
    engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db, scope="function")):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db, scope="function")):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/nodb")
def nodb():
    return probes.no_database()
