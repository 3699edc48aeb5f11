"""fastapi-utils 0.8 `FastAPISessionMaker`: lazily cached engine, `get_db` commits after the endpoint

fastapi-utils' "SQLAlchemy Sessions" user guide (docs/user-guide/session.md and
docs/src/session1.py, https://fastapiutils.github.io/fastapi-utils/user-guide/session/):

    def get_db() -> Iterator[Session]:
        \"\"\"FastAPI dependency that provides a sqlalchemy session\"\"\"
        yield from _get_fastapi_sessionmaker().get_db()

    @lru_cache()
    def _get_fastapi_sessionmaker() -> FastAPISessionMaker:
        \"\"\"This function could be replaced with a global variable if preferred\"\"\"
        database_uri = DBSettings().database_uri
        return FastAPISessionMaker(database_uri)

`FastAPISessionMaker.get_db` yields a session, commits it when the endpoint
returned, rolls back when it raised, and closes it; the guide warns: "The `get_db`
dependency **will not finalize your ORM session until *after* a response is
returned to the user**" and tells users to commit inside the endpoint where a
write may fail, so the endpoints here leave the commit to `get_db`, the
pattern's own place for it. The engine (`sa.create_engine(uri, pool_pre_ping=True)`)
is created at the first request and never disposed.

Two departures the guide forces on current versions: its `from pydantic import
BaseSettings` is pydantic 1 (pydantic 2 moved it to pydantic-settings), and the
field is `database_url` so that it reads the DATABASE_URL of the contract (the
guide's reads DATABASE_URI). `pip install fastapi-utils[session]`, the extra the
guide names, does not import: the package's `__init__` needs typing-inspect, which
only the `all` extra installs. fastapi-utils and its fork fastapi-restful (0.6.0,
2024-05) ship the same `session.py`; fastapi-utils has the later release (0.8.0,
2024-11).
"""

from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, FastAPI
from fastapi_utils.session import FastAPISessionMaker
from pydantic_settings import BaseSettings
from sqlalchemy.orm import Session

REQUIRES = ("fastapi-utils>=0.8", "typing-inspect>=0.9", "pydantic-settings>=2.0")


class DBSettings(BaseSettings):
    """Parses variables from environment on instantiation"""

    database_url: str


def get_db() -> Iterator[Session]:
    """FastAPI dependency that provides a sqlalchemy session"""
    yield from _get_fastapi_sessionmaker().get_db()


@lru_cache
def _get_fastapi_sessionmaker() -> FastAPISessionMaker:
    """This function could be replaced with a global variable if preferred"""
    database_url = DBSettings().database_url
    return FastAPISessionMaker(database_url)


app = FastAPI()

SessionDep = Annotated[Session, Depends(get_db)]
COMMITS_AFTER_ENDPOINT = True  # get_db commits when the endpoint has returned
