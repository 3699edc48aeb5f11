"""Discovery finds the probe routes wherever an app serves them, and a module imports again as often as a check asks.

Real apps put their routes on `APIRouter`s, nest them, include them under a prefix and mount
sub-applications (tests/fixture_strategies/routes_on_routers.py is one); the checks name the probe
paths, and the in-process client sends each request on to the path the app serves it at.
"""

from __future__ import annotations

import warnings

import anyio
from fastapi import APIRouter, FastAPI

from experiments.harness import discovery, serving
from experiments.probes import OPTIONAL, ROUTES
from tests.running import FIXTURES

ON_ROUTERS = FIXTURES / "routes_on_routers.py"


def _load(path, monkeypatch, tmp_path):
    database = serving.Database.sqlite(tmp_path / "discovery.db")
    for name, value in database.environ.items():
        monkeypatch.setenv(name, value)
    return discovery.load(discovery.at(path))


def test_every_probe_route_on_routers_and_in_a_mounted_app_is_found(monkeypatch, tmp_path):
    module = _load(ON_ROUTERS, monkeypatch, tmp_path)
    served = discovery.served_at(module.app)
    assert set(served) == set(ROUTES) - set(OPTIONAL)
    assert served["/sync/tag"] == "/api/v1/sessions/sync/tag"  # nested routers, each with a prefix
    assert served["/sync/conflict"] == "/internal/jobs/sync/conflict"  # a router of a mounted sub-application
    assert served["/nodb"] == "/nodb"  # a router included without a prefix
    assert discovery.served_routes(module.app, "async") == {p for p in served if p.startswith("/async/")}
    assert discovery.missing_routes(module, tuple(ROUTES)) == []
    quoted = discovery.pattern(module)["def"]  # what the report quotes: found through the routers
    assert "async def lifespan" in quoted and "def get_db" in quoted and "def sync_tag" in quoted


def test_probe_paths_reach_the_routes_under_their_prefix(monkeypatch, tmp_path):
    """The check names /sync/tag and /sync/created; the app answers them at its own paths (the second in a mounted
    sub-application), and the record of each exchange names the probe path."""
    module = _load(ON_ROUTERS, monkeypatch, tmp_path)
    exchanges: list[serving.Exchange] = []

    async def main():
        async with serving.serve(serving.recorded(module.app, exchanges), set()) as served:
            tag = await served.client.get("/sync/tag", params={"tag": "t", "delay": 0, "query": True})
            created = await served.client.post("/sync/created", params={"key": "k"})
            return tag, created

    tag, created = anyio.run(main)
    assert tag.status_code == 200 and tag.json()["tag"] == "t"
    assert created.status_code == 200 and created.json()["key"] == "k"
    assert tag.request.url.path == "/api/v1/sessions/sync/tag"
    assert created.request.url.path == "/internal/jobs/sync/created"
    assert [e.path for e in exchanges] == ["/sync/tag", "/sync/created"]


def test_a_route_at_the_probe_path_wins_and_one_under_a_path_parameter_is_not_served():
    app, prefixed, tenant = FastAPI(), APIRouter(), APIRouter()
    prefixed.get("/sync/tag")(lambda: {})
    tenant.get("/same")(lambda: {})
    app.include_router(prefixed, prefix="/api")
    app.get("/sync/tag")(lambda: {})
    app.include_router(tenant, prefix="/{tenant}")
    assert discovery.served_at(app) == {"/sync/tag": "/sync/tag"}


def test_a_sqlmodel_table_model_survives_importing_its_module_again(monkeypatch, tmp_path):
    """SQLModel's `table=True` models share one MetaData: a second import would redefine its table. The harness
    takes the earlier import's models out first, so the new one is declared afresh, without a warning."""
    from sqlmodel import SQLModel

    module_file = tmp_path / "hero_models.py"
    module_file.write_text(
        "from fastapi import FastAPI\n"
        "from sqlmodel import Field, Relationship, SQLModel\n\n\n"
        "class Team(SQLModel, table=True):\n"
        "    id: int | None = Field(default=None, primary_key=True)\n"
        "    heroes: list['Hero'] = Relationship(back_populates='team')\n\n\n"
        "class Hero(SQLModel, table=True):\n"
        "    id: int | None = Field(default=None, primary_key=True)\n"
        "    team_id: int | None = Field(default=None, foreign_key='team.id')\n"
        "    team: Team | None = Relationship(back_populates='heroes')\n\n\n"
        "app = FastAPI()\n"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, *_, last = [_load(module_file, monkeypatch, tmp_path) for _ in range(3)]
        hero = last.Hero(team=last.Team())  # configures the mappers: each relationship resolves to its own import
    assert SQLModel.metadata.tables["hero"] is last.Hero.__table__
    assert hero.team.__class__ is last.Team and first.Hero.team.property.mapper.class_ is first.Team
    assert [str(w.message) for w in caught] == []
