"""The status read's query: only what the status page shows, in four plain SELECTs.

The patient's row, its active orders, its open milestones and its open alerts, read with Core
(no identity map, no loader strategies, no lab or event history) and handed back as a transient
`Patient` the views read and nothing writes. Labs, events and closed milestones are the
history's business (`patient_history`), not the status page's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from engine.adapters.orm import alerts, medication_orders, milestones, patients
from engine.domain.model import Alert, MedicationOrder, Milestone, Patient

_PATIENT_COLUMNS = [c for c in patients.columns if not c.name.endswith("_name_key")]
_WHO = bindparam("patient_id")
# built once: the statements differ only by the patient id
_PATIENT = select(*_PATIENT_COLUMNS).where(patients.c.id == _WHO)
_ORDERS = (
    select(medication_orders)
    .where(medication_orders.c.patient_id == _WHO, medication_orders.c.status == "active")
    .order_by(medication_orders.c.ordered_at)
)
_MILESTONES = (
    select(milestones)
    .where(milestones.c.patient_id == _WHO, milestones.c.status == "pending")
    .order_by(milestones.c.due_at)
)
_ALERTS = (
    select(alerts)
    .where(alerts.c.patient_id == _WHO, alerts.c.status == "open")
    .order_by(alerts.c.raised_at)
)


def patient_for_status(session: Session, patient_id: str) -> Patient | None:
    """A read-only copy of the patient with active orders, open milestones and open alerts
    (None if there is no such patient)."""
    conn = session.connection()  # Core on the session's transaction: no ORM layer per row
    who = {"patient_id": patient_id}
    row = conn.execute(_PATIENT, who).first()
    if row is None:
        return None
    orders, due, raised = (
        [r._asdict() for r in conn.execute(q, who)] for q in (_ORDERS, _MILESTONES, _ALERTS)
    )
    return Patient(
        **row._asdict(),
        orders=[MedicationOrder(**_without_patient(r)) for r in orders],
        milestones=[Milestone(**r) for r in due],
        alerts=[Alert(**_without_patient(r)) for r in raised],
        labs=[],
        clinical_events=[],
    )


def _without_patient(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "patient_id"}
