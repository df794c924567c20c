"""FHIR `Observation`: a lab result in (create), and the stored result out (read).

In: `subject` `Patient/<id>`; `code` a LOINC coding (`http://loinc.org`) that must be one of the
pathway's labs; `valueQuantity` with a UCUM unit (`code`, else `unit`), converted by the
engine to the pathway's unit (mg/dL bilirubin to umol/L, ukat/L ALT to U/L, ...), or for
serology `valueCodeableConcept` (SNOMED CT or LOINC answer codes for positive/negative, or
text) or `valueString`; `effectiveDateTime` or `effectiveInstant` (a date alone is midnight
UTC; a time needs its zone; a partial date, a year or a year-month, is refused: the pathway
times its rules by the day); `status` final, amended or corrected. A code the pathway does
not know, a unit that does not convert or a value outside the lab's plausible range is refused
with an OperationOutcome (422), and nothing is written.

A write is committed only once its answer can be built: everything the answer carries (a
finite number of bounded size, a date-time inside the plausible window) is checked before the
service runs. A stored value that is not a finite number (written before these checks) is
read back as `dataAbsentReason` `error`, never as a 500.

Out: the result as the engine stored it, value in the pathway unit, the reported value in a
note.
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from api.deps import LabSender, PatientReader, UnitOfWork
from api.fhir.outcome import FhirError
from api.fhir.routing import (
    answer,
    dicts,
    new_router,
    read_resource,
    reference_id,
    string,
    valid_id,
)
from api.fhir.terminology import LOINC, SNOMED, UCUM
from api.schemas import LabRequest
from engine.services import fhir_reads
from engine.services import patients as service
from engine.services.admission import Admission
from engine.services.care_pathways import care_pathway

router = new_router()

ACCEPTED_STATUSES = ("final", "amended", "corrected")
_LOINC_CODE = re.compile(r"^\d{1,7}-\d$")
_PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2})?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Where each field of the lab request comes from in the Observation, for error messages.
ELEMENT = {
    "code": "Observation.code",
    "value": "Observation.value[x]",
    "unit": "Observation.valueQuantity.code",
    "taken_at": "Observation.effectiveDateTime",
}
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
#: UCUM spellings whose engine spelling differs (the pathway file writes IU/L).
UCUM_TO_ENGINE = {"[IU]/L": "IU/L"}
ENGINE_TO_UCUM = {engine: ucum for ucum, engine in UCUM_TO_ENGINE.items()}
#: Qualitative answers by (system, code).
ANSWERS = {
    (SNOMED, "10828004"): "positive",
    (SNOMED, "260385009"): "negative",
    (LOINC, "LA6576-8"): "positive",
    (LOINC, "LA6577-6"): "negative",
}
SNOMED_ANSWER = {text: code for (system, code), text in ANSWERS.items() if system == SNOMED}
LABORATORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
            "display": "Laboratory",
        }
    ]
}


@router.post("/Observation")
async def create(request: Request, principal: LabSender, uow: UnitOfWork):
    """Record the lab result; 201 with the stored Observation (value in the pathway unit)."""
    item = lab_item(await read_resource(request, "Observation"))
    admitted = uow(admission=Admission(principal, "lab.record"))  # the policy, on the load
    outcome = service.record_lab_result(admitted, principal.actor, **item)
    record = fhir_reads.lab_records(uow(), [outcome["record_id"]])[0]
    headers = {"Location": f"Observation/{record['id']}"}
    return answer(observation_resource(record), 201, headers)


@router.get("/Observation/{record_id}")
def read(record_id: str, principal: PatientReader, uow: UnitOfWork):
    """A recorded lab result (audited read of its patient)."""
    record = fhir_reads.lab_record(uow(), principal.actor, valid_id(record_id), principal.site)
    return answer(observation_resource(record))


def lab_item(resource: dict[str, Any]) -> dict[str, Any]:
    """The `record_lab_result(s)` arguments an Observation stands for, or FhirError."""
    status = resource.get("status")
    if status not in ACCEPTED_STATUSES:
        raise FhirError(
            f"Observation.status must be one of {', '.join(ACCEPTED_STATUSES)}, not {status!r}",
            422,
            "business-rule",
        )
    patient_id = reference_id(resource.get("subject"), "Patient", "Observation.subject")
    value, unit = _value(resource)
    taken_at = _effective(resource)
    try:
        checked = LabRequest.model_validate(
            {
                "code": _loinc(resource.get("code")),
                "value": value,
                "unit": unit,
                "taken_at": taken_at,
                "source": "fhir",
            }
        )
    except ValidationError as invalid:
        reasons = "; ".join(
            f"{ELEMENT.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in invalid.errors()
        )
        raise FhirError(reasons, 422, "value") from None
    return {"patient_id": patient_id, **checked.model_dump(exclude={"expected_version"})}


def _effective(resource: dict[str, Any]) -> str | None:
    """The effective time as ISO text for the edge's date-time type, or FhirError."""
    if "effectivePeriod" in resource or "effectiveTiming" in resource:
        raise FhirError(
            "give the time the sample was taken as effectiveDateTime or effectiveInstant",
            422,
            "not-supported",
        )
    value = resource.get("effectiveDateTime", resource.get("effectiveInstant"))
    if value is None:
        raise FhirError(
            "Observation.effectiveDateTime is required: the pathway judges a result at the "
            "time the sample was taken, not when it arrived",
            422,
            "required",
        )
    if not isinstance(value, str):
        raise FhirError("Observation.effectiveDateTime must be a dateTime string", 400)
    if _PARTIAL_DATE.match(value):
        raise FhirError(
            f"Observation.effectiveDateTime {value!r} gives only a year or a month; the "
            "pathway needs at least the day (YYYY-MM-DD) or the time with its zone",
            422,
            "value",
        )
    return f"{value}T00:00:00+00:00" if _DATE.match(value) else value


