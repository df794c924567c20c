"""Reads the FHIR facade needs beyond the status view: demographics, the whole care plan, the
reminders and work items of a patient, and recorded lab results.

Each read of a patient is audited (`patient_read` with the view's name) like the other reads.
`site_scope` restricts a caller to one site: a patient of another site is reported unknown,
and nothing is audited for them.

`search_lab_results` (the FHIR Observation search) pages through recorded results newest first
by an opaque cursor, never an offset; each search is audited as one `observation_search` line
naming the caller, the patient searched (if any) and the criteria, never a value.

Read side: typed on `SqlAlchemyUnitOfWork`, whose session it hands to fhir_read_queries.py,
observation_search.py and work_items.py; `care_plan` reads only the aggregate: `UnitOfWork`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from engine.adapters import fhir_read_queries
from engine.adapters.observation_search import (
    ObservationFilter,
    Position,
    count_observations,
    find_observations,
)
from engine.adapters.work_items import work_items_of
from engine.domain.errors import InvalidInput, UnknownPatient
from engine.domain.model import AuditRecord
from engine.services.access_policy import in_scope
from engine.services.care_pathways import care_pathway
from engine.services.patient_views import milestone_view
from engine.services.unit_of_work import SqlAlchemyUnitOfWork, UnitOfWork


def patient_record(
    uow: SqlAlchemyUnitOfWork, actor: str, patient_id: str, site_scope: str | None = None
) -> dict[str, Any]:
    """Demographics, contact, weight, facts and pathway position (audited read)."""
    with uow:
        found = fhir_read_queries.demographics(uow.session, patient_id)
        record = _scoped(found, patient_id, site_scope)
        _audit_read(uow, actor, patient_id, "fhir-patient")
        return record


def care_plan(
    uow: UnitOfWork, actor: str, patient_id: str, site_scope: str | None = None
) -> dict[str, Any]:
    """The pathway version, the state, and every milestone (open and closed) with its reasons."""
    with uow:
        patient = uow.patients.get(patient_id)
        _scoped({"site": patient.site}, patient_id, site_scope)
        care = care_pathway(patient.pathway_key)
        now = uow.clock.now()
        state = care.pathway.states[patient.state]
        plan = {
            "patient_id": patient.id,
            "site": patient.site,
            "pathway_key": care.pathway.key,
            "pathway_id": care.pathway.id,
            "pathway_version": care.pathway.version,
            "pathway_title": care.pathway.title,
            "state": patient.state,
            "state_text": state.text,
            "final": state.final,
            "enrolled_at": patient.enrolled_at,
            "updated_at": patient.updated_at,
            "version": patient.version,
            "milestones": [
                {
                    **milestone_view(m, care, now),
                    "closed_at": m.closed_at,
                    "close_reason": m.close_reason,
                }
                for m in sorted(patient.milestones, key=lambda m: (m.due_at, m.milestone_id))
            ],
        }
        _audit_read(uow, actor, patient_id, "fhir-careplan")
        return plan


def patient_tasks(
    uow: SqlAlchemyUnitOfWork, actor: str, patient_id: str, site_scope: str | None = None
) -> dict[str, Any]:
    """The patient's reminders and coordinator work items, oldest due first (audited read)."""
    with uow:
        site = fhir_read_queries.site_of(uow.session, patient_id)
        _scoped({"site": site} if site else None, patient_id, site_scope)
        items = work_items_of(uow.session, patient_id)
        tasks = {
            "reminders": [_columns(r) for r in uow.reminders.for_patient(patient_id)],
            "items": [_columns(i) for i in items],
        }
        _audit_read(uow, actor, patient_id, "fhir-tasks")
        return tasks


def lab_record(
    uow: SqlAlchemyUnitOfWork, actor: str, record_id: str, site_scope: str | None = None
) -> dict[str, Any]:
    """One recorded lab result (audited read of its patient); UnknownPatient if not visible."""
    found = lab_records(uow, [record_id])
    if not found or not in_scope(site_scope, found[0]["site"]):
        raise UnknownPatient(f"no lab result with id {record_id!r}")
    with uow:
        _audit_read(uow, actor, found[0]["patient_id"], "fhir-observation")
    return found[0]


