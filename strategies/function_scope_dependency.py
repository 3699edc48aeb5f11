"""Engine in lifespan, `yield` dependency with `scope="function"`

lifespan_dependency's pattern with every use of the session dependency
declared `Depends(get_db, scope="function")` (FastAPI 0.121+): the code after
`yield` (closing the session, returning its connection) runs when the endpoint
returns, before the response is sent, instead of after it. FastAPI docs,
"Early exit and scope":
https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#early-exit-and-scope ;
https://fastapi.tiangolo.com/advanced/advanced-dependencies/#dependencies-with-yield-and-scope ;
release notes: https://fastapi.tiangolo.com/release-notes/#01210 ; lifespan
pattern: sm-Fifteen in https://github.com/fastapi/fastapi/issues/726
"""

import os
from contextlib import asynccontextmanager

from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

REQUIRES = ("fastapi>=0.121",)  # Depends(scope=...)

SECOND_DATABASE_URL = os.environ.get("SECOND_DATABASE_URL")  # set when the app has a second database


@asynccontextmanager
async def lifespan(app: FastAPI):
    engines = {"sessionmaker": create_engine(os.environ["DATABASE_URL"])}
    if SECOND_DATABASE_URL:
        engines["second_sessionmaker"] = create_engine(SECOND_DATABASE_URL)
    yield {name: sessionmaker(engine) for name, engine in engines.items()}
    for engine in engines.values():
        engine.dispose()


app = FastAPI(lifespan=lifespan)


def get_db(request: Request):
    with request.state.sessionmaker() as session:
        yield session


def load_user(db: Session = Depends(get_db, scope="function")) -> int:
    return probes.session_key(db)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db, scope="function")):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db, scope="function")):
    return await probes.tag_async(db, tag, delay, query)


@app.get("/same")
def same(user: int = Depends(load_user), db: Session = Depends(get_db, scope="function")):
    return probes.same_session(user, db)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db, scope="function")):
    return probes.write(db, key, fail, delay)


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, db: Session = Depends(get_db, scope="function")):
    return await probes.write_async(db, key, fail, delay)


@app.get("/nodb")
def nodb():
    return probes.no_database()


def current_user(db: Session = Depends(get_db, scope="function")) -> int:
    return probes.current_user(db)


@app.get("/sync/model", response_model=probes.NoteOut)
def sync_model(delay: float, db: Session = Depends(get_db, scope="function")):
    return probes.load_note(db, delay)


@app.get("/sync/user")
def sync_user(delay: float, user: int = Depends(current_user)):
    return probes.greet(user, delay)


@app.post("/sync/conflict")
def sync_conflict(key: str, db: Session = Depends(get_db, scope="function")):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.post("/async/conflict")
async def async_conflict(key: str, db: Session = Depends(get_db, scope="function")):
    result = probes.add_conflicting(db, key)
    db.commit()
    return result


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float, db: Session = Depends(get_db, scope="function")):
    return StreamingResponse(probes.stream(db, chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float, db: Session = Depends(get_db, scope="function")):
    return StreamingResponse(probes.stream_async(db, chunks, delay), media_type="application/x-ndjson")


@app.post("/sync/background")
def sync_background(key: str, tasks: BackgroundTasks, db: Session = Depends(get_db, scope="function")):
    tasks.add_task(probes.write_later, db, key)
    return {"key": key}


@app.post("/async/background")
async def async_background(key: str, tasks: BackgroundTasks, db: Session = Depends(get_db, scope="function")):
    tasks.add_task(probes.write_later_async, db, key)
    return {"key": key}


@app.post("/sync/created", response_model=probes.NoteOut)
def sync_created(key: str, db: Session = Depends(get_db, scope="function")):
    return probes.create(db, key)


@app.post("/async/created", response_model=probes.NoteOut)
async def async_created(key: str, db: Session = Depends(get_db, scope="function")):
    return await probes.create_async(db, key)


# An app with a second database (SECOND_DATABASE_URL): a session for each, from its own dependency.
if SECOND_DATABASE_URL:

    def get_second_db(request: Request):
        with request.state.second_sessionmaker() as session:
            yield session

    @app.post("/sync/write2")
    def sync_write2(
        key: str,
        fail: bool,
        delay: float,
        db: Session = Depends(get_db, scope="function"),
        second: Session = Depends(get_second_db, scope="function"),
    ):
        return probes.write_both(db, second, key, fail, delay)

    @app.post("/async/write2")
    async def async_write2(
        key: str,
        fail: bool,
        delay: float,
        db: Session = Depends(get_db, scope="function"),
        second: Session = Depends(get_second_db, scope="function"),
    ):
        return await probes.write_both_async(db, second, key, fail, delay)
