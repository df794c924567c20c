"""Unit of work: one transaction around one use case, with the clock the engine reads.

`commit()` writes the audit records the aggregate produced in the same transaction, schedules
the reminders of newly opened milestones and cancels those of closed ones (so reminders always
match the pathway), and turns a lost optimistic-locking race (or SQLite's writer lock) into
`ConcurrencyConflict`.
"""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import flag_modified, get_history
from sqlalchemy.orm.exc import StaleDataError

from engine.adapters.reminder_store import SqlReminderStore
from engine.adapters.repository import SqlAuditLog, SqlPatientRepository
from engine.clock import Clock, SystemClock
from engine.domain.errors import ConcurrencyConflict
from engine.domain.model import AuditRecord, Milestone, Patient
from engine.domain.reminders import plan_reminders


class SqlAlchemyUnitOfWork:
    """`with uow: ...; uow.commit()` — rolled back unless committed."""

    patients: SqlPatientRepository
    audit: SqlAuditLog
    reminders: SqlReminderStore
    session: Session

    def __init__(self, sessions: sessionmaker[Session], clock: Clock | None = None):
        self._sessions = sessions
        self.clock: Clock = clock or SystemClock()

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.session = self._sessions()
        self.patients = SqlPatientRepository(self.session)
        self.audit = SqlAuditLog(self.session)
        self.reminders = SqlReminderStore(self.session)
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()
        self.session.close()

    def commit(self) -> None:
        """Write audit records and commit; ConcurrencyConflict if another writer won."""
        for patient in self.patients.seen.values():
            if patient.audit and patient in self.session and not _is_new(self.session, patient):
                flag_modified(patient, "updated_at")  # every change bumps and checks the version
        try:
            opened, closed = _milestone_changes(self.session, self.patients.seen)
            self.session.flush()
            if opened or closed:
                now = self.clock.now()
                for patient, milestone in opened:
                    self.reminders.add(plan_reminders(patient, milestone, now))
                self.reminders.cancel_for_milestones(closed, now, "milestone closed")
                self.session.flush()
            for patient in self.patients.seen.values():
                self.audit.append(patient.audit)
            self.session.commit()
        except StaleDataError as exc:
            self.session.rollback()
            raise ConcurrencyConflict(
                "the patient was changed by someone else; reload and try again"
            ) from exc
        except OperationalError as exc:
            self.session.rollback()
            if "locked" in str(exc.orig).lower():
                raise ConcurrencyConflict("the patient record is busy; try again") from exc
            raise
        for patient in self.patients.seen.values():
            patient.audit.clear()

    def rollback(self) -> None:
        self.session.rollback()
        for patient in self.patients.seen.values():
            patient.audit.clear()

    def record_only(self, records: list[AuditRecord]) -> None:
        """Audit something that changed nothing (a refusal, a read) in its own transaction."""
        self.session.rollback()
        self.audit.append(records)
        self.session.commit()


def _is_new(session: Session, patient: object) -> bool:
    return inspect(patient).pending


def _milestone_changes(
    session: Session, patients: dict[str, Patient]
) -> tuple[list[tuple[Patient, Milestone]], list[str]]:
    """Milestones opened (new and pending) and closed (status changed) in this unit of work.

    Only the session's new and dirty objects are looked at, not every loaded milestone.
    """
    opened = [
        (patients[m.patient_id], m)
        for m in session.new
        if isinstance(m, Milestone) and m.is_open and m.patient_id in patients
    ]
    closed = [
        m.id
        for m in session.dirty
        if isinstance(m, Milestone) and not m.is_open and get_history(m, "status").has_changes()
    ]
    return opened, closed
