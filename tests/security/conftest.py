"""Fixtures for the security tests: the HTTP API's (app, client, callers, a database on SQLite
or PostgreSQL, the test clock), shared rather than copied."""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    Callers,
    app,
    callers,
    client,
    clock,
    database_url,
    enrol,
    uow_factory,
)