def observation_resource(record: dict[str, Any]) -> dict[str, Any]:
    """An Observation from a stored lab result."""
    lab = care_pathway(record["pathway_key"]).pathway.labs[record["code"]]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": record["id"],
        "status": "final",
        "category": [LABORATORY],
        "code": {
            "coding": [{"system": LOINC, "code": lab.loinc, "display": lab.name}],
            "text": lab.code,
        },
        "subject": {"reference": f"Patient/{record['patient_id']}"},
        "effectiveDateTime": record["taken_at"].isoformat(),
        "issued": record["recorded_at"].isoformat(),
    }
    if record["text"] is not None:
        concept: dict[str, Any] = {"text": record["text"]}
        if record["text"] in SNOMED_ANSWER:
            code = SNOMED_ANSWER[record["text"]]
            concept["coding"] = [{"system": SNOMED, "code": code, "display": record["text"]}]
        resource["valueCodeableConcept"] = concept
    elif not isinstance(record["value"], int | float) or not math.isfinite(record["value"]):
        resource["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT, "code": "error", "display": "Error"}],
            "text": "the stored value is not a finite number",
        }
    else:
        unit = ENGINE_TO_UCUM.get(record["unit"], record["unit"])
        resource["valueQuantity"] = {
            "value": record["value"],
            "unit": record["unit"],
            "system": UCUM,
            "code": unit,
        }
        reported = f"{record['reported_value']} {record['reported_unit'] or ''}".strip()
        resource["note"] = [{"text": f"reported as {reported}"}]
    return resource


def _loinc(code: Any) -> str:
    codings = dicts(code.get("coding")) if isinstance(code, dict) else []
    loinc = [c.get("code") for c in codings if c.get("system") == LOINC]
    if not loinc:
        raise FhirError(
            "Observation.code needs a LOINC coding (system http://loinc.org)", 422, "code-invalid"
        )
    if not isinstance(loinc[0], str) or not _LOINC_CODE.match(loinc[0]):
        raise FhirError(f"{loinc[0]!r} is not a LOINC code", 422, "code-invalid")
    return loinc[0]


def _value(resource: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, unit as the engine spells it) from the one value[x]."""
    given = [key for key in resource if key.startswith("value")]
    if len(given) > 1:
        raise FhirError(
            f"an Observation has one value[x], not {', '.join(sorted(given))}", 400, "invalid"
        )
    if isinstance(resource.get("valueQuantity"), dict):
        quantity = resource["valueQuantity"]
        system = quantity.get("system")
        if system is not None and system != UCUM:
            raise FhirError(f"units must be UCUM ({UCUM}), not {system!r}", 422, "value")
        unit = quantity.get("code") if system == UCUM else quantity.get("unit")
        unit = unit if unit is not None else quantity.get("unit")
        if isinstance(quantity.get("value"), bool) or not isinstance(
            quantity.get("value"), int | float
        ):
            raise FhirError("valueQuantity.value must be a number", 400, "invalid")
        return quantity["value"], UCUM_TO_ENGINE.get(unit, unit) if string(unit) else unit
    if isinstance(resource.get("valueCodeableConcept"), dict):
        concept = resource["valueCodeableConcept"]
        for coding in dicts(concept.get("coding")):
            known = ANSWERS.get((string(coding.get("system")), string(coding.get("code"))))
            if known:
                return known, None
        text = concept.get("text") or next(
            (c.get("display") for c in dicts(concept.get("coding")) if c.get("display")), None
        )
        if isinstance(text, str) and text.strip():
            return text.strip().lower(), None
        raise FhirError("valueCodeableConcept must say positive or negative", 422, "value")
    if isinstance(resource.get("valueString"), str):
        return resource["valueString"].strip().lower(), None
    raise FhirError(
        "a value is required: valueQuantity, valueCodeableConcept or valueString", 400, "required"
    )
