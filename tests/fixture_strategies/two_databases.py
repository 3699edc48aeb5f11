"""known-good: a `yield` dependency per database, each with its own engine

Must pass multiple_databases: every request gets its own session on each
database, and each is closed (rolled back) with the request.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

GOOD_FOR = ("multiple_databases",)
SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
# Set only where a check uses two databases; the routes below exist only then.
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in (
        "/sync/tag",
        "/async/tag",
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
    with SessionLocal() as session:
        yield session


if SECOND_DATABASE_URL:
    SecondSessionLocal = sessionmaker(create_engine(SECOND_DATABASE_URL))

    def get_second_db():
        with SecondSessionLocal() as session:
            yield session

    @app.post("/sync/write2")
    def sync_write2(
        key: str, fail: bool, delay: float, db: Session = Depends(get_db), second: Session = Depends(get_second_db)
    ):
        return probes.write_both(db, second, key, fail, delay)

    @app.post("/async/write2")
    async def async_write2(
        key: str, fail: bool, delay: float, db: Session = Depends(get_db), second: Session = Depends(get_second_db)
    ):
        return await probes.write_both_async(db, second, key, fail, delay)
