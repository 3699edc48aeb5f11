"""known-good: a unit of work from a dependency, opening its session from the sessionmaker it holds

The Unit of Work pattern as Cosmic Python writes it (Percival and Gregory,
"Architecture Patterns with Python", chapter 6,
https://www.cosmicpython.com/book/chapter_06_uow.html):
`SqlAlchemyUnitOfWork(session_factory=DEFAULT_SESSION_FACTORY)` opens its session
in `__enter__`, rolls back whatever is left uncommitted in `__exit__`, and its
tests build one with a session_factory of their own. Must pass testability and
rollback_tests: a test overrides the dependency with the app's own unit of work
holding the test's sessionmaker; neither a session nor a sessionmaker in its
place would do.
"""

import os

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from experiments import probes

DEFAULT_SESSION_FACTORY = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
GOOD_FOR = ("testability", "rollback_tests")
app = FastAPI()


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker = DEFAULT_SESSION_FACTORY):
        self.session_factory = session_factory

    def __enter__(self) -> "UnitOfWork":
        self.session = self.session_factory()
        return self

    def __exit__(self, *args) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()


def get_uow() -> UnitOfWork:
    return UnitOfWork()


@app.get("/sync/tag")
def sync_tag(tag: str, delay: float, query: bool, uow: UnitOfWork = Depends(get_uow)):
    with uow:
        return probes.tag(uow.session, tag, delay, query)


@app.get("/async/tag")
async def async_tag(tag: str, delay: float, query: bool, uow: UnitOfWork = Depends(get_uow)):
    with uow:
        return await probes.tag_async(uow.session, tag, delay, query)


@app.post("/sync/write")
def sync_write(key: str, fail: bool, delay: float, uow: UnitOfWork = Depends(get_uow)):
    with uow:
        result = probes.write(uow.session, key, fail, delay, commit=False)
        uow.commit()
        return result


@app.post("/async/write")
async def async_write(key: str, fail: bool, delay: float, uow: UnitOfWork = Depends(get_uow)):
    with uow:
        result = await probes.write_async(uow.session, key, fail, delay, commit=False)
        uow.commit()
        return result


@app.get("/nodb")
def nodb():
    return probes.no_database()
