"""Fixtures for the HTTP API: the app on a migrated database, a manual clock, and one user with a
token per role (a clinician and a coordinator at site `north`, a coordinator at `south`, a
clinician without a site, a lab interface, an auditor and an admin).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.clock import ManualClock
from engine.config import Settings
from engine.services import access
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

ROLES = ("clinician", "coordinator", "lab-interface", "auditor", "admin")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A migrated SQLite file; `parametrize("database_url", ["postgresql"], indirect=True)`
    runs a test on a fresh PostgreSQL database instead."""
    if getattr(request, "param", "sqlite") == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def uow_factory(database_url: str, clock: ManualClock) -> Iterator[Callable[[], Any]]:
    """Units of work on the test database (for set-up and for checking what was written)."""
    engine = make_engine(database_url)
    yield partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    engine.dispose()


@pytest.fixture
def app(database_url: str, clock: ManualClock) -> FastAPI:
    # plain http in tests, as in the embedded demo: the session cookie is not Secure
    settings = Settings(database_url=database_url, cookie_secure=False)
    return create_app(settings, clock, dispatch=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Callers:
    """Authorization headers per caller, and the users and tokens behind them."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, caller: str) -> dict[str, str]:
        return self.headers[caller]

    def add(self, uow_factory, caller: str, role: str, site: str | None, days: int = 30) -> None:
        user = access.create_user(uow_factory(), "test", name=caller, role=role, site=site)
        token = access.issue_token(uow_factory(), "test", user["id"], days=days)
        self.users[caller], self.tokens[caller] = user, token
        self.headers[caller] = {"Authorization": f"Bearer {token['token']}"}


@pytest.fixture
def callers(uow_factory, clock: ManualClock) -> Callers:
    """One token per role (role name = caller name, site `north` where a site applies), plus
    `clinician-anywhere`, `coordinator-south`, `expired` and `revoked` tokens."""
    found = Callers()
    found.add(uow_factory, "expired", "clinician", None, days=1)
    clock.advance(days=2)
    sites = {"clinician": "north", "coordinator": "north"}
    for role in ROLES:
        found.add(uow_factory, role, role, sites.get(role))
    found.add(uow_factory, "clinician-anywhere", "clinician", None)
    found.add(uow_factory, "coordinator-south", "coordinator", "south")
    found.add(uow_factory, "revoked", "clinician", None)
    access.revoke_token(uow_factory(), "test", found.tokens["revoked"]["id"])
    return found


ENROLMENT = {
    "site": "north",
    "clinician": "dr-a",
    "birth_date": "1979-04-02",
    "sex": "F",
    "weight_kg": 64,
    "given_name": "Ada",
    "family_name": "Example",
    "email": "ada@example.org",
    "phone": "+44 20 7946 0000",
    "contact_preferences": {"channel": "email"},
}


@pytest.fixture
def enrol(client: TestClient, callers: Callers) -> Callable[..., dict[str, Any]]:
    """Enrol a patient at `north` over HTTP (facts as keywords); returns the status."""

    def enrol_patient(site: str = "north", **facts: Any) -> dict[str, Any]:
        caller = "clinician" if site == "north" else "clinician-anywhere"
        body = {**ENROLMENT, "site": site, "facts": facts}
        response = client.post("/patients", json=body, headers=callers[caller])
        assert response.status_code == 201, response.text
        return response.json()

    return enrol_patient
