"""Repositories: patients (the aggregate) and the append-only audit log.

Three ways to load a patient. `get` loads the whole record through the ORM (history, exports).
`for_care` and `many_for_care` load what the pathway reads when it applies an input
(`care_loading`, two Core statements): every lab result and clinical event (conditions look
back without limit: baseline, unbroken normal run, events ever), every order (a re-order is
judged against the stopped ones too), the open alerts, the open milestones and, of the closed
milestones, only the rows `CarePathway` reads back: per milestone and cycle the latest
occurrence (numbering, "already scheduled in this cycle") and the latest completed one (the
`last_completed` anchor). Resolved alerts and older closed milestones stay on disk. Those
patients are plain objects; `write_changes` writes back what changed since the load
(`care_writing`), and a rollback forgets them. `for_status` reads what the status page shows,
with Core. A single patient loaded for a request is admitted by the request's `admit` (the
access policy and the version the caller saw) before anyone reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from engine.adapters.care_loading import is_care_loaded, load_for_care, write_back
from engine.adapters.orm import audit_log, milestones
from engine.adapters.status_queries import patient_for_status
from engine.domain.errors import UnknownPatient
from engine.domain.model import AuditRecord, Patient


class SqlPatientRepository:
    """Patients loaded whole (with their records) and tracked for the unit of work."""

    def __init__(self, session: Session, admit: Callable[[Patient], None] | None = None):
        self.session = session
        self.seen: dict[str, Patient] = {}
        self.added: set[str] = set()
        self._admit = admit or (lambda patient: None)

    def add(self, patient: Patient) -> None:
        self.session.add(patient)
        self.seen[patient.id] = patient
        self.added.add(patient.id)

    def get(self, patient_id: str) -> Patient:
        """The whole patient, or UnknownPatient (also when the request may not see them)."""
        patient = self.session.get(Patient, patient_id) if patient_id else None
        if patient is None:
            raise UnknownPatient(f"no patient with id {patient_id!r}")
        self._admit(patient)
        self.seen[patient.id] = patient
        return patient

    def for_care(self, patient_id: str) -> Patient:
        """The patient with what the pathway reads (see the module docstring), or UnknownPatient
        (also when the request may not see them)."""
        found = self.many_for_care([patient_id]) if patient_id else {}
        if patient_id not in found:
            raise UnknownPatient(f"no patient with id {patient_id!r}")
        self._admit(found[patient_id])
        return found[patient_id]

    def for_status(self, patient_id: str) -> Patient:
        """A read-only copy with what the status shows (`status_queries`), or UnknownPatient
        (also when the request may not see them); not tracked: nothing of it is written."""
        patient = patient_for_status(self.session, patient_id) if patient_id else None
        if patient is None:
            raise UnknownPatient(f"no patient with id {patient_id!r}")
        self._admit(patient)
        return patient

    def many_for_care(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        """Patients by id, each loaded as `for_care` does, in one SELECT per table
        (`care_loading`). Unknown ids are left out of the answer."""
        wanted = list(patient_ids)
        found = {pid: self.seen[pid] for pid in wanted if pid in self.seen}  # one copy per UoW
        with self.session.no_autoflush:
            found.update(load_for_care(self.session, [p for p in wanted if p not in found]))
        self.seen.update(found)
        return found

    def forget_care_loaded(self) -> None:
        """After a rollback: the patients loaded for care hold what was undone; drop them."""
        for patient_id in [pid for pid, p in self.seen.items() if is_care_loaded(p)]:
            del self.seen[patient_id]

    def write_changes(self) -> list[Patient]:
        """Write what changed in the patients loaded for care, all at once (Core, the versions
        checked and bumped: `StaleDataError` if another writer got there first); the others are
        the ORM session's to flush. The patients written."""
        touched = [p for p in self.seen.values() if p.id not in self.added]
        return write_back(self.session, touched, bump={p.id for p in touched if p.audit})

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
    """Append-only audit trail; rows are written in the unit of work's transaction.

    Appended rows wait and are written in one multi-row INSERT when the transaction commits
    (or before this log is read), so a batch of inputs costs one statement, not one per
    patient; a rollback drops them with the rest of the transaction.
    """

    def __init__(self, session: Session):
        self.session = session
        self._pending: list[dict[str, Any]] | None = None

    def append(self, records: Iterable[AuditRecord]) -> None:
        rows = [audit_row(r) for r in records]
        if not rows:
            return
        if self._pending is None:
            self._pending = []
            event.listen(self.session, "before_commit", self._write_pending)
            event.listen(self.session, "after_soft_rollback", self._drop_pending)
        self._pending.extend(rows)

    def _write_pending(self, session: Session | None = None) -> None:
        if self._pending:
            rows, self._pending[:] = list(self._pending), []
            self.session.execute(insert(audit_log), rows)

    def _drop_pending(self, session: Session, previous_transaction: Any) -> None:
        if self._pending and not session.in_transaction():
            self._pending.clear()

    def for_patient(self, patient_id: str, limit: int = 500) -> list[dict[str, Any]]:
        self._write_pending()
        query = (
            select(audit_log)
            .where(audit_log.c.patient_id == patient_id)
            .order_by(audit_log.c.id)
            .limit(limit)
        )
        return [dict(row._mapping) for row in self.session.execute(query)]

    def recent(self, limit: int = 200, patient_id: str | None = None) -> list[dict[str, Any]]:
        self._write_pending()
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if patient_id:
            query = query.where(audit_log.c.patient_id == patient_id)
        return [dict(row._mapping) for row in self.session.execute(query)]


def audit_row(r: AuditRecord) -> dict[str, Any]:
    """The audit_log row of a record."""
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
