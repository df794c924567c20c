"""The `bench api` scenarios on one backend: status reads and the three queue listings, each
at every layer in the same run, rounds interleaved (floor, adapter, service, HTTP, floor, ...),
so a slow spell of the shared machine hits them alike."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import Engine

from bench.api.processes import Floor, Server, capture, swap
from bench.api.report import Figure
from bench.api.seeding import NOW, SITE, START_OF_TODAY, seed
from bench.common import Options, note
from engine.adapters.coordinator_queries import item_page, queue_counts
from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.clock import ManualClock
from engine.services import access
from engine.services.coordinator_queue import coordinator_queue
from engine.services.patients import patient_status
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

PAGE = 50
QUEUE_CASES: dict[str, dict[str, Any]] = {
    "queue: all live, page 1": {},
    "queue: overdue, page 1": {"queue": "overdue"},
    "queue: clinician + state": {"clinician": "dr-1", "state": "induction"},
}


def sample(
    cases: dict[str, Callable[[int], Any]], per_round: int, rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Raw latencies (ns) per case: `rounds` rounds of `per_round` calls, cases interleaved
    round by round (A B C A B C ...); `warmup` untimed calls of each first. Call i gets i."""
    clock = time.perf_counter_ns
    for fn in cases.values():
        for i in range(warmup):
            fn(i)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    i = warmup
    for _ in range(rounds):
        for name, fn in cases.items():
            out = samples[name]
            for _ in range(per_round):
                t0 = clock()
                fn(i)
                out.append(clock() - t0)
                i += 1
    return samples


def measure_backend(
    backend: str, url: str, n: int, with_records: int, options: Options
) -> list[Figure]:
    upgrade(url)
    engine = make_engine(url)
    seeded = seed(engine, n, with_records, rng_seed=7)
    note(
        f"{backend}: seeded {seeded.patients:,} patients ({with_records:,} with records), "
        + ", ".join(f"{k} {v:,}" for k, v in seeded.rows.items() if k != "patients")
        + f"; {seeded.live_at_site:,} live items at {SITE} ({seeded.seconds:.1f} s, not timed: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in seeded.steps.items())
        + ")"
    )
    clock = ManualClock(NOW)
    uow = partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    user = access.create_user(
        uow(), "bench", name="coordinator-north", role="coordinator", site=SITE
    )
    token = access.issue_token(uow(), "bench", user["id"], days=30)["token"]
    actor = f"user:{user['id']}"
    site_ids = seeded.with_records_at_site
    ids = random.Random(11).sample(site_ids, min(len(site_ids), 2_000))
    per_round, rounds = options.pick((50, 5), (20, 3))
    warmup = options.pick(20, 5)

    figures: list[Figure] = []
    floor = Floor(engine)
    server = Server(url, token)
    try:
        has_queue_route = "/queues" in server.paths
        # status ----------------------------------------------------------------------
        captured = capture(engine, lambda: patient_status(uow(), actor, ids[0]))
        status_sql = captured.selects()
        note(
            f"{backend}: status sends {len(status_sql)} SELECTs and "
            f"{len(captured.statements) - len(status_sql)} INSERT (the audit row)"
        )
        what = "status: GET /patients/{id}"
        cases: dict[str, Callable[[int], Any]] = {
            "floor": lambda i: floor.run(
                [(s, swap(p, ids[0], ids[i % len(ids)])) for s, p in status_sql]
            ),
            "service": lambda i: patient_status(uow(), actor, ids[i % len(ids)]),
            "HTTP": lambda i: server.get(f"/patients/{ids[i % len(ids)]}"),
        }
        got = sample(cases, per_round, rounds, warmup)
        for layer, samples in got.items():
            figures.append(
                Figure(
                    backend,
                    seeded.patients,
                    what,
                    layer,
                    samples,
                    floor=None if layer == "floor" else "floor",
                )
            )
        note(f"{backend}: status measured")
        # queue -----------------------------------------------------------------------
        for what, filters in QUEUE_CASES.items():
            selects = queue_statements(engine, uow, actor, filters)
            if what == "queue: all live, page 1":
                note(
                    f"{backend}: a listing sends {len(selects)} SELECTs (counts per queue, the "
                    "caller's claims, the page, the holders' names) and the audit INSERT"
                )

            def adapter(i: int, f=filters) -> Any:
                with session_factory(engine)() as s:
                    queue_counts(s, NOW, START_OF_TODAY, site=SITE, **_unqueued(f))
                    return item_page(s, NOW, START_OF_TODAY, site=SITE, limit=PAGE + 1, **f)

            cases = {"floor": lambda i, q=selects: floor.run(q)}
            if what == "queue: all live, page 1":
                cases["floor: count query"] = lambda i, q=selects: floor.run(q[:1])
                cases["floor: page query"] = lambda i, q=selects: floor.run(q[2:3])
            cases["adapter: counts + page"] = adapter
            cases["service"] = lambda i, f=filters: coordinator_queue(
                uow(), actor, limit=PAGE, site_scope=SITE, **f
            )
            if has_queue_route:
                cases["HTTP"] = lambda i, f=filters: server.get(
                    "/queues", params={"limit": PAGE, **f}
                )
            got = sample(cases, per_round, rounds, warmup)
            for layer, samples in got.items():
                figures.append(
                    Figure(
                        backend,
                        seeded.patients,
                        what,
                        layer,
                        samples,
                        floor=None if layer.startswith("floor") else "floor",
                        target=not layer.startswith("floor"),
                    )
                )
            note(f"{backend}: {what} measured")
        if backend == "postgresql":
            explain(engine, uow, actor)
    finally:
        server.close()
        floor.close()
        engine.dispose()
    return figures


def _unqueued(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if k != "queue"}


def queue_statements(
    engine: Engine, uow: Callable[[], Any], actor: str, filters: dict[str, Any]
) -> list[tuple[str, Any]]:
    """The SELECTs one listing of the coordinator's site sends (counts, claims, page, names)."""
    captured = capture(
        engine, lambda: coordinator_queue(uow(), actor, limit=PAGE, site_scope=SITE, **filters)
    )
    return captured.selects()


def explain(engine: Engine, uow: Callable[[], Any], actor: str) -> None:
    """EXPLAIN ANALYZE of every listing's counts and page statements (PostgreSQL): the page is
    an Index Scan on an ordered partial index with no Sort, the counts an Index Only Scan."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for what, filters in QUEUE_CASES.items():
            selects = queue_statements(engine, uow, actor, filters)
            for label, (statement, parameters) in zip(
                ("counts", "page"), (selects[0], selects[2]), strict=True
            ):
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plan = [row[0] for row in cursor.fetchall()]
                note(f"EXPLAIN ANALYZE, {what}, {label} statement:")
                for line in plan:
                    note(f"  {line}")
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