def lab_records(uow: SqlAlchemyUnitOfWork, record_ids: list[str]) -> list[dict[str, Any]]:
    """Recorded lab results by id, as stored (converted value, reported value); not audited:
    for answering the write that created them."""
    with uow:
        by_id = fhir_read_queries.lab_rows(uow.session, record_ids)
    return [by_id[i] for i in record_ids if i in by_id]


def search_lab_results(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    site_scope: str | None,
    patient_id: str | None = None,
    codes: frozenset[str] | None = None,
    taken_from: datetime | None = None,
    taken_before: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    audit_detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One page of recorded lab results, newest sample first (audited search).

    `patient_id`: one patient's results; a patient the caller may not see (another site's, or
    unknown) has none, exactly as a patient without results. Without it, every result of the
    caller's site (`site_scope`; None: every site). `codes`: the engine's lab codes (an empty
    set matches nothing). `taken_from` (inclusive) and `taken_before` (exclusive) bound the
    sampling time. `cursor`: the `next_cursor` of the previous page (InvalidInput if it is not
    one). The answer holds `records` (as `lab_records` gives them), `next_cursor` (None on the
    last page) and `total` (counted for one patient's search only, else None).
    `audit_detail`: what the caller asked for, as the entry point names it (no values).
    """
    after = _position(cursor)
    with uow:
        visible = True
        if patient_id is not None:
            site = fhir_read_queries.site_of(uow.session, patient_id)
            visible = site is not None and in_scope(site_scope, site)
        criteria = ObservationFilter(patient_id, site_scope, codes, taken_from, taken_before)
        empty = not visible or codes == frozenset()
        if empty:
            records, position, total = [], None, 0
        else:
            records, position = find_observations(uow.session, criteria, after=after, limit=limit)
            total = count_observations(uow.session, criteria) if patient_id else None
        detail = {
            **(audit_detail or {}),
            "site": site_scope,
            "page": "next" if after else "first",
            "returned": len(records),
        }
        if patient_id is not None:
            detail["patient_visible"] = visible
        uow.record_only(
            [AuditRecord(uow.clock.now(), actor, "observation_search", patient_id, detail=detail)]
        )
    return {
        "records": records,
        "next_cursor": _cursor(position) if position else None,
        "total": total,
    }


def _cursor(position: Position) -> str:
    """An opaque cursor: the last row's sampling time and id."""
    taken_at, record_id = position
    return base64.urlsafe_b64encode(f"{taken_at.isoformat()} {record_id}".encode()).decode()


def _position(cursor: str | None) -> Position | None:
    """The position a cursor continues after; InvalidInput for one this search did not give."""
    if cursor is None:
        return None
    refused = InvalidInput("_cursor is not one a previous page of this search gave")
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
        moment, record_id = text.split(" ")
        taken_at = datetime.fromisoformat(moment)
    except (ValueError, binascii.Error, UnicodeError):
        raise refused from None
    if not (taken_at.tzinfo and 1900 <= taken_at.year < 2200) or not record_id.isalnum():
        raise refused
    return taken_at, record_id


def patient_sites(uow: SqlAlchemyUnitOfWork, patient_ids: list[str]) -> dict[str, str]:
    """The site of each known patient id (for scoping a batch before it is applied)."""
    wanted = sorted({pid for pid in patient_ids if pid})
    with uow:
        return fhir_read_queries.sites_of(uow.session, wanted)


def _scoped(
    record: dict[str, Any] | None, patient_id: str, site_scope: str | None
) -> dict[str, Any]:
    if record is None or not in_scope(site_scope, record["site"]):
        raise UnknownPatient(f"no patient with id {patient_id!r}")
    return record


def _audit_read(uow: UnitOfWork, actor: str, patient_id: str, view: str) -> None:
    now: datetime = uow.clock.now()
    uow.record_only([AuditRecord(now, actor, "patient_read", patient_id, detail={"view": view})])


def _columns(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in type(row).__dataclass_fields__}
