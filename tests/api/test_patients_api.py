"""Patients over HTTP: enrol, labs, orders through the safety rules, status with reasons, and the
HTTP contract around them (problem+json, ETag/If-Match, Idempotency-Key, site scoping, audit).
"""

from __future__ import annotations

import logging
import xml.dom.minidom

import pytest

from engine.services import patients as patient_service

SCREENING = [("ALT", 420, "U/L"), ("AST", 310, "U/L"), ("IgG", 24, "g/L"), ("TPMT", 31, "U/mL")]


def post_labs(client, headers, patient_id, labs=SCREENING):
    for code, value, unit in labs:
        body = {"code": code, "value": value, "unit": unit}
        response = client.post(f"/patients/{patient_id}/labs", json=body, headers=headers)
        assert response.status_code == 200, response.text


def history_without_refusals(client, headers, patient_id) -> dict:
    history = client.get(f"/patients/{patient_id}/history", headers=headers).json()
    return {k: v for k, v in history.items() if k != "refusals"}


@pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_enrolled_screened_patient_on_prednisolone_shows_induction_with_its_rules(
    client, callers, enrol
):
    headers = callers["clinician"]
    patient_id = enrol(cirrhosis=False)["patient_id"]
    post_labs(client, headers, patient_id)

    ordered = client.post(
        f"/patients/{patient_id}/orders",
        json={"drug": "prednisolone", "mg_per_day": 30},
        headers=headers,
    )
    status = client.get(f"/patients/{patient_id}", headers=headers)

    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["transition"]["why"][0]["rule"] == "IND-STD"
    body = status.json()
    assert body["state"] == "induction.prednisolone"
    assert "IND-STD" in [why["rule"] for why in body["state_why"]]
    assert all(m["why"] and m["why"][0]["rule"] for m in body["next_milestones"])
    assert body["regimen"][0]["drug"] == "prednisolone"
    assert status.headers["etag"] == f'"v{body["version"]}"'


@pytest.mark.parametrize(
    ("facts", "order", "rule"),
    [
        ({"cirrhosis": True}, {"drug": "budesonide", "mg_per_day": 9}, "SAFE-BUD-CIRRHOSIS"),
        (
            {"pregnant": True},
            {"drug": "mycophenolate_mofetil", "mg_per_day": 1000},
            "SAFE-MMF-PREG",
        ),
        ({}, {"drug": "azathioprine", "mg_per_kg_day": 1}, "SCR-TPMT"),
    ],
    ids=["budesonide-in-cirrhosis", "mmf-in-pregnancy", "azathioprine-before-tpmt"],
)
def test_blocked_order_returns_the_rule_and_writes_nothing_but_the_refusal(
    facts, order, rule, client, callers, enrol
):
    headers = callers["clinician"]
    patient_id = enrol(**facts)["patient_id"]
    post_labs(client, headers, patient_id, [("ALT", 420, "U/L")])
    before = client.get(f"/patients/{patient_id}", headers=headers).json()
    history_before = history_without_refusals(client, headers, patient_id)

    refused = client.post(f"/patients/{patient_id}/orders", json=order, headers=headers)

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["rule_ids"] == [rule] and problem["sources"]
    assert problem["type"].endswith("/hard-block") and problem["detail"].startswith(rule)
    after = client.get(f"/patients/{patient_id}", headers=headers).json()
    assert after["version"] == before["version"] and after["regimen"] == []
    assert history_without_refusals(client, headers, patient_id) == history_before
    refusals = client.get(f"/patients/{patient_id}/history", headers=headers).json()["refusals"]
    assert [r["rules"] for r in refusals] == [[rule]]
    assert refusals[0]["by"] == f"user:{callers.users['clinician']['id']}"


def test_unknown_patient_is_a_404_problem(client, callers):
    response = client.get("/patients/no-such-patient", headers=callers["clinician"])

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/unknown-patient")


