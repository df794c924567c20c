"""Fuzzing every surface the native OpenAPI test (tests/api/test_schemathesis.py) does not reach:
the FHIR facade, through a minimal OpenAPI document of its routes, positive and negative; and
the pages' forms, with a hypothesis-driven fuzzer posting to each form with a valid session,
CSRF token and Origin. Zero 5xx. Bounded for CI: a few dozen examples per operation and form.

The case counts are printed (`-s`) for the record.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from engine.adapters.mail import LocalMailbox
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy
from tests.api.conftest import ENROLMENT
from tests.api.test_pages import CSRF, post_login

FHIR_EXAMPLES = 40
FORM_EXAMPLES = 60
BOUNDED = settings(
    max_examples=FHIR_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

CODING = {
    "type": "object",
    "properties": {
        "system": {"type": "string", "enum": ["http://loinc.org", "http://snomed.info/sct"]},
        "code": {"type": "string", "enum": ["1742-6", "1975-2", "1920-8", "10828004", "x"]},
    },
}
QUANTITY = {
    "type": "object",
    "properties": {
        "value": {"type": "number"},
        "unit": {"type": "string", "enum": ["U/L", "mg/dL", "umol/L", "ukat/L", "kg", "?"]},
        "system": {"type": "string", "enum": ["http://unitsofmeasure.org"]},
        "code": {"type": "string"},
    },
}
REFERENCE = {"type": "object", "properties": {"reference": {"type": "string"}}}
OBSERVATION = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Observation"]},
        "status": {"type": "string", "enum": ["final", "amended", "preliminary"]},
        "subject": REFERENCE,
        "code": {"type": "object", "properties": {"coding": {"type": "array", "items": CODING}}},
        "valueQuantity": QUANTITY,
        "valueString": {"type": "string"},
        "effectiveDateTime": {"type": "string"},
    },
}
PATIENT = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Patient"]},
        "gender": {"type": "string", "enum": ["female", "male", "other", "unknown"]},
        "birthDate": {"type": "string"},
        "name": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "family": {"type": "string"},
                    "given": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "identifier": {
            "type": "array",
            "items": {"type": "object", "properties": {"value": {"type": "string"}}},
        },
        "managingOrganization": REFERENCE,
        "generalPractitioner": {"type": "array", "items": REFERENCE},
        "extension": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"url": {"type": "string"}, "valueQuantity": QUANTITY},
            },
        },
    },
}
BUNDLE = {
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string", "enum": ["transaction", "batch", "collection"]},
        "entry": {
            "type": "array",
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "resource": OBSERVATION,
                    "request": {
                        "type": "object",
                        "properties": {
                            "method": {"type": "string", "enum": ["POST", "PUT"]},
                            "url": {"type": "string", "enum": ["Observation", "Patient"]},
                        },
                    },
                },
            },
        },
    },
}


def _post(schema: dict[str, Any]) -> dict[str, Any]:
    body = {"content": {"application/fhir+json": {"schema": schema}}}
    return {"post": {"requestBody": {"required": True, **body}, "responses": {"default": {}}}}


def _read() -> dict[str, Any]:
    parameter = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {"get": {"parameters": [parameter], "responses": {"default": {"description": "-"}}}}


FHIR_OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "aih-pathways FHIR facade (for fuzzing)", "version": "1"},
    "paths": {
        "/fhir/Observation": _post(OBSERVATION),
        "/fhir/Patient": _post(PATIENT),
        "/fhir": _post(BUNDLE),
        "/fhir/Observation/{id}": _read(),
        "/fhir/Patient/{id}": _read(),
        "/fhir/CarePlan/{id}": _read(),
    },
}


@pytest.fixture
def fhir_schema(app):
    """The FHIR facade with its fuzzing document served beside it."""

    async def facade(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/fhir-openapi.json":
            await JSONResponse(FHIR_OPENAPI)(scope, receive, send)
            return
        await app(scope, receive, send)

    return schemathesis.openapi.from_asgi("/fhir-openapi.json", facade)


@pytest.fixture
def patient_id(client, callers) -> str:
    body = {**ENROLMENT, "facts": {"cirrhosis": True}}
    return client.post("/patients", json=body, headers=callers["clinician"]).json()["patient_id"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_the_fhir_facade_never_answers_5xx(mode, fhir_schema, callers, patient_id):
    answered: Counter[tuple[str, int]] = Counter()

    def exercise(case):
        if case.body and isinstance(case.body, dict) and isinstance(case.body.get("subject"), dict):
            case.body["subject"]["reference"] = f"Patient/{patient_id}"
        response = case.call(headers=callers["clinician-anywhere"])
        answered[case.operation.label, response.status_code] += 1
        assert response.status_code < 500, (case.operation.label, case.body, response.text)

    for result in fhir_schema.get_all_operations():
        operation = result.ok()
        if mode == GenerationMode.NEGATIVE and operation.method.upper() == "GET":
            continue  # only the id can be wrong there, and it is fixed to a real patient
        fixed = {"id": patient_id} if "{id}" in operation.path else None
        strategy = operation.as_strategy(mode, path_parameters=fixed)
        BOUNDED(given(case=strategy)(exercise))()
    print(f"\nFHIR fuzz ({mode}): {sum(answered.values())} cases", dict(sorted(answered.items())))
    assert sum(answered.values()) >= len(FHIR_OPENAPI["paths"]) * 5


# ---- the pages' forms ----------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "nan", "inf", "-1", "1e308", "0", "30", "\r\n", "\x00", "9" * 400]),
    st.sampled_from(["prednisolone", "budesonide", "azathioprine", "oral", "iv", "1", "28"]),
    st.sampled_from(["weight_recorded", "cirrhosis_diagnosed", "pregnancy", "true", "biopsy"]),
)
FORMS = {
    "order": (
        "/ui/patients/{patient}/orders",
        ("drug", "mg_per_day", "mg_per_kg_day", "route", "override", "override_reason"),
    ),
    "event": (
        "/ui/patients/{patient}/events",
        ("kind", "f_weight_kg", "f_method", "f_reason", "f_drug", "f_meld", "occurred_at"),
    ),
    "claim": ("/ui/queues/items/{item}/claim", ()),
    "release": ("/ui/queues/items/{item}/release", ()),
    "complete": ("/ui/queues/items/{item}/complete", ("note",)),
    "snooze": ("/ui/queues/items/{item}/snooze", ("days", "reason")),
    "take-over": ("/ui/queues/items/{item}/take-over", ("reason",)),
    "filters": ("/ui/queues/items/{item}/claim", ("queue", "site", "clinician", "state")),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_page_forms_never_answer_5xx(form, client, callers, patient_id, uow_factory, tmp_path):
    dispatch_due_reminders(uow_factory, LocalMailbox(tmp_path / "mail"), DeliveryPolicy())
    user = "clinician" if form in ("order", "event") else "coordinator"
    client.headers["Origin"] = str(client.base_url).rstrip("/")
    assert post_login(client, callers.tokens[user]["token"]).status_code == 303
    csrf = CSRF.search(client.get("/ui/pathway").text).group(1)
    items = client.get("/queues", headers=callers["coordinator"]).json()["items"]
    item = items[0]["id"] if items else "no-such-item"
    path, fields = FORMS[form]
    url = path.format(patient=patient_id, item=item)
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=FORM_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        values=st.fixed_dictionaries({f: nasty_text for f in fields}),
        extra=st.dictionaries(st.text(max_size=8), nasty_text, max_size=2),
    )
    def post(values, extra):
        response = client.post(url, data={**extra, **values, "csrf": csrf}, follow_redirects=False)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (values, response.text[:300])

    post()
    print(f"\npage form fuzz ({form}): {sum(statuses.values())} cases", dict(statuses))
