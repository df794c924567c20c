"""Unit of work: one transaction around one use case, with the clock the engine reads.

`commit()` hands the domain events the patients recorded to the message bus (whose handlers
plan the reminders of opened milestones and cancel those of closed ones, so reminders always
match the pathway), writes the audit records the aggregate produced, all in the same
transaction, and turns a lost optimistic-locking race (or SQLite's writer lock) into
`ConcurrencyConflict`. It reads what changed from the events, never from the ORM's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from engine.adapters.reminder_store import SqlReminderStore
from engine.adapters.repository import SqlAuditLog, SqlPatientRepository
from engine.clock import Clock, SystemClock
from engine.domain.errors import ConcurrencyConflict
from engine.domain.events import DomainEvent
from engine.domain.model import AuditRecord, Patient
from engine.services import message_bus
from engine.services.admission import Admission
from engine.services.idempotency import KeyedRequest


class PatientRepository(Protocol):
    """Where patients (the aggregate) are loaded and added; what the unit of work tracks."""

    seen: dict[str, Patient]
    added: set[str]

    def add(self, patient: Patient) -> None: ...
    def get(self, patient_id: str) -> Patient: ...
    def for_care(self, patient_id: str) -> Patient: ...
    def many_for_care(self, patient_ids: Iterable[str]) -> dict[str, Patient]: ...
    def for_status(self, patient_id: str) -> Patient: ...
    def with_due_reviews(
        self, now: datetime, milestone_ids: list[str], limit: int
    ) -> list[str]: ...


class AuditLog(Protocol):
    """The append-only audit trail."""

    def append(self, records: Iterable[AuditRecord]) -> None: ...
    def for_patient(self, patient_id: str, limit: int = 500) -> list[dict[str, Any]]: ...


class UnitOfWork(Protocol):
    """What a use case needs of its transaction: the patients, the audit trail, the reminders
    and the clock; `commit()` hands the patients' events to the message bus. The write side's
    services are typed on this; `SqlAlchemyUnitOfWork` is the real one, tests have fakes."""

    patients: PatientRepository
    audit: AuditLog
    reminders: Any
    clock: Clock
    events_handled: list[DomainEvent]

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def commit(self, answer: Callable[[], Any] | None = None) -> None: ...
    def rollback(self) -> None: ...
    def record_only(self, records: list[AuditRecord]) -> None: ...


class SqlAlchemyUnitOfWork:
    """`with uow: ...; uow.commit()` — rolled back unless committed."""

    patients: SqlPatientRepository
    audit: SqlAuditLog
    reminders: SqlReminderStore
    session: Session

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock | None = None,
        *,
        admission: Admission | None = None,
        keyed: KeyedRequest | None = None,
    ):
        self._sessions = sessions
        self.clock: Clock = clock or SystemClock()
        self.events_handled: list[DomainEvent] = []
        self.admission = admission
        self.keyed = keyed

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.session = self._sessions()
        admit = self.admission.admit if self.admission else None
        self.patients = SqlPatientRepository(self.session, admit=admit)
        self.audit = SqlAuditLog(self.session)
        self.reminders = SqlReminderStore(self.session)
        if self.keyed is not None:
            try:
                self.keyed.replay_if_answered(self.session)  # before any work
            except BaseException:
                self.session.close()
                raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()
        self.session.close()

    def commit(self, answer: Callable[[], Any] | None = None) -> None:
        """Handle the patients' events, write audit records and commit; ConcurrencyConflict if
        another writer won. With a keyed request, `answer()` (the use case's result, read after
        the flush, so it carries the new version) is stored under the key in the same
        transaction; if another copy of the request committed first, all of this one is
        rolled back and `Replay` raised with that copy's answer."""
        seen = list(self.patients.seen.values())
        try:
            self.events_handled = [event for patient in seen for event in patient.events]
            written = {p.id for p in self.patients.write_changes()}  # loaded for care: Core
            for patient in seen:
                if patient.audit and patient.id not in self.patients.added | written:
                    flag_modified(patient, "updated_at")  # every change bumps the version
            self.session.flush()
            if self.events_handled:
                message_bus.handle(self.events_handled, self)
                self.session.flush()
            for patient in seen:
                self.audit.append(patient.audit)
            if self.keyed is not None:  # stored with the work, or the work is not done
                self._store_answer(answer() if answer is not None else None)
            self.session.commit()
        except StaleDataError as exc:
            self.rollback()
            if self.keyed is not None:  # lost to a copy of this very request? give its answer
                self.keyed.replay_if_answered(self.session)
            raise ConcurrencyConflict(
                "the patient was changed by someone else; reload and try again"
            ) from exc
        except OperationalError as exc:
            self.session.rollback()
            if "locked" in str(exc.orig).lower():
                raise ConcurrencyConflict("the patient record is busy; try again") from exc
            raise
        self.patients.added.clear()
        self._forget_recorded()

    def rollback(self) -> None:
        """Undo the transaction; patients loaded for care are forgotten (their objects hold
        what was undone), so the next load reads them as stored."""
        self.session.rollback()
        self._forget_recorded()
        self.patients.forget_care_loaded()

    def _store_answer(self, result: Any) -> None:
        assert self.keyed is not None
        try:
            self.keyed.store(self.session, result, self.clock.now())
        except IntegrityError as exc:  # another copy of the request committed first
            self.session.rollback()
            self._forget_recorded()
            self.keyed.replay_if_answered(self.session)
            raise ConcurrencyConflict(
                "a request with this Idempotency-Key is in progress; retry"
            ) from exc

    def _forget_recorded(self) -> None:
        for patient in self.patients.seen.values():
            patient.audit.clear()
            patient.events.clear()

    def record_only(self, records: list[AuditRecord]) -> None:
        """Audit something that changed nothing (a refusal, a read) in its own transaction."""
        self.rollback()
        self.audit.append(records)
        self.session.commit()
