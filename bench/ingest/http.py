"""A lab result POSTed over HTTP beside the service call it makes, with the statements and
transactions each request costs.

The real app is served by uvicorn in a child process (`serve`, the clock stopped at NOW, no
dispatcher) on the database being measured, under the same durability setting. In that child,
listeners on every SQLAlchemy engine count cursor executions (statements; an executemany is
one) and transactions begun, committed and rolled back; the bench reads the counters from a
bench-only route, `GET /_bench/counts`, before and after each call. The cases:

* service: `record_lab_result` in this process (the call the route makes), its statements
  counted the same way;
* HTTP: `POST /patients/{id}/labs` with a lab-interface user's bearer token, one keep-alive
  connection, sequential requests;
* HTTP + Idempotency-Key: the same with a fresh key on each request.

The cases alternate call by call, so a slow spell of the shared box hits them alike.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event

from bench.api.processes import Server as ApiServer
from bench.ingest.durability import Durability, sqlite_synchronous
from bench.ingest.measurements import uow_factory_of
from bench.ingest.seeding import NOW
from engine.clock import ManualClock
from engine.services import access
from engine.services import patients as service

URL_ENV = "BENCH_INGEST_DATABASE_URL"
SYNCHRONOUS_ENV = "BENCH_INGEST_SQLITE_SYNCHRONOUS"
COUNTERS = ("statements", "begin", "commit", "rollback")
SERVICE, HTTP, HTTP_KEYED = "service", "HTTP", "HTTP + Idempotency-Key"
CASES = (SERVICE, HTTP, HTTP_KEYED)


@dataclass
class Counted:
    """Statements and transactions seen by the engines an `install_counters` call watches."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, name: str) -> Callable[..., None]:
        def listener(*_: Any) -> None:
            self.counts[name] += 1

        return listener


def install_counters(target: Any) -> Counted:
    """Count statements and transactions on `target` (an engine, or the `Engine` class)."""
    counted = Counted()
    event.listen(target, "before_cursor_execute", counted.add("statements"))
    for name in ("begin", "commit", "rollback"):
        event.listen(target, name, counted.add(name))
    return counted


def serve() -> Any:
    """uvicorn factory (`bench.ingest.http:serve`): the real app on $BENCH_INGEST_DATABASE_URL,
    every engine counted, and `GET /_bench/counts` answering the counters."""
    from sqlalchemy.engine import Engine as EngineClass
    from sqlalchemy.pool import Pool

    from api.main import create_app
    from engine.config import Settings

    counted = install_counters(EngineClass)
    level = os.environ.get(SYNCHRONOUS_ENV)
    if level:
        sqlite_synchronous(Pool, level)
    url = os.environ[URL_ENV]
    app = create_app(Settings(database_url=url), ManualClock(NOW), dispatch=False)
    app.add_api_route(
        "/_bench/counts", lambda: dict(counted.counts), methods=["GET"], include_in_schema=False
    )
    return app


class Server(ApiServer):
    """uvicorn serving `serve()` (the app with statement counters) in a child process."""

    def __init__(self, url: str, durability: Durability, token: str):
        env = {URL_ENV: url}
        if url.startswith("sqlite"):
            env[SYNCHRONOUS_ENV] = durability.sqlite_synchronous
        super().__init__(
            url, token, factory="bench.ingest.http:serve", env=env, ready="/_bench/counts"
        )

    def counts(self) -> dict[str, int]:
        return self.client.get("/_bench/counts").json()

    def post_lab(self, patient_id: str, value: float, keyed: bool) -> None:
        headers = {"Idempotency-Key": f"bench-{uuid.uuid4().hex}"} if keyed else {}
        response = self.client.post(
            f"/patients/{patient_id}/labs",
            json={"code": "ALT", "value": value, "unit": "U/L", "source": "bench"},
            headers=headers,
        )
        if response.status_code >= 300:
            raise RuntimeError(f"POST labs: {response.status_code} {response.text[:300]}")


@dataclass
class HttpFigure:
    """One case on one database under one setting."""

    backend: str
    durability: str
    case: str
    latencies: list[float] = field(default_factory=list)  # ns
    calls: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    def per_call(self, name: str) -> float:
        return self.counts[name] / self.calls if self.calls else float("nan")


def measure_http(
    engine: Engine,
    url: str,
    backend: str,
    durability: Durability,
    patient_ids: list[str],
) -> dict[str, HttpFigure]:
    """The three cases interleaved call by call (A B C A B C ...), each call on a patient of
    its own; the counters are read around each call, untimed."""
    uow_factory = uow_factory_of(engine)
    user = access.create_user(uow_factory(), "bench", name="lab-bench", role="lab-interface")
    token = access.issue_token(uow_factory(), "bench", user["id"], days=30)["token"]
    actor = f"user:{user['id']}"
    local = install_counters(engine)
    server = Server(url, durability, token)
    figures = {case: HttpFigure(backend, durability.name, case) for case in CASES}
    try:

        def in_process(patient_id: str, value: float) -> None:
            service.record_lab_result(
                uow_factory(),
                actor,
                patient_id,
                code="ALT",
                value=value,
                unit="U/L",
                source="bench",
            )

        calls: dict[str, Callable[[str, float], None]] = {
            SERVICE: in_process,
            HTTP: lambda pid, value: server.post_lab(pid, value, keyed=False),
            HTTP_KEYED: lambda pid, value: server.post_lab(pid, value, keyed=True),
        }
        counters: dict[str, Callable[[], dict[str, int]]] = {
            SERVICE: lambda: dict(local.counts),
            HTTP: server.counts,
            HTTP_KEYED: server.counts,
        }
        warm, rest = patient_ids[: 5 * len(CASES)], patient_ids[5 * len(CASES) :]
        for k, case in enumerate(CASES):
            for pid in warm[k * 5 : (k + 1) * 5]:
                calls[case](pid, 80.0)
        clock = time.perf_counter_ns
        for i in range(len(rest) // len(CASES)):
            for k, case in enumerate(CASES):
                figure = figures[case]
                before = counters[case]()
                t0 = clock()
                calls[case](rest[i * len(CASES) + k], 60.0 + i % 80)
                figure.latencies.append(clock() - t0)
                after = counters[case]()
                for name in COUNTERS:
                    figure.counts[name] += after[name] - before[name]
                figure.calls += 1
    finally:
        server.close()
    return figures
