"""Session per request in `request.state`, opened by HTTP middleware

The old FastAPI docs' "Alternative DB session with middleware": an
`@app.middleware("http")` opens `request.state.db` before the request and
closes it in `finally`; a dependency hands it to the endpoints.
https://fastapi.tiangolo.com/tutorial/sql-databases/#alternative-db-session-with-middleware
(FastAPI docs up to 0.99), discussed in FastAPI issue #726.
"""

import os

from fastapi import BackgroundTasks, Depends, FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(engine)
SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database

app = FastAPI()


@app.middleware("http")
async def db_session_middleware(request: Request, call_next):
    response = Response("Internal server error", status_code=500)
    try:
        request.state.db = SessionLocal()
        response = await call_next(request)
    finally:
        request.state.db.close()
    return response


def get_db(request: Request):
    return request.state.db


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


def current_user(db: Session = Depends(get_db)) -> int:
    return probes.current_user(db)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db: Session = Depends(get_db)):
    return probes.load_note(db, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str, db: Session = Depends(get_db)):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str, db: Session = Depends(get_db)):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db: Session = Depends(get_db)):
    return StreamingResponse(probes.stream(db, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: Session = Depends(get_db)):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(probes.write_later, db, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: Session = Depends(get_db)):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db: Session = Depends(get_db)):
    return probes.create(db, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: Session = Depends(get_db)):
    return await probes.create_async(db, key)


# An app with a second database (SECOND_DATABASE_URL): a session for each, from its own dependency.
if SECOND_DATABASE_URL:
    SecondSessionLocal = sessionmaker(create_engine(SECOND_DATABASE_URL))

    @app.middleware("http")
    async def second_db_session_middleware(request: Request, call_next):
        response = Response("Internal server error", status_code=500)
        try:
            request.state.second_db = SecondSessionLocal()
            response = await call_next(request)
        finally:
            request.state.second_db.close()
        return response

    def get_second_db(request: Request):
        return request.state.second_db

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
