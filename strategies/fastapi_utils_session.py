"""fastapi-utils 0.8 `FastAPISessionMaker`: lazily cached engine, `get_db` commits after the endpoint

fastapi-utils' "SQLAlchemy Sessions" user guide (docs/user-guide/session.md and
docs/src/session1.py, https://fastapiutils.github.io/fastapi-utils/user-guide/session/):

    def get_db() -> Iterator[Session]:
        \"\"\"FastAPI dependency that provides a sqlalchemy session\"\"\"
        yield from _get_fastapi_sessionmaker().get_db()

    @lru_cache()
    def _get_fastapi_sessionmaker() -> FastAPISessionMaker:
        \"\"\"This function could be replaced with a global variable if preferred\"\"\"
        database_uri = DBSettings().database_uri
        return FastAPISessionMaker(database_uri)

`FastAPISessionMaker.get_db` yields a session, commits it when the endpoint
returned, rolls back when it raised, and closes it; the guide warns: "The `get_db`
dependency **will not finalize your ORM session until *after* a response is
returned to the user**" and tells users to commit inside the endpoint where a
write may fail, so the conflict routes here leave the commit to `get_db`, the
pattern's own place for it. The engine (`sa.create_engine(uri, pool_pre_ping=True)`)
is created at the first request and never disposed.

Two departures the guide forces on current versions: its `from pydantic import
BaseSettings` is pydantic 1 (pydantic 2 moved it to pydantic-settings), and the
field is `database_url` so that it reads the DATABASE_URL of the contract (the
guide's reads DATABASE_URI). `pip install fastapi-utils[session]`, the extra the
guide names, does not import: the package's `__init__` needs typing-inspect, which
only the `all` extra installs. fastapi-utils and its fork fastapi-restful (0.6.0,
2024-05) ship the same `session.py`; fastapi-utils has the later release (0.8.0,
2024-11).
"""

from collections.abc import Iterator
from functools import lru_cache

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from fastapi_utils.session import FastAPISessionMaker
from pydantic_settings import BaseSettings
from sqlalchemy.orm import Session

from experiments import probes

REQUIRES = ("fastapi-utils>=0.8", "typing-inspect>=0.9", "pydantic-settings>=2.0")


class DBSettings(BaseSettings):
    """Parses variables from environment on instantiation"""

    database_url: str


def get_db() -> Iterator[Session]:
    """FastAPI dependency that provides a sqlalchemy session"""
    yield from _get_fastapi_sessionmaker().get_db()


@lru_cache
def _get_fastapi_sessionmaker() -> FastAPISessionMaker:
    """This function could be replaced with a global variable if preferred"""
    database_url = DBSettings().database_url
    return FastAPISessionMaker(database_url)


app = FastAPI()


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
    return probes.write(db, key, fail, delay, commit=False)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db)):
    return await probes.write_async(db, key, fail, delay, commit=False)


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


# get_db commits when the endpoint has returned: the pattern's place for the commit.
@app.post("/sync/conflict")
def sync_conflict(key: str, db: Session = Depends(get_db)):
    return probes.add_conflicting(db, key)


@app.post("/async/conflict")
async def async_conflict(key: str, db: Session = Depends(get_db)):
    return probes.add_conflicting(db, key)


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
    return probes.create(db, key, commit=False)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: Session = Depends(get_db)):
    return await probes.create_async(db, key, commit=False)
