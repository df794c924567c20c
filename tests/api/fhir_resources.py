"""FHIR test material: resources a client sends, and `fhir_body`, which checks that an answer is
`application/fhir+json` and validates it with the `fhir.resources` R4B models.

Strict R4 (4.0.1) models exist only in fhir.resources 6.4 and older, which need pydantic 1;
this project runs pydantic 2, so the R4B (4.3.0) models of fhir.resources 8 are used. R4B
changed none of the elements these resources use (Patient, Observation, Bundle,
OperationOutcome, PlanDefinition, CarePlan, Task, CapabilityStatement); the facade emits R4
elements only. Every model forbids unknown elements, nested resources included.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from fhir.resources.R4B import get_fhir_model_class

from api.fhir.terminology import FACT, LOINC, SNOMED, UCUM, WEIGHT

FHIR_JSON = "application/fhir+json"


def fhir_body(response, status: int) -> dict[str, Any]:
    """The response's resource, after checking its status, media type and R4 validity."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    body = response.json()
    get_fhir_model_class(body["resourceType"]).model_validate(body)
    return body


def patient(site: str = "north", clinician: str = "dr-a", **facts: Any) -> dict[str, Any]:
    """A Patient as a registration system sends it (weight and facts as extensions)."""
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:example:mrn", "value": f"MRN-{uuid4().hex[:12]}"}],
        "name": [{"family": "Example", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1979-04-02",
        "telecom": [
            {"system": "email", "value": "ada@example.org"},
            {"system": "phone", "value": "+44 20 7946 0000"},
        ],
        "managingOrganization": {"reference": f"Organization/{site}"},
        "generalPractitioner": [{"reference": f"Practitioner/{clinician}"}],
        "extension": [
            {"url": WEIGHT, "valueQuantity": {"value": 64, "system": UCUM, "code": "kg"}},
            *(
                {
                    "url": FACT,
                    "extension": [
                        {"url": "name", "valueCode": name},
                        {"url": "value", "valueBoolean": value},
                    ],
                }
                for name, value in facts.items()
            ),
        ],
    }


def quantity(patient_id: str, loinc: str, value: float, unit: str, **extra: Any) -> dict:
    """A final lab Observation with a UCUM valueQuantity."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-02T08:30:00+00:00",
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


def serology(patient_id: str, loinc: str, positive: bool) -> dict[str, Any]:
    """A final serology Observation answered with a SNOMED CT positive/negative concept."""
    code, text = ("10828004", "Positive") if positive else ("260385009", "Negative")
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-02",
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code, "display": text}]},
    }


def transaction(*observations: dict[str, Any]) -> dict[str, Any]:
    """A transaction Bundle POSTing each Observation."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": o, "request": {"method": "POST", "url": "Observation"}}
            for o in observations
        ],
    }
