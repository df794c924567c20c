"""The care load: what the pathway reads to apply an input, read with Core and handed to the
session as already-loaded objects.

The ORM's relationship loaders cost more than the pathway's decision (each loaded row becomes
an instrumented object through the loading machinery). Here two cached Core statements read
all the patients asked for: the patient rows with their events, live orders, milestones and
open alerts nested as JSON arrays (`nested_rows`), then their lab results; and:

- the lab history becomes plain `RecordedLab` values (never written again: a result is not
  changed once recorded), given to the patient as `earlier_labs`; new results go to
  `patient.labs` and are inserted;
- clinical events, the orders that are not stopped, the open alerts and the milestones
  `CarePathway` reads back (open ones; per milestone and cycle the latest occurrence and the
  latest completed one) are built as domain objects and attached to the session as if the ORM
  had loaded them (`make_transient_to_detached`), so a change to one is an UPDATE at flush and
  the patient's version is checked as before.

The statements do not depend on the number of patients (ids are an expanding parameter, in
chunks of 500) nor on the length of the history, so a batch costs the same two statements as
one patient.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, Table, and_, bindparam, exists, or_, select
from sqlalchemy.orm import Session, make_transient_to_detached

from engine.adapters.nested_rows import nested, unnested
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


class RecordedLab(NamedTuple):
    """A lab result recorded earlier, as the pathway reads it: what `LabHistory` and the
    header read of a `LabResult` (not mapped, and a tuple: reading a long history builds no
    ORM object per row; the reported value, source and recording time stay in the table)."""

    id: str
    code: str
    taken_at: datetime
    value: float | None
    text: str | None
    unit: str | None


def load_for_care(session: Session, patient_ids: Iterable[str]) -> dict[str, Patient]:
    """Patients by id with what the pathway reads, tracked by `session`; unknown ids left out."""
    wanted = sorted({pid for pid in patient_ids if pid})
    found: dict[str, Patient] = {}
    conn = session.connection()
    with_children, labs = _statements(conn.dialect.name)
    for start in range(0, len(wanted), CHUNK):
        ids = {"ids": wanted[start : start + CHUNK]}
        rows = conn.execute(with_children, ids).all()
        if not rows:
            continue
        earlier: dict[str, list[RecordedLab]] = defaultdict(list)
        for owner, *values in conn.execute(labs, ids):
            earlier[owner].append(RecordedLab(*values))
        for row in rows:
            values = row._asdict()
            children = {name: _children(name, values.pop(name)) for name in _CHILDREN}
            found[row.id] = _attached(session, values, children, earlier.get(row.id, []))
    return found


_CHILDREN: dict[str, tuple[type, Table, tuple[str, ...]]] = {
    "clinical_events": (ClinicalEvent, clinical_events, ("occurred_at", "recorded_at")),
    "orders": (MedicationOrder, medication_orders, ("ordered_at",)),
    "milestones": (Milestone, milestones, ("due_at",)),
    "alerts": (Alert, alerts, ("raised_at",)),
}


def _children(name: str, value: Any) -> list[Any]:
    """A nested array as domain objects, in the order the relationship keeps them."""
    cls, table, order = _CHILDREN[name]
    rows = unnested(table, value)
    rows.sort(key=lambda row: tuple(row[column] for column in order))
    built = []
    for row in rows:
        if cls is not Milestone:  # the only child class that keeps its patient id
            del row["patient_id"]
        built.append(cls(**row))
    return built


def _attached(
    session: Session,
    row: dict[str, Any],
    children: dict[str, list[Any]],
    earlier_labs: list[RecordedLab],
) -> Patient:
    """The patient built from its rows and attached to `session` as loaded (no SQL)."""
    existing = session.identity_map.get(session.identity_key(Patient, (row["id"],)))
    if existing is not None:  # already in this unit of work: keep the tracked copy
        return existing
    patient = Patient(**row, labs=[], **children)
    for built in children.values():
        for child in built:
            make_transient_to_detached(child)
    make_transient_to_detached(patient)
    session.add(patient)
    patient.__dict__["_earlier_labs"] = earlier_labs
    return patient


@cache
def _statements(dialect: str) -> tuple[Select, Select]:
    """The patients with their events, live orders, milestones read back and open alerts
    nested, and their lab results: two statements, the ids an expanding parameter."""
    ids = bindparam("ids", expanding=True)
    columns = [c for c in patients.columns if not c.name.endswith("_name_key")]
    mine = patients.c.id
    with_children = select(
        *columns,
        nested(dialect, clinical_events, clinical_events.c.patient_id == mine).label(
            "clinical_events"
        ),
        nested(
            dialect,
            medication_orders,
            medication_orders.c.patient_id == mine,
            medication_orders.c.status != "stopped",
        ).label("orders"),
        nested(dialect, milestones, milestones.c.patient_id == mine, milestones_read_back()).label(
            "milestones"
        ),
        nested(dialect, alerts, alerts.c.patient_id == mine, alerts.c.status == "open").label(
            "alerts"
        ),
    ).where(patients.c.id.in_(ids))
    labs = (
        select(lab_results.c.patient_id, *(lab_results.c[name] for name in RecordedLab._fields))
        .where(lab_results.c.patient_id.in_(ids))
        .order_by(lab_results.c.patient_id, lab_results.c.taken_at, lab_results.c.recorded_at)
    )
    return with_children, labs


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
