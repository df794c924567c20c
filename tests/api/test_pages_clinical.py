"""The patient page as a clinician uses it: record a fact that changed as a dated event, see a
refused order's rule and override it with a reason, and see the override on the page."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.test_pages import CSRF, log_in


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """Forms posted as a browser on this site posts them (Origin header)."""
    client.headers["Origin"] = str(client.base_url).rstrip("/")
    return client


def _page(client, patient: str) -> str:
    response = client.get(f"/ui/patients/{patient}")
    assert response.status_code == 200
    return response.text


def _screen(client, callers, patient: str) -> None:
    for code, value, unit in (("ALT", 420, "U/L"), ("IgG", 24, "g/L"), ("TPMT", 30, "U/mL")):
        answer = client.post(
            f"/patients/{patient}/labs",
            json={"code": code, "value": value, "unit": unit},
            headers=callers["clinician"],
        )
        assert answer.status_code < 300, answer.text


def test_a_clinician_records_a_weight_change_on_the_page_and_it_is_kept(client, callers, enrol):
    patient = enrol()["patient_id"]
    csrf = log_in(client, callers, "clinician")

    answer = client.post(
        f"/ui/patients/{patient}/events",
        data={"csrf": csrf, "kind": "weight_recorded", "f_weight_kg": "82.5"},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    history = client.get(f"/patients/{patient}/history", headers=callers["clinician"]).json()
    assert any(
        e["kind"] == "weight_recorded" and e["data"] == {"weight_kg": 82.5}
        for e in history["events"]
    )
    assert "Recorded: weight_recorded." in client.get(answer.headers["location"]).text


def test_a_page_event_keeps_its_clinical_time_and_refuses_unknown_fields(client, callers, enrol):
    patient = enrol()["patient_id"]
    csrf = log_in(client, callers, "clinician")
    event = {"csrf": csrf, "kind": "weight_recorded", "f_weight_kg": "70"}

    dated = client.post(
        f"/ui/patients/{patient}/events",
        data={**event, "occurred_at": "2025-06-01T08:00:00Z"},
        follow_redirects=False,
    )
    unknown = client.post(f"/ui/patients/{patient}/events", data={**event, "f_bogus": "1"})
    naive = client.post(
        f"/ui/patients/{patient}/events", data={**event, "occurred_at": "2025-06-01T08:00:00"}
    )

    assert dated.status_code == 303
    history = client.get(f"/patients/{patient}/history", headers=callers["clinician"]).json()
    assert [e["occurred_at"] for e in history["events"]] == ["2025-06-01T08:00:00+00:00"]
    assert unknown.status_code == 422 and "bogus" in unknown.text
    assert naive.status_code == 422 and "time zone" in naive.text


def test_an_implausible_weight_on_the_page_is_shown_as_a_message(client, callers, enrol):
    patient = enrol()["patient_id"]
    csrf = log_in(client, callers, "clinician")

    answer = client.post(
        f"/ui/patients/{patient}/events",
        data={"csrf": csrf, "kind": "weight_recorded", "f_weight_kg": "7000"},
    )

    assert answer.status_code == 422
    assert 'role="alert"' in answer.text and "weight_kg" in answer.text


def test_an_overridable_refusal_offers_an_override_and_the_override_is_shown(
    client, callers, enrol
):
    patient = enrol()["patient_id"]
    _screen(client, callers, patient)
    csrf = log_in(client, callers, "clinician")
    order = {"csrf": csrf, "drug": "prednisolone", "mg_per_day": "30", "route": "oral"}
    assert client.post(f"/ui/patients/{patient}/orders", data=order).status_code == 200

    refused = client.post(
        f"/ui/patients/{patient}/orders",
        data={**order, "drug": "azathioprine", "mg_per_day": "", "mg_per_kg_day": "1.5"},
    )

    assert refused.status_code == 422
    assert 'data-rule="IND-AZA-DELAY"' in refused.text
    assert 'name="override" value="aza-before-steroid-delay"' in refused.text
    csrf = CSRF.search(refused.text).group(1)
    overridden = client.post(
        f"/ui/patients/{patient}/orders",
        data={
            "csrf": csrf,
            "drug": "azathioprine",
            "mg_per_kg_day": "1.5",
            "route": "oral",
            "override": "aza-before-steroid-delay",
            "override_reason": "long-standing azathioprine from the referring centre",
        },
    )
    assert overridden.status_code == 200
    page = _page(client, patient)
    assert "overridden: aza-before-steroid-delay" in page


def test_an_absolute_block_offers_no_override(client, callers, enrol):
    patient = enrol(cirrhosis=True)["patient_id"]
    _screen(client, callers, patient)
    csrf = log_in(client, callers, "clinician")

    refused = client.post(
        f"/ui/patients/{patient}/orders",
        data={"csrf": csrf, "drug": "budesonide", "mg_per_day": "9", "route": "oral"},
    )

    assert refused.status_code == 422
    assert 'data-rule="SAFE-BUD-CIRRHOSIS"' in refused.text
    assert 'name="override"' not in refused.text


def test_two_overridable_refusals_are_lifted_one_after_the_other_on_the_page(
    client, callers, enrol
):
    patient = enrol()["patient_id"]  # no TPMT, no steroid: two overridable blocks
    csrf = log_in(client, callers, "clinician")
    order = {"csrf": csrf, "drug": "azathioprine", "mg_per_kg_day": "1.5", "route": "oral"}

    first = client.post(f"/ui/patients/{patient}/orders", data=order)
    assert first.status_code == 422 and 'name="override" value="aza-before-tpmt"' in first.text
    second = client.post(
        f"/ui/patients/{patient}/orders",
        data={**order, "override": "aza-before-tpmt", "override_reason": "TPMT sent, urgent"},
    )
    assert second.status_code == 422
    assert 'name="override_1" value="aza-before-tpmt"' in second.text
    assert 'name="override" value="aza-before-steroid-delay"' in second.text

    third = client.post(
        f"/ui/patients/{patient}/orders",
        data={
            **order,
            "override_1": "aza-before-tpmt",
            "override_reason_1": "TPMT sent, urgent",
            "override": "aza-before-steroid-delay",
            "override_reason": "on azathioprine for years",
        },
    )
    assert third.status_code == 200, third.text
    assert "overridden: aza-before-tpmt, aza-before-steroid-delay" in _page(client, patient)
