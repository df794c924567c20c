"""The status read's query: only what the status page shows, in one SELECT.

The patient's row with its active orders, open milestones and open alerts nested
(`nested_rows`), read with Core (no identity map, no loader strategies, no lab or event
history) and handed back as a transient `Patient` the views read and nothing writes. Labs,
events and closed milestones are the history's business (`patient_history`), not the status
page's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from engine.adapters.nested_rows import nested, unnested
from engine.adapters.orm import alerts, medication_orders, milestones, patients
from engine.domain.model import Alert, MedicationOrder, Milestone, Patient

_KIDS = {
    "orders": (MedicationOrder, medication_orders, "ordered_at"),
    "milestones": (Milestone, milestones, "due_at"),
    "alerts": (Alert, alerts, "raised_at"),
}


def patient_for_status(session: Session, patient_id: str) -> Patient | None:
    """A read-only copy of the patient with active orders, open milestones and open alerts
    (None if there is no such patient)."""
    conn = session.connection()  # Core on the session's transaction: no ORM layer per row
    row = conn.execute(_statement(conn.dialect.name), {"patient_id": patient_id}).first()
    if row is None:
        return None
    values = row._asdict()
    kids: dict[str, list[Any]] = {}
    for name, (cls, table, order) in _KIDS.items():
        rows = sorted(unnested(table, values.pop(name)), key=lambda r, o=order: r[o])
        kids[name] = [cls(**(r if cls is Milestone else _without_patient(r))) for r in rows]
    return Patient(**values, **kids, labs=[], clinical_events=[])


@cache
def _statement(dialect: str) -> Select:
    """The patient's row with its live records nested (built once per dialect)."""
    who = patients.c.id
    columns = [c for c in patients.columns if not c.name.endswith("_name_key")]
    return select(
        *columns,
        nested(
            dialect,
            medication_orders,
            medication_orders.c.patient_id == who,
            medication_orders.c.status == "active",
        ).label("orders"),
        nested(
            dialect, milestones, milestones.c.patient_id == who, milestones.c.status == "pending"
        ).label("milestones"),
        nested(dialect, alerts, alerts.c.patient_id == who, alerts.c.status == "open").label(
            "alerts"
        ),
    ).where(who == bindparam("patient_id"))


def _without_patient(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "patient_id"}
