"""When each patient fact last changed: the `patient_fact_changed` audit lines of a patient."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.adapters.orm import audit_log


def last_fact_changes(session: Session, patient_id: str) -> dict[str, datetime]:
    """Fact name -> when its latest recorded change happened: the clinical time the change
    carries (the event's or the result's), else the audit time (UTC)."""
    rows = session.execute(
        select(audit_log.c.at, audit_log.c.detail)
        .where(audit_log.c.patient_id == patient_id)
        .where(audit_log.c.action == "patient_fact_changed")
        .order_by(audit_log.c.id)
    )
    found: dict[str, datetime] = {}
    for at, detail in rows:
        fact = (detail or {}).get("fact")
        if isinstance(fact, str):
            found[fact] = _clinical_time(detail.get("at")) or at
    return found


def _clinical_time(text: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None
