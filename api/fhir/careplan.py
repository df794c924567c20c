"""FHIR `CarePlan`: one per patient (id = the patient's id), instantiating the pathway version.

`instantiatesCanonical` is the version's PlanDefinition canonical (`...PlanDefinition/aih|1.0.0`);
each activity is one milestone occurrence: its code and title, its status (open milestones are
`scheduled`, with `upcoming`, `due` or `overdue` as the status reason), the window from due
date to the end of its grace period, and the rule IDs behind it as reason codes. The plan is
`active` until the patient reaches a final state.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from api.deps import PatientReader, UnitOfWork
from api.fhir.outcome import FhirError
from api.fhir.routing import answer, base_url, new_router, reference_id, searchset, valid_id
from api.fhir.terminology import MILESTONES, PATHWAY_STATE, RULES, STATES, plan_canonical
from engine.domain.errors import UnknownPatient
from engine.services import fhir_reads

router = new_router()

KIND = {"lab": "ServiceRequest"}  # anything else the care team does is a Task
STATUS = {"completed": "completed", "cancelled": "cancelled"}  # open ones are scheduled


@router.get("/CarePlan/{plan_id}")
def read(plan_id: str, principal: PatientReader, uow: UnitOfWork):
    """The patient's care plan (audited read)."""
    plan = fhir_reads.care_plan(uow(), principal.actor, valid_id(plan_id), principal.site)
    return answer(care_plan_resource(plan))


@router.get("/CarePlan")
def search(
    request: Request,
    principal: PatientReader,
    uow: UnitOfWork,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    patient: Annotated[str | None, Query(max_length=200)] = None,
):
    """CarePlans by `subject` (or `patient`): `Patient/<id>`; none for an unknown patient."""
    wanted = subject or patient
    if wanted is None:
        raise FhirError(
            "search CarePlan by subject=Patient/<id> (or patient=<id>)", 400, "required"
        )
    patient_id = reference_id(
        wanted if "/" in wanted else f"Patient/{wanted}", "Patient", "subject"
    )
    try:
        plans = [fhir_reads.care_plan(uow(), principal.actor, patient_id, principal.site)]
    except UnknownPatient:
        plans = []
    return answer(searchset(base_url(request), [care_plan_resource(p) for p in plans]))


def care_plan_resource(plan: dict[str, Any]) -> dict[str, Any]:
    """A CarePlan from `fhir_reads.care_plan`."""
    return {
        "resourceType": "CarePlan",
        "id": plan["patient_id"],
        "meta": {"versionId": str(plan["version"])},
        "extension": [
            {
                "url": PATHWAY_STATE,
                "valueCodeableConcept": {
                    "coding": [{"system": STATES, "code": plan["state"]}],
                    "text": plan["state_text"],
                },
            }
        ],
        "instantiatesCanonical": [
            f"{plan_canonical(plan['pathway_id'])}|{plan['pathway_version']}"
        ],
        "status": "completed" if plan["final"] else "active",
        "intent": "plan",
        "title": plan["pathway_title"],
        "description": f"{plan['state']}: {plan['state_text']}",
        "subject": {"reference": f"Patient/{plan['patient_id']}"},
        "period": {"start": plan["enrolled_at"].isoformat()},
        "activity": [_activity(m) for m in plan["milestones"]],
    }


def _activity(milestone: dict[str, Any]) -> dict[str, Any]:
    status = STATUS.get(milestone["status"], "scheduled")
    detail: dict[str, Any] = {
        "kind": KIND.get(milestone["kind"], "Task"),
        "code": {
            "coding": [
                {
                    "system": MILESTONES,
                    "code": milestone["milestone"],
                    "display": milestone["title"],
                }
            ],
            "text": milestone["title"],
        },
        "reasonCode": [
            {"coding": [{"system": RULES, "code": why["rule"]}], "text": why["text"]}
            for why in milestone["why"]
        ],
        "status": status,
        "scheduledPeriod": {"start": milestone["due_at"], "end": milestone["grace_until"]},
        "description": milestone["title"],
    }
    if status == "scheduled":
        detail["statusReason"] = {"text": milestone["status"]}
    elif milestone.get("close_reason"):
        detail["statusReason"] = {"text": milestone["close_reason"]}
    return {"id": milestone["id"], "detail": detail}
