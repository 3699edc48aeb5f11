"""Netflix Dispatch: HTTP middleware puts a request-id `scoped_session` on `request.state.db`, commits after `call_next`; API mounted as a sub-app

Dispatch's API (https://github.com/Netflix/dispatch at commit
dd2837e82a0bf5565b1b4b4b91ea30b7262d4061), copied from src/dispatch/main.py
(`db_session_middleware`, the `api` sub-application and its mount), src/dispatch/database/core.py
(`create_db_engine`, `get_db`, `DbSession`), src/dispatch/config.py (the pool settings'
defaults), src/dispatch/api.py (`api_router`) and src/dispatch/auth/service.py
(`get_current_user`, which queries `request.state.db`):

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
is its own FastAPI app, `api_router` included in it, mounted with `app.mount("/api/v1", app=api)`.
Left out as not session handling: the per-organization schema (the `/{organization}` path
prefix, `schema_translate_map`, and the `inspect(engine).get_schema_names()` check before
it, which checks out a connection on every request), SessionTracker, the frontend mount,
GZip, security headers, metrics, Sentry and the exception middleware. `get_current_user`
runs only where a route asks for it (`/sync/user`), not on every route as Dispatch's
authenticated routers do.
"""

import logging
import os
from contextvars import ContextVar
from typing import Annotated, Final
from uuid import uuid1

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import create_engine
from sqlalchemy.engine.url import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from starlette.requests import Request

from experiments import probes

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


# auth/service.py
def get_current_user(request: Request) -> int:
    """Dispatch loads (or creates) the authenticated user with `request.state.db`."""
    return probes.current_user(request.state.db)


CurrentUser = Annotated[int, Depends(get_current_user)]


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


# <module>/views.py: one router per module, included under its prefix
sync_router = APIRouter()
async_router = APIRouter()
probe_router = APIRouter()


def load_user(db_session: DbSession) -> int:
    return probes.session_key(db_session)


@sync_router.get("/tag")
def sync_tag(db_session: DbSession, tag: str, delay: float, query: bool):
    return probes.tag(db_session, tag, delay, query)


@async_router.get("/tag")
async def async_tag(db_session: DbSession, tag: str, delay: float, query: bool):
    return await probes.tag_async(db_session, tag, delay, query)


@probe_router.get("/same")
def same(db_session: DbSession, user: Annotated[int, Depends(load_user)]):
    return probes.same_session(user, db_session)


@sync_router.post("/write")
def sync_write(db_session: DbSession, key: str, fail: bool, delay: float):
    return probes.write(db_session, key, fail, delay)


@async_router.post("/write")
async def async_write(db_session: DbSession, key: str, fail: bool, delay: float):
    return await probes.write_async(db_session, key, fail, delay)


@sync_router.post("/created", response_model=probes.NoteOut)
def sync_created(db_session: DbSession, key: str):
    return probes.create(db_session, key)


@async_router.post("/created", response_model=probes.NoteOut)
async def async_created(db_session: DbSession, key: str):
    return await probes.create_async(db_session, key)


@probe_router.get("/nodb")
def nodb():
    return probes.no_database()


@sync_router.get("/model", response_model=probes.NoteOut)
def sync_model(db_session: DbSession, delay: float):
    return probes.load_note(db_session, delay)


@sync_router.get("/user")
def sync_user(current_user: CurrentUser, delay: float):
    return probes.greet(current_user, delay)


@sync_router.post("/conflict")
def sync_conflict(db_session: DbSession, key: str):
    result = probes.add_conflicting(db_session, key)
    db_session.commit()
    return result


@async_router.post("/conflict")
async def async_conflict(db_session: DbSession, key: str):
    result = probes.add_conflicting(db_session, key)
    db_session.commit()
    return result


@sync_router.get("/stream")
def sync_stream(db_session: DbSession, chunks: int, delay: float):
    return StreamingResponse(probes.stream(db_session, chunks, delay), media_type="application/x-ndjson")


@async_router.get("/stream")
async def async_stream(db_session: DbSession, chunks: int, delay: float):
    return StreamingResponse(probes.stream_async(db_session, chunks, delay), media_type="application/x-ndjson")


@sync_router.post("/background")
def sync_background(db_session: DbSession, key: str, tasks: BackgroundTasks):
    tasks.add_task(probes.write_later, db_session, key)
    return {"key": key}


@async_router.post("/background")
async def async_background(db_session: DbSession, key: str, tasks: BackgroundTasks):
    tasks.add_task(probes.write_later_async, db_session, key)
    return {"key": key}


# api.py
api_router = APIRouter()
api_router.include_router(sync_router, prefix="/sync", tags=["sync"])
api_router.include_router(async_router, prefix="/async", tags=["async"])
api_router.include_router(probe_router, tags=["probes"])

# main.py
api.include_router(api_router)
app.mount("/api/v1", app=api)
