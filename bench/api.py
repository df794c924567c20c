"""The coordinator API over HTTP: status and queue listing latency, beside the same SQL alone.

On SQLite (a temporary file; 100,000 patients, quick 10,000) and on PostgreSQL (a private
server, or AIHP_TEST_POSTGRES_URL; 1,000,000 patients, quick 100,000):

* status, `GET /patients/{id}`: a coordinator reads a random patient of their site;
* queue listing, `GET /queues?...` (the coordinator's site; first page of 50): all live items,
  one queue (`overdue`), and a clinician + pathway-state filter.

Each figure is taken at every layer in the same run, rounds interleaved (floor, adapter,
service, HTTP, floor, ...), so a slow spell of the shared machine hits them alike:

1. floor: the statements the service sends, captured once from a real call and replayed on a
   raw DBAPI connection (psycopg / sqlite3), one transaction per sample: no ORM, no HTTP;
   for the queue also the count query and the page query alone;
2. adapter (queue): `live_items` on an ORM session (SQLAlchemy Core, no audit);
3. service: `patient_status` / `coordinator_queue` in-process (loading, the view, the audit
   row and its commit);
4. HTTP: the real app (`api.main.create_app`, dispatcher off, a manual clock) served by
   uvicorn in its own process on a free port, called with httpx on one keep-alive connection,
   sequential requests, with a coordinator's bearer token (authentication, site scoping,
   JSON). If the app has no `GET /queues` route yet, the queue is measured in-process only.

Seeding (not timed): 250 template patients are built through the domain (`CarePathway`):
a quarter in screening, a quarter screened, half on prednisolone, some with months of ALT/AST
follow-up; they are written with Core, then cloned in SQL (`INSERT ... SELECT` against a
series table) to the target count with new ids, sites and clinicians (6 clinicians over 4
sites). On PostgreSQL only a quarter of the patients get the cloned clinical records (seeding
time on a shared 2-core box); every patient has its row, site and clinician, and status is
read on patients with records. Coordinator items are bulk-inserted: 3% of patients have 1-2
live items (open, claimed, snoozed; due, escalation, failed delivery; due from 30 days ago to
next week) and 8% have a closed one (history the partial index leaves out). Then ANALYZE.

On PostgreSQL the run ends with EXPLAIN ANALYZE of the listing's two statements and, measured
on the same data, two bench-only candidate fixes beside the floor: the count query without the
join on patients, and an index in the page's sort order (the app is not changed).

Run: `python -m bench api [--quick]`, or `python -m bench.api [--quick]
[--sqlite-patients N] [--postgres-patients N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, and_, event, func, insert, or_, select, text
from sqlalchemy.orm import configure_mappers

from bench.common import (
    Options,
    Table,
    add_common_arguments,
    banner,
    fmt_ns,
    fmt_ratio,
    footer,
    note,
    percentile,
    postgres_server,
    section,
)
from bench.ingest import SCREENING, insert_patients
from engine.adapters.coordinator_queries import live_items, queue_expression
from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.adapters.orm import (
    alerts,
    clinical_events,
    lab_results,
    medication_orders,
    milestones,
    patients,
    start_mappers,
)
from engine.adapters.reminder_tables import coordinator_items
from engine.clock import ManualClock
from engine.domain.care import new_patient
from engine.domain.model import Patient
from engine.services import access
from engine.services.catalogue import care_pathway
from engine.services.coordinator_queue import coordinator_queue
from engine.services.patients import patient_status
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START_OF_TODAY = datetime.combine(NOW.date(), day_time(), UTC)
QUEUE_P95_TARGET_NS = 25e6  # issue 4: queue p95 <= 25 ms at 1M patients on PostgreSQL
TEMPLATES = 250
# 6 clinicians over 4 sites; a clone's clinician is copy number % 6.
CLINICIANS = (
    ("dr-1", "north"),
    ("dr-2", "north"),
    ("dr-3", "south"),
    ("dr-4", "south"),
    ("dr-5", "east"),
    ("dr-6", "west"),
)
SITE = "north"  # the coordinator's site
LIVE_SHARE = 0.03  # patients with live queue items
CLOSED_SHARE = 0.08  # patients with a closed (history) item
PAGE = 50
# PostgreSQL: clinical records for 1 patient in RECORDS_DIVISOR (seeding time on a shared box);
# every patient has its row, its site and clinician, and its queue items
RECORDS_DIVISOR = 4
ENV_URL = "BENCH_API_DATABASE_URL"

QUEUE_CASES: dict[str, dict[str, Any]] = {
    "queue: all live, page 1": {},
    "queue: overdue, page 1": {"queue": "overdue"},
    "queue: clinician + state": {"clinician": "dr-1", "state": "induction"},
}


# ---- seeding (not timed) ------------------------------------------------------------------


def build_templates(n: int, seed: int) -> list[Patient]:
    """`n` patients through the domain: screening, screened, on treatment, with follow-up."""
    start_mappers()
    configure_mappers()
    care = care_pathway()
    rng = random.Random(seed)
    built = []
    for i in range(n):
        enrolled = NOW - timedelta(days=rng.randint(2, 20) if i % 4 == 0 else rng.randint(40, 200))
        patient = new_patient(
            site=SITE,
            clinician="dr-1",
            given_name="Bench",
            family_name=f"Template {i}",
            birth_date=date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
            sex="F" if i % 5 else "M",
            weight_kg=round(rng.uniform(50, 100), 1),
            facts={"cirrhosis": i % 7 == 0},
        )
        care.enrol(patient, enrolled, "bench")
        stage = i % 4  # 0 screening, 1 screened, 2-3 on prednisolone
        if stage:
            screened = enrolled + timedelta(days=1)
            for code, value, unit in SCREENING:
                care.record_lab_result(patient, code, value, unit, screened, screened, "bench")
        if stage >= 2:
            started = enrolled + timedelta(days=3)
            care.order_medication(patient, "prednisolone", started, "bench", mg_per_day=30)
            alt = 300.0
            for month in range(rng.randint(0, 4) if stage == 3 else 0):
                taken = started + timedelta(weeks=4 * (month + 1))
                if taken >= NOW:
                    break
                alt = max(20.0, alt * 0.45)
                for code, value in (("ALT", alt), ("AST", alt * 0.9)):
                    care.record_lab_result(patient, code, value, "U/L", taken, taken, "bench")
        built.append(patient)
    return built


def _suffix(dialect: str) -> str:
    """SQL for the copy number `s.g` as 8 hex digits (a clone's id suffix)."""
    if dialect == "postgresql":
        return "lpad(to_hex(s.g), 8, '0')"
    return "printf('%08x', s.g)"


def _clone_sql(table, dialect: str, record_copies: int) -> str:
    """INSERT ... SELECT: every template row once per copy number in the series table."""
    hex8 = _suffix(dialect)
    clinician = (
        "CASE s.g % 6 "
        + " ".join(f"WHEN {k} THEN '{name}'" for k, (name, _) in enumerate(CLINICIANS))
        + " END"
    )
    site = (
        "CASE s.g % 6 "
        + " ".join(f"WHEN {k} THEN '{where}'" for k, (_, where) in enumerate(CLINICIANS))
        + " END"
    )
    new_id = f"substr(t.id, 1, 24) || {hex8}"
    exprs = {"id": new_id}
    if table is patients:
        exprs |= {
            "external_id": f"'MRN-' || {new_id}",
            "site": site,
            "clinician": clinician,
            "family_name": "'Patient ' || s.g",
        }
    else:
        exprs["patient_id"] = f"substr(t.patient_id, 1, 24) || {hex8}"
    if table is milestones:
        exprs["idempotency_key"] = "t.idempotency_key || ':' || s.g"
    names = [c.name for c in table.columns]
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join(exprs.get(n, f't."{n}"') for n in names)
    return (
        f'INSERT INTO "{table.name}" ({columns}) SELECT {values} '
        f'FROM "{table.name}" AS t CROSS JOIN bench_series AS s'
        + ("" if table is patients else f" WHERE s.g < {record_copies}")
    )


def clone_id(template_id: str, copy: int) -> str:
    return template_id if copy == 0 else f"{template_id[:24]}{copy:08x}"


def clinician_of(copy: int) -> tuple[str, str]:
    return ("dr-1", SITE) if copy == 0 else CLINICIANS[copy % 6]


def _items(ids: list[str], copies: int, rng: random.Random) -> list[dict[str, Any]]:
    """Coordinator items: live ones for LIVE_SHARE of patients, closed for CLOSED_SHARE."""
    total = len(ids) * copies
    chosen = rng.sample(range(total), int(total * (LIVE_SHARE + CLOSED_SHARE)))
    live_n = int(total * LIVE_SHARE)
    titles = {
        "lab": "Monthly ALT/AST",
        "action": "Taper prednisolone to 10 mg",
        "review": "Response review",
    }
    rows = []
    for position, k in enumerate(chosen):
        template, copy = ids[k % len(ids)], k // len(ids)
        clinician, site = clinician_of(copy)
        live = position < live_n
        for _ in range(rng.choice((1, 1, 2)) if live else 1):
            kind = rng.choices(("due", "escalation", "failed_delivery"), (70, 15, 15))[0]
            milestone_kind = rng.choices(("lab", "action", "review"), (50, 30, 20))[0]
            due = NOW + timedelta(minutes=rng.randint(-30 * 24 * 60, 7 * 24 * 60))
            status = "completed"
            if live:
                status = rng.choices(("open", "claimed", "snoozed"), (75, 15, 10))[0]
            elif rng.random() < 0.5:
                status = "closed"
            rows.append(
                {
                    "id": os.urandom(16).hex(),
                    "patient_id": clone_id(template, copy),
                    "kind": kind,
                    "title": titles[milestone_kind],
                    "reason": {
                        "due": "due",
                        "escalation": "not done within the grace period",
                        "failed_delivery": "recipient refused: 550 mailbox unavailable",
                    }[kind],
                    "site": site,
                    "clinician": clinician,
                    "due_at": due,
                    "created_at": due - timedelta(days=7),
                    "milestone_row_id": None,
                    "milestone_kind": milestone_kind,
                    "reminder_id": None,
                    "urgent": rng.random() < 0.05,
                    "rule_ids": ["AIH-MON-1"],
                    "status": status,
                    "claimed_by": "user:bench" if status == "claimed" else None,
                    "claimed_at": NOW - timedelta(hours=2) if status == "claimed" else None,
                    "snoozed_until": (
                        NOW + timedelta(days=rng.choice((-2, 3))) if status == "snoozed" else None
                    ),
                    "note": "patient on holiday" if status == "snoozed" else None,
                    "closed_at": None if live else due + timedelta(days=1),
                    "closed_by": None if live else "user:bench",
                    "updated_at": NOW - timedelta(days=1),
                    "version": 1,
                }
            )
    return rows


CLONED = (patients, lab_results, clinical_events, medication_orders, milestones, alerts)


def _secondary_indexes(conn, tables: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the indexes on `tables` that no constraint owns."""
    if conn.dialect.name == "postgresql":
        query = text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = ANY(:tables) AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        return [tuple(row) for row in conn.execute(query, {"tables": tables})]
    marks = ", ".join(f"'{name}'" for name in tables)
    query = text(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks})"
    )
    return [tuple(row) for row in conn.execute(query)]


@dataclass
class Seeded:
    patients: int
    rows: dict[str, int]
    live_at_site: int
    seconds: float
    steps: dict[str, float]
    # ids of the coordinator's site's patients with records
    with_records_at_site: list[str] = field(repr=False, default_factory=list)


def seed(engine: Engine, n: int, with_records: int, rng_seed: int) -> Seeded:
    """`n` patients (a multiple of TEMPLATES) and coordinator items; the first `with_records`
    of them (copies 0, 1, ...: every site and clinician) with their clinical records."""
    started = time.perf_counter()
    dialect = engine.dialect.name
    templates = build_templates(TEMPLATES, rng_seed)
    insert_patients(engine, templates)
    copies = max(1, n // TEMPLATES)
    record_copies = max(1, with_records // TEMPLATES)
    steps = {"templates": time.perf_counter() - started}
    with engine.begin() as conn:
        if dialect == "postgresql":
            # the clones' foreign keys hold by construction: skip the per-row FK triggers
            # (superuser only; without it the checks just run)
            with contextlib.suppress(Exception), conn.begin_nested():
                conn.execute(text("SET LOCAL session_replication_role = replica"))
        # secondary indexes are built once after the load, not row by row during it
        indexes = _secondary_indexes(conn, [t.name for t in CLONED])
        for name, _ in indexes:
            conn.execute(text(f'DROP INDEX "{name}"'))
        conn.execute(text("CREATE TEMPORARY TABLE bench_series (g INTEGER PRIMARY KEY)"))
        series = [{"g": g} for g in range(1, copies)]
        for start in range(0, len(series), 50_000):
            conn.execute(
                text("INSERT INTO bench_series (g) VALUES (:g)"), series[start : start + 50_000]
            )
        if series:
            for table in CLONED:
                t0 = time.perf_counter()
                conn.execute(text(_clone_sql(table, dialect, record_copies)))
                steps[table.name] = time.perf_counter() - t0
        conn.execute(text("DROP TABLE bench_series"))
        t0 = time.perf_counter()
        if dialect == "postgresql":
            conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        for _, definition in indexes:
            conn.execute(text(definition))
        steps["indexes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = _items([p.id for p in templates], copies, random.Random(rng_seed))
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(coordinator_items), rows[start : start + 10_000])
        steps["coordinator_items"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE patients, coordinator_items"))
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    steps["analyze"] = time.perf_counter() - t0
    counts = {}
    with engine.connect() as conn:
        for table in (patients, lab_results, milestones, medication_orders, coordinator_items):
            counts[table.name] = conn.scalar(select(func.count()).select_from(table))
    live = sum(
        1 for r in rows if r["site"] == SITE and r["status"] in ("open", "claimed", "snoozed")
    )
    return Seeded(
        counts["patients"],
        counts,
        live,
        time.perf_counter() - started,
        steps,
        [
            clone_id(p.id, copy)
            for copy in range(record_copies)
            if clinician_of(copy)[1] == SITE
            for p in templates
        ],
    )


# ---- the floor: captured statements replayed on a raw DBAPI connection -------------------


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


def _swap(parameters: Any, old: str, new: str) -> Any:
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


# ---- the HTTP server ----------------------------------------------------------------------


def serve() -> Any:
    """uvicorn factory (`bench.api:serve`): the real app on $BENCH_API_DATABASE_URL, no
    dispatcher, the clock stopped at NOW."""
    from api.main import create_app
    from engine.config import Settings

    return create_app(Settings(database_url=os.environ[ENV_URL]), ManualClock(NOW), dispatch=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """uvicorn serving `serve()` in a child process."""

    def __init__(self, url: str, token: str):
        self.port = _free_port()
        # kept open for the child's lifetime (closed in `close`)
        self.log = tempfile.TemporaryFile(prefix="aihp-bench-api-")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.api:serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={**os.environ, ENV_URL: url},
            cwd=Path(__file__).resolve().parent.parent,
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
                if self.client.get("/users/me").status_code == 200:
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


# ---- sampling -----------------------------------------------------------------------------


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


@dataclass
class Figure:
    backend: str
    patients: int
    what: str
    layer: str
    samples: list[float]
    floor: str | None = None  # the layer name of this figure's floor
    target: bool = False  # judged against the queue p95 target

    def p(self, pct: float) -> float:
        return percentile(sorted(self.samples), pct)


# ---- one backend --------------------------------------------------------------------------


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
                [(s, _swap(p, ids[0], ids[i % len(ids)])) for s, p in status_sql]
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
            count_sql, page_sql = queue_statements(engine, filters)

            def adapter(i: int, f=filters) -> Any:
                with session_factory(engine)() as s:
                    return live_items(s, NOW, START_OF_TODAY, site=SITE, limit=PAGE, **f)

            cases = {
                "floor": lambda i, c=count_sql, p=page_sql: floor.run([c, p]),
            }
            if what == "queue: all live, page 1":
                cases["floor: count query"] = lambda i, c=count_sql: floor.run([c])
                cases["floor: page query"] = lambda i, p=page_sql: floor.run([p])
            cases["adapter: live_items"] = adapter
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
        if not has_queue_route:
            note(
                f"{backend}: the app has no GET /queues route yet (api/routes/queues.py): the "
                "queue is measured in-process (service) and the HTTP layer on status only"
            )
        if backend == "postgresql":
            explain(engine, QUEUE_CASES["queue: all live, page 1"])
            figures += candidate_fixes(
                engine, floor, seeded.patients, per_round, rounds, warmup, server
            )
    finally:
        server.close()
        floor.close()
        engine.dispose()
    return figures


def queue_statements(
    engine: Engine, filters: dict[str, Any]
) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """The count and page statements `live_items` sends for the coordinator's site."""
    with session_factory(engine)() as session:
        captured = capture(
            engine,
            lambda: live_items(session, NOW, START_OF_TODAY, site=SITE, limit=PAGE, **filters),
        )
    count, page = captured.selects()[:2]
    return count, page


FIX_INDEX = "bench_ix_coordinator_items_live_order"


def candidate_fixes(
    engine: Engine,
    floor: Floor,
    n: int,
    per_round: int,
    rounds: int,
    warmup: int,
    server: Server,
) -> list[Figure]:
    """Bench-only: the all-live listing's SQL with the two changes the plans point to.

    1. the count query without the join on patients (only the state filter needs it; every
       item has a patient, by its foreign key);
    2. an index in the page's sort order, (site, urgent DESC, due_at, id), so the first page
       is read in order (50 rows) instead of sorting every live item of the site. Not partial:
       PostgreSQL does not prove the listing's `status IN (open, claimed) OR (status = snoozed
       AND ...)` implies a `status IN (open, claimed, snoozed)` predicate for an ordered scan,
       so a partial index is used only for the bitmap scan, never in order.
    Measured on the same data after the app's figures; the app itself is not changed.
    """
    what = "queue: all live, page 1"
    count_sql, page_sql = queue_statements(engine, {})
    queue_of = queue_expression(START_OF_TODAY).label("queue")
    visible = or_(
        coordinator_items.c.status.in_(("open", "claimed")),
        and_(coordinator_items.c.status == "snoozed", coordinator_items.c.snoozed_until <= NOW),
    )
    lean = (
        select(queue_of, func.count())
        .select_from(coordinator_items)
        .where(visible, coordinator_items.c.site == SITE)
        .group_by(queue_of)
    )
    with engine.connect() as conn:
        captured = capture(engine, lambda: conn.execute(lean).all())
    lean_sql = captured.selects()[0]
    cases: dict[str, Callable[[int], Any]] = {
        "floor": lambda i: floor.run([count_sql, page_sql]),
        "fix 1: count without the join": lambda i: floor.run([lean_sql]),
    }
    got = sample(cases, per_round, rounds, warmup)
    label = f"{what} (bench-only fixes)"
    figures = [
        Figure("postgresql", n, label, layer, samples, floor=None if layer == "floor" else "floor")
        for layer, samples in got.items()
    ]
    with engine.begin() as conn:
        conn.execute(
            text(f"CREATE INDEX {FIX_INDEX} ON coordinator_items (site, urgent DESC, due_at, id)")
        )
        conn.execute(text("ANALYZE coordinator_items"))
    cases = {
        "fix 2: page query + index": lambda i: floor.run([page_sql]),
        "fixes 1+2: both statements": lambda i: floor.run([lean_sql, page_sql]),
        "HTTP, + index (count still joins)": lambda i: server.get(
            "/queues", params={"limit": PAGE}
        ),
    }
    got = sample(cases, per_round, rounds, warmup)
    figures += [
        Figure("postgresql", n, label, layer, samples, floor="floor", target=True)
        for layer, samples in got.items()
        if layer != "fix 2: page query + index"
    ]
    figures.insert(
        2,
        Figure(
            "postgresql",
            n,
            label,
            "fix 2: page query + index",
            got["fix 2: page query + index"],
            floor="floor",
        ),
    )
    note("postgresql: candidate fixes measured (bench-only; the app's SQL is unchanged)")
    return figures


def explain(engine: Engine, filters: dict[str, Any]) -> None:
    """EXPLAIN ANALYZE of the queue's two statements: where the time goes (PostgreSQL)."""
    statements = queue_statements(engine, filters)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for label, (statement, parameters) in zip(("count", "page"), statements, strict=True):
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = [row[0] for row in cursor.fetchall()]
            note(f"EXPLAIN ANALYZE, {label} query (all live items at {SITE}):")
            for line in plan:
                note(f"  {line}")
        cursor.close()
        raw.rollback()
    finally:
        raw.close()


# ---- report -------------------------------------------------------------------------------


def report(figures: list[Figure]) -> None:
    table = Table(
        "backend",
        "patients",
        "figure",
        "layer",
        "n",
        "p50",
        "p95",
        "p50 / floor",
        "p95 / floor",
        "target",
        title="Latency per request: sequential requests, one keep-alive connection",
    )
    floors = {(f.backend, f.what): f for f in figures if f.layer == "floor"}
    last = None
    for f in figures:
        if (f.backend, f.what) != last:
            table.rule(f"{f.backend} {f.patients:,} patients: {f.what}")
            last = (f.backend, f.what)
        base = floors.get((f.backend, f.what)) if f.floor else None
        mark = ""
        if f.target:
            p95 = f.p(95)
            scope = "" if f.backend == "postgresql" else " (PG target)"
            outcome = "met" if p95 <= QUEUE_P95_TARGET_NS else "missed"
            if "bench-only" in f.what:
                outcome = f"would be {outcome}"
            mark = f"p95 <= 25 ms{scope}: {outcome}"
        elif f.what.startswith("status") and f.layer != "floor":
            mark = "none set"
        table.row(
            f.backend,
            f"{f.patients:,}",
            f.what,
            f.layer,
            len(f.samples),
            fmt_ns(f.p(50)),
            fmt_ns(f.p(95)),
            _ratio(f.p(50), base.p(50)) if base else "",
            _ratio(f.p(95), base.p(95)) if base else "",
            mark,
        )
    table.print()


def _ratio(value: float, floor: float) -> str:
    """`fmt_ratio`, with two decimals below 0.1x (a fix far under its floor)."""
    if value and floor and value / floor < 0.1:
        return f"{value / floor:.2f}x"
    return fmt_ratio(value, floor)


def verdicts(figures: list[Figure]) -> None:
    print()
    for f in figures:
        if f.target and f.backend == "postgresql" and f.layer in ("HTTP", "service"):
            p95 = f.p(95)
            note(
                f"target: queue p95 <= 25 ms at {f.patients:,} patients on PostgreSQL, "
                f"{f.what}, {f.layer}: measured {fmt_ns(p95)} "
                f"{'met' if p95 <= QUEUE_P95_TARGET_NS else 'missed'}"
            )


# ---- entry points -------------------------------------------------------------------------


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def main(options: Options) -> int:
    run = banner("bench api: status and coordinator queue over HTTP vs the same SQL", options)
    n_sqlite = _int_env("BENCH_API_SQLITE_PATIENTS", options.pick(100_000, 10_000))
    n_postgres = _int_env("BENCH_API_POSTGRES_PATIENTS", options.pick(1_000_000, 100_000))
    note(
        f"SQLite {n_sqlite:,} patients, PostgreSQL {n_postgres:,}; the machine is shared "
        f"({os.cpu_count()} CPUs for the client, the uvicorn process and the database server, "
        "and other sessions' benchmarks): compare layers within a run, not across runs"
    )
    figures: list[Figure] = []

    section("SQLite (temporary file, WAL, synchronous=NORMAL)")
    folder = tempfile.mkdtemp(prefix="aihp-bench-api-")
    try:
        figures += measure_backend(
            "sqlite", f"sqlite:///{folder}/api.db", n_sqlite, n_sqlite, options
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    section("PostgreSQL (private server: fsync=off, synchronous_commit=off)")
    server = postgres_server()
    if server is not None:
        try:
            url = server.create_database(f"bench_api_{os.getpid()}")
            note(f"server {'started' if server.managed else 'external'} on port {server.port}")
            figures += measure_backend(
                "postgresql", url, n_postgres, n_postgres // RECORDS_DIVISOR, options
            )
        finally:
            server.close()

    section("Results")
    report(figures)
    verdicts(figures)
    note(
        "this process only sends requests and replays SQL: most of the work runs in the uvicorn "
        "process and the database server, so a low CPU share below is expected"
    )
    footer(run)
    return 0


def _cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api")
    add_common_arguments(parser)
    parser.add_argument("--sqlite-patients", type=int, help="patients on SQLite (full 100000)")
    parser.add_argument("--postgres-patients", type=int, help="on PostgreSQL (full 1000000)")
    args = parser.parse_args(argv)
    if args.sqlite_patients:
        os.environ["BENCH_API_SQLITE_PATIENTS"] = str(args.sqlite_patients)
    if args.postgres_patients:
        os.environ["BENCH_API_POSTGRES_PATIENTS"] = str(args.postgres_patients)
    sys.exit(main(Options(quick=args.quick)) or 0)


if __name__ == "__main__":
    _cli()
