"""Seeding for `bench api` (not timed): template patients through the domain, cloned in SQL
to the target count, and coordinator items.

250 template patients are built through the domain (`CarePathway`): a quarter in screening, a
quarter screened, half on prednisolone, some with months of ALT/AST follow-up; they are written
with Core, then cloned in SQL (`INSERT ... SELECT` against a series table) to the target count
with new ids, sites and clinicians (6 clinicians over 4 sites). On PostgreSQL only a quarter of
the patients get the cloned clinical records (seeding time on a shared 2-core box); every
patient has its row, site and clinician, and status is read on patients with records.
Coordinator items are bulk-inserted: 3% of patients have 1-2 live items (open, claimed, snoozed;
due, escalation, failed delivery; due from 30 days ago to next week) and 8% have a closed or
completed one (history the partial indexes leave out). Then VACUUM ANALYZE.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import configure_mappers

from bench.ingest.seeding import SCREENING, insert_patients
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
from engine.domain.care import new_patient
from engine.domain.model import Patient
from engine.services.care_pathways import care_pathway

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START_OF_TODAY = datetime.combine(NOW.date(), day_time(), UTC)
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
# PostgreSQL: clinical records for 1 patient in RECORDS_DIVISOR (seeding time on a shared box);
# every patient has its row, its site and clinician, and its queue items
RECORDS_DIVISOR = 4


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
