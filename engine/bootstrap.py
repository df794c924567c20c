"""Wire the engine for an entry point: settings -> database -> unit-of-work factory."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from engine.adapters.database import make_engine, session_factory
from engine.clock import Clock, SystemClock
from engine.config import Settings, get_settings
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

UnitOfWorkFactory = Callable[..., SqlAlchemyUnitOfWork]  # optional: admission=, keyed=


def unit_of_work_factory(
    settings: Settings | None = None, clock: Clock | None = None, database_url: str | None = None
) -> UnitOfWorkFactory:
    """A factory of units of work on the configured database, reading time from `clock`."""
    settings = settings or get_settings()
    engine = make_engine(database_url or settings.database_url)
    return partial(SqlAlchemyUnitOfWork, session_factory(engine), clock or SystemClock())
