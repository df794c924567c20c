"""The FHIR R4 facade under `/fhir`: routes that translate FHIR resources to and from service
calls. Patient, Observation (search, and transaction Bundles of them), PlanDefinition and
`$apply`, CarePlan, Task, and the CapabilityStatement at `/fhir/metadata`. Errors are
OperationOutcome.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.fhir import (
    bundle,
    careplan,
    metadata,
    observation,
    observation_search,
    patient,
    plandefinition,
    task,
)
from api.fhir.outcome import FhirError
from api.fhir.routing import new_router

router = APIRouter()
for part in (
    metadata,
    patient,
    observation_search,
    observation,
    bundle,
    plandefinition,
    careplan,
    task,
):
    router.include_router(part.router)
fallback = new_router()


@fallback.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unsupported(path: str, request: Request):
    """Anything else under /fhir: an OperationOutcome, not the JSON API's problem+json."""
    raise FhirError(f"{request.method} /fhir/{path} is not supported here", 404, "not-supported")


router.include_router(fallback)
