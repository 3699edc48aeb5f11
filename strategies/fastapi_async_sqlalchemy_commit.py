"""fastapi-async-sqlalchemy 0.7.1 (0.8 on Python 3.12+) with `commit_on_exit=True`: the middleware commits

The same library and module as `fastapi_async_sqlalchemy`, with the one setting
its middleware offers for "unit of work" apps: `SQLAlchemyMiddleware(...,
commit_on_exit=True)` commits the request's session when the endpoint returns and
rolls it back when it raised, so the endpoints only add rows. In 0.7.1 it is a
keyword of the middleware's `__init__` (its README does not show it) passed to
`DBSession.__aexit__`, which awaits `session.commit()` once `call_next` has
returned. The 0.8 README documents it, under "Request transactions and
streaming responses":

    When ``SQLAlchemyMiddleware(..., commit_on_exit=True)`` manages a normal
    non-streaming HTTP request, the request session is committed before
    ``http.response.start`` is forwarded to the ASGI server. If commit, rollback,
    or close fails, the failure happens before a successful response is reported to
    the client.

Everything else as in `fastapi_async_sqlalchemy`: the README's
`app.add_middleware(SQLAlchemyMiddleware, db_url=...)` with `db_url` only, and the
global `db.session` (https://github.com/h0rn3t/fastapi-async-sqlalchemy).
"""

import os

from fastapi import FastAPI
from fastapi_async_sqlalchemy import SQLAlchemyMiddleware, create_middleware_and_session_proxy, db

REQUIRES = ("fastapi-async-sqlalchemy>=0.7",)

app = FastAPI()
app.add_middleware(SQLAlchemyMiddleware, db_url=os.environ["ASYNC_DATABASE_URL"], commit_on_exit=True)

ASYNC_SESSION_FROM = lambda: db.session  # noqa: E731  (read when used, as in fastapi_async_sqlalchemy)
COMMITS_AFTER_ENDPOINT = True  # the endpoints leave the commit to the middleware: what commit_on_exit is for

# A second database (ASYNC_SECOND_DATABASE_URL): the README's second middleware and proxy, committing on exit too.
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")
SECOND_SESSION_FROM = None
if SECOND_DATABASE_URL:
    SecondSQLAlchemyMiddleware, second_db = create_middleware_and_session_proxy()
    app.add_middleware(SecondSQLAlchemyMiddleware, db_url=SECOND_DATABASE_URL, commit_on_exit=True)
    SECOND_SESSION_FROM = lambda: second_db.session  # noqa: E731
