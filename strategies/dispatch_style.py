"""Netflix Dispatch: HTTP middleware puts a request-id `scoped_session` on `request.state.db`, commits after `call_next`; API mounted as a sub-app

Dispatch's API (https://github.com/Netflix/dispatch at commit
dd2837e82a0bf5565b1b4b4b91ea30b7262d4061), copied from src/dispatch/main.py
(`db_session_middleware`, the `api` sub-application and its mount), src/dispatch/database/core.py
(`create_db_engine`, `get_db`, `DbSession`) and src/dispatch/config.py (the pool settings'
defaults):

    session = scoped_session(sessionmaker(bind=schema_engine), scopefunc=get_request_id)
    request.state.db = session()
    response = await call_next(request)
    # If we got here without exceptions, commit any pending changes
    if hasattr(request.state, "db") and request.state.db.is_active:
        request.state.db.commit()

`get_request_id` reads a ContextVar the middleware sets to a fresh `uuid1()` per request
and resets in `finally`, after closing the session and `remove()`-ing the registry (a new
registry per request). The engine is module-level and never disposed. Endpoints are
mostly `def`, and their services commit (`db_session.add(...); db_session.commit()`), so
the probes commit in the endpoint; the middleware commits whatever is left. The API
is its own FastAPI app (src/dispatch/api.py's `api_router` is included in it), mounted with
`app.mount("/api/v1", app=api)`.
Left out as not session handling: the per-organization schema (the `/{organization}` path
prefix, `schema_translate_map`, and the `inspect(engine).get_schema_names()` check before
it, which checks out a connection on every request), SessionTracker, the frontend mount,
GZip, security headers, metrics, Sentry and the exception middleware. `get_current_user`
(src/dispatch/auth/service.py) queries `request.state.db`, the session `DbSession` gives:
the harness's `/sync/user` dependency stands for it, run only where a route asks for it, not
on every route as Dispatch's authenticated routers do.
"""

import logging
import os
from contextvars import ContextVar
from typing import Annotated, Final
from uuid import uuid1

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from starlette.requests import Request

# config.py defaults
DATABASE_ENGINE_MAX_OVERFLOW = 10
DATABASE_ENGINE_POOL_PING = False
DATABASE_ENGINE_POOL_RECYCLE = 3600
DATABASE_ENGINE_POOL_SIZE = 20
DATABASE_ENGINE_POOL_TIMEOUT = 30


# database/core.py
def create_db_engine(connection_string: str):
    """Create a database engine with proper timeout settings."""
    url = make_url(connection_string)
    timeout_kwargs = {
        "pool_timeout": DATABASE_ENGINE_POOL_TIMEOUT,
        "pool_recycle": DATABASE_ENGINE_POOL_RECYCLE,
        "pool_size": DATABASE_ENGINE_POOL_SIZE,
        "max_overflow": DATABASE_ENGINE_MAX_OVERFLOW,
        "pool_pre_ping": DATABASE_ENGINE_POOL_PING,
    }
    return create_engine(url, **timeout_kwargs)


engine = create_db_engine(os.environ["DATABASE_URL"])


def get_db(request: Request) -> Session:
    """Get database session from request state."""
    return request.state.db


DbSession = Annotated[Session, Depends(get_db)]


# main.py
app = FastAPI(openapi_url="")

api = FastAPI(
    title="Dispatch",
    root_path="/api/v1",
    docs_url=None,
    openapi_url="/docs/openapi.json",
    redoc_url="/docs",
)

REQUEST_ID_CTX_KEY: Final[str] = "request_id"
_request_id_ctx_var: ContextVar[str | None] = ContextVar(REQUEST_ID_CTX_KEY, default=None)


def get_request_id() -> str | None:
    return _request_id_ctx_var.get()


@api.middleware("http")
async def db_session_middleware(request: Request, call_next):
    request_id = str(uuid1())

    # we create a per-request id such that we can ensure that our session is scoped for a particular request.
    # see: https://github.com/tiangolo/fastapi/issues/726
    ctx_token = _request_id_ctx_var.set(request_id)
    session = None

    try:
        session = scoped_session(sessionmaker(bind=engine), scopefunc=get_request_id)
        request.state.db = session()

        response = await call_next(request)

        # If we got here without exceptions, commit any pending changes
        if hasattr(request.state, "db") and request.state.db.is_active:
            request.state.db.commit()

        return response

    except Exception as e:
        # Explicitly rollback on exceptions
        try:
            if hasattr(request.state, "db") and request.state.db.is_active:
                request.state.db.rollback()
        except Exception as rollback_error:
            logging.error(f"Error during rollback: {rollback_error}")

        # Re-raise the original exception
        raise e from None
    finally:
        # Always clean up resources
        if hasattr(request.state, "db"):
            # Close the session
            try:
                request.state.db.close()
                if session is not None:
                    session.remove()  # Remove the session from the registry
            except Exception as close_error:
                logging.error(f"Error closing database session: {close_error}")

        # Always reset the context variable
        _request_id_ctx_var.reset(ctx_token)


# main.py: the API's routers are included in `api`, which is mounted under /api/v1
app.mount("/api/v1", app=api)
SUB_APP = api  # its middleware serves the endpoints
