"""`POST /fhir`: a transaction (or batch) Bundle of Observations, answered entry by entry.

The entries go to `record_lab_results` as one batch (one unit of work). Each entry is answered
in the response Bundle with its own status: `201 Created` and the Observation's location, or
the 4xx of its refusal with an OperationOutcome (malformed entry, unknown LOINC code, a unit
that does not convert, unknown patient or another site's, a safety rule). The other entries
still commit: the engine applies a lab batch item by item, so a `transaction` is answered like
a `batch` (its type says `transaction-response`), not all-or-nothing.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request

from api.deps import LabSender, UnitOfWork
from api.fhir.observation import lab_item
from api.fhir.outcome import FhirError, operation_outcome, outcome_for_refusal
from api.fhir.routing import answer, expect_resource, items, new_router, read_resource, string
from engine.services import fhir_reads
from engine.services import patients as service

router = new_router()

MAX_ENTRIES = 1000
RESPONSE_TYPE = {"transaction": "transaction-response", "batch": "batch-response"}


@router.post("")
async def transaction(request: Request, principal: LabSender, uow: UnitOfWork):
    """Record the Observations of a transaction or batch Bundle; one response entry each."""
    bundle = await read_resource(request, "Bundle")
    if string(bundle.get("type")) not in RESPONSE_TYPE:
        raise FhirError("Bundle.type must be transaction or batch", 400, "not-supported")
    entries = items(bundle.get("entry"))
    if len(entries) > MAX_ENTRIES:
        raise FhirError(f"at most {MAX_ENTRIES} entries per Bundle", 400, "too-costly")
    responses: list[dict[str, Any] | None] = [None] * len(entries)
    accepted: list[tuple[int, dict[str, Any]]] = []
    for index, entry in enumerate(entries):
        try:
            accepted.append((index, lab_item(_observation(entry))))
        except FhirError as refused:
            responses[index] = _failed(
                refused.status, operation_outcome(refused.diagnostics, refused.code)
            )
    sites = fhir_reads.patient_sites(uow(), [item["patient_id"] for _, item in accepted])
    if principal.site:
        for index, item in list(accepted):
            if sites.get(item["patient_id"], principal.site) != principal.site:
                reason = f"no patient with id {item['patient_id']!r}"
                responses[index] = _failed(404, operation_outcome(reason, "not-found"))
                accepted.remove((index, item))
    answers = service.record_lab_results(uow, principal.actor, [item for _, item in accepted])
    for (index, _), result in zip(accepted, answers, strict=True):
        if result["accepted"]:
            responses[index] = {
                "response": {
                    "status": "201 Created",
                    "location": f"Observation/{result['record_id']}",
                }
            }
        else:
            status, outcome = outcome_for_refusal(
                result["error"], result["reason"], result["rules"]
            )
            responses[index] = _failed(status, outcome)
    return answer(
        {
            "resourceType": "Bundle",
            "type": RESPONSE_TYPE[bundle["type"]],
            "entry": responses,
        }
    )


def _observation(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise FhirError("a Bundle entry must be an object", 400, "structure")
    request = entry.get("request")
    if isinstance(request, dict) and (
        request.get("method") != "POST"
        or str(request.get("url", "")).split("?")[0] != "Observation"
    ):
        raise FhirError("only POST Observation entries are supported", 400, "not-supported")
    return expect_resource(entry.get("resource"), "Observation")


def _failed(status: int, outcome: dict[str, Any]) -> dict[str, Any]:
    return {"response": {"status": f"{status} {HTTPStatus(status).phrase}", "outcome": outcome}}
