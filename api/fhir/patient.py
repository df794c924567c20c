"""FHIR `Patient`: create (enrols on the pathway), read, and search.

A patient in this engine is always on a pathway, so `POST /fhir/Patient` is the enrolment
(newest pathway version), and the answer carries the pathway state as an extension.

Mapping (create and read):

| FHIR | engine |
|---|---|
| `name[0].given[0]`, `name[0].family` | given_name, family_name |
| `gender` female / male / other | sex F / M / X (`unknown` is refused: the pathway needs it) |
| `birthDate` | birth_date |
| `telecom` system email / phone | email / phone |
| `identifier[0].value` | external_id |
| `managingOrganization` `Organization/<site>` | site |
| `generalPractitioner[0]` `Practitioner/<clinician id>` | clinician |
| extension `.../StructureDefinition/body-weight` valueQuantity in kg | weight_kg |
| extension `.../StructureDefinition/pathway-fact` (name valueCode, value value[x]) | facts |

Search (`GET /fhir/Patient?identifier=&name=&birthdate=&organization=&_count=`) runs the
engine's one patient search: `name` matches the start of the given or family name (case and
accents ignored), `identifier` the external id (`system|value` or `value`), `birthdate` one day
(`YYYY-MM-DD`, or `eq` before it), `organization` the site. The answer is a searchset Bundle in
name order with a `next` link (an opaque `_cursor`) while more pages remain; a site-scoped
caller finds only their site's patients. An unknown or unsupported parameter is a 400
OperationOutcome, never an unfiltered list.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from pydantic import ValidationError

from api.deps import Enroller, PatientReader, UnitOfWork
from api.fhir.outcome import FhirError
from api.fhir.routing import (
    answer,
    base_url,
    dicts,
    first,
    items,
    new_router,
    read_resource,
    reference_id,
    searchset,
    string,
    valid_id,
)
from api.fhir.terminology import FACT, PATHWAY_STATE, STATES, UCUM, WEIGHT
from api.schemas import EnrolRequest
from engine.domain.errors import InvalidInput
from engine.services import fhir_reads
from engine.services import patients as service
from engine.services.access_policy import Resource, enforce
from engine.services.patient_directory import search_patients

router = new_router()

SEARCH_PARAMS = frozenset({"identifier", "name", "birthdate", "organization", "_count", "_cursor"})
GENDER_TO_SEX = {"female": "F", "male": "M", "other": "X"}
SEX_TO_GENDER = {sex: gender for gender, sex in GENDER_TO_SEX.items()}


@router.post("/Patient")
async def create(request: Request, principal: Enroller, uow: UnitOfWork):
    """Enrol the patient the resource describes; 201 with the stored Patient."""
    enrolment = enrolment_from(await read_resource(request, "Patient"))
    enforce(principal, "patient.enrol", Resource(enrolment.site))
    details = enrolment.model_dump(exclude={"site", "clinician", "birth_date", "sex", "weight_kg"})
    status = service.enrol_patient(
        uow(),
        principal.actor,
        site=enrolment.site,
        clinician=enrolment.clinician,
        birth_date=enrolment.birth_date,
        sex=enrolment.sex,
        weight_kg=enrolment.weight_kg,
        facts=details.pop("facts"),
        **details,
    )
    record = {
        **enrolment.model_dump(),
        "id": status["patient_id"],
        "facts": status["facts"],
        "state": status["state"],
        "version": status["version"],
    }
    resource = patient_resource(record)
    headers = {"Location": f"Patient/{record['id']}", "ETag": f'W/"{record["version"]}"'}
    return answer(resource, 201, headers)


@router.get("/Patient")
def search(
    request: Request,
    principal: PatientReader,
    uow: UnitOfWork,
    identifier: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    birthdate: Annotated[str | None, Query(max_length=12)] = None,
    organization: Annotated[str | None, Query(max_length=200)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(alias="_cursor", max_length=1024)] = None,
):
    """Patients matching every parameter given (audited search), one page per Bundle."""
    unknown = sorted(set(request.query_params) - SEARCH_PARAMS)
    repeated = sorted(
        k for k in set(request.query_params) if len(request.query_params.getlist(k)) > 1
    )
    if unknown or repeated:
        what = ", ".join(unknown) + (" (unsupported)" if unknown else "")
        what += ("; " if unknown and repeated else "") + ", ".join(repeated)
        raise FhirError(
            f"search parameter not supported: {what}"
            if unknown
            else f"give each search parameter once: {what}",
            400,
            "not-supported",
        )
    try:
        found = search_patients(
            uow(),
            principal,
            name=name,
            external_id=identifier.rsplit("|", 1)[-1] if identifier else None,
            birth_date=_day(birthdate),
            site=_organization(organization),
            cursor=cursor,
            limit=count,
            surface="fhir",
        )
    except InvalidInput as bad:
        raise FhirError(bad.message, 400, "invalid") from None
    here = f"{base_url(request)}/Patient"
    given = {k: v for k, v in request.query_params.items() if k != "_cursor"}
    bundle = searchset(
        base_url(request),
        [patient_resource({**item, "id": item["patient_id"]}) for item in found["items"]],
        found["total"],
    )
    bundle["link"] = [{"relation": "self", "url": f"{here}?{urlencode(request.query_params)}"}]
    if found["next_cursor"]:
        following = urlencode({**given, "_cursor": found["next_cursor"]})
        bundle["link"].append({"relation": "next", "url": f"{here}?{following}"})
    return answer(bundle)


def _day(birthdate: str | None) -> str | None:
    """A FHIR date search value for one day (`2026-01-02` or `eq2026-01-02`)."""
    if birthdate is None:
        return None
    if birthdate[:2].isalpha():
        if not birthdate.startswith("eq"):
            raise FhirError("birthdate supports one day (eq) only", 400, "not-supported")
        birthdate = birthdate[2:]
    return birthdate


def _organization(organization: str | None) -> str | None:
    if not organization:
        return None
    return organization.removeprefix("Organization/")


@router.get("/Patient/{patient_id}")
def read(patient_id: str, principal: PatientReader, uow: UnitOfWork):
    """The patient (audited read); 404 for an unknown id or another site's patient."""
    record = fhir_reads.patient_record(uow(), principal.actor, valid_id(patient_id), principal.site)
    return answer(patient_resource(record), headers={"ETag": f'W/"{record["version"]}"'})


