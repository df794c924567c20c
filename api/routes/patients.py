"""Patients: enrol, status, history, what-if, and clinical input (labs, events, orders).

Each route translates HTTP into one service call; the pathway and its safety rules live in the
service layer. The caller is the audited actor of every read and write.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from api import schemas
from api.deps import (
    Admitted,
    Enroller,
    EventRecorder,
    Idempotent,
    IfMatch,
    LabSender,
    PatientId,
    PatientReader,
    Prescriber,
    UnitOfWork,
    WhatIfAsker,
    etag,
    reject_unknown_query,
    requested_version,
)
from api.errors import problems
from engine.services import patients as service
from engine.services.access_policy import Resource, enforce, listing_scope
from engine.services.patient_directory import list_patients, search_patients

router = APIRouter(
    prefix="/patients", tags=["patients"], dependencies=[Depends(reject_unknown_query)]
)
CHANGE = problems(401, 403, 404, 409, 412, 422)


class PatientMatch(schemas.PatientRow):
    """A listed patient; a search (name, external id, birth date...) adds who they are."""

    external_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None


class PatientPage(BaseModel):
    """A page of patients. A search pages by `next_cursor` (null on the last page); the plain
    list (no search criterion) keeps its offset paging, newest enrolment first."""

    total: int
    limit: int
    offset: int = 0
    items: list[PatientMatch]
    next_cursor: str | None = None


@router.post(
    "",
    status_code=201,
    response_model=schemas.PatientStatus,
    responses=problems(401, 403, 409, 422),
    summary="Enrol a patient on the pathway",
)
def enrol(body: schemas.EnrolRequest, principal: Enroller, once: Idempotent) -> Response:
    enforce(principal, "patient.enrol", Resource(body.site))
    details = body.model_dump(exclude={"site", "clinician", "birth_date", "sex", "weight_kg"})
    facts = details.pop("facts")
    return once(
        lambda uow: service.enrol_patient(
            uow,
            principal.actor,
            site=body.site,
            clinician=body.clinician,
            birth_date=body.birth_date,
            sex=body.sex,
            weight_kg=body.weight_kg,
            facts=facts,
            **details,
        ),
        schemas.PatientStatus,
        201,
        location=lambda status: f"/patients/{status['patient_id']}",
    )


@router.get(
    "",
    response_model=PatientPage,
    responses=problems(401, 403, 422),
    summary="Find patients by name, external id, birth date, site, clinician and state",
)
def list_(
    principal: PatientReader,
    uow: UnitOfWork,
    site: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=64, description="A state or stage")] = None,
    name: Annotated[
        str | None,
        Query(max_length=128, description="Words starting the given or family name (any case)"),
    ] = None,
    external_id: Annotated[str | None, Query(max_length=64)] = None,
    birth_date: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD")] = None,
    clinician: Annotated[str | None, Query(max_length=64)] = None,
    mine: Annotated[bool, Query(description="Only the caller's own patients")] = False,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict:
    searching = any(v is not None for v in (name, external_id, birth_date, clinician, cursor))
    if searching or mine:
        return search_patients(
            uow(),
            principal,
            name=name,
            external_id=external_id,
            birth_date=birth_date,
            site=site,
            clinician=clinician,
            state=state,
            mine=mine,
            cursor=cursor,
            limit=limit,  # a search pages by at most 100 (422 beyond)
        )
    scope = listing_scope(principal, "patient.read", site)
    if scope.empty:
        return {"total": 0, "limit": limit, "offset": offset, "items": []}
    return list_patients(
        uow(), principal.actor, site=scope.site, state=state, limit=limit, offset=offset
    )


@router.get(
    "/{patient_id}",
    response_model=schemas.PatientStatus,
    responses=problems(401, 403, 404),
    summary="Status: state, regimen, next milestones and open alerts, each with its reason",
)
def status(
    principal: PatientReader,
    patient_id: PatientId,
    admission: Admitted,
    uow: UnitOfWork,
    response: Response,
) -> dict:
    view = service.patient_status(uow(admission=admission), principal.actor, patient_id)
    response.headers["ETag"] = etag(view["version"])
    return view


@router.get(
    "/{patient_id}/history",
    response_model=schemas.PatientHistory,
    responses=problems(401, 403, 404),
    summary="History: transitions, labs, events, orders, milestones and refusals",
)
def history(
    principal: PatientReader, patient_id: PatientId, admission: Admitted, uow: UnitOfWork
) -> dict:
    return service.patient_history(uow(admission=admission), principal.actor, patient_id)


@router.post(
    "/{patient_id}/what-if",
    response_model=schemas.WhatIfResult,
    responses=problems(401, 403, 404, 409, 422),
    summary="What if: a hypothetical lab, event or order; nothing is written",
)
def what_if(
    body: schemas.WhatIfRequest,
    principal: WhatIfAsker,
    patient_id: PatientId,
    admission: Admitted,
    uow: UnitOfWork,
) -> dict:
    given = body.model_dump(exclude={"kind"}, exclude_none=True)
    uow_admitted = uow(admission=admission)
    return service.what_if(uow_admitted, principal.actor, patient_id, kind=body.kind, **given)


@router.post(
    "/{patient_id}/labs",
    response_model=schemas.Outcome,
    responses=CHANGE,
    summary="Record a lab result (pathway code or LOINC; converted to the pathway unit)",
)
def record_lab(
    body: schemas.LabRequest,
    principal: LabSender,
    patient_id: PatientId,
    admission: Admitted,
    if_match: IfMatch,
    once: Idempotent,
) -> Response:
    return _record(service.record_lab_result, body, patient_id, admission, if_match, once)


@router.post(
    "/{patient_id}/events",
    response_model=schemas.Outcome,
    responses=CHANGE,
    summary="Record a clinical event (intolerance, pregnancy, biopsy, stop request...)",
)
def record_event(
    body: schemas.EventRequest,
    principal: EventRecorder,
    patient_id: PatientId,
    admission: Admitted,
    if_match: IfMatch,
    once: Idempotent,
) -> Response:
    return _record(service.record_clinical_event, body, patient_id, admission, if_match, once)


@router.post(
    "/{patient_id}/orders",
    response_model=schemas.Outcome,
    responses=CHANGE,
    summary="Order a medication through the pathway's safety rules (refusals cite the rule)",
)
def order(
    body: schemas.OrderRequest,
    principal: Prescriber,
    patient_id: PatientId,
    admission: Admitted,
    if_match: IfMatch,
    once: Idempotent,
) -> Response:
    return _record(service.order_medication, body, patient_id, admission, if_match, once)


def _record(use_case, body, patient_id, admission, if_match, once) -> Response:
    """Run a clinical-input use case once (Idempotency-Key) in one unit of work, which admits
    the caller to the patient it loads (site, the route's action, the version the caller saw:
    `If-Match`, else the body's `expected_version`); the request's fields are the use case's
    keyword arguments."""
    fields = {name: getattr(body, name) for name in type(body).model_fields}
    version = requested_version(if_match, fields["expected_version"])
    fields["expected_version"] = None  # the admission checks it on the loaded patient
    return once(
        lambda uow: use_case(uow, admission.principal.actor, patient_id, **fields),
        schemas.Outcome,
        admission=replace(admission, expected_version=version),
    )
