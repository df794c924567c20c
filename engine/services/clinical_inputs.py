"""Clinical inputs of many patients in one unit of work: lab results, clinical events and
medication orders, mixed, applied in order, each exactly as its own use case applies it.

`record_clinical_inputs` is the batch use case (a lab interface's file, a FHIR transaction
Bundle with mixed resources): one answer per item; a refused item (unknown patient, bad input,
a hard block, a stale `expected_version`) is answered with its error and changes nothing, a
hard block is audited, the others commit together.

`InputBatch` is the open form of the same thing, for a caller that decides its next input from
the answer to the last one (the synthetic cohort, a day of a clinic at a time): each input runs
its ordinary use case (`engine.services.patients`) on `batch.step()`, a unit of work inside the
batch's transaction, and `batch.commit()` writes what has been recorded so far. A patient is
loaded once per batch and then kept (the batch's own writes keep it current; its version is
still checked when the batch commits). With `each_at_its_moment`, every input's domain events
go to the message bus and its audit records are queued when that input is done, at the clock's
moment then, so the database ends exactly as if each input had had its own unit of work
(reminders planned and cancelled at the same moments), only with fewer loads and commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.domain.errors import ConcurrencyConflict, DomainError, InvalidInput
from engine.domain.events import DomainEvent
from engine.domain.model import AuditRecord, Patient
from engine.services import message_bus
from engine.services import patients as use_cases
from engine.services.unit_of_work import PatientRepository, UnitOfWork

#: The kinds of input a batch item may be, with the fields each passes to its use case.
INPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "lab": ("code", "value", "unit", "taken_at", "source", "expected_version"),
    "event": ("event", "occurred_at", "data", "expected_version"),
    "order": (
        "drug",
        "mg_per_day",
        "mg_per_kg_day",
        "route",
        "ordered_at",
        "overrides",
        "expected_version",
    ),
}


class LoadedPatients:
    """The batch's patients: loaded from the repository the first time, then kept (`kept`).
    The repository's `seen`, which the unit of work's commit goes through, holds only those
    touched since the last commit (`since_commit()` empties it), so a commit costs what changed,
    not every patient the batch holds. Records which patients the current input touched."""

    def __init__(self, repository: PatientRepository):
        self._repository = repository
        self.kept: dict[str, Patient] = {}
        self.touched: dict[str, Patient] = {}

    @property
    def seen(self) -> dict[str, Patient]:
        return self._repository.seen

    @property
    def added(self) -> set[str]:
        return self._repository.added

    def since_commit(self) -> None:
        """The last commit wrote every patient touched so far: start afresh."""
        self._repository.seen.clear()

    def _touch(self, patient: Patient) -> Patient:
        self.kept[patient.id] = self.touched[patient.id] = self.seen[patient.id] = patient
        return patient

    def add(self, patient: Patient) -> None:
        self._repository.add(patient)
        self._touch(patient)

    def get(self, patient_id: str) -> Patient:
        return self._touch(self._repository.get(patient_id))

    def for_care(self, patient_id: str) -> Patient:
        kept = self.kept.get(patient_id)
        return self._touch(kept if kept is not None else self._repository.for_care(patient_id))

    def for_status(self, patient_id: str) -> Patient:
        return self._repository.for_status(patient_id)  # type: ignore[attr-defined]

    def many_for_care(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        wanted = list(dict.fromkeys(patient_ids))
        missing = [pid for pid in wanted if pid not in self.kept]
        found = self._repository.many_for_care(missing) if missing else {}
        found.update({pid: self.kept[pid] for pid in wanted if pid in self.kept})
        return {pid: self._touch(found[pid]) for pid in wanted if pid in found}

    def with_due_reviews(self, now: datetime, milestone_ids: list[str], limit: int) -> list[str]:
        """Read from the database: commit the batch first to see its own changes."""
        return self._repository.with_due_reviews(now, milestone_ids, limit)


class InputBatch:
    """An open unit of work that inputs are recorded in one after another."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        each_at_its_moment: bool = False,
        patients: type[LoadedPatients] = LoadedPatients,
    ):
        self.uow = uow
        self.patients = patients(uow.patients)
        self.each_at_its_moment = each_at_its_moment
        self.refusals: list[AuditRecord] = []
        # what the message bus did at each input's moment, written at the batch's commit
        self._planned: list[Any] = []
        self._cancelled: list[tuple[str, datetime, str]] = []  # (milestone row id, when, why)

    def step(self) -> UnitOfWork:
        """The unit of work for one input's use case, inside the batch's transaction."""
        return _InputStep(self)

    def commit(self) -> None:
        """Write everything recorded so far (ConcurrencyConflict if another writer changed one
        of the patients meanwhile: then nothing since the last commit is written). The reminders
        planned and cancelled at each input's moment follow the milestones they remind of, in
        the order they happened."""
        self.uow.commit()
        self.patients.since_commit()
        if self._planned or self._cancelled:
            planned, self._planned = self._planned, []
            cancelled, self._cancelled = self._cancelled, []
            self.uow.reminders.add(planned)
            self.uow.reminders.cancel_for_milestones_each(cancelled)
            self.uow.commit()


class _HeldReminders:
    """The reminder store as an input in a batch sees it: the reminders planned and cancelled
    at the input's moment wait for the batch's commit, after the milestones they refer to
    (one flush for the batch, not one per cancellation); the rest is the store."""

    def __init__(self, batch: InputBatch):
        self._batch = batch

    def add(self, rows: Iterable[Any]) -> None:
        self._batch._planned.extend(rows)

    def cancel_for_milestones(self, milestone_row_ids: list[str], now: datetime, why: str) -> None:
        self._batch._cancelled.extend((row_id, now, why) for row_id in milestone_row_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch.uow.reminders, name)


