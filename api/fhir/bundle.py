"""`POST /fhir`: a transaction or batch Bundle of Observations.

A `batch` is answered entry by entry: `201 Created` and the Observation's location, or the
4xx of its refusal with an OperationOutcome (malformed entry, unknown LOINC code, a unit that
does not convert, a value or date out of range, unknown patient or another site's, a safety
rule). The good entries are recorded whatever happens to the others.

A `transaction` is all or nothing (FHIR's transaction semantics): if any entry is refused,
nothing is written and the answer is one OperationOutcome with an issue per refused entry
(its `expression` is `Bundle.entry[i]`), under the status of the first refusal; otherwise the
`transaction-response` lists each entry's 201.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api.deps import LabSender, UnitOfWork
from api.fhir.observation import lab_item
from api.fhir.outcome import FhirError, operation_outcome, outcome_for_refusal
from api.fhir.routing import answer, expect_resource, items, new_router, read_resource, string
from api.refusals import audit_refusal
from engine.services import fhir_reads
from engine.services import patients as service

router = new_router()

MAX_ENTRIES = 1000
RESPONSE_TYPE = {"transaction": "transaction-response", "batch": "batch-response"}
Refusal = tuple[int, dict[str, Any]]  # (HTTP status, OperationOutcome)


@router.post("")
async def transaction(request: Request, principal: LabSender, uow: UnitOfWork):
    """Record the Observations of a transaction (all or nothing) or batch (entry by entry)."""
    bundle = await read_resource(request, "Bundle")
    kind = string(bundle.get("type"))
    if kind not in RESPONSE_TYPE:
        raise FhirError("Bundle.type must be transaction or batch", 400, "not-supported")
    entries = items(bundle.get("entry"))
    if len(entries) > MAX_ENTRIES:
        raise FhirError(f"at most {MAX_ENTRIES} entries per Bundle", 400, "too-costly")
    refused: dict[int, Refusal] = {}
    accepted: dict[int, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        try:
            accepted[index] = lab_item(_observation(entry))
        except FhirError as error:
            refused[index] = error.status, operation_outcome(error.diagnostics, error.code)
    sites = fhir_reads.patient_sites(uow(), [item["patient_id"] for item in accepted.values()])
    if principal.site:
        for index, item in list(accepted.items()):
            if sites.get(item["patient_id"]) != principal.site:  # unknown or another site
                reason = f"no patient with id {item['patient_id']!r}"
                refused[index] = 404, operation_outcome(reason, "not-found")
                del accepted[index]
                await run_in_threadpool(audit_refusal, request, 404, "fhir")
    if kind == "transaction":
        return _transaction(principal.actor, uow, accepted, refused)
    answers = service.record_lab_results(uow, principal.actor, list(accepted.values()))
    responses = _responses(accepted, answers, refused)
    return answer({"resourceType": "Bundle", "type": RESPONSE_TYPE[kind], "entry": responses})


def _transaction(
    actor: str, uow: UnitOfWork, accepted: dict[int, dict[str, Any]], refused: dict[int, Refusal]
):
    """All or nothing: a refused entry refuses the whole transaction, and nothing is written."""
    answers = (
        []
        if refused
        else service.record_lab_results(uow, actor, list(accepted.values()), all_or_nothing=True)
    )
    recorded = not refused and all(result["accepted"] for result in answers)
    responses = _responses(accepted, answers, refused)
    if recorded:
        return answer(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": responses}
        )
    failures = [
        (index, r["response"]) for index, r in enumerate(responses) if "outcome" in r["response"]
    ]
    issues = [
        {**issue, "expression": [f"Bundle.entry[{index}]"]}
        for index, response in failures
        for issue in response["outcome"]["issue"]
    ]
    status = int(failures[0][1]["status"].split()[0])
    summary = {
        "severity": "error",
        "code": "processing",
        "diagnostics": f"the transaction was not applied: {len(failures)} of "
        f"{len(responses)} entries refused; nothing was written",
    }
    return answer({"resourceType": "OperationOutcome", "issue": [summary, *issues]}, status)


def _responses(
    accepted: dict[int, dict[str, Any]], answers: list[dict[str, Any]], refused: dict[int, Refusal]
) -> list[dict[str, Any]]:
    """One response entry per Bundle entry, in order."""
    responses: dict[int, dict[str, Any]] = {i: _failed(*refusal) for i, refusal in refused.items()}
    for index, result in zip(accepted, answers, strict=False):
        if result["accepted"]:
            location = f"Observation/{result['record_id']}"
            responses[index] = {"response": {"status": "201 Created", "location": location}}
        elif result["error"] == "not-applied":  # another entry of the transaction was refused
            responses[index] = {"response": {"status": "424 Failed Dependency"}}
        else:
            responses[index] = _failed(
                *outcome_for_refusal(result["error"], result["reason"], result["rules"])
            )
    for index in accepted:  # a transaction refused before it ran: the entry was not applied
        responses.setdefault(index, {"response": {"status": "424 Failed Dependency"}})
    return [responses[index] for index in sorted(responses)]


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
