"""`GET /fhir/Observation`: search recorded lab results.

`GET /fhir/Observation?patient=<id>&code=http://loinc.org|1742-6&date=ge2026-03&date=le2026-06
&_count=20` answers a `searchset` Bundle of Observations (as `GET /fhir/Observation/{id}` reads
them), newest sample first, with `link` `self` and, while more pages remain, `next` (an opaque
`_cursor`: keyset paging, never an offset). `total` is given for one patient's search (cheap:
their results only), left out for a search over a whole site.

| parameter | matches |
|---|---|
| `patient` | `<id>` or `Patient/<id>`: one patient's results (at most once) |
| `code` | a LOINC token, `http://loinc.org\\|1742-6` or `1742-6`; a comma means or, a repeat and |
| `date` | the sampling time (`effectiveDateTime`), prefixes eq ge gt le lt; repeats narrow |
| `_count` | page size, 1-100 (default 50); more is a 400, or 100 with lenient handling |

Site scoping: a caller with a site searches that site's results only; a `patient` of another
site (or an unknown one) has no results, exactly like a patient without any. Each search is
audited (`observation_search`: the caller, the patient searched, the criteria, no value).
Unsupported parameters, malformed values, control characters and too large a `_count` are a
400 OperationOutcome (see `api/fhir/search_params.py`); with `Prefer: handling=lenient` the
unsupported ones are ignored and named in a warning OperationOutcome entry (search mode
`outcome`).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import Request

from api.deps import PatientReader, UnitOfWork
from api.fhir.observation import observation_resource
from api.fhir.outcome import FhirError, operation_outcome
from api.fhir.routing import answer, base_url, new_router, reference_id, searchset
from api.fhir.search_params import date_bounds, page_size, search_links, search_query, token
from api.fhir.terminology import LOINC
from engine.domain.errors import InvalidInput
from engine.services import fhir_reads
from engine.services.care_pathways import care_pathway

router = new_router()

#: Supported parameters and how often each may be given.
SUPPORTED = {"patient": 1, "code": 4, "date": 4, "_count": 1, "_cursor": 1}
DEFAULT_COUNT, MAX_COUNT = 50, 100
#: What the CapabilityStatement declares: the search parameters, with FHIR's definitions, and
#: a documentation line for the order, `_count` and paging (`_cursor` is only followed, from
#: `next` links, so it is not declared).
SEARCH_PARAMS = [
    {"name": name, "type": kind, "definition": f"http://hl7.org/fhir/SearchParameter/{defined}"}
    for name, kind, defined in (
        ("patient", "reference", "clinical-patient"),
        ("code", "token", "clinical-code"),
        ("date", "date", "clinical-date"),
    )
]
DOCUMENTATION = (
    f"Lab results (LOINC) newest sample first; `_count` 1-{MAX_COUNT} (default "
    f"{DEFAULT_COUNT}), further pages by the `next` link; date prefixes eq, ge, gt, le, lt; "
    "unsupported parameters are refused unless `Prefer: handling=lenient`."
)
MAX_CODES = 20


@router.get("/Observation")
def search(request: Request, principal: PatientReader, uow: UnitOfWork):
    """Recorded lab results matching every parameter given (audited search), one page."""
    query = search_query(request, SUPPORTED)
    count = page_size(query, DEFAULT_COUNT, MAX_COUNT)
    patient = query.one("patient")
    patient_id = (
        reference_id(patient if "/" in patient else f"Patient/{patient}", "Patient", "patient")
        if patient
        else None
    )
    codes = _lab_codes(query.values.get("code", []))
    taken_from, taken_before = _sampling_window(query.values.get("date", []))
    try:
        found = fhir_reads.search_lab_results(
            uow(),
            principal.actor,
            site_scope=principal.site,
            patient_id=patient_id,
            codes=codes,
            taken_from=taken_from,
            taken_before=taken_before,
            cursor=query.one("_cursor"),
            limit=count,
            audit_detail={
                "surface": "fhir",
                "codes": sorted(codes) if codes is not None else None,
                "date": query.values.get("date", []),
                "count": count,
            },
        )
    except InvalidInput as bad:
        raise FhirError(bad.message, 400, "invalid") from None
    base = base_url(request)
    bundle = searchset(base, [observation_resource(r) for r in found["records"]], found["total"])
    if found["total"] is None:
        del bundle["total"]
    bundle["link"] = search_links(f"{base}/Observation", query, count, found["next_cursor"])
    if query.ignored:  # lenient handling: say what was left out, as FHIR servers do
        ignored = ", ".join(sorted({repr(name[:40]) for name in query.ignored}))
        outcome = operation_outcome(f"search parameters ignored: {ignored}", "not-supported")
        outcome["issue"][0]["severity"] = "warning"
        bundle["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    return answer(bundle)


def _lab_codes(values: list[str]) -> frozenset[str] | None:
    """The engine's lab codes the `code` parameters select (None: no `code` given). Each
    parameter is a comma-separated list (or); parameters are combined (and). A code that is not
    one of the pathway's labs, or of another system than LOINC, matches nothing."""
    if not values:
        return None
    by_loinc = {lab.loinc: lab.code for lab in care_pathway().pathway.labs.values()}
    selected: frozenset[str] | None = None
    for value in values:
        tokens = value.split(",")
        if len(tokens) > MAX_CODES or not all(t.strip() for t in tokens):
            raise FhirError(f"code: 1 to {MAX_CODES} codes, separated by commas", 400, "invalid")
        matched = set()
        for text in tokens:
            system, code = token(text.strip())
            if system in (None, LOINC) and code in by_loinc:
                matched.add(by_loinc[code])
        selected = frozenset(matched) if selected is None else selected & matched
    return selected


def _sampling_window(values: list[str]) -> tuple[datetime | None, datetime | None]:
    """The narrowest [from, before) window every `date` parameter allows."""
    taken_from: datetime | None = None
    taken_before: datetime | None = None
    for value in values:
        low, high = date_bounds(value)
        if low is not None and (taken_from is None or low > taken_from):
            taken_from = low
        if high is not None and (taken_before is None or high < taken_before):
            taken_before = high
    return taken_from, taken_before
