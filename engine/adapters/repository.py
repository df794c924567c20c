"""Repositories: patients (the aggregate) and the append-only audit log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from engine.adapters.orm import audit_log, milestones
from engine.domain.errors import UnknownPatient
from engine.domain.model import AuditRecord, Patient


class SqlPatientRepository:
    """Patients loaded whole (with their records) and tracked for the unit of work."""

    def __init__(self, session: Session):
        self.session = session
        self.seen: dict[str, Patient] = {}

    def add(self, patient: Patient) -> None:
        self.session.add(patient)
        self.seen[patient.id] = patient

    def get(self, patient_id: str) -> Patient:
        """The patient, or UnknownPatient."""
        patient = self.session.get(Patient, patient_id) if patient_id else None
        if patient is None:
            raise UnknownPatient(f"no patient with id {patient_id!r}")
        self.seen[patient.id] = patient
        return patient

    def with_due_reviews(self, now: datetime, milestone_ids: list[str], limit: int) -> list[str]:
        """Patients with a review milestone due and not yet reviewed, oldest due first."""
        query = (
            select(milestones.c.patient_id, func.min(milestones.c.due_at).label("due"))
            .where(
                milestones.c.status == "pending",
                milestones.c.due_at <= now,
                milestones.c.reviewed_at.is_(None),
                milestones.c.milestone_id.in_(milestone_ids),
            )
            .group_by(milestones.c.patient_id)
            .order_by("due")
            .limit(limit)
        )
        return [row.patient_id for row in self.session.execute(query)]

    def ids(self, limit: int | None = None) -> list[str]:
        query = select(Patient.id).order_by(Patient.enrolled_at, Patient.id)
        return list(self.session.scalars(query.limit(limit)))


class SqlAuditLog:
    """Append-only audit trail; rows are written in the unit of work's transaction."""

    def __init__(self, session: Session):
        self.session = session

    def append(self, records: Iterable[AuditRecord]) -> None:
        rows = [_row(r) for r in records]
        if rows:
            self.session.execute(insert(audit_log), rows)

    def for_patient(self, patient_id: str, limit: int = 500) -> list[dict[str, Any]]:
        query = (
            select(audit_log)
            .where(audit_log.c.patient_id == patient_id)
            .order_by(audit_log.c.id)
            .limit(limit)
        )
        return [dict(row._mapping) for row in self.session.execute(query)]

    def recent(self, limit: int = 200, patient_id: str | None = None) -> list[dict[str, Any]]:
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if patient_id:
            query = query.where(audit_log.c.patient_id == patient_id)
        return [dict(row._mapping) for row in self.session.execute(query)]


def _row(r: AuditRecord) -> dict[str, Any]:
    return {
        "at": r.at,
        "actor": r.actor,
        "action": r.action,
        "patient_id": r.patient_id,
        "from_state": r.from_state,
        "to_state": r.to_state,
        "reason": r.reason,
        "rule_ids": list(r.rule_ids),
        "detail": r.detail,
    }
