"""The care load: what the pathway reads to apply an input, read with Core into plain domain
objects, and what is needed to write back only what changed.

The ORM's relationship loaders and flush cost more than the pathway's decision (each loaded
row goes through the loading machinery, each flush through the ORM's unit of work). Here two
cached Core statements read all the patients asked for: the patient rows with their events,
orders, milestones and open alerts nested as JSON arrays (`nested_rows`), then their lab
results; and:

- the lab history becomes plain `RecordedLab` values (never written again: a result is not
  changed once recorded), given to the patient as `earlier_labs`; new results go to
  `patient.labs` and are inserted;
- clinical events, the orders (stopped ones too: a re-order's dose change is judged against
  every earlier order of the drug), the open alerts and the milestones
  `CarePathway` reads back (open ones; per milestone and cycle the latest occurrence and the
  latest completed one) are built as domain objects outside the ORM session, with a snapshot of
  the values read: the unit of work writes back what changed since (`care_writing`: one UPDATE
  of the patient row that checks and bumps the version, executemany INSERTs and UPDATEs of the
  records).

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
from sqlalchemy.orm import Session, configure_mappers
from sqlalchemy.orm.attributes import manager_of_class

from engine.adapters.care_writing import take_snapshot, write_changes
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
SNAPSHOT = "_care_snapshot"  # where a patient loaded for care keeps what was read


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
    """Patients by id with what the pathway reads (`write_back` writes their changes); unknown
    ids are left out."""
    configure_mappers()  # instances are built without __init__, which would have done it
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
            found[row.id] = _built(values, children, earlier.get(row.id, []))
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
        built.append(_plain(cls, row))
    return built


def _plain(cls: type, values: dict[str, Any]) -> Any:
    """An instance holding `values` as they were read, as the ORM's loading builds one: no
    `__init__` and no attribute events (every column is given; nothing is defaulted)."""
    instance = manager_of_class(cls).new_instance()
    instance.__dict__.update(values)
    return instance


def _built(
    row: dict[str, Any], children: dict[str, list[Any]], earlier_labs: list[RecordedLab]
) -> Patient:
    """The patient built from its rows, outside the ORM session, with a snapshot of what was
    read: the unit of work writes back what changed since (`care_writing`)."""
    patient = _plain(Patient, row)
    patient.labs = []
    for name, records in children.items():
        setattr(patient, name, records)
    patient.__dict__["_earlier_labs"] = earlier_labs
    patient.__dict__[SNAPSHOT] = take_snapshot(patient)
    return patient


@cache
def _statements(dialect: str) -> tuple[Select, Select]:
    """The patients with their events, orders, milestones read back and open alerts
    nested, and their lab results: two statements, the ids an expanding parameter."""
    ids = bindparam("ids", expanding=True)
    columns = [c for c in patients.columns if not c.name.endswith("_name_key")]
    mine = patients.c.id
    with_children = select(
        *columns,
        nested(dialect, clinical_events, clinical_events.c.patient_id == mine).label(
            "clinical_events"
        ),
        nested(dialect, medication_orders, medication_orders.c.patient_id == mine).label("orders"),
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


def write_back(session: Session, patients: list[Patient], bump: set[str]) -> list[Patient]:
    """Write what changed in those of `patients` loaded for care (the versions of those in
    `bump` move even if their row did not change); the patients written."""
    loaded = [p for p in patients if SNAPSHOT in p.__dict__]
    if loaded:
        write_changes(session, [(p, p.__dict__[SNAPSHOT], p.id in bump) for p in loaded])
    return loaded


def is_care_loaded(patient: Patient) -> bool:
    return SNAPSHOT in patient.__dict__
