"""No database at all: the probe paths answered without a session or a connection

What FastAPI and the serving path cost on their own; a strategy's ratio to it is
the share of its time spent on anything database-related.
"""

from fastapi import FastAPI

app = FastAPI()


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool):
    return {"tag": tag}


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool):
    return {"tag": tag}


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float):
    return {"key": key}


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float):
    return {"key": key}


@app.get("/nodb")
def nodb():
    return {"ok": True}
