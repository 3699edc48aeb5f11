"""Session per request in `request.state`, opened by HTTP middleware

The old FastAPI docs' "Alternative DB session with middleware": an
`@app.middleware("http")` opens `request.state.db` before the request and
closes it in `finally`; a dependency hands it to the endpoints.
https://fastapi.tiangolo.com/tutorial/sql-databases/#alternative-db-session-with-middleware
(FastAPI docs up to 0.99), discussed in FastAPI issue #726.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

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


SessionDep = Annotated[Session, Depends(get_db)]

# An app with a second database (SECOND_DATABASE_URL): a session for each, from its own dependency.
SECOND_SESSION = None
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

    SECOND_SESSION = Annotated[Session, Depends(get_second_db)]
