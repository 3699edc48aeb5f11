"""known-bad: a sync Session in an `async def` endpoint, with a pool larger than any burst

Must be flagged by event_loop_blocking whatever the pool: the endpoint never
waits for a connection, but each query it runs blocks the event loop for its
whole round trip, and every other request waits with it.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"], pool_size=50))  # more than the check sends
FLAGGED_BY = ("event_loop_blocking",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in ("/sync/tag", "/same", "/sync/write", "/async/write", "/sync/model", "/sync/user", "/sync/conflict",
                 "/async/conflict")
}  # fmt: skip


def get_db():
    with SessionLocal() as session:
        yield session


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/nodb")
def nodb():
    return probes.no_database()
