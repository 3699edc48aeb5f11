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
from typing import Annotated

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine as Database
from sqlalchemy.orm import Session

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


SessionDep = Annotated[Session, Depends(get_db_sess)]

# An app with a second database ("I need to connect to at least 3"): the same three functions and
# dependency for each database, its own global filled on startup and disposed on shutdown.
SECOND_SESSION = None
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

    SECOND_SESSION = Annotated[Session, Depends(get_second_db_sess)]
