"""FHIR `PlanDefinition`: a pathway version (id `aih-1.0.0`; `aih` is the newest), and `$apply`.

The PlanDefinition is generated from the pathway file: its canonical URL and version, `draft`
while the clinical review is pending, the sources as `relatedArtifact` citations, and one
action per milestone (offset from its anchor as timing, recipients as participants, the rule
IDs as reason codes and their sources as documentation).

`POST /fhir/PlanDefinition/<id>/$apply?subject=Patient/<id>` (or a Parameters body with a
`subject` valueString) answers the subject's CarePlan. A patient here is enrolled when created
(`POST /fhir/Patient` enrols on the newest version), so `$apply` finds the plan already
instantiated; a patient on another version is refused with 409 (no migration between versions).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import Query, Request

from api.deps import CarePlanner, PathwayReader, UnitOfWork
from api.fhir.careplan import care_plan_resource
from api.fhir.outcome import FhirError
from api.fhir.routing import answer, dicts, new_router, reference_id, valid_id
from api.fhir.terminology import (
    MILESTONES,
    PLAN_TYPE,
    RULES,
    pathway_key,
    plan_canonical,
    plan_id,
)
from engine.domain.errors import UnknownCode
from engine.domain.pathway import MilestoneDefinition, Pathway
from engine.services import fhir_reads, pathway_catalogue

router = new_router()

_SINGLE_UNIT = re.compile(r"^P(\d+)([YMWD])$")
UCUM_TIME = {"Y": ("a", "years"), "M": ("mo", "months"), "W": ("wk", "weeks"), "D": ("d", "days")}
PARTICIPANT = {"patient": "patient"}  # clinician and care team are practitioners


@router.get("/PlanDefinition/{definition_id}")
def read(definition_id: str, _: PathwayReader):
    """The pathway version as a PlanDefinition."""
    return answer(plan_definition_resource(_pathway(definition_id)))


@router.post("/PlanDefinition/{definition_id}/$apply")
async def apply(
    definition_id: str,
    request: Request,
    principal: CarePlanner,
    uow: UnitOfWork,
    subject: Annotated[str | None, Query(max_length=200)] = None,
):
    """The subject's CarePlan instantiating this pathway version."""
    pathway = _pathway(definition_id)
    subject = subject or _subject_parameter(await request.body())
    patient_id = reference_id(subject, "Patient", "subject")
    plan = fhir_reads.care_plan(uow(), principal.actor, patient_id, principal.site)
    if plan["pathway_key"] != pathway.key:
        raise FhirError(
            f"the patient is enrolled on {plan['pathway_key']}, not {pathway.key}; moving a "
            "patient between pathway versions is not supported",
            409,
            "conflict",
        )
    return answer(care_plan_resource(plan))


def plan_definition_resource(pathway: Pathway) -> dict[str, Any]:
    """A PlanDefinition generated from one pathway version."""
    review = pathway.review.get("status", "")
    return {
        "resourceType": "PlanDefinition",
        "id": plan_id(pathway.key),
        "url": plan_canonical(pathway.id),
        "version": pathway.version,
        "name": "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", pathway.id)) + "Pathway",
        "title": pathway.title,
        "type": {"coding": [{"system": PLAN_TYPE, "code": "clinical-protocol"}]},
        "status": "active" if review in ("approved", "reviewed") else "draft",
        "description": f"{pathway.title} (clinical review: {review or 'unknown'}).",
        "relatedArtifact": [
            _citation(source_id, source) for source_id, source in pathway.sources.items()
        ],
        "action": [_action(pathway, m) for m in pathway.milestones],
    }


def _action(pathway: Pathway, milestone: MilestoneDefinition) -> dict[str, Any]:
    offset = str(milestone.offset)
    action: dict[str, Any] = {
        "id": milestone.id,
        "title": milestone.title,
        "description": f"{milestone.kind} milestone in {', '.join(milestone.scope)}",
        "textEquivalent": (
            f"{offset} after {milestone.anchor}"
            + (", repeating" if milestone.repeat else "")
            + f"; escalated {milestone.grace} after it falls due"
        ),
        "code": [{"coding": [{"system": MILESTONES, "code": milestone.id}]}],
        "reason": [
            {"coding": [{"system": RULES, "code": rule.id}], "text": rule.text}
            for rule in (pathway.rules[r] for r in milestone.rules)
        ],
        "documentation": [
            _citation(source_id, pathway.sources[source_id])
            for source_id in pathway.sources_of(milestone.rules)
        ],
        "priority": "urgent" if milestone.urgent else "routine",
        "participant": [
            {"type": PARTICIPANT.get(who, "practitioner"), "role": {"text": who}}
            for who in milestone.recipients
        ],
    }
    single = _SINGLE_UNIT.match(offset)
    if single:
        code, words = UCUM_TIME[single.group(2)]
        action["timingDuration"] = {
            "value": int(single.group(1)),
            "unit": words,
            "system": "http://unitsofmeasure.org",
            "code": code,
        }
    return action


def _citation(source_id: str, source: dict[str, Any]) -> dict[str, Any]:
    year = f" ({source['year']})" if source.get("year") else ""
    return {
        "type": "citation",
        "label": source_id,
        "display": source.get("title", source_id),
        "citation": f"{source.get('title', source_id)}{year}",
    }


def _pathway(definition_id: str) -> Pathway:
    try:
        return pathway_catalogue.pathway(pathway_key(valid_id(definition_id)))
    except UnknownCode as unknown:
        raise FhirError(unknown.message, 404, "not-found") from None


def _subject_parameter(raw: bytes) -> str | None:
    """`subject` from a Parameters body (valueString or valueReference), if one was sent."""
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise FhirError("the body is not JSON", 400, "structure") from None
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError("the body of $apply must be a Parameters resource", 400, "structure")
    for parameter in dicts(body.get("parameter")):
        if parameter.get("name") == "subject":
            value = parameter.get("valueString") or parameter.get("valueReference")
            return value.get("reference") if isinstance(value, dict) else value
    return None
