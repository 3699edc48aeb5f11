"""known-bad: the request's session comes from a dependency, but the write commits on one a service opens itself

Must be flagged by rollback_tests: the write routes load the current user
through the session dependency, which a test can override, and hand the write
to a service that opens a session of its own from the module's sessionmaker
and commits it. No override reaches that session, so the row outlives the
test's rollback: "The fake database gets created but still, the real one is
being used by the tests" (FastAPI #3242).
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
FLAGGED_BY = ("rollback_tests",)
app = FastAPI()


def get_db():
    with SessionLocal() as session:
        yield session


def save_note(key: str, fail: bool, delay: float) -> dict:
    """The service: a session and a commit of its own, whatever session the request has."""
    with SessionLocal() as session:
        return probes.write(session, key, fail, delay)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    probes.current_user(db)
    return save_note(key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    probes.current_user(db)
    return save_note(key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
