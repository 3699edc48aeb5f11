"""known-good: a fresh session per request from a yield dependency"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
app = FastAPI()


def get_db():
    with SessionLocal() as session:
        yield session


def load_user(db: Session = Depends(get_db)) -> int:
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
