"""A unit of work in memory: the service layer's use cases run with no database.

`FakeUnitOfWork` keeps what was committed (each patient as a pickled copy, the audit rows, the
reminders) and hands out fresh copies on load, so what a use case changed and did not commit
is gone after a rollback, as with the real one. `commit()` does what
`SqlAlchemyUnitOfWork.commit` does: the patients' events go to the real message bus, their
audit records to the audit log, the version of each changed patient goes up by one (an
enrolled one starts at 1), and a patient changed meanwhile by another unit of work is a
`ConcurrencyConflict` with nothing written.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from engine.clock import ManualClock
from engine.domain.errors import ConcurrencyConflict, UnknownPatient
from engine.domain.events import DomainEvent
from engine.domain.model import AuditRecord, Patient
from engine.domain.reminders import CoordinatorItem, Reminder
from engine.services import message_bus

#: Reminder statuses a closed milestone still cancels (not yet handed to a worker for sending).
UNSENT = ("scheduled", "claimed")
#: Coordinator item statuses a closed milestone closes.
LIVE_ITEMS = ("open", "claimed", "snoozed")


@dataclass
class FakeReminderStore:
    """What the message bus asks of the reminder store: plan rows, cancel a milestone's."""

    added: list[Reminder | CoordinatorItem] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def add(self, rows: Iterable[Reminder | CoordinatorItem]) -> None:
        self.added.extend(rows)

    def cancel_for_milestones(self, milestone_row_ids: list[str], now: datetime, why: str) -> None:
        self.cancelled.extend(milestone_row_ids)
        for row in self.added:
            closed = row.milestone_row_id in milestone_row_ids
            if closed and isinstance(row, Reminder) and row.status in UNSENT:
                row.status, row.last_error, row.next_attempt_at = "cancelled", why, now
            elif closed and isinstance(row, CoordinatorItem) and row.status in LIVE_ITEMS:
                row.status, row.closed_at, row.closed_by, row.note = "closed", now, "system", why

    def for_patient(self, patient_id: str) -> list[Reminder]:
        mine = [r for r in self.added if isinstance(r, Reminder) and r.patient_id == patient_id]
        return sorted(mine, key=lambda r: (r.due_at, r.recipient))

    def planned_for(self, milestone_row_id: str) -> list[Reminder]:
        """The reminders planned for one milestone occurrence, whatever their status."""
        return [r for r in self.added if r.milestone_row_id == milestone_row_id]


@dataclass
class FakeAuditLog:
    """Append-only audit lines: `rows` holds the committed ones, in order."""

    rows: list[AuditRecord] = field(default_factory=list)
    pending: list[AuditRecord] = field(default_factory=list)

    def append(self, records: Iterable[AuditRecord]) -> None:
        self.pending.extend(records)

    def for_patient(self, patient_id: str, limit: int = 500) -> list[dict[str, Any]]:
        found = [r for r in self.rows + self.pending if r.patient_id == patient_id][:limit]
        return [{"id": n, **asdict(r), "rule_ids": list(r.rule_ids)} for n, r in enumerate(found)]

    def actions(self, patient_id: str | None = None) -> list[str]:
        """The committed lines' actions (of one patient, if given), oldest first."""
        return [r.action for r in self.rows if patient_id is None or r.patient_id == patient_id]