class _InputStep:
    """One input's unit of work inside an `InputBatch`: `commit()` hands its events to the
    message bus (when the batch takes each at its moment) instead of committing; a refused
    input changed nothing (the pathway leaves a refused patient as it was)."""

    def __init__(self, batch: InputBatch):
        self._batch = batch
        self.patients = batch.patients
        self.audit = batch.uow.audit
        self.reminders = _HeldReminders(batch) if batch.each_at_its_moment else batch.uow.reminders
        self.clock = batch.uow.clock
        self.events_handled: list[DomainEvent] = []

    def __enter__(self) -> _InputStep:
        self.patients.touched = {}
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is not None:
            self.rollback()

    def commit(self, answer: Callable[[], Any] | None = None) -> None:
        """This input is done: its events to the bus and its audit records queued (the batch
        commits them; `answer` is for a keyed request's unit of work and is not needed here)."""
        batch = self._batch
        if not batch.each_at_its_moment:
            return  # events and audit records wait on the patients for the batch's commit
        touched = list(self.patients.touched.values())
        events = [event for patient in touched for event in patient.events]
        for patient in touched:
            self.audit.append(patient.audit)
            patient.audit.clear()
            patient.events.clear()
        if not events:
            return
        self.events_handled = events
        message_bus.handle(events, self)  # type: ignore[arg-type]

    def rollback(self) -> None:
        """Forget what this input recorded (with each input at its moment, the patients hold
        nothing else); the batch's earlier inputs stay."""
        if self._batch.each_at_its_moment:
            for patient in self.patients.touched.values():
                patient.audit.clear()
                patient.events.clear()

    def record_only(self, records: list[AuditRecord]) -> None:
        """Audit a refusal in the batch's transaction (it is written even if the rest is not)."""
        self._batch.refusals.extend(records)
        self.audit.append(records)


def record_clinical_inputs(
    uow: UnitOfWork,
    actor: str,
    inputs: Iterable[Mapping[str, Any]],
    *,
    all_or_nothing: bool = False,
) -> list[dict[str, Any]]:
    """Record a batch of mixed inputs in one unit of work; one answer per item, in order.

    Each item holds `kind` ("lab", "event" or "order"), `patient_id` and the fields of its use
    case (`INPUT_FIELDS`: a lab's `code`, `value`, `unit`...; an event's `event` and `data`; an
    order's `drug` and dose). Items are applied in order, each exactly as its own use case
    applies it (`record_lab_result`, `record_clinical_event`, `order_medication`). A refused
    item is answered with `accepted: False`, its error code, reason and rules, and changes
    nothing; a hard block is audited; the others commit together. If another writer changed
    one of the patients meanwhile, nothing is written but the audited refusals and every item
    is answered as a conflict. `all_or_nothing` (a FHIR transaction): when any item is refused,
    only the audited refusals are written and the others are answered as not applied.
    """
    items = [dict(item) for item in inputs]
    answers: list[dict[str, Any]] = []
    with uow:
        batch = InputBatch(uow)
        for index, item in enumerate(items):
            try:
                view = _record(batch.step(), actor, item)
            except DomainError as refused:
                answers.append(use_cases.refusal(index, item, refused))
                continue
            answers.append({"index": index, "accepted": True, **view})
        if all_or_nothing and any(not a["accepted"] for a in answers):
            uow.rollback()
            uow.record_only(batch.refusals)
            return [a if not a["accepted"] else _not_applied(a) for a in answers]
        try:
            batch.commit()
        except ConcurrencyConflict as conflict:
            uow.record_only(batch.refusals)
            return [
                a if not a["accepted"] else use_cases.refusal(index, items[index], conflict)
                for index, a in enumerate(answers)
            ]
        for answer in answers:
            if answer["accepted"]:
                answer["version"] = batch.patients.kept[answer["patient_id"]].version
    return answers


def _record(uow: UnitOfWork, actor: str, item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("kind")
    if kind not in INPUT_FIELDS:
        raise InvalidInput(f"kind must be one of {', '.join(INPUT_FIELDS)}, not {kind!r}")
    unknown = set(item) - {"kind", "patient_id", *INPUT_FIELDS[kind]}
    if unknown:
        raise InvalidInput(f"unknown field(s) for a {kind}: {', '.join(sorted(unknown))}")
    patient_id = str(item.get("patient_id") or "")
    given = {k: v for k, v in item.items() if k in INPUT_FIELDS[kind]}
    if kind == "lab":
        if "code" not in given or "value" not in given:
            raise InvalidInput("a lab result needs code and value")
        return use_cases.record_lab_result(uow, actor, patient_id, **given)  # type: ignore[arg-type]
    if kind == "event":
        event = given.pop("event", None)
        if not isinstance(event, str) or not event:
            raise InvalidInput("a clinical event needs its event kind")
        if given.get("data") is not None and not isinstance(given["data"], dict):
            raise InvalidInput("an event's data must be an object")
        return use_cases.record_clinical_event(uow, actor, patient_id, kind=event, **given)  # type: ignore[arg-type]
    if not isinstance(given.get("drug"), str) or not given["drug"]:
        raise InvalidInput("an order needs its drug")
    return use_cases.order_medication(uow, actor, patient_id, **given)  # type: ignore[arg-type]


def _not_applied(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": answer["index"],
        "accepted": False,
        "patient_id": answer.get("patient_id"),
        "error": "not-applied",
        "reason": "not applied: another item of the transaction was refused",
        "rules": [],
    }
