"""A CDS Hooks 2.0 service: the EHR asks the pathway about orders before they are placed.

- `GET /cds-services`: discovery, two services, `aih-order-select` (hook `order-select`) and
  `aih-order-sign` (hook `order-sign`), each with its prefetch templates (the patient and the
  patient's active MedicationRequests).
- `POST /cds-services/{id}`: reads the draft `MedicationRequest`s of `context.draftOrders`
  (for `order-select`, those named in `context.selections`), resolves the patient and answers
  the pathway's review as cards (see `api/cds_hooks/cards.py`). The rules are the native
  order's, run by `CarePathway.review_order`; nothing is written but the audit line.
- `POST /cds-services/{id}/feedback`: what the user did with each card, audited; an override
  is also a `safety_rule_overridden` audit line with its coded reason.

**The patient**: `context.patientId` is our patient id; for a caller with a site it may also
be the EHR's own id, kept as the patient's `external_id` at that site, as may any
`identifier` of a prefetched Patient. Another site's patient is 404, like an unknown id.

**Who**: a user with the `ehr` role (access policy action `order.review`), authenticated by
its API token as `Authorization: Bearer <token>`. CDS Hooks clients send a JWT signed by the
EHR instead; verifying such JWTs (issuer keys, `aud`, `jti`) is not implemented.

**Bad input** is 400 with the reason (problem+json): a wrong hook for the service, a missing
context, a Bundle with no MedicationRequest, a dose that is not a positive finite number in
mg, g, ug or mg/kg; deep JSON, NaN and oversized bodies are refused at the edge.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.cds_hooks import cards as card_shapes
from api.cds_hooks.drafts import draft, medication_requests
from api.deps import UnitOfWork, permit
from api.errors import problem, problems
from engine.domain.clinical_text import one_line
from engine.domain.errors import InvalidInput, UnknownCode
from engine.services import order_review
from engine.services.access_policy import Principal

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"])
Reviewer = Annotated[Principal, Depends(permit(order_review.ACTION))]
ServiceId = Annotated[str, Path(min_length=1, max_length=64, description="CDS service id")]
HookBody = Annotated[dict[str, Any], Body(description="A CDS Hooks 2.0 request")]
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "medications": "MedicationRequest?patient={{context.patientId}}&status=active",
}
SERVICES: dict[str, dict[str, Any]] = {
    "aih-order-select": {
        "hook": "order-select",
        "title": "AIH pathway: medication safety on selection",
        "description": (
            "Checks newly selected medication orders against the AIH care pathway's hard "
            "blocks (e.g. budesonide in cirrhosis) as soon as they are selected."
        ),
    },
    "aih-order-sign": {
        "hook": "order-sign",
        "title": "AIH pathway: medication safety at signing",
        "description": (
            "Checks every draft medication order against the AIH care pathway's hard blocks, "
            "plausible ceilings and dose ranges for the patient's stage before signing."
        ),
    },
}
ANSWERS = problems(400, 403, 404)


@router.get("", summary="CDS Hooks discovery", responses=problems(403))
def discovery(_: Reviewer) -> dict[str, Any]:
    """The services this CDS service offers, with their prefetch templates."""
    return {
        "services": [
            {"id": service_id, **spec, "prefetch": PREFETCH}
            for service_id, spec in SERVICES.items()
        ]
    }


@router.post("/{service_id}", summary="Call a CDS service (a hook)", responses=ANSWERS)
async def call_service(
    service_id: ServiceId, body: HookBody, principal: Reviewer, uow: UnitOfWork
) -> JSONResponse:
    """The pathway's cards for the draft medication orders of an `order-select` or
    `order-sign` request."""
    if service_id not in SERVICES:
        return _unknown_service(service_id)
    try:
        request = _hook_request(service_id, body)
        if not request["drafts"]:
            return JSONResponse({"cards": []})
        review = await run_in_threadpool(
            order_review.review_drafts,
            uow(),
            principal,
            patient_id=request["patient_id"],
            drafts=request["drafts"],
            service=service_id,
            hook=request["hook"],
            hook_instance=request["hook_instance"],
            identifiers=request["identifiers"],
            active_elsewhere=request["active_elsewhere"],
        )
    except (InvalidInput, UnknownCode) as bad:
        return problem(400, "Bad request", bad.message, "cds-bad-request")
    patient_ref = f"Patient/{request['patient_id']}"
    return JSONResponse({"cards": card_shapes.cards(review, request["hook"], patient_ref)})


@router.post(
    "/{service_id}/feedback", summary="Feedback on a CDS service's cards", responses=ANSWERS
)
async def feedback(
    service_id: ServiceId, body: HookBody, principal: Reviewer, uow: UnitOfWork
) -> JSONResponse:
    """Record what the user did with each card (accepted, overridden with a reason)."""
    if service_id not in SERVICES:
        return _unknown_service(service_id)
    try:
        outcomes = _outcomes(body)
        await run_in_threadpool(
            order_review.record_feedback, uow(), principal, service=service_id, outcomes=outcomes
        )
    except order_review.UnknownCard as unknown:
        return problem(404, "Not found", unknown.message, "unknown-card")
    except InvalidInput as bad:
        return problem(400, "Bad request", bad.message, "cds-bad-request")
    return JSONResponse({})


def _unknown_service(service_id: str) -> JSONResponse:
    known = ", ".join(SERVICES)
    return problem(
        404, "Not found", f"no CDS service {service_id[:64]!r}; known: {known}", "http-404"
    )


def _hook_request(service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The hook, the patient and the drafts to review, from a CDS Hooks request."""
    hook = body.get("hook")
    expected = SERVICES[service_id]["hook"]
    if hook != expected:
        raise InvalidInput(f"service {service_id} answers the {expected} hook, not {hook!r}")
    hook_instance = one_line(_text(body.get("hookInstance"), "hookInstance"), "hookInstance", 128)
    context = body.get("context")
    if not isinstance(context, dict):
        raise InvalidInput("context is required (an object with patientId and draftOrders)")
    patient_id = one_line(_text(context.get("patientId"), "context.patientId"), "patientId", 64)
    requests = medication_requests(context.get("draftOrders"), "context.draftOrders")
    selections = context.get("selections")
    if hook == "order-select" and selections is not None:
        if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
            raise InvalidInput("context.selections must be a list of references")
        refs = {ref for ref, _ in requests}
        unknown = [s for s in selections if s not in refs and s.startswith("MedicationRequest/")]
        if unknown:
            raise InvalidInput(f"context.selections names {unknown[0][:128]!r}, not in draftOrders")
        # only other orders selected (a lab, a referral): nothing for this service to judge
        requests = [(ref, resource) for ref, resource in requests if ref in selections]
    return {
        "hook": hook,
        "hook_instance": hook_instance,
        "patient_id": patient_id,
        "drafts": [draft(ref, resource) for ref, resource in requests],
        "identifiers": _prefetched_identifiers(body.get("prefetch"), patient_id),
        "active_elsewhere": _prefetched_medications(body.get("prefetch")),
    }


