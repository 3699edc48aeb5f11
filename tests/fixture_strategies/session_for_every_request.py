"""known-bad: a middleware that opens a session, and a connection, for every request

Must be flagged by sessions_nobody_needed: the middleware puts a session in
`request.state` before it knows whether the route needs one, and begins its
transaction eagerly (`session.connection()`, as "start the unit of work up
front" helpers do), so even a route that never touches the database costs a
session and a pooled connection.
"""

import os

from fastapi import Depends, FastAPI, Request
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
FLAGGED_BY = ("sessions_nobody_needed",)
app = FastAPI()
UNSUPPORTED = {
    "/async/tag": "not what this fixture is for",
    "/same": "not what this fixture is for",
    "/sync/write": "not what this fixture is for",
    "/async/write": "not what this fixture is for",
    "/sync/model": "not what this fixture is for",
    "/sync/user": "not what this fixture is for",
    "/sync/conflict": "not what this fixture is for",
    "/async/conflict": "not what this fixture is for",
}


@app.middleware("http")
async def db_session(request: Request, call_next):
    with SessionLocal() as session:
        session.connection()
        request.state.db = session
        return await call_next(request)


def get_db(request: Request) -> Session:
    return request.state.db


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db)):
    return probes.tag(db, tag, delay, query)


@app.get("/nodb")
def nodb():
    return probes.no_database()
