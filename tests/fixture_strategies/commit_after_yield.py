"""known-bad: a yield dependency that commits after `yield`, with FastAPI's default scope

Must be flagged by cleanup_timing: the endpoints leave the commit to the
dependency (`try: yield db; db.commit() except: db.rollback(); raise finally:
db.close()`, a common "unit of work" helper; the write probes with
`commit=False`). With the default dependency scope that teardown runs after
the response has been sent: the client has its 200 before its row can be
read, and a commit that fails there cannot change the status (the client
gets 200 and the row is absent).
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
FLAGGED_BY = ("cleanup_timing",)
app = FastAPI()
UNSUPPORTED = {
    "/same": "not what this fixture is for",
    "/sync/model": "not what this fixture is for",
    "/sync/user": "not what this fixture is for",
}


def get_db():
    db = SessionLocal()
    try:
        yield db
        db.commit()
    except Exception:
        db.rollback()
        raise
    finally:
        db.close()


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return await probes.tag_async(db, tag, delay, query)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return probes.write(db, key, fail, delay, commit=False)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return await probes.write_async(db, key, fail, delay, commit=False)


@app.post("/sync/conflict")
def sync_conflict(key: str, db: Session = Depends(get_db)):
    return probes.add_conflicting(db, key)


@app.post("/async/conflict")
async def async_conflict(key: str, db: Session = Depends(get_db)):
    return probes.add_conflicting(db, key)


@app.get("/nodb")
def nodb():
    return probes.no_database()