@pytest.mark.parametrize(
    ("lab", "problem_type"),
    [
        ({"code": "ALT", "value": 80, "unit": "mg"}, "/invalid-input"),
        ({"code": "ALT", "value": 80}, "/invalid-input"),
        (
            {"code": "ALT", "value": 80, "unit": "U/L", "taken_at": "2031-01-01T00:00:00+00:00"},
            "/invalid-input",
        ),
        (
            {"code": "ALT", "value": 80, "unit": "U/L", "taken_at": "2025-01-01T00:00:00"},
            "/validation",
        ),
        ({"code": "ALT", "value": -3, "unit": "U/L"}, "/invalid-input"),
        ({"code": "ALT", "value": 80000, "unit": "U/L"}, "/invalid-input"),
        ({"code": "NOPE", "value": 3, "unit": "U/L"}, "/unknown-code"),
        ({"code": "ALT", "unit": "U/L"}, "/validation"),
    ],
    ids=[
        "unit-not-convertible",
        "no-unit",
        "future-date",
        "naive-date",
        "negative",
        "implausible",
        "unknown-lab",
        "no-value",
    ],
)
def test_bad_lab_input_is_a_422_problem_and_changes_nothing(
    lab, problem_type, client, callers, enrol
):
    headers = callers["clinician"]
    patient = enrol()

    response = client.post(f"/patients/{patient['patient_id']}/labs", json=lab, headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith(problem_type)
    assert (
        client.get(f"/patients/{patient['patient_id']}", headers=headers).json()["version"]
        == patient["version"]
    )


def test_a_lab_without_a_unit_is_refused_naming_the_accepted_units(client, callers, enrol):
    patient_id = enrol()["patient_id"]

    response = client.post(
        f"/patients/{patient_id}/labs",
        json={"code": "ALT", "value": 80},
        headers=callers["clinician"],
    )

    assert response.status_code == 422
    assert response.json()["detail"] == "ALT needs a unit; accepted: U/L, IU/L, ukat/L"


def test_the_same_idempotency_key_replays_the_answer_and_records_the_lab_once(
    client, callers, enrol
):
    headers = {**callers["clinician"], "Idempotency-Key": "lab-42"}
    patient_id = enrol()["patient_id"]
    body = {"code": "ALT", "value": 420, "unit": "U/L"}

    first = client.post(f"/patients/{patient_id}/labs", json=body, headers=headers)
    again = client.post(f"/patients/{patient_id}/labs", json=body, headers=headers)
    other_body = client.post(
        f"/patients/{patient_id}/labs", json={**body, "value": 421}, headers=headers
    )

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert other_body.status_code == 422
    assert other_body.json()["type"].endswith("/idempotency-key-reused")
    history = client.get(f"/patients/{patient_id}/history", headers=callers["clinician"]).json()
    assert len(history["labs"]) == 1


def test_a_failed_request_does_not_use_up_its_idempotency_key(client, callers, enrol):
    headers = {**callers["clinician"], "Idempotency-Key": "order-1"}
    patient_id = enrol()["patient_id"]
    order = {
        "drug": "azathioprine",
        "mg_per_kg_day": 1,
        "overrides": {"aza-before-steroid-delay": "steroid-sparing start agreed at clinic"},
    }

    refused = client.post(f"/patients/{patient_id}/orders", json=order, headers=headers)
    post_labs(client, callers["clinician"], patient_id)
    retried = client.post(f"/patients/{patient_id}/orders", json=order, headers=headers)

    assert refused.status_code == 422 and refused.json()["rule_ids"] == ["SCR-TPMT"]
    assert retried.status_code == 200, retried.text


def test_enrolment_with_an_idempotency_key_enrols_once(client, callers):
    from tests.api.conftest import ENROLMENT

    headers = {**callers["clinician"], "Idempotency-Key": "enrol-ada"}

    first = client.post("/patients", json={**ENROLMENT, "facts": {}}, headers=headers)
    again = client.post("/patients", json={**ENROLMENT, "facts": {}}, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["location"] == first.headers["location"]
    listed = client.get("/patients", headers=callers["clinician"]).json()
    assert listed["total"] == 1


def test_a_stale_if_match_is_412_and_the_current_one_is_accepted(client, callers, enrol):
    headers = callers["clinician"]
    patient = enrol()
    patient_id, etag = patient["patient_id"], f'"v{patient["version"]}"'
    post_labs(client, headers, patient_id, [("ALT", 420, "U/L")])  # someone else's change
    body = {"code": "AST", "value": 300, "unit": "U/L"}

    stale = client.post(
        f"/patients/{patient_id}/labs", json=body, headers={**headers, "If-Match": etag}
    )
    stale_body = client.post(
        f"/patients/{patient_id}/labs",
        json={**body, "expected_version": patient["version"]},
        headers=headers,
    )
    current = client.get(f"/patients/{patient_id}", headers=headers).headers["etag"]
    fresh = client.post(
        f"/patients/{patient_id}/labs", json=body, headers={**headers, "If-Match": current}
    )

    assert stale.status_code == stale_body.status_code == 412
    assert stale.json()["type"].endswith("/precondition-failed")
    assert fresh.status_code == 200 and fresh.headers["etag"] == f'"v{fresh.json()["version"]}"'
    history = client.get(f"/patients/{patient_id}/history", headers=headers).json()
    assert [lab["code"] for lab in history["labs"]] == ["ALT", "AST"]


def test_a_coordinator_of_another_site_gets_404_as_if_the_patient_did_not_exist(
    client, callers, enrol
):
    patient_id = enrol()["patient_id"]  # at north
    south = callers["coordinator-south"]

    for path in (f"/patients/{patient_id}", f"/patients/{patient_id}/history"):
        response = client.get(path, headers=south)
        assert response.status_code == 404
        assert response.json() == client.get("/patients/unknown", headers=south).json() | {
            "detail": response.json()["detail"]
        }
    assert client.get("/patients", headers=south).json()["total"] == 0
    assert client.get("/patients?site=north", headers=south).json()["items"] == []
    assert client.get(f"/patients/{patient_id}", headers=callers["coordinator"]).status_code == 200


def test_every_read_is_audited_with_the_caller_and_auditors_can_read_it(client, callers, enrol):
    patient_id = enrol()["patient_id"]
    coordinator = callers["coordinator"]
    client.get(f"/patients/{patient_id}", headers=coordinator)
    client.get(f"/patients/{patient_id}/history", headers=coordinator)
    client.get("/patients", headers=coordinator)
    client.post(
        f"/patients/{patient_id}/what-if",
        json={"kind": "lab", "code": "ALT", "value": 30, "unit": "U/L"},
        headers=callers["clinician"],
    )

    audit = client.get(f"/audit?patient_id={patient_id}", headers=callers["auditor"])
    everything = client.get("/audit?limit=50", headers=callers["auditor"]).json()

    assert audit.status_code == 200
    coordinator_actor = f"user:{callers.users['coordinator']['id']}"
    reads = [(e["actor"], e["action"], e["detail"].get("view")) for e in audit.json()]
    assert (coordinator_actor, "patient_read", "status") in reads
    assert (coordinator_actor, "patient_read", "history") in reads
    assert (f"user:{callers.users['clinician']['id']}", "what_if", None) in reads
    assert any(
        e["action"] == "patient_list" and e["actor"] == coordinator_actor for e in everything
    )


def test_unexpected_errors_are_a_500_problem_without_internals_or_phi_in_the_log(
    client, callers, enrol, monkeypatch, caplog
):
    patient_id = enrol()["patient_id"]

    def broken(*args, **kwargs):
        raise RuntimeError("Ada Example, born 1979-04-02, is in room 7")

    monkeypatch.setattr(patient_service, "patient_status", broken)
    with caplog.at_level(logging.INFO, logger="aihp.api"):
        response = client.get(f"/patients/{patient_id}", headers=callers["clinician"])

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "Ada" not in response.text and "Traceback" not in response.text
    assert "RuntimeError" in caplog.text
    assert "Ada" not in caplog.text and patient_id not in caplog.text
    assert "/patients/{patient_id}" in caplog.text


def test_a_clinician_with_a_site_cannot_enrol_at_another_site(client, callers):
    from tests.api.conftest import ENROLMENT

    response = client.post(
        "/patients", json={**ENROLMENT, "site": "south"}, headers=callers["clinician"]
    )

    assert response.status_code == 403


def test_an_admin_creates_a_user_whose_token_works_until_revoked(client, callers):
    admin = callers["admin"]
    user = client.post("/users", json={"name": "dr-b", "role": "clinician"}, headers=admin).json()
    issued = client.post(f"/users/{user['id']}/tokens", json={"days": 7}, headers=admin).json()
    bearer = {"Authorization": f"Bearer {issued['token']}"}

    me = client.get("/users/me", headers=bearer)
    revoked = client.post(f"/users/{user['id']}/tokens/{issued['id']}/revoke", headers=admin)
    after = client.get("/users/me", headers=bearer)

    assert me.status_code == 200 and me.json()["name"] == "dr-b"
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert after.status_code == 401


def test_tokens_are_stored_only_as_hashes(client, callers, database_url):
    from sqlalchemy import create_engine, select

    from engine.adapters.access_tables import api_tokens

    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = {row.token_hash for row in conn.execute(select(api_tokens))}
    engine.dispose()
    plain = {headers["Authorization"].split()[1] for headers in callers.headers.values()}
    assert stored and not stored & plain
    assert all(len(h) == 64 for h in stored)


def test_pathway_diagrams_are_generated_from_the_pathway_data(client, callers):
    headers = callers["coordinator"]
    definition = client.get("/pathways/aih", headers=headers).json()

    mermaid = client.get("/pathways/aih/diagram?format=mermaid", headers=headers)
    svg = client.get(f"/pathways/{definition['key']}/diagram?format=svg", headers=headers)

    assert mermaid.text.startswith("stateDiagram-v2")
    assert "screening --> induction__prednisolone : medication_ordered [IND-STD]" in mermaid.text
    assert svg.headers["content-type"] == "image/svg+xml"
    drawn = xml.dom.minidom.parseString(svg.text)
    drawn_states = {
        g.getAttribute("id")
        for g in drawn.getElementsByTagName("g")
        if g.getAttribute("class") in ("node", "cluster")
    }
    assert set(definition["definition"]["states"]) <= drawn_states
    versions = client.get("/pathways", headers=headers).json()
    assert [v["key"] for v in versions if v["latest"]] == [definition["key"]]
