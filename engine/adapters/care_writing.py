"""Writing back a patient loaded for care: what changed since the load, with Core.

`care_loading` builds the patient and its records as plain objects (not in the ORM session) and
keeps a `CareSnapshot` of the values it read. At commit, `write_changes` compares: the patient
row's changed columns are one UPDATE that also checks and bumps the version (no row updated:
another writer got there first, `StaleDataError` as the ORM would raise); records not in the
snapshot are INSERTed, one executemany per table; records whose values changed (a milestone
closed, an order superseded, an alert resolved) are UPDATEd, one executemany per table and set of
changed columns. The statements are built once per shape. Then the snapshot is the new state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table, and_, bindparam, insert, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.adapters.orm import (
    alerts,
    clinical_events,
    lab_results,
    medication_orders,
    milestones,
    patients,
)
from engine.domain.model import Patient

#: The patient's collections and their tables (labs: only the results of this unit of work).
RECORDS: dict[str, Table] = {
    "labs": lab_results,
    "clinical_events": clinical_events,
    "orders": medication_orders,
    "milestones": milestones,
    "alerts": alerts,
}
_PATIENT_COLUMNS = tuple(
    c.name for c in patients.columns if not c.name.endswith("_name_key") and c.name != "version"
)


@dataclass
class CareSnapshot:
    """The values read for the patient row and for each record (by id), as loaded or as last
    written."""

    patient: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


def take_snapshot(patient: Patient) -> CareSnapshot:
    """The patient's values now (mutable JSON values copied, so later edits show as changes)."""
    snapshot = CareSnapshot(_values(patients, patient, _PATIENT_COLUMNS))
    for name, table in RECORDS.items():
        for record in getattr(patient, name):
            snapshot.records[record.id] = _values(table, record, _columns(table))
    return snapshot


def write_changes(session: Session, changed: list[tuple[Patient, CareSnapshot, bool]]) -> None:
    """Write what changed since each snapshot, for all the patients at once: (patient, its
    snapshot, bump). A patient's version is checked and bumped when its row changed or `bump`
    (it has audit records: every change moves the version); `StaleDataError` if another writer
    moved one first (then nothing is written: the caller rolls back)."""
    conn = session.connection()
    bumped: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    inserts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = defaultdict(list)
    new_snapshots = []
    for patient, snapshot, bump in changed:
        row = _values(patients, patient, _PATIENT_COLUMNS)
        moved_columns = tuple(c for c in _PATIENT_COLUMNS if row[c] != snapshot.patient[c])
        if moved_columns or bump:
            bumped[moved_columns].append(
                {
                    **{c: row[c] for c in moved_columns},
                    "id_": patient.id,
                    "old": patient.version,
                    "new": patient.version + 1,
                }
            )
        written = _record_changes(patient, snapshot, inserts, updates)
        new_snapshots.append((patient, snapshot, row, written, bool(moved_columns or bump)))
    for moved_columns, rows in bumped.items():
        _update_checked(conn, _patient_update(moved_columns), rows)
    for table_name, rows in inserts.items():
        conn.execute(insert(_TABLES[table_name]), rows)
    for (table_name, moved), rows in updates.items():
        conn.execute(_record_update(table_name, moved), rows)
    for patient, snapshot, row, written, was_bumped in new_snapshots:
        if was_bumped:
            patient.version += 1
        snapshot.patient = row
        snapshot.records.update(written)


def _record_changes(
    patient: Patient,
    snapshot: CareSnapshot,
    inserts: dict[str, list[dict[str, Any]]],
    updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]],
) -> dict[str, dict[str, Any]]:
    """Queue the patient's new and changed records; their values now, by id."""
    written: dict[str, dict[str, Any]] = {}
    for table in RECORDS.values():
        columns = _columns(table)
        for record in getattr(patient, _COLLECTION[table.name]):
            now = _values(table, record, columns)
            now["patient_id"] = patient.id
            before = snapshot.records.get(record.id)
            if before is None:
                inserts[table.name].append(now)
            else:
                moved = tuple(c for c in columns if now[c] != before[c])
                if moved:
                    updates[(table.name, moved)].append(
                        {**{c: now[c] for c in moved}, "id_": record.id}
                    )
            written[record.id] = now
    return written


def _update_checked(conn: Any, statement: Any, rows: list[dict[str, Any]]) -> None:
    """Run a version-checked UPDATE for every row; StaleDataError unless each hit its row."""
    if conn.dialect.supports_sane_multi_rowcount or len(rows) == 1:
        hit = conn.execute(statement, rows).rowcount
    else:
        hit = sum(conn.execute(statement, row).rowcount for row in rows)
    if hit != len(rows):
        raise StaleDataError(
            f"{len(rows) - hit} of {len(rows)} patients are no longer at the version loaded"
        )


_TABLES = {table.name: table for table in RECORDS.values()}
_COLLECTION = {table.name: name for name, table in RECORDS.items()}


@cache
def _columns(table: Table) -> tuple[str, ...]:
    """A record's columns as the domain object holds them (all but the owner's id)."""
    return tuple(c.name for c in table.columns if c.name != "patient_id")


@cache
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON))


def _values(table: Table, obj: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    json_columns = _json_columns(table)
    return {c: _copy(getattr(obj, c)) if c in json_columns else getattr(obj, c) for c in columns}


def _copy(value: Any) -> Any:
    """A copy of a JSON value (dicts and lists copied all the way down; the rest is immutable)."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


@cache
def _patient_update(changed: tuple[str, ...]) -> Any:
    """UPDATE the changed columns and the version, if the row is still at the old version."""
    return (
        update(patients)
        .where(and_(patients.c.id == bindparam("id_"), patients.c.version == bindparam("old")))
        .values({**{c: bindparam(c) for c in changed}, "version": bindparam("new")})
    )


@cache
def _record_update(table_name: str, moved: tuple[str, ...]) -> Any:
    table = _TABLES[table_name]
    return (
        update(table)
        .where(table.c.id == bindparam("id_"))
        .values({c: bindparam(c) for c in moved})
    )
