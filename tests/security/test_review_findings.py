"""Findings of the adversarial review of the access policy and the input boundary, each
reproduced and answered as it should be."""

from __future__ import annotations

import pytest

from engine.domain.errors import InvalidInput
from engine.services import patients as service
from engine.services.care_team import register_clinician
from tests.api.conftest import ENROLMENT


def test_a_utf8_bom_does_not_carry_deep_json_past_the_depth_limit(client, callers):
    deep = b"\xef\xbb\xbf" + b"[" * 5000 + b"]" * 5000

    for path in ("/fhir/Observation", "/fhir", "/patients"):
        response = client.post(
            path,
            content=deep,
            headers={**callers["clinician"], "Content-Type": "application/json"},
        )
        assert response.status_code == 400, (path, response.status_code)


@pytest.mark.parametrize("field", ["given_name", "external_id", "family_name"])
@pytest.mark.parametrize("text", ["\\ud800", "\\u202eevil", "a\\u2028b"])
def test_unpaired_surrogates_and_direction_overrides_are_refused_not_500(
    client, callers, field, text
):
    body = '{"site": "north", "clinician": "dr-a", "birth_date": "1979-04-02", "sex": "F",'
    body += f' "weight_kg": 64, "{field}": "{text}"}}'

    response = client.post(
        "/patients",
        content=body.encode(),
        headers={**callers["clinician"], "Content-Type": "application/json"},
    )

    assert response.status_code == 422


def test_an_external_id_used_at_another_site_reveals_nothing(client, callers):
    south = {**ENROLMENT, "site": "south", "external_id": "MRN-0007"}
    north = {**ENROLMENT, "site": "north", "external_id": "MRN-0007"}

    first = client.post("/patients", json=south, headers=callers["clinician-anywhere"])
    second = client.post("/patients", json=north, headers=callers["clinician"])
    again = client.post("/patients", json=north, headers=callers["clinician"])

    assert first.status_code == 201
    assert second.status_code == 201  # unique within its site only
    assert again.status_code == 409  # the same site's record number twice


@pytest.mark.parametrize(
    ("field", "value"),
    [("external_id", "X\r\nBcc: evil@example.org"), ("given_name", "Ada\u202e")],
)
def test_every_surface_refuses_header_text_at_enrolment_cli_included(uow_factory, field, value):
    details = {k: v for k, v in ENROLMENT.items() if k != "contact_preferences"}

    with pytest.raises(InvalidInput):
        service.enrol_patient(uow_factory(), "operator", **{**details, field: value})


def test_a_clinician_name_with_cr_lf_is_refused(uow_factory):
    with pytest.raises(InvalidInput):
        register_clinician(uow_factory(), "operator", "dr-x", name="Dr X\r\nBcc: evil@x.org")


def test_a_bundle_entry_for_another_site_is_refused_like_an_unknown_one_and_audited(
    client, callers, enrol, uow_factory
):
    from sqlalchemy import func, select

    from engine.adapters.orm import audit_log

    south = enrol(site="south")["patient_id"]

    def entry(patient: str) -> dict:
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
            "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "U/L"},
            "effectiveDateTime": "2026-01-02T08:30:00Z",
        }
        return {"resource": observation, "request": {"method": "POST", "url": "Observation"}}

    def refusals() -> int:
        with uow_factory() as uow:
            query = select(func.count()).where(audit_log.c.action == "access_refused")
            return uow.session.execute(query).scalar_one()

    before = refusals()
    answers = [
        client.post(
            "/fhir",
            json={"resourceType": "Bundle", "type": "batch", "entry": [entry(patient)]},
            headers=callers["clinician"],  # scoped to north
        ).json()["entry"][0]["response"]
        for patient in (south, "no-such-patient")
    ]

    assert [a["status"] for a in answers] == ["404 Not Found", "404 Not Found"]
    assert answers[0]["outcome"]["issue"][0]["code"] == answers[1]["outcome"]["issue"][0]["code"]
    assert refusals() == before + 2
