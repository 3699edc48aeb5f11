"""The probe-route mount: a module that gives only its session source is served the whole route contract."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager

from experiments.harness import discovery
from experiments.harness.discovery import ContractError
from experiments.harness.serving import Database
from experiments.probes import OPTIONAL, ROUTES
from tests.running import TEMPLATE

GETTER = """
import os
from contextvars import ContextVar

from fastapi import FastAPI
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

SessionLocal = sessionmaker(create_engine(os.environ["DATABASE_URL"]))
current = ContextVar("current")
app = FastAPI()


@app.middleware("http")
async def session_per_request(request, call_next):
    with SessionLocal() as session:
        token = current.set(session)
        try:
            return await call_next(request)
        finally:
            current.reset(token)


SESSION_FROM = current.get
"""


@pytest.fixture
def load(tmp_path, monkeypatch):
    database = Database.sqlite(tmp_path / "mount.db")
    for name, value in database.environ.items():
        monkeypatch.setenv(name, value)

    def load(source: str, name: str = "pattern"):
        (tmp_path / f"{name}.py").write_text(source)
        return discovery.load(discovery.at(tmp_path / f"{name}.py"))

    return load


def test_a_module_of_its_pattern_only_is_served_every_probe_route(load):
    module = load(TEMPLATE.read_text())
    assert discovery.served_routes(module.app) == set(ROUTES) - set(OPTIONAL)
    assert discovery.served_routes(module.app, "def") >= {"/sync/tag", "/sync/stream", "/sync/background"}
    assert discovery.served_routes(module.app, "async") >= {"/async/tag", "/async/stream", "/async/background"}


def test_a_route_the_module_serves_itself_is_left_alone(load):
    module = load(TEMPLATE.read_text() + '\n\n@app.get("/sync/tag")\ndef own(tag: str):\n    return {"own": tag}\n')
    (_, route) = discovery.probe_routes(module.app)["/sync/tag"]
    assert route.endpoint.__name__ == "own"


def test_an_async_session_alone_leaves_the_def_routes_unsupported(load):
    source = TEMPLATE.read_text().replace(
        "SessionDep = Annotated[Session,",
        "from sqlalchemy.ext.asyncio import AsyncSession\n\nSessionDep = Annotated[AsyncSession,",
    )
    module = load(source)
    assert not discovery.served_routes(module.app, "def")
    assert set(discovery.unsupported(module)) == {p for p in ROUTES if p.startswith("/sync/")}


def test_two_sources_of_one_kind_are_one_line(load):
    with pytest.raises(ContractError, match=r"SessionDep, OtherDep each give a Session .* SECOND_SESSION"):
        load(TEMPLATE.read_text() + "\n\nOtherDep = Annotated[Session, Depends(lambda: None)]\n")


async def _get(app, path: str, **params) -> httpx.Response:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mount") as client:
            return await client.get(path, params=params)


@pytest.mark.anyio
async def test_a_getter_is_called_where_the_session_is_used(load):
    module = load(GETTER, "getter")
    response = await _get(module.app, "/sync/stream", chunks=2, delay=0)
    assert response.status_code == 200 and response.text.count("chunk") == 2  # looked up inside the stream
    tagged = await _get(module.app, "/async/tag", tag="a", delay=0, query=True)
    assert tagged.json()["tag_after"] == "a"
