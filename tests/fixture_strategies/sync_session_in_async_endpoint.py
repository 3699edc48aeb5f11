"""known-bad: a sync Session held across `await` in an `async def` endpoint, SQLAlchemy's default pool_timeout

Must be flagged by event_loop_blocking, and exercises its deadline: the
endpoint checks a connection out on the event-loop thread and keeps it while
it awaits; once the pool (5) is empty, the next checkout blocks the loop for
the pool's 30 s timeout, and nothing can give a connection back meanwhile, so
the check's driver process is killed at its deadline.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

# Only pool_timeout is set here (SQLAlchemy's default); the pool size is the check's.
SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"], pool_timeout=30))
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
