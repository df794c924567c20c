"""Session-wide fixtures for the real backing services (PostgreSQL and Redis).

The servers are started once per test session by :mod:`tests.support.servers`;
each test gets an empty database / flushed Redis through ``postgres_url`` / ``redis_url``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import PostgresServer, RedisServer
from tests.support.smtp_sink import SmtpSink


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server (private, or ``AIHP_TEST_POSTGRES_URL``) for the session."""
    server = PostgresServer.from_env()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database, dropped after the test."""
    postgres_server.ensure_running()
    name = postgres_server.unique_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.ensure_running()
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A running Redis server (private, or ``AIHP_TEST_REDIS_URL``) for the session."""
    server = RedisServer.from_env()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session Redis, flushed before the test."""
    redis_server.ensure_running()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A real SMTP server on a free loopback port that records what it receives."""
    with SmtpSink() as sink:
        yield sink
