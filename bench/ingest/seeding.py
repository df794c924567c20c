"""Seeding for `bench ingest` (not timed): patients built in memory through the domain, written
with Core, a long record for some of them, and the users the HTTP case needs.

Patients are enrolled, screened and (if `treated`) started on prednisolone 30 mg five weeks
before NOW, through `CarePathway`, then written with plain SQLAlchemy Core inserts.
`bench api` reuses `SCREENING` and `insert_patients`.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import configure_mappers

from engine.adapters.orm import (
    alerts,
    audit_log,
    clinical_events,
    lab_results,
    medication_orders,
    milestones,
    patients,
    start_mappers,
)
from engine.adapters.repository import audit_row
from engine.domain.care import new_patient
from engine.domain.model import LabResult, Patient, new_id
from engine.services.care_pathways import care_pathway

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LONG_HISTORY_LABS = 120
SCREENING = [  # (code, value, unit); qualitative results have no unit
    ("ALT", 300.0, "U/L"),
    ("AST", 250.0, "U/L"),
    ("IgG", 25.0, "g/L"),
    ("BILI", 15.0, "umol/L"),
    ("INR", 1.1, "{INR}"),
    ("TPMT", 31.0, "U/mL"),
    ("HBSAG", "negative", None),
    ("ANTI_HBC", "negative", None),
    ("ANTI_HBS", "positive", None),
]


def build_patients(n: int, *, treated: bool, seed: int) -> list[Patient]:
    """Enrolled and screened patients (on prednisolone since 5 weeks if `treated`), in memory."""
    start_mappers()  # map the classes before any instance exists
    configure_mappers()
    care = care_pathway()
    rng = random.Random(seed)
    enrolled, screened = NOW - timedelta(weeks=6), NOW - timedelta(weeks=6) + timedelta(days=1)
    built = []
    for i in range(n):
        patient = new_patient(
            site=rng.choice(("north", "south")),
            clinician="dr-bench",
            birth_date=date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
            sex="F",
            weight_kg=round(rng.uniform(50, 100), 1),
            facts={"cirrhosis": False},
        )
        care.enrol(patient, enrolled, "bench")
        for code, value, unit in SCREENING:
            care.record_lab_result(patient, code, value, unit, screened, screened, "bench")
        if treated:
            started = NOW - timedelta(weeks=5)
            care.order_medication(patient, "prednisolone", started, "bench", mg_per_day=30)
        built.append(patient)
    return built


def _row(obj: Any, table, **extra: Any) -> dict[str, Any]:
    """The row of `obj` in `table`; columns the domain object lacks (derived search keys)
    are left to the table's defaults."""
    row = {
        c.name: getattr(obj, c.name)
        for c in table.columns
        if c.name not in extra and hasattr(obj, c.name)
    }
    row.update(extra)
    return row


def insert_patients(engine: Engine, built: list[Patient], batch: int = 1000) -> None:
    """Write the in-memory patients with Core, in batches (as the ORM would have)."""
    children = (
        ("labs", lab_results),
        ("clinical_events", clinical_events),
        ("orders", medication_orders),
        ("milestones", milestones),
        ("alerts", alerts),
    )
    for start in range(0, len(built), batch):
        chunk = built[start : start + batch]
        with engine.begin() as conn:
            conn.execute(insert(patients), [_row(p, patients, version=1) for p in chunk])
            for attribute, table in children:
                rows = [
                    _row(child, table, patient_id=p.id)
                    for p in chunk
                    for child in getattr(p, attribute)
                ]
                if rows:
                    conn.execute(insert(table), rows)
            audit = [
                audit_row(r)
                for p in chunk
                for r in p.audit
            ]
            if audit:
                conn.execute(insert(audit_log), audit)


def add_history(engine: Engine, patient_ids: list[str], per_patient: int) -> None:
    """`per_patient` earlier normal ALT/AST/IgG rows for each patient (a long record)."""
    codes = (("ALT", 25.0, "U/L"), ("AST", 24.0, "U/L"), ("IgG", 11.0, "g/L"))
    rows = []
    for pid in patient_ids:
        for k in range(per_patient):
            code, value, unit = codes[k % 3]
            taken = NOW - timedelta(weeks=6, days=10 * (k // 3 + 1))
            rows.append(
                {
                    "id": new_id(),
                    "patient_id": pid,
                    "code": code,
                    "value": value,
                    "text": None,
                    "unit": unit,
                    "reported_value": str(value),
                    "reported_unit": unit,
                    "source": "history",
                    "taken_at": taken,
                    "recorded_at": taken,
                }
            )
    with engine.begin() as conn:
        for start in range(0, len(rows), 20_000):
            conn.execute(insert(lab_results), rows[start : start + 20_000])


def floor_rows(items: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """Lab rows like the ones the service writes for (patient, ALT value), with fresh ids."""
    rows = []
    for patient_id, value in items:
        lab = LabResult(
            code="ALT",
            taken_at=NOW,
            recorded_at=NOW,
            value=value,
            unit="U/L",
            reported_value=str(value),
            reported_unit="U/L",
            source="floor",
        )
        rows.append(_row(lab, lab_results, patient_id=patient_id))
    return rows
