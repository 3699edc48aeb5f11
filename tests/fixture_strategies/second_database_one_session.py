"""known-bad: the second database through one module-level Session shared by every request

Must be flagged by multiple_databases: the first database gets a session per
request, but the second ("the reporting database") one Session for the whole
app. Concurrent requests add to it together, and one request's commit saves
the rows of a request that failed.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
reporting = Session(create_engine(os.environ["SECOND_DATABASE_URL"])) if "SECOND_DATABASE_URL" in os.environ else None
FLAGGED_BY = ("multiple_databases",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in (
        "/sync/tag",
        "/async/tag",
        "/same",
        "/sync/write",
        "/async/write",
        "/nodb",
        "/sync/model",
        "/sync/user",
        "/sync/conflict",
        "/async/conflict",
        "/sync/write2",
    )
}


def get_db():
    with SessionLocal() as session:
        yield session


@app.post("/async/write2")
async def async_write2(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return await probes.write_both_async(db, reporting, key, fail, delay)
