"""known-good: a stream that reads each chunk through a short session of its own

Must pass streaming: the stream routes hand `probes.stream` an object whose
every read opens a session, runs the query and closes it (the advice for
streams since FastAPI 0.106: open the session inside the generator), so a
connection is checked out only while a chunk is read, however many streams
are open, and nothing is left for the garbage collector.
"""

import os

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from experiments import probes

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
GOOD_FOR = ("streaming",)
app = FastAPI()
UNSUPPORTED = {
    path: "not what this fixture is for"
    for path in probes.ROUTES
    if path not in ("/sync/tag", "/async/tag", "/sync/stream", "/async/stream")
}


class SessionPerRead:
    """What the stream reads through: a new session for each query."""

    def scalar(self, statement):
        with SessionLocal() as session:
            return session.scalar(statement)


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    with SessionLocal() as db:
        return probes.tag(db, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    with SessionLocal() as db:
        return await probes.tag_async(db, tag, delay, query)


@app.get("/sync/stream")
def sync_stream(chunks: int, delay: float):
    return StreamingResponse(probes.stream(SessionPerRead(), chunks, delay), media_type="application/x-ndjson")


@app.get("/async/stream")
async def async_stream(chunks: int, delay: float):
    return StreamingResponse(probes.stream_async(SessionPerRead(), chunks, delay), media_type="application/x-ndjson")
