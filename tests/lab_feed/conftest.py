"""Fixtures for the HL7 lab feed: the API's database, clock and callers (to post the same results
as FHIR), a lab-interface user at `north` for the feed, and the listener on a real TCP port."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.adapters.migrate import upgrade
from engine.adapters.pathway_files import PATHWAY_DIR
from engine.services import access
from engine.services import patients as service
from lab_feed.listener import ListenerLimits, ListenerThread
from lab_feed.receiver import LabFeed
from lab_feed.sender import MllpConnection
from lab_feed.site_feeds import load_site_feeds
from tests.api import conftest as api

# The API tests' fixtures: a migrated database (SQLite, or PostgreSQL by indirect parameter), a
# manual clock, units of work, the app and its callers (to post the same results as FHIR).
clock, uow_factory = api.clock, api.uow_factory
app, client, callers = api.app, api.client, api.callers


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (migrating takes longer)."""
    path = tmp_path_factory.mktemp("lab-feed") / "migrated.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> str:
    """A fresh migrated database: a copy of the SQLite file, or with
    `parametrize("database_url", ["postgresql"], indirect=True)` a new PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "postgresql":
        url = request.getfixturevalue("postgres_url")
        upgrade(url)
        return url
    shutil.copy(migrated_sqlite, tmp_path / "feed.db")
    return f"sqlite:///{tmp_path / 'feed.db'}"


@pytest.fixture
def feed(uow_factory, clock) -> LabFeed:
    """The feed acting as `northlab`, a lab-interface user of site north, with the repository's
    feed files (north's laboratory is NORTHLAB)."""
    user = access.create_user(
        uow_factory(), "test", name="northlab", role="lab-interface", site="north"
    )
    token = access.issue_token(uow_factory(), "test", user["id"])["token"]
    principal = access.authenticate(uow_factory(), token)
    sites = load_site_feeds(directory=PATHWAY_DIR / "lab_feeds")
    return LabFeed(uow_factory, principal, sites, clock)


@pytest.fixture
def start_listener(feed: LabFeed) -> Iterator[Callable[..., int]]:
    """Start a listener (limits as keywords) on a free port; returns the port."""
    started: list[ListenerThread] = []

    def start(**limits: Any) -> int:
        thread = ListenerThread(feed, ListenerLimits(**limits))
        started.append(thread)
        return thread.start()

    yield start
    for thread in started:
        thread.stop()


@pytest.fixture
def port(start_listener) -> int:
    return start_listener()


@pytest.fixture
def connect(port: int) -> Iterator[Callable[[], MllpConnection]]:
    opened: list[MllpConnection] = []

    def open_connection() -> MllpConnection:
        connection = MllpConnection("127.0.0.1", port, timeout=15)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.close()


@pytest.fixture
def enrol_north(uow_factory) -> Callable[..., dict[str, Any]]:
    """Enrol a patient at north with a record number (the laboratory's PID-3)."""

    def enrol(record_number: str, site: str = "north", **facts: Any) -> dict[str, Any]:
        return service.enrol_patient(
            uow_factory(),
            "test",
            site=site,
            clinician="dr-a",
            birth_date="1979-04-02",
            sex="F",
            weight_kg=64,
            external_id=record_number,
            facts=facts or None,
        )

    return enrol


@pytest.fixture
def labs_of(uow_factory) -> Callable[[str], list[dict[str, Any]]]:
    """A patient's recorded labs (as the history shows them)."""
    return lambda patient_id: service.patient_history(uow_factory(), "test", patient_id)["labs"]
