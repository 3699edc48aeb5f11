"""sm-Fifteen's startup/shutdown globals (`on_event`)

sm-Fifteen's answer in https://github.com/fastapi/fastapi/issues/726 ("I
personally prefer handling my connections this way"), as posted: an
`@app.on_event("startup")` handler creates the engine into the module global
`_db_conn` (declared, not defined, at import), an `@app.on_event("shutdown")`
handler disposes it, `async def get_db_conn` hands it out and
`async def get_db_sess` ("the part that replaces sessionmaker") opens a
`Session` bound to it per request. In the author's words: "while _db_conn lives
in the global scope (mainly because there is nowhere else it could live), it's
not created in the global scope, nor is it ever accessed directly from the
global scope aside from the 3 functions that control it." `on_event` has since
been deprecated in favour of lifespan:
https://fastapi.tiangolo.com/advanced/events/#alternative-events-deprecated
"""

import os
from collections.abc import AsyncIterable

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine as Database
from sqlalchemy.orm import Session

from experiments import probes

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database

app = FastAPI()

_db_conn: Database | None


@app.on_event("startup")
def open_database_connection_pools():
    global _db_conn
    _db_conn = create_engine(os.environ["DATABASE_URL"])


@app.on_event("shutdown")
def close_database_connection_pools():
    global _db_conn
    if _db_conn:
        _db_conn.dispose()  # noqa: E701 (as sm-Fifteen wrote it in #726)


async def get_db_conn() -> Database:
    assert _db_conn is not None
    return _db_conn


# This is the part that replaces sessionmaker
async def get_db_sess(db_conn=Depends(get_db_conn)) -> AsyncIterable[Session]:
    sess = Session(bind=db_conn)
    try:
        yield sess
    finally:
        sess.close()


def load_user(db_sess: Session = Depends(get_db_sess)) -> int:
    return probes.session_key(db_sess)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db_sess: Session = Depends(get_db_sess)):
    return probes.tag(db_sess, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db_sess: Session = Depends(get_db_sess)):
    return await probes.tag_async(db_sess, tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user), db_sess: Session = Depends(get_db_sess)):
    return probes.same_session(user, db_sess)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db_sess: Session = Depends(get_db_sess)):
    return probes.write(db_sess, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db_sess: Session = Depends(get_db_sess)):
    return await probes.write_async(db_sess, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(db_sess: Session = Depends(get_db_sess)) -> int:
    return probes.current_user(db_sess)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db_sess: Session = Depends(get_db_sess)):
    return probes.load_note(db_sess, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str, db_sess: Session = Depends(get_db_sess)):
    result = probes.add_conflicting(db_sess, key)
    db_sess.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str, db_sess: Session = Depends(get_db_sess)):
    result = probes.add_conflicting(db_sess, key)
    db_sess.commit()
    return result


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db_sess: Session = Depends(get_db_sess)):
    return StreamingResponse(probes.stream(db_sess, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db_sess: Session = Depends(get_db_sess)):
    return StreamingResponse(probes.stream_async(db_sess, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db_sess: Session = Depends(get_db_sess)):
    tasks.add_task(probes.write_later, db_sess, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db_sess: Session = Depends(get_db_sess)):
    tasks.add_task(probes.write_later_async, db_sess, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db_sess: Session = Depends(get_db_sess)):
    return probes.create(db_sess, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db_sess: Session = Depends(get_db_sess)):
    return await probes.create_async(db_sess, key)


# An app with a second database ("I need to connect to at least 3"): the same three functions and
# dependency for each database, its own global filled on startup and disposed on shutdown.
if SECOND_DATABASE_URL:
    _second_db_conn: Database | None

    @app.on_event("startup")
    def open_second_database_connection_pool():
        global _second_db_conn
        _second_db_conn = create_engine(SECOND_DATABASE_URL)

    @app.on_event("shutdown")
    def close_second_database_connection_pool():
        global _second_db_conn
        if _second_db_conn:
            _second_db_conn.dispose()  # noqa: E701 (as sm-Fifteen wrote it in #726)

    async def get_second_db_conn() -> Database:
        assert _second_db_conn is not None
        return _second_db_conn

    async def get_second_db_sess(db_conn=Depends(get_second_db_conn)) -> AsyncIterable[Session]:
        sess = Session(bind=db_conn)
        try:
            yield sess
        finally:
            sess.close()

    @app.post("/sync/write2")
    def sync_write2(
        key: str,
        fail: bool,
        delay: float,
        db_sess: Session = Depends(get_db_sess),
        second: Session = Depends(get_second_db_sess),
    ):
        return probes.write_both(db_sess, second, key, fail, delay)

    @app.post("/async/write2")
    async def async_write2(
        key: str,
        fail: bool,
        delay: float,
        db_sess: Session = Depends(get_db_sess),
        second: Session = Depends(get_second_db_sess),
    ):
        return await probes.write_both_async(db_sess, second, key, fail, delay)
