"""Fixtures for integration tests: the engine on a real database, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.clock import ManualClock
from engine.services.unit_of_work import SqlAlchemyUnitOfWork


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty, migrated database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aihp.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def uow_factory(database_url: str, clock: ManualClock) -> Callable[[], SqlAlchemyUnitOfWork]:
    """Units of work on the test database, reading time from the test's clock."""
    engine = make_engine(database_url)
    yield partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    engine.dispose()
