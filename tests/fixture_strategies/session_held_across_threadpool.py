"""known-bad: the docs' `yield` session dependency behind `def` endpoints, more requests than connections

Must be flagged by pool_exhaustion: the session a `yield` dependency hands a
`def` endpoint keeps its connection after the endpoint returns its thread,
until the dependency's exit gets a thread again; with a pool of 5 and 40
threads, the threads waiting for a connection starve the exits that would
return one, and the waits end in pool timeouts (500s). FastAPI #3205.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
FLAGGED_BY = ("pool_exhaustion",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in ("/sync/tag", "/async/tag", "/same", "/sync/write", "/async/write", "/sync/conflict", "/async/conflict")
}


def get_db():
    with SessionLocal() as session:
        yield session


def current_user(db: Session = Depends(get_db)) -> int:
    return probes.current_user(db)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db: Session = Depends(get_db)):
    return probes.load_note(db, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
