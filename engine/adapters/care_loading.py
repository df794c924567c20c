"""The care load: what the pathway reads to apply an input, read with Core and handed to the
session as already-loaded objects.

The ORM's relationship loaders cost more than the pathway's decision (each loaded row becomes
an instrumented object through the loading machinery). Here each table is read by one cached
Core statement for all the patients asked for, and:

- the lab history becomes plain `RecordedLab` values (never written again: a result is not
  changed once recorded), given to the patient as `earlier_labs`; new results go to
  `patient.labs` and are inserted;
- clinical events, the orders that are not stopped, the open alerts and the milestones
  `CarePathway` reads back (open ones; per milestone and cycle the latest occurrence and the
  latest completed one) are built as domain objects and attached to the session as if the ORM
  had loaded them (`make_transient_to_detached`), so a change to one is an UPDATE at flush and
  the patient's version is checked as before.

The statements do not depend on the number of patients (ids are an expanding parameter, in
chunks of 500), so a batch costs the same six statements as one patient.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session, make_transient_to_detached

from engine.adapters.orm import (
    alerts,
    clinical_events,
    lab_results,
    medication_orders,
    milestones,
    patients,
)
from engine.domain.model import Alert, ClinicalEvent, MedicationOrder, Milestone, Patient

CHUNK = 500


@dataclass(frozen=True, slots=True)
class RecordedLab:
    """A lab result recorded earlier, as the pathway reads it (the same fields as `LabResult`;
    not mapped, so reading a long history builds no ORM objects)."""

    id: str
    code: str
    taken_at: datetime
    recorded_at: datetime
    value: float | None
    text: str | None
    unit: str | None
    reported_value: str
    reported_unit: str | None
    source: str


def load_for_care(session: Session, patient_ids: Iterable[str]) -> dict[str, Patient]:
    """Patients by id with what the pathway reads, tracked by `session`; unknown ids left out."""
    wanted = sorted({pid for pid in patient_ids if pid})
    found: dict[str, Patient] = {}
    conn = session.connection()
    statements = _statements()
    for start in range(0, len(wanted), CHUNK):
        ids = {"ids": wanted[start : start + CHUNK]}
        rows = {name: conn.execute(query, ids).all() for name, query in statements.items()}
        if not rows["patients"]:
            continue
        children: dict[str, dict[str, list[Any]]] = {
            name: defaultdict(list) for name in statements if name != "patients"
        }
        for row in rows["labs"]:
            values = row._asdict()
            children["labs"][values.pop("patient_id")].append(RecordedLab(**values))
        for name, cls in _BUILT.items():
            for row in rows[name]:
                values = row._asdict()
                owner = values["patient_id"] if cls is Milestone else values.pop("patient_id")
                children[name][owner].append(cls(**values))
        for row in rows["patients"]:
            found[row.id] = _attached(session, row._asdict(), children)
    return found


_BUILT: dict[str, type] = {
    "clinical_events": ClinicalEvent,
    "orders": MedicationOrder,
    "milestones": Milestone,
    "alerts": Alert,
}


def _attached(session: Session, row: dict[str, Any], children: dict[str, Any]) -> Patient:
    """The patient built from its rows and attached to `session` as loaded (no SQL)."""
    pid = row["id"]
    existing = session.identity_map.get(session.identity_key(Patient, (pid,)))
    if existing is not None:  # already in this unit of work: keep the tracked copy
        return existing
    built = {name: children[name].get(pid, []) for name in _BUILT}
    patient = Patient(**row, labs=[], **built)
    for name in _BUILT:
        for child in built[name]:
            make_transient_to_detached(child)
    make_transient_to_detached(patient)
    session.add(patient)
    patient.__dict__["_earlier_labs"] = children["labs"].get(pid, [])
    return patient


@cache
def _statements() -> dict[str, Select]:
    """One SELECT per table, the ids an expanding parameter (built and compiled once)."""
    ids = bindparam("ids", expanding=True)
    columns = [c for c in patients.columns if not c.name.endswith("_name_key")]
    return {
        "patients": select(*columns).where(patients.c.id.in_(ids)),
        "labs": select(lab_results)
        .where(lab_results.c.patient_id.in_(ids))
        .order_by(lab_results.c.patient_id, lab_results.c.taken_at, lab_results.c.recorded_at),
        "clinical_events": select(clinical_events)
        .where(clinical_events.c.patient_id.in_(ids))
        .order_by(
            clinical_events.c.patient_id,
            clinical_events.c.occurred_at,
            clinical_events.c.recorded_at,
        ),
        "orders": select(medication_orders)
        .where(medication_orders.c.patient_id.in_(ids), medication_orders.c.status != "stopped")
        .order_by(medication_orders.c.patient_id, medication_orders.c.ordered_at),
        "milestones": select(milestones)
        .where(milestones.c.patient_id.in_(ids), milestones_read_back())
        .order_by(milestones.c.patient_id, milestones.c.due_at),
        "alerts": select(alerts)
        .where(alerts.c.patient_id.in_(ids), alerts.c.status == "open")
        .order_by(alerts.c.patient_id, alerts.c.raised_at),
    }


def milestones_read_back() -> ColumnElement[bool]:
    """Open milestones, and per milestone and cycle the latest and the latest completed row."""
    later = milestones.alias("later")
    same_series = and_(
        later.c.patient_id == milestones.c.patient_id,
        later.c.milestone_id == milestones.c.milestone_id,
        later.c.cycle == milestones.c.cycle,
    )
    latest_occurrence = ~exists().where(same_series, later.c.occurrence > milestones.c.occurrence)
    latest_completed = and_(
        milestones.c.status == "completed",
        ~exists().where(
            same_series, later.c.status == "completed", later.c.closed_at > milestones.c.closed_at
        ),
    )
    return or_(milestones.c.status == "pending", latest_occurrence, latest_completed)
