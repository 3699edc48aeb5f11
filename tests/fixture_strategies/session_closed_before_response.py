"""known-bad: a `yield` session closed when the endpoint returns, and closed for good

Must be flagged by streaming and background_tasks: `Depends(get_db,
scope="function")` closes the session before the response is sent (as every
`yield` dependency did on FastAPI 0.106 to 0.117), and its sessionmaker says
`close_resets_only=False`, so a closed session refuses further use instead of
reopening. The stream and the background task run after that close and raise
"This Session has been permanently closed": the stream ends after its headers,
the task's row is never written.
"""

import os

from fastapi import BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from experiments import probes

REQUIRES = ("fastapi>=0.121",)  # Depends(scope=...)
SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]), close_resets_only=False)
FLAGGED_BY = ("streaming", "background_tasks")
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in probes.ROUTES
    if path not in ("/sync/tag", "/async/tag", "/sync/stream", "/async/stream", "/sync/background", "/async/background")
}


def get_db():
    with SessionLocal() as session:
        yield session


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db, scope="function")):
    return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, db: Session = Depends(get_db, scope="function")):
    return await probes.tag_async(db, tag, delay, query)


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
