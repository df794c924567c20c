"""`GET /fhir/metadata`: the CapabilityStatement (served without a token, as FHIR servers do).

It is the facade's contract: which resource types, interactions, search parameters and
operations it serves, in FHIR R4 (4.0.1) JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from api.fhir import observation_search
from api.fhir.routing import answer, base_url, new_router
from api.fhir.terminology import plan_canonical

router = new_router()

SEARCH_PATIENT = {"name": "patient", "type": "reference"}
RESOURCES: list[dict[str, Any]] = [
    {
        "type": "Patient",
        "interaction": ["create", "read", "search-type"],
        "searchParam": [
            {"name": n, "type": t}
            for n, t in (
                ("identifier", "token"),
                ("name", "string"),
                ("birthdate", "date"),
                ("organization", "reference"),
            )
        ],
    },
    {
        "type": "Observation",
        "documentation": observation_search.DOCUMENTATION,
        "interaction": ["create", "read", "search-type"],
        "searchParam": observation_search.SEARCH_PARAMS,
    },
    {
        "type": "PlanDefinition",
        "interaction": ["read"],
        "operation": [
            {
                "name": "apply",
                "definition": "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply",
            }
        ],
    },
    {
        "type": "CarePlan",
        "interaction": ["read", "search-type"],
        "searchParam": [{"name": "subject", "type": "reference"}, SEARCH_PATIENT],
    },
    {
        "type": "Task",
        "interaction": ["search-type"],
        "searchParam": [SEARCH_PATIENT, {"name": "status", "type": "token"}],
    },
]


@router.get("/metadata")
def capability_statement(request: Request):
    """What this FHIR server can do."""
    return answer(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-01-01",
            "kind": "instance",
            "software": {"name": "aih-pathways"},
            "implementation": {
                "description": "AIH care-pathway engine, FHIR R4 facade",
                "url": base_url(request),
            },
            "instantiates": [plan_canonical("aih")],
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "description": "Authorization: Bearer <token> (aihp token create); "
                        "roles clinician, coordinator, lab-interface, auditor; site scoping."
                    },
                    "resource": [
                        {**r, "interaction": [{"code": c} for c in r["interaction"]]}
                        for r in RESOURCES
                    ],
                    "interaction": [{"code": "transaction"}, {"code": "batch"}],
                }
            ],
        }
    )
