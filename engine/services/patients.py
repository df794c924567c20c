"""Use cases on one patient: enrol, record labs and events, order medication, review, what-if.

Each runs in a unit of work and returns a plain view. A hard block is audited in its own
transaction and re-raised; nothing else of the refused action is written. `record_lab_results`
takes a batch of results (a lab interface's file, a FHIR transaction Bundle) in one unit of
work and answers item by item. Typed on the `UnitOfWork` protocol: they run on a fake in the
fast tests (tests/unit/test_patient_use_cases.py) as on the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from engine.domain.care import CarePathway, Outcome, new_patient
from engine.domain.errors import (
    ConcurrencyConflict,
    DomainError,
    HardBlock,
    InvalidInput,
    StaleVersion,
    UnknownPatient,
)
from engine.domain.facts import checked_facts
from engine.domain.model import AuditRecord, Patient
from engine.services.care_pathways import care_pathway
from engine.services.patient_views import history_view, outcome_view, status_view
from engine.services.unit_of_work import UnitOfWork


def enrol_patient(
    uow: UnitOfWork,
    actor: str,
    *,
    site: str,
    clinician: str,
    birth_date: date | str,
    sex: str,
    weight_kg: float,
    facts: dict[str, Any] | None = None,
    pathway_key: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Enrol a patient on the pathway (newest version unless one is named)."""
    care = care_pathway(pathway_key)
    for name, value in (("site", site), ("clinician", clinician), ("sex", sex)):
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"{name} is required")
    try:
        born = date.fromisoformat(birth_date) if isinstance(birth_date, str) else birth_date
    except ValueError:
        raise InvalidInput(f"birth_date {birth_date!r} is not a date (YYYY-MM-DD)") from None
    if isinstance(weight_kg, bool) or not isinstance(weight_kg, int | float):
        raise InvalidInput("weight_kg must be a number")
    with uow:
        now = uow.clock.now()
        patient = new_patient(
            site=site.strip(),
            clinician=clinician.strip(),
            birth_date=born,
            sex=sex,
            weight_kg=float(weight_kg),
            facts=checked_facts(care.pathway, facts),
            **details,
        )
        care.enrol(patient, now, actor)
        uow.patients.add(patient)
        uow.commit(lambda: status_view(patient, care, now))
        return status_view(patient, care, now)


