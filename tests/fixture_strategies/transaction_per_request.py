"""known-good: a `yield` dependency written `with SessionLocal.begin() as db: yield db`

Must pass carryover_sequential: SQLAlchemy 2.0's transaction-per-block idiom
hands each request a new session already inside a transaction, begun for that
request; that transaction is its own, not one inherited from the request before.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
GOOD_FOR = ("carryover_sequential",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in (
        "/same",
        "/sync/write",
        "/async/write",
        "/nodb",
        "/sync/model",
        "/sync/user",
        "/sync/conflict",
        "/async/conflict",
    )
}


def get_db():
    with SessionLocal.begin() as db:
        yield db


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return await probes.tag_async(db, tag, delay, query)
