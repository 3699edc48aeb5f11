"""My pattern: one line, the label of this strategy in the report

Say where the pattern comes from: the docs page, the issue thread, the library.
`nox -s new -- NAME` copies this file to strategies/NAME.py; files whose name
starts with `_` are not strategies.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

# The harness sets DATABASE_URL (sync driver) and ASYNC_DATABASE_URL (async driver)
# to a fresh database with the probe table in it, as a deployment would.
engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(engine)

app = FastAPI()

# Probe routes this pattern cannot serve, with the reason; their checks are skipped.
UNSUPPORTED: dict[str, str] = {}


# Replace this with your pattern: where the session comes from is what is measured.
def get_db():
    with SessionLocal() as session:
        yield session


# The routes below are the contract (experiments/probes.py). Keep the paths,
# methods and parameters; change only how each one gets its session.
def load_user(db: Session = Depends(get_db)) -> int:
    """Stands for a dependency that needs the session too ("load the current user")."""
    return probes.session_key(db)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user), db: Session = Depends(get_db)):
    return probes.same_session(user, db)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return probes.write(db, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return await probes.write_async(db, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()