def record_lab_result(
    uow: UnitOfWork,
    actor: str,
    patient_id: str,
    *,
    code: str,
    value: float | str,
    unit: str | None = None,
    taken_at: datetime | None = None,
    source: str = "manual",
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Record a lab result; it may move the pathway, complete milestones, raise alerts."""
    return _change(
        uow,
        actor,
        patient_id,
        expected_version,
        lambda care, p, now: care.record_lab_result(
            p, code, value, unit, _aware(taken_at) or now, now, actor, source
        ),
    )


def record_lab_results(
    uow: UnitOfWork | Callable[[], UnitOfWork],
    actor: str,
    results: Iterable[Mapping[str, Any]],
    *,
    all_or_nothing: bool = False,
) -> list[dict[str, Any]]:
    """Record a batch of lab results in one unit of work; one answer per item, in order.

    Each item holds `patient_id`, `code`, `value` and optionally `unit`, `taken_at`, `source`
    and `expected_version` (the patient's version before the batch). Items are applied in
    order, exactly as `record_lab_result` applies one, with one `now` for the batch. An item
    that is refused (unknown patient, bad input, a hard block, a stale `expected_version`) is
    answered with `accepted: False`, its error code and reason, and changes nothing; the others
    still commit. Every changed patient's version is checked at commit: if another writer
    changed one meanwhile, nothing of the batch is written and it is applied again patient by
    patient, each on a fresh copy; an item is answered as a conflict only when its patient
    changes again during that retry (or its `expected_version` is stale).

    `all_or_nothing` (a FHIR transaction): when any item is refused, nothing but the audited
    refusals is written, and the items that would have been accepted are answered as not
    applied; a conflict at commit is answered for every item, never retried piecemeal.
    """
    items = [dict(item) for item in results]
    if not items:
        return []
    fresh = (lambda: uow) if hasattr(uow, "commit") else uow  # a unit of work, or a factory
    try:
        return _lab_batch(fresh(), actor, list(enumerate(items)), all_or_nothing)
    except ConcurrencyConflict as conflict:
        if all_or_nothing:
            return [refusal(index, item, conflict) for index, item in enumerate(items)]
        # someone else changed one of the patients: retry patient by patient
    by_patient: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
    for index, item in enumerate(items):
        by_patient.setdefault(item.get("patient_id"), []).append((index, item))
    answers: list[dict[str, Any]] = [{} for _ in items]
    for indexed in by_patient.values():
        try:
            for answer in _lab_batch(fresh(), actor, indexed):
                answers[answer["index"]] = answer
        except ConcurrencyConflict as conflict:
            for index, item in indexed:
                answers[index] = refusal(index, item, conflict)
    return answers


def record_clinical_event(
    uow: UnitOfWork,
    actor: str,
    patient_id: str,
    *,
    kind: str,
    occurred_at: datetime | None = None,
    data: dict[str, Any] | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Record a clinical event (intolerance, pregnancy, decompensation, biopsy, stop request...)."""
    return _change(
        uow,
        actor,
        patient_id,
        expected_version,
        lambda care, p, now: care.record_clinical_event(
            p, kind, _aware(occurred_at) or now, data or {}, now, actor
        ),
    )


def order_medication(
    uow: UnitOfWork,
    actor: str,
    patient_id: str,
    *,
    drug: str,
    mg_per_day: float | None = None,
    mg_per_kg_day: float | None = None,
    route: str = "oral",
    ordered_at: datetime | None = None,
    overrides: dict[str, str] | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    """Order a medication through the dose model and the hard blocks; `overrides` lifts
    overridable ones, each with the clinician's reason (audited)."""
    return _change(
        uow,
        actor,
        patient_id,
        expected_version,
        lambda care, p, now: care.order_medication(
            p,
            drug,
            now,
            actor,
            mg_per_day=mg_per_day,
            mg_per_kg_day=mg_per_kg_day,
            route=route,
            ordered_at=_aware(ordered_at),
            overrides=overrides,
        ),
    )


def review_patient(uow: UnitOfWork, actor: str, patient_id: str) -> dict[str, Any]:
    """Re-evaluate time-based guards now (6-month response, 2-week acute severe review)."""
    return _change(uow, actor, patient_id, None, lambda care, p, now: care.review(p, now, actor))


def review_due_patients(
    uow_factory: Callable[[], UnitOfWork], actor: str = "system", limit: int = 500
) -> int:
    """Run the time-based review for every patient whose review milestone has fallen due."""
    with uow_factory() as uow:
        review_ids = [m.id for m in care_pathway().pathway.milestones if m.review_on_due]
        due = uow.patients.with_due_reviews(uow.clock.now(), review_ids, limit)
    reviewed = 0
    for patient_id in due:
        try:
            review_patient(uow_factory(), actor, patient_id)
            reviewed += 1
        except ConcurrencyConflict:
            continue  # someone else changed the patient; the next sweep reviews it
    return reviewed


def what_if(
    uow: UnitOfWork, actor: str, patient_id: str, *, kind: str, **given: Any
) -> dict[str, Any]:
    """Evaluate a hypothetical lab, event or order; write nothing but the read audit."""
    actions: dict[str, Callable[[CarePathway, Patient, datetime], Outcome]] = {
        "lab": lambda care, p, now: care.record_lab_result(
            p,
            given.get("code", ""),
            given.get("value"),
            given.get("unit"),
            _aware(given.get("taken_at")) or now,
            now,
            actor,
            "what-if",
        ),
        "event": lambda care, p, now: care.record_clinical_event(
            p,
            given.get("event", ""),
            _aware(given.get("occurred_at")) or now,
            given.get("data") or {},
            now,
            actor,
        ),
        "order": lambda care, p, now: care.order_medication(
            p,
            given.get("drug", ""),
            now,
            actor,
            mg_per_day=given.get("mg_per_day"),
            mg_per_kg_day=given.get("mg_per_kg_day"),
            route=given.get("route", "oral"),
        ),
    }
    if kind not in actions:
        raise InvalidInput(f"what-if kind must be one of {', '.join(actions)}")
    with uow:
        patient = uow.patients.for_care(patient_id)
        care = care_pathway(patient.pathway_key)
        now = uow.clock.now()
        try:
            outcome = actions[kind](care, patient, now)
            result = {
                "allowed": True,
                **outcome_view(outcome, patient, care),
                "status": status_view(patient, care, now),
            }
        except HardBlock as refused:
            result = {
                "allowed": False,
                "refused": {
                    "rules": refused.rule_ids,
                    "reason": refused.reason,
                    "sources": refused.sources,
                },
            }
        uow.rollback()
        uow.record_only([_read(now, actor, patient_id, "what_if", {"kind": kind})])
        return result


def patient_status(uow: UnitOfWork, actor: str, patient_id: str) -> dict[str, Any]:
    """State, regimen, next milestones and open alerts, each with its reason (audited read)."""
    with uow:
        patient = uow.patients.for_status(patient_id)
        now = uow.clock.now()
        view = status_view(patient, care_pathway(patient.pathway_key), now)
        uow.audit.append([_read(now, actor, patient_id, "patient_read", {"view": "status"})])
        uow.commit()  # the read's audit line, in the read's own transaction
        return view


def patient_history(uow: UnitOfWork, actor: str, patient_id: str) -> dict[str, Any]:
    """Transitions, labs, events, orders, milestones and refusals (audited read)."""
    with uow:
        patient = uow.patients.get(patient_id)
        view = history_view(
            patient, uow.audit.for_patient(patient_id), uow.reminders.for_patient(patient_id)
        )
        uow.record_only(
            [_read(uow.clock.now(), actor, patient_id, "patient_read", {"view": "history"})]
        )
        return view


def _change(
    uow: UnitOfWork,
    actor: str,
    patient_id: str,
    expected_version: int | None,
    action: Callable[[CarePathway, Patient, datetime], Outcome],
) -> dict[str, Any]:
    with uow:
        patient = uow.patients.for_care(patient_id)
        if expected_version is not None and patient.version != expected_version:
            raise StaleVersion(
                f"the patient is at version {patient.version}, not {expected_version}; "
                "reload and retry"
            )
        care = care_pathway(patient.pathway_key)
        now = uow.clock.now()
        try:
            outcome = action(care, patient, now)
        except HardBlock as refused:
            uow.record_only([refused.audit])  # type: ignore[attr-defined]
            raise
        view = outcome_view(outcome, patient, care)  # built before anything is written
        answer = lambda: {**view, "version": patient.version}  # noqa: E731 (read after flush)
        uow.commit(answer)
        return answer()


def _lab_batch(
    uow: UnitOfWork,
    actor: str,
    indexed: list[tuple[int, dict[str, Any]]],
    all_or_nothing: bool = False,
) -> list[dict[str, Any]]:
    """Apply (index, item) lab results in one unit of work; ConcurrencyConflict at commit.
    Every answer is built before the commit, so nothing is written that cannot be answered."""
    with uow:
        now = uow.clock.now()
        patients = uow.patients.many_for_care(
            str(item.get("patient_id") or "") for _, item in indexed
        )
        loaded_version = {pid: patient.version for pid, patient in patients.items()}
        applied: list[tuple[int, Outcome, Patient, CarePathway]] = []
        answers: list[dict[str, Any]] = []
        refusals: list[AuditRecord] = []
        for index, item in indexed:
            patient_id = str(item.get("patient_id") or "")
            try:
                patient = patients.get(patient_id)
                if patient is None:
                    raise UnknownPatient(f"no patient with id {patient_id!r}")
                expected = item.get("expected_version")
                if expected is not None and loaded_version[patient_id] != expected:
                    raise ConcurrencyConflict(
                        f"patient is at version {loaded_version[patient_id]}, not {expected}; "
                        "reload"
                    )
                care = care_pathway(patient.pathway_key)
                outcome = care.record_lab_result(
                    patient,
                    str(item.get("code") or ""),
                    item.get("value"),
                    item.get("unit"),
                    _aware(item.get("taken_at")) or now,
                    now,
                    actor,
                    item.get("source", "manual"),
                )
            except DomainError as refused:
                if isinstance(refused, HardBlock):
                    refusals.append(refused.audit)  # type: ignore[attr-defined]
                answers.append(refusal(index, item, refused))
                continue
            applied.append((index, outcome, patient, care))
        if all_or_nothing and answers:
            uow.record_only(refusals)
            answers += [
                {
                    "index": index,
                    "accepted": False,
                    "patient_id": patient.id,
                    "error": "not-applied",
                    "reason": "not applied: another item of the transaction was refused",
                    "rules": [],
                }
                for index, _, patient, _ in applied
            ]
            return sorted(answers, key=lambda answer: answer["index"])
        built = [
            {"index": index, "accepted": True, **outcome_view(outcome, patient, care)}
            for index, outcome, patient, care in applied
        ]
        if refusals:
            uow.audit.append(refusals)
        uow.commit()
        for answer, (_, _, patient, _) in zip(built, applied, strict=True):
            answer["version"] = patient.version  # the version the commit gave the patient
        return sorted(answers + built, key=lambda answer: answer["index"])


def refusal(index: int, item: Mapping[str, Any], refused: DomainError) -> dict[str, Any]:
    """The answer to a refused batch item: what was refused and why (rule IDs of a block)."""
    return {
        "index": index,
        "accepted": False,
        "patient_id": item.get("patient_id"),
        "error": refused.code,
        "reason": refused.message,
        "rules": list(getattr(refused, "rule_ids", [])),
    }


def _read(
    now: datetime, actor: str, patient_id: str, action: str, detail: dict[str, Any]
) -> AuditRecord:
    return AuditRecord(now, actor, action, patient_id, detail=detail)


def _aware(moment: datetime | str | None) -> datetime | None:
    """Parse ISO text, which must carry its time zone (as on the API); a naive datetime
    object from Python callers is taken as UTC."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            parsed = datetime.fromisoformat(moment)
        except ValueError:
            raise InvalidInput(f"{moment!r} is not an ISO-8601 date-time") from None
        if parsed.tzinfo is None:
            raise InvalidInput(f"{moment!r} needs a time zone (e.g. 2026-11-20T09:00:00Z)")
        return parsed
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