class FakePatientRepository:
    """Patients kept as committed copies; each unit of work loads its own copy."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.seen: dict[str, Patient] = {}
        self.added: set[str] = set()
        self.loaded_version: dict[str, int] = {}

    def add(self, patient: Patient) -> None:
        self.seen[patient.id] = patient
        self.added.add(patient.id)

    def get(self, patient_id: str) -> Patient:
        """The patient (this unit of work's copy), or UnknownPatient."""
        if patient_id in self.seen:
            return self.seen[patient_id]
        if patient_id not in self.stored:
            raise UnknownPatient(f"no patient with id {patient_id!r}")
        patient = self.committed(patient_id)
        self.seen[patient_id] = patient
        self.loaded_version[patient_id] = patient.version
        return patient

    for_care = get

    def for_status(self, patient_id: str) -> Patient:
        """A copy to read, not tracked: nothing of it is written."""
        if patient_id not in self.stored:
            raise UnknownPatient(f"no patient with id {patient_id!r}")
        return self.committed(patient_id)

    def many_for_care(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        return {pid: self.get(pid) for pid in dict.fromkeys(patient_ids) if pid in self.stored}

    def with_due_reviews(self, now: datetime, milestone_ids: list[str], limit: int) -> list[str]:
        due: list[tuple[datetime, str]] = []
        for patient_id in self.stored:
            waiting = [
                m.due_at
                for m in self.committed(patient_id).milestones
                if m.status == "pending"
                and m.due_at <= now
                and m.reviewed_at is None
                and m.milestone_id in milestone_ids
            ]
            if waiting:
                due.append((min(waiting), patient_id))
        return [patient_id for _, patient_id in sorted(due)[:limit]]

    def changed_meanwhile(self, patient: Patient) -> bool:
        """Whether another unit of work committed the patient since this one loaded it."""
        return self.committed(patient.id).version != self.loaded_version[patient.id]

    def committed(self, patient_id: str) -> Patient:
        """A fresh copy of the patient as last committed."""
        return pickle.loads(self.stored[patient_id])

    def store(self, patient: Patient) -> None:
        self.stored[patient.id] = pickle.dumps(patient)

    def forget_loaded(self) -> None:
        self.seen.clear()
        self.added.clear()
        self.loaded_version.clear()


class FakeUnitOfWork:
    """`with uow: ...; uow.commit()` in memory; enter it as often as the real one."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock or ManualClock()
        self.patients = FakePatientRepository()
        self.audit = FakeAuditLog()
        self.reminders = FakeReminderStore()
        self.events_handled: list[DomainEvent] = []
        self.commits = 0

    def __enter__(self) -> FakeUnitOfWork:
        self.patients.forget_loaded()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()

    def commit(self, answer: Callable[[], Any] | None = None) -> None:
        """As the real commit: events to the message bus, audit lines, versions; all or nothing."""
        seen = list(self.patients.seen.values())
        changed = [p for p in seen if p.audit and p.id not in self.patients.added]
        if any(self.patients.changed_meanwhile(patient) for patient in changed):
            self.rollback()
            raise ConcurrencyConflict(
                "the patient was changed by someone else; reload and try again"
            )
        self.events_handled = [event for patient in seen for event in patient.events]
        message_bus.handle(self.events_handled, self)
        for patient in seen:
            if patient.id in self.patients.added:
                patient.version = 1
            elif patient.audit:
                patient.version += 1
            self.audit.append(patient.audit)
        if answer is not None:
            answer()
        for patient in seen:
            patient.audit.clear()
            patient.events.clear()
            self.patients.store(patient)
            self.patients.loaded_version[patient.id] = patient.version
        self.audit.rows.extend(self.audit.pending)
        self.audit.pending.clear()
        self.patients.added.clear()
        self.commits += 1

    def rollback(self) -> None:
        """Forget what this unit of work changed and did not commit."""
        for patient in self.patients.seen.values():
            patient.audit.clear()
            patient.events.clear()
        self.audit.pending.clear()
        self.patients.forget_loaded()

    def record_only(self, records: list[AuditRecord]) -> None:
        """Audit something that changed nothing, on its own."""
        self.rollback()
        self.audit.rows.extend(records)

    def another_writer(self) -> FakeUnitOfWork:
        """A unit of work of another writer on the same store (to lose a race against)."""
        other = FakeUnitOfWork(self.clock)
        other.patients.stored = self.patients.stored
        other.audit, other.reminders = self.audit, self.reminders
        return other