def _prefetched_identifiers(prefetch: Any, patient_id: str) -> tuple[str, ...]:
    """The identifier values of a prefetched Patient (None: the client prefetched nothing)."""
    if prefetch is None:
        return ()
    if not isinstance(prefetch, dict):
        raise InvalidInput("prefetch must be an object of FHIR resources")
    patient = prefetch.get("patient")
    if patient is None:
        return ()
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        raise InvalidInput("prefetch.patient must be a FHIR Patient")
    if patient.get("id") not in (None, patient_id):
        raise InvalidInput("prefetch.patient is not the patient of context.patientId")
    identifiers = [i for i in patient.get("identifier") or [] if isinstance(i, dict)]
    values = [i.get("value") for i in identifiers]
    return tuple(v for v in values if isinstance(v, str) and 0 < len(v) <= 64)[:10]


def _prefetched_medications(prefetch: Any) -> tuple[order_review.Draft, ...]:
    """The active MedicationRequests the client prefetched (`medications`), drug only."""
    bundle = prefetch.get("medications") if isinstance(prefetch, dict) else None
    if bundle is None:
        return ()
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidInput("prefetch.medications must be a FHIR Bundle")
    entries = bundle.get("entry") or []
    resources = (
        [e.get("resource") for e in entries if isinstance(e, dict)]
        if isinstance(entries, list)
        else []
    )
    return tuple(
        draft(f"prefetch.medications[{index}]", resource)
        for index, resource in enumerate(resources[:200])
        if isinstance(resource, dict)
        and resource.get("resourceType") == "MedicationRequest"
        and resource.get("status", "active") == "active"
    )


def _outcomes(body: dict[str, Any]) -> list[order_review.CardOutcome]:
    entries = body.get("feedback")
    if not isinstance(entries, list) or not entries or len(entries) > 100:
        raise InvalidInput("feedback must be a list of 1-100 card outcomes")
    outcomes = []
    for index, entry in enumerate(entries):
        where = f"feedback[{index}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f"{where} must be an object")
        accepted = entry.get("acceptedSuggestions") or []
        if not isinstance(accepted, list) or not all(isinstance(a, dict) for a in accepted):
            raise InvalidInput(f"{where}.acceptedSuggestions must be a list of {{id}}")
        override = entry.get("overrideReason") or {}
        if not isinstance(override, dict):
            raise InvalidInput(f"{where}.overrideReason must be an object")
        code, text = _reason(override.get("reason"), where)
        outcomes.append(
            order_review.CardOutcome(
                card=_text(entry.get("card"), f"{where}.card")[:64],
                outcome=_text(entry.get("outcome"), f"{where}.outcome")[:32],
                accepted_suggestions=tuple(
                    _text(a.get("id"), f"{where}.acceptedSuggestions.id")[:64] for a in accepted
                ),
                reason_code=code,
                reason_text=text,
                comment=override.get("userComment"),
                at=one_line(entry.get("outcomeTimestamp"), f"{where}.outcomeTimestamp", 40),
            )
        )
    return outcomes


def _reason(coding: Any, where: str) -> tuple[str | None, str | None]:
    """The coded override reason: one the cards offer, or none."""
    if coding is None:
        return None, None
    if not isinstance(coding, dict) or coding.get("code") not in card_shapes.OVERRIDE_REASONS:
        offered = ", ".join(card_shapes.OVERRIDE_REASONS)
        raise InvalidInput(f"{where}.overrideReason.reason must be one offered: {offered}")
    return coding["code"], card_shapes.OVERRIDE_REASONS[coding["code"]]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} is required (text)")
    return value
