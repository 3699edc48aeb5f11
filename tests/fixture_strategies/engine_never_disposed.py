"""known-bad: a module-level engine that is never disposed

Must be flagged by the lifetime checks: every re-import and every reload makes
a new engine, and the old one's pooled connections outlive the app.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

FLAGGED_BY = ("reload_server", "reload_in_process", "shutdown")
SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
app = FastAPI()
UNSUPPORTED = {
    "/async/tag": "not what this fixture is for",
    "/same": "not what this fixture is for",
    "/sync/write": "not what this fixture is for",
    "/async/write": "not what this fixture is for",
}


def get_db():
    with SessionLocal() as session:
        yield session


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/nodb")
def nodb():
    return probes.no_database()
