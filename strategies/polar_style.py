"""Polar: pure-ASGI middleware opens an `AsyncSession` into `scope["state"]`, auto-commit routes, a `yield` dependency commits again after the response

Polar's API server (https://github.com/polarsource/polar at commit
c6c3645e639ee8eeaa05aa0835cf8e39e330382f), copied from server/polar/postgres.py
(`AsyncSessionMiddleware`, `get_db_session`), server/polar/app.py (`lifespan`,
`create_app`), server/polar/kit/db/postgres.py (`create_async_sessionmaker`),
server/polar/kit/routing.py and server/polar/routing.py (`AutoCommitAPIRoute`, the
routers' route class):

    class AsyncSessionMiddleware:
        async def __call__(self, scope, receive, send):
            if scope["type"] not in ("http", "websocket"):
                return await self.app(scope, receive, send)
            sessionmaker: AsyncSessionMaker = scope["state"]["async_sessionmaker"]
            async with sessionmaker() as session:
                scope["state"]["async_session"] = session
                await self.app(scope, receive, send)

The engine is created in lifespan and disposed there; the sessionmaker reaches the
middleware as lifespan state. Every endpoint router is `polar.routing.APIRouter`, whose
routes wrap the endpoint to `await session.commit()` once it returns (before the response);
`get_db_session` commits again after `yield`, with FastAPI's default dependency scope (after
the response), or rolls back on an exception. Services flush and never commit, so the probes
leave the commit to the pattern. Kept from the engine's settings: pool size 5,
recycle 600 s (`settings.DATABASE_POOL_SIZE`, `DATABASE_POOL_RECYCLE_SECONDS`) and the pool's
logging name; its asyncpg `connect_args` are left out (aiosqlite rejects them). The sync engine the
lifespan also makes (pool size 1, for authlib's OAuth2 server) goes with the `def` routes
(UNSUPPORTED). Left out as not session handling: the read replica's `get_db_read_session` (a
session of its own per dependency, used by some read endpoints), Redis, rate limiting, auth,
versioning, CORS and the other middleware.
"""

import contextlib
import functools
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Annotated, Any, TypedDict

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from starlette.types import ASGIApp, Receive, Scope, Send

from experiments.probes import ROUTES

NO_DEF_ENDPOINTS = (
    "Polar's endpoints are all `async def` (513 of 513), given the middleware's AsyncSession; its one "
    "sync Session (pool size 1) is built for authlib's OAuth2 server only"
)
UNSUPPORTED = {path: NO_DEF_ENDPOINTS for path in ROUTES if path.startswith("/sync/")}

DATABASE_POOL_SIZE = 5  # polar/config.py
DATABASE_POOL_RECYCLE_SECONDS = 600


# kit/db/postgres.py, postgres.py
def create_async_engine(process_name: str) -> AsyncEngine:
    return _create_async_engine(
        os.environ["ASYNC_DATABASE_URL"],
        pool_size=DATABASE_POOL_SIZE,
        pool_recycle=DATABASE_POOL_RECYCLE_SECONDS,
        pool_logging_name=process_name,
    )


def create_async_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)


AsyncSessionMaker = async_sessionmaker[AsyncSession]


class AsyncSessionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)

        sessionmaker: AsyncSessionMaker = scope["state"]["async_sessionmaker"]
        async with sessionmaker() as session:
            scope["state"]["async_session"] = session
            await self.app(scope, receive, send)


async def get_db_session(request: Request) -> AsyncGenerator[AsyncSession]:
    try:
        session = request.state.async_session
    except AttributeError as e:
        raise RuntimeError(
            "Session is not present in the request state. Did you forget to add AsyncSessionMiddleware?"
        ) from e

    try:
        yield session
    except:  # noqa: E722 (as Polar writes it)
        await session.rollback()
        raise
    else:
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_db_session)]


# kit/routing.py, routing.py
class AutoCommitAPIRoute(APIRoute):
    """
    A subclass of `APIRoute` that automatically
    commits the session after the endpoint is called.

    It allows to directly return ORM objects from the endpoint
    without having to call `session.commit()` before returning.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        endpoint = self.wrap_endpoint(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def wrap_endpoint(self, endpoint: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(endpoint)
        async def wrapped_endpoint(*args: Any, **kwargs: Any) -> Any:
            session: AsyncSession | None = None
            for arg in (args, *kwargs.values()):
                if isinstance(arg, AsyncSession):
                    session = arg
                    break

            response = await endpoint(*args, **kwargs)

            if session is not None:
                await session.commit()

            return response

        return wrapped_endpoint


ROUTE_CLASS = AutoCommitAPIRoute  # routing.py: every router's route class (`get_api_router_class`)
COMMITS_AFTER_ENDPOINT = True  # services flush; the route class and get_db_session commit


# app.py
class State(TypedDict):
    async_engine: AsyncEngine
    async_sessionmaker: AsyncSessionMaker


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    async_engine = create_async_engine("app")
    async_sessionmaker = create_async_sessionmaker(async_engine)

    yield {
        "async_engine": async_engine,
        "async_sessionmaker": async_sessionmaker,
    }

    await async_engine.dispose()


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan, openapi_url=None)
    app.add_middleware(AsyncSessionMiddleware)
    return app


app = create_app()
