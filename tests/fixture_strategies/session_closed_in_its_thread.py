"""known-good: each `def` function opens and closes its own session, in the thread it runs in

Must pass pool_exhaustion with a pool of 5 under 100 concurrent requests: the
connection goes back to the pool before the function returns its threadpool
thread, so every thread waiting for a connection waits for one that a running
thread will give back. (A `yield` dependency instead holds the connection
across thread hops until its exit gets a thread of its own; sizing the pool to
the threadpool, pool_size=40, still lets 40 of 100 requests fail: measured.)
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
GOOD_FOR = ("pool_exhaustion",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in ("/sync/tag", "/async/tag", "/same", "/sync/write", "/async/write", "/sync/conflict", "/async/conflict")
}


def current_user() -> int:
    with SessionLocal() as db:
        return probes.current_user(db)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float):
    with SessionLocal() as db:
        return probes.load_note(db, delay)  # closing the session keeps the loaded row's attributes


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
