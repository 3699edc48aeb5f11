"""known-bad on `async def` endpoints only: they share one module-level Session, `def` ones get their own

Must be flagged by lost_writes on its `async def` endpoints and passed on its
`def` ones: a check that reaches both kinds judges each on its own numbers.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
shared = SessionLocal()
FLAGGED_BY = ("lost_writes",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in ("/sync/tag", "/async/tag", "/same", "/sync/model", "/sync/user", "/sync/conflict", "/async/conflict")
}


def get_db():
    with SessionLocal() as session:
        yield session


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return probes.write(db, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    try:
        return await probes.write_async(shared, key, fail, delay)
    except Exception:
        shared.rollback()
        raise


@app.get("/nodb")
def nodb():
    return probes.no_database()
