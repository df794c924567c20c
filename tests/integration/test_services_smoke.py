"""Smoke tests proving the real-service fixtures start, serve and survive restarts."""

from __future__ import annotations

import socket

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.support.servers import PostgresServer, RedisServer, free_port


@pytest.mark.postgres
def test_postgres_roundtrip(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE patient (id serial PRIMARY KEY, code text NOT NULL)"))
            conn.execute(text("INSERT INTO patient (code) VALUES ('P-1'), ('P-2')"))
        with engine.connect() as conn:
            codes = conn.execute(text("SELECT code FROM patient ORDER BY id")).scalars().all()
            version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    finally:
        engine.dispose()
    assert codes == ["P-1", "P-2"]
    assert version >= 150000


@pytest.mark.postgres
def test_postgres_databases_are_fresh_and_isolated(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.host == "127.0.0.1"
    assert url.port == postgres_server.port
    assert url.database and url.database.startswith("aihp_test_")
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0


@pytest.mark.postgres
def test_postgres_restart_keeps_data(postgres_server: PostgresServer, postgres_url: str) -> None:
    if not postgres_server.managed:
        pytest.skip("external PostgreSQL server cannot be restarted")
    engine = create_engine(postgres_url, pool_pre_ping=True)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE marker (v int)"))
            conn.execute(text("INSERT INTO marker VALUES (42)"))
        postgres_server.stop()
        assert not postgres_server.running
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        postgres_server.start()
        assert postgres_server.running
        with engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM marker")).scalar_one() == 42
        postgres_server.restart(mode="immediate")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT v FROM marker")).scalar_one() == 42
    finally:
        engine.dispose()


def test_redis_ping_set_get(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        assert client.get("aihp:smoke") is None
        client.set("aihp:smoke", "ok")
        assert client.get("aihp:smoke") == b"ok"
    finally:
        client.close()


def test_redis_is_flushed_between_tests(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_restart(redis_server: RedisServer, redis_url: str) -> None:
    if not redis_server.managed:
        pytest.skip("external Redis server cannot be restarted")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1)
    try:
        client.set("before", "1")
        redis_server.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert client.ping() is True
        assert client.get("before") is None, "server runs without persistence"
        redis_server.restart()
        assert client.ping() is True
    finally:
        client.close()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
