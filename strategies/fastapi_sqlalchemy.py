"""fastapi-sqlalchemy 0.2.1 (mfreeborn): `DBSessionMiddleware` and its global `db.session` ContextVar

The library the thread names ("How about this kind of pattern
https://github.com/mfreeborn/fastapi-sqlalchemy similar to the way it works in
flask?", FastAPI issue #726). Written as its README, "Usage inside of a route",
shows it:

    app = FastAPI()
    app.add_middleware(DBSessionMiddleware, db_url="sqlite://")

    # once the middleware is applied, any route can then access the database session
    # from the global ``db``

    @app.get("/users")
    def get_users():
        users = db.session.query(User).all()

"Note that the session object provided by ``db.session`` is based on the
Python3.7+ ``ContextVar``. This means that each session is linked to the
individual request context in which it was created."

Default settings (`commit_on_exit=False`), so the endpoints commit. The engine
is created inside the middleware's `__init__` (when Starlette builds the
middleware stack, at the first event the app receives) and never disposed; the
middleware is a `BaseHTTPMiddleware`. Last release 0.2.1 (2020).
"""

import os

from fastapi import FastAPI
from fastapi_sqlalchemy import DBSessionMiddleware, db

REQUIRES = ("fastapi-sqlalchemy>=0.2",)
# Its middleware keeps one module-level sessionmaker and `db.session` reads one ContextVar: a second
# DBSessionMiddleware replaces the first's sessionmaker, and no second session can be had in a request.
ONE_DATABASE = (
    "fastapi-sqlalchemy holds one module-level sessionmaker (`_Session`) behind `db.session`; "
    "a second DBSessionMiddleware replaces it"
)
UNSUPPORTED = {"/sync/write2": ONE_DATABASE, "/async/write2": ONE_DATABASE}

app = FastAPI()
app.add_middleware(DBSessionMiddleware, db_url=os.environ["DATABASE_URL"])

# `db.session` where the session is used: a stream or a task reads the ContextVar when it runs.
SESSION_FROM = lambda: db.session  # noqa: E731
