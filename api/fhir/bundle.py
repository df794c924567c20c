"""`POST /fhir`: a transaction or batch Bundle of Observations.

Every entry is a plain create: `request` `POST Observation` (no search URL, no conditional
create or update: `ifNoneExist`, `ifMatch`, `ifNoneMatch`, `ifModifiedSince`) and an
Observation resource whose `subject` is `Patient/<id>` (a conditional or Bundle-internal
reference is refused). Any other entry (a Patient, a PUT, a GET, an entry without `request`) is
refused with a 400 OperationOutcome, never ignored. A `fullUrl` given twice refuses the whole
Bundle (400): FHIR allows a `fullUrl` once per Bundle.

A `batch` is answered entry by entry: `201 Created` and the Observation's location, or the
4xx of its refusal with an OperationOutcome (malformed entry, unknown LOINC code, a unit that
does not convert, a value or date out of range, unknown patient or another site's, a safety
rule). The good entries are recorded whatever happens to the others.

A `transaction` is all or nothing (FHIR's transaction semantics), in one unit of work: if any
entry is refused, nothing is written (but the audit lines of the refusal) and the answer is one
OperationOutcome with an issue per refused entry (its `expression` is `Bundle.entry[i]`, its
diagnostics start with the entry's index and `fullUrl`), under the status of the first
refusal; otherwise the `transaction-response` lists each entry's 201.

A database failure while either is written rolls the whole unit of work back: 503 with an
OperationOutcome saying that nothing was written, so the sender can send the Bundle again.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from api.deps import LabSender, UnitOfWork
from api.fhir.observation import lab_item
from api.fhir.outcome import FhirError, operation_outcome, outcome_for_refusal
from api.fhir.routing import answer, expect_resource, items, new_router, read_resource, string
from api.refusals import audit_refusal
from api.schemas import single_line
from engine.domain.errors import UnknownPatient
from engine.services import fhir_reads
from engine.services import patients as service
from engine.services.admission import Admission

router = new_router()
log = logging.getLogger("aihp.api.fhir")

MAX_ENTRIES = 1000
MAX_FULL_URL = 2048
RESPONSE_TYPE = {"transaction": "transaction-response", "batch": "batch-response"}
#: Conditional request elements: refused, since only plain creates are supported.
CONDITIONAL = ("ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince")
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
    full_urls = _full_urls(entries)
    refused: dict[int, Refusal] = {}
    accepted: dict[int, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        try:
            accepted[index] = lab_item(_observation(entry))
        except FhirError as error:
            refused[index] = error.status, operation_outcome(error.diagnostics, error.code)
    sites = fhir_reads.patient_sites(uow(), [item["patient_id"] for item in accepted.values()])
    admission = Admission(principal, "lab.record")
    for index, item in list(accepted.items()):
        site = sites.get(item["patient_id"])
        if site is None and principal.site is None:
            continue  # unknown to a caller of every site: the batch answers it per entry
        try:
            admission.admit_at(item["patient_id"], site)  # the policy: another site is unknown
        except UnknownPatient as unknown:
            refused[index] = 404, operation_outcome(unknown.message, "not-found")
            del accepted[index]
            await run_in_threadpool(audit_refusal, request, 404, "fhir")
    try:
        if kind == "transaction":
            return _transaction(principal.actor, uow, accepted, refused, full_urls)
        answers = service.record_lab_results(uow, principal.actor, list(accepted.values()))
    except SQLAlchemyError as failure:  # the unit of work rolled everything back
        log.error("the database failed during a %s Bundle: %s", kind, type(failure).__name__)
        raise FhirError(
            f"the {kind} was not applied: the database failed while writing it; nothing was "
            "written, and it can be sent again",
            503,
            "transient",
        ) from None
    responses = _responses(accepted, answers, refused)
    return answer({"resourceType": "Bundle", "type": RESPONSE_TYPE[kind], "entry": responses})


def _transaction(
    actor: str,
    uow: UnitOfWork,
    accepted: dict[int, dict[str, Any]],
    refused: dict[int, Refusal],
    full_urls: dict[int, str],
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
        {
            **issue,
            "diagnostics": f"{_entry_name(index, full_urls)}: {issue['diagnostics']}",
            "expression": [f"Bundle.entry[{index}]"],
        }
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


def _full_urls(entries: list[Any]) -> dict[int, str]:
    """Each entry's `fullUrl` (index -> URL); FhirError 400 for a `fullUrl` given twice or
    one that is not a single line of text."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if url is None:
            continue
        where = f"Bundle.entry[{index}].fullUrl"
        if not isinstance(url, str) or not url or len(url) > MAX_FULL_URL:
            raise FhirError(
                f"{where} must be a URI of at most {MAX_FULL_URL} characters", expression=where
            )
        try:
            single_line(url)
        except ValueError as unsafe:
            raise FhirError(f"{where}: {unsafe}", expression=where) from None
        if url in seen:
            raise FhirError(
                f"{where} repeats the fullUrl of Bundle.entry[{seen[url]}]; a fullUrl is "
                "unique within a Bundle",
                expression=where,
            )
        seen[url] = index
    return {index: url for url, index in seen.items()}


def _entry_name(index: int, full_urls: dict[int, str]) -> str:
    full_url = full_urls.get(index)
    return f"Bundle.entry[{index}]" + (f" ({full_url})" if full_url else "")


def _observation(entry: Any) -> dict[str, Any]:
    """The entry's Observation, if the entry is a plain `POST Observation`; else FhirError."""
    if not isinstance(entry, dict):
        raise FhirError("a Bundle entry must be an object", 400, "structure")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise FhirError(
            "a transaction or batch entry needs its request (POST Observation)", 400, "required"
        )
    url = request.get("url")
    if request.get("method") != "POST" or url != "Observation":
        raise FhirError(
            "only POST Observation entries are supported (Observation resources, created); "
            f"not {str(request.get('method'))[:10]!r} {str(url)[:60]!r}",
            400,
            "not-supported",
        )
    conditional = [name for name in CONDITIONAL if name in request]
    if conditional:
        raise FhirError(
            f"conditional requests ({', '.join(conditional)}) are not supported: only POST "
            "Observation",
            400,
            "not-supported",
        )
    return expect_resource(entry.get("resource"), "Observation")


def _failed(status: int, outcome: dict[str, Any]) -> dict[str, Any]:
    return {"response": {"status": f"{status} {HTTPStatus(status).phrase}", "outcome": outcome}}
