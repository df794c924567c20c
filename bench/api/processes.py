"""The processes `bench api` measures against: the statements' floor (captured statements
replayed on a raw DBAPI connection) and the real app served by uvicorn in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event

from bench.api.seeding import NOW
from engine.clock import ManualClock

ENV_URL = "BENCH_API_DATABASE_URL"


@dataclass
class Captured:
    """The statements one call sent, with their parameters."""

    statements: list[tuple[str, Any]] = field(default_factory=list)

    def selects(self) -> list[tuple[str, Any]]:
        return [(s, p) for s, p in self.statements if s.lstrip().upper().startswith("SELECT")]


def capture(engine: Engine, fn: Callable[[], Any]) -> Captured:
    """Run `fn` and record every statement it sent through `engine`."""
    found = Captured()

    def listener(conn, cursor, statement, parameters, context, executemany) -> None:
        found.statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    return found


def swap(parameters: Any, old: str, new: str) -> Any:
    """`parameters` with every value equal to `old` replaced by `new`."""
    if isinstance(parameters, dict):
        return {k: (new if v == old else v) for k, v in parameters.items()}
    if isinstance(parameters, (list, tuple)):
        return type(parameters)(new if v == old else v for v in parameters)
    return parameters


class Floor:
    """Replays statements on one raw DBAPI connection, one transaction per call."""

    def __init__(self, engine: Engine):
        self.raw = engine.raw_connection()

    def run(self, statements: list[tuple[str, Any]]) -> int:
        cursor = self.raw.cursor()
        fetched = 0
        try:
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                fetched += len(cursor.fetchall())
        finally:
            cursor.close()
            self.raw.rollback()
        return fetched

    def close(self) -> None:
        self.raw.close()


def serve() -> Any:
    """uvicorn factory (`bench.api.processes:serve`): the real app on $BENCH_API_DATABASE_URL, no
    dispatcher, the clock stopped at NOW."""
    from api.main import create_app
    from engine.config import Settings

    return create_app(Settings(database_url=os.environ[ENV_URL]), ManualClock(NOW), dispatch=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """uvicorn serving an app factory (default `serve()`) in a child process, on a free port;
    ready when `ready` answers 200."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        factory: str = "bench.api.processes:serve",
        env: dict[str, str] | None = None,
        ready: str = "/users/me",
    ):
        self.port = _free_port()
        # kept open for the child's lifetime (closed in `close`)
        self.log = tempfile.TemporaryFile(prefix="aihp-bench-server-")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={**os.environ, ENV_URL: url, **(env or {})},
            cwd=Path(__file__).resolve().parents[2],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {self._log_tail()}")
            try:
                if self.client.get(ready).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn not ready after 60 s: {self._log_tail()}")
            time.sleep(0.2)
        self.paths = set(self.client.get("/openapi.json").json()["paths"])

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:].decode(errors="replace")

    def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        response = self.client.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: {response.status_code} {response.text[:300]}")
        return response

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
