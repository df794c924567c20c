"""Database engines: SQLite (embedded default, WAL, busy timeout) or PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from engine.adapters.orm import metadata, start_mappers

#: Any error the database driver raised (server away, connection lost, lock timeout...): what
#: a service retries or lets through, without importing SQLAlchemy itself.
DatabaseError = DBAPIError


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout.

    Statement parameters are kept out of error messages: they can carry patient data.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1] if "///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the service reads them)."""
    start_mappers()
    return sessionmaker(bind=engine, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create every table directly (tests, demo); production uses Alembic migrations."""
    start_mappers()
    metadata.create_all(engine)