def enrolment_from(resource: dict[str, Any]) -> EnrolRequest:
    """The enrolment a Patient resource asks for, validated like the JSON API's."""
    name = first(resource.get("name"))
    gender = string(resource.get("gender"))
    if gender not in GENDER_TO_SEX:
        raise FhirError("gender must be female, male or other (the pathway needs it)", 422)
    weights = [e for e in dicts(resource.get("extension")) if e.get("url") == WEIGHT]
    if not weights or not isinstance(weights[0].get("valueQuantity"), dict):
        raise FhirError(f"the body weight extension ({WEIGHT}) with a valueQuantity is required")
    weight = weights[0]["valueQuantity"]
    if string(weight.get("code", weight.get("unit", "kg"))) != "kg":
        raise FhirError("body weight must be in kg", 422, "value")
    telecom = {string(t.get("system")): t.get("value") for t in dicts(resource.get("telecom"))}
    fields = {
        "site": reference_id(
            resource.get("managingOrganization"), "Organization", "Patient.managingOrganization"
        ),
        "clinician": reference_id(
            first(resource.get("generalPractitioner")),
            "Practitioner",
            "Patient.generalPractitioner",
        ),
        "birth_date": resource.get("birthDate"),
        "sex": GENDER_TO_SEX[gender],
        "weight_kg": weight.get("value"),
        "given_name": " ".join(g for g in items(name.get("given")) if isinstance(g, str)),
        "family_name": name.get("family") or "",
        "email": telecom.get("email"),
        "phone": telecom.get("phone"),
        "facts": facts_from(resource),
    }
    identifier = first(resource.get("identifier"))
    if identifier.get("value"):
        fields["external_id"] = identifier["value"]
    try:
        return EnrolRequest.model_validate(fields)
    except ValidationError as invalid:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in invalid.errors()
        )
        raise FhirError(reasons, 422, "invalid") from None


def facts_from(resource: dict[str, Any]) -> dict[str, Any]:
    """Pathway facts from `pathway-fact` extensions: `name` (valueCode) and `value` (value[x])."""
    facts: dict[str, Any] = {}
    for extension in dicts(resource.get("extension")):
        if extension.get("url") != FACT:
            continue
        parts = {string(part.get("url")): part for part in dicts(extension.get("extension"))}
        name = parts.get("name", {}).get("valueCode")
        value = parts.get("value", {})
        found = [value[k] for k in ("valueBoolean", "valueDecimal", "valueInteger") if k in value]
        if not isinstance(name, str) or len(found) != 1:
            raise FhirError("a pathway-fact extension needs name (valueCode) and one value[x]")
        facts[name] = found[0]
    return facts


def patient_resource(record: dict[str, Any]) -> dict[str, Any]:
    """A Patient resource from a patient record (demographics, weight, facts, state)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": record["id"],
        "meta": {"versionId": str(record["version"])},
        "active": True,
        "gender": SEX_TO_GENDER.get(record["sex"], "unknown"),
        "birthDate": str(record["birth_date"]),
        "managingOrganization": {"reference": f"Organization/{record['site']}"},
        "generalPractitioner": [{"reference": f"Practitioner/{record['clinician']}"}],
        "extension": [
            {"url": WEIGHT, "valueQuantity": _kg(record["weight_kg"])},
            {
                "url": PATHWAY_STATE,
                "valueCodeableConcept": {"coding": [{"system": STATES, "code": record["state"]}]},
            },
            *(_fact(name, value) for name, value in sorted(record["facts"].items())),
        ],
    }
    name = {k: v for k, v in _name(record).items() if v}
    if name:
        resource["name"] = [{"use": "official", **name}]
    telecom = [
        {"system": system, "value": record[system]}
        for system in ("email", "phone")
        if record.get(system)
    ]
    if telecom:
        resource["telecom"] = telecom
    if record.get("external_id"):
        resource["identifier"] = [{"value": record["external_id"]}]
    return resource


def _fact(name: str, value: Any) -> dict[str, Any]:
    kind = "valueBoolean" if isinstance(value, bool) else "valueDecimal"
    parts = [{"url": "name", "valueCode": name}]
    if value is not None:
        parts.append({"url": "value", kind: value})
    return {"url": FACT, "extension": parts}


def _kg(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "kg", "system": UCUM, "code": "kg"}


def _name(record: dict[str, Any]) -> dict[str, Any]:
    given = (record.get("given_name") or "").split()
    return {"family": record.get("family_name") or None, "given": given or None}
