"""`async_scoped_session` keyed on the current task

A global `async_scoped_session` registry with `scopefunc=asyncio.current_task`,
called directly in routes; an app-level `async` yield dependency awaits
`Session.remove()` in the request's own task. SQLAlchemy docs, "Using asyncio
scoped session":
https://docs.sqlalchemy.org/en/20/orm/extensions/asyncio.html#using-asyncio-scoped-session
"""

import os
from asyncio import current_task

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import async_scoped_session, async_sessionmaker, create_async_engine

engine = create_async_engine(os.environ["ASYNC_DATABASE_URL"])
Session = async_scoped_session(async_sessionmaker(engine, expire_on_commit=False), scopefunc=current_task)
SECOND_DATABASE_URL = os.environ.get("ASYNC_SECOND_DATABASE_URL")  # set when the app has a second database
SecondSession = None
if SECOND_DATABASE_URL:
    SecondSession = async_scoped_session(
        async_sessionmaker(create_async_engine(SECOND_DATABASE_URL), expire_on_commit=False), scopefunc=current_task
    )


async def remove_session():
    try:
        yield
    finally:
        await Session.remove()
        if SecondSession is not None:
            await SecondSession.remove()


app = FastAPI(dependencies=[Depends(remove_session)])

# `Session()` where the session is used: a stream or a task looks up its own task's session when it runs.
ASYNC_SESSION_FROM = Session
SECOND_SESSION_FROM = SecondSession
