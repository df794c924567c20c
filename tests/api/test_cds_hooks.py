"""The CDS Hooks service over HTTP: an EHR's order-select and order-sign calls get the native
order's hard blocks, plausible ceilings and dose ranges as cards; feedback is audited.

Requests follow the specification's example shapes (hookInstance, fhirServer, context with
userId, patientId, encounterId, draftOrders as an R4 Bundle, selections for order-select,
prefetch); the amoxicillin draft is the order-select example's own.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import select

from engine.adapters.orm import audit_log
from engine.domain.errors import HardBlock
from engine.domain.order_safety import DraftOrder
from tests.fixtures_domain import make_patient, screened

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
SIGN = "/cds-services/aih-order-sign"
SELECT = "/cds-services/aih-order-select"


@pytest.fixture
def ehr(callers, uow_factory):
    """EHR system users: at north (the patients' site), at south and without a site."""
    callers.add(uow_factory, "ehr", "ehr", "north")
    callers.add(uow_factory, "ehr-south", "ehr", "south")
    callers.add(uow_factory, "ehr-anywhere", "ehr", None)
    return callers


def medication_request(
    rid: str, rxnorm: str, text: str, value: float | None = None, unit: str = "mg", **timing
) -> dict[str, Any]:
    """A draft MedicationRequest as the specification's examples write one."""
    instruction: dict[str, Any] = {
        "text": text,
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d", **timing}},
    }
    if value is not None:
        instruction["doseAndRate"] = [
            {"doseQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}
        ]
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxnorm, "display": text}],
            "text": text,
        },
        "subject": {"reference": "Patient/example"},
        "dosageInstruction": [instruction],
    }


def hook_request(
    hook: str, patient_id: str, *resources: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    context = {
        "userId": "PractitionerRole/A2340113",
        "patientId": patient_id,
        "encounterId": "89284",
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": r} for r in resources],
        },
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{r['id']}" for r in resources[-1:]]
    return {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "https://ehr.example.org/fhir",
        "hook": hook,
        "context": context,
        **extra,
    }


BUDESONIDE = medication_request("bud-1", "19831", "Budesonide 3 MG Oral Capsule", 3, frequency=3)


def _screened(client, callers, enrol, **facts) -> str:
    patient_id = enrol(**facts)["patient_id"]
    baseline = (
        ("ALT", 420, "U/L"),
        ("AST", 300, "U/L"),
        ("IgG", 25, "g/L"),
        ("BILI", 30, "umol/L"),
    )
    for code, value, unit in (*baseline, ("TPMT", 31, "U/mL")):
        recorded = client.post(
            f"/patients/{patient_id}/labs",
            json={"code": code, "value": value, "unit": unit},
            headers=callers["clinician"],
        )
        assert recorded.status_code == 200, recorded.text
    return patient_id


def _audit(uow_factory, action: str) -> list[dict[str, Any]]:
    with uow_factory() as uow:
        rows = uow.session.execute(select(audit_log).where(audit_log.c.action == action))
        return [dict(r._mapping) for r in rows]


#: (patient facts, screened, drug, dose) -> what the native order refuses first (None: accepts)
NATIVE_CASES = {
    "budesonide in cirrhosis": ({"cirrhosis": True}, True, "budesonide", {"mg_per_day": 9}),
    "induction dose too high": ({}, True, "prednisolone", {"mg_per_day": 60}),
    "induction dose": ({}, True, "prednisolone", {"mg_per_day": 30}),
    "azathioprine before TPMT": ({}, False, "azathioprine", {"mg_per_kg_day": 1}),
    "azathioprine above its ceiling": ({}, True, "azathioprine", {"mg_per_day": 500}),
    "MMF in pregnancy": ({"pregnant": True}, True, "mmf", {"mg_per_day": 1000}),
    "obeticholic acid": ({}, True, "ocaliva", {"mg_per_day": 5}),
    "IV steroid below 1 mg/kg": ({}, True, "methylprednisolone", {"mg_per_day": 40, "route": "iv"}),
}


@pytest.mark.parametrize("case", list(NATIVE_CASES), ids=list(NATIVE_CASES))
def test_the_review_finds_what_the_native_order_refuses_and_changes_nothing(case):
    """One evaluation: the review's first finding is the block the native order refuses
    with (no finding: the native order is accepted), and reviewing leaves the patient as it was."""
    facts, is_screened, drug, dose = NATIVE_CASES[case]
    chart = make_patient(**facts)
    if is_screened:
        screened(chart)
    before = chart.snapshot()

    review = chart.cp.review_order(chart.patient, DraftOrder(drug, **dose), chart.now)

    assert chart.snapshot() == before
    try:
        chart.order(drug, **dose)
    except HardBlock as refused:
        assert review.findings and review.findings[0].item_id == refused.block_id
        assert list(review.findings[0].rules) == refused.rule_ids
        assert review.findings[0].overridable == refused.overridable
    else:
        assert review.findings == [], review.findings


def test_discovery_lists_both_hooks_with_prefetch_templates(client, ehr):
    services = client.get("/cds-services", headers=ehr["ehr"]).json()["services"]

    assert {(s["id"], s["hook"]) for s in services} == {
        ("aih-order-select", "order-select"),
        ("aih-order-sign", "order-sign"),
    }
    for service in services:
        assert service["title"] and service["description"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert (
            "MedicationRequest?patient={{context.patientId}}" in service["prefetch"]["medications"]
        )


def test_order_sign_for_budesonide_in_cirrhosis_gets_a_critical_card_citing_the_rule(
    client, ehr, enrol, uow_factory
):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)

    response = client.post(
        SIGN, json=hook_request("order-sign", patient_id, BUDESONIDE), headers=ehr["ehr"]
    )

    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert len(critical) == 1, cards
    card = critical[0]
    assert "SAFE-BUD-CIRRHOSIS" in card["summary"] and len(card["summary"]) <= 140
    assert "cirrhosis" in card["detail"] and "[S1]" in card["detail"]
    assert card["source"]["topic"]["code"] == "SAFE-BUD-CIRRHOSIS"
    assert any(link["url"].endswith("#SAFE-BUD-CIRRHOSIS") for link in card["links"])
    assert any(link["url"].endswith("#S1") for link in card["links"])
    # the pathway's alternative: remove the draft, order prednisolone at the induction dose
    (suggestion,) = card["suggestions"]
    delete, create = suggestion["actions"]
    assert delete == {
        "type": "delete",
        "description": "Remove the draft order of budesonide",
        "resourceId": ["MedicationRequest/bud-1"],
    }
    prednisolone = create["resource"]
    assert prednisolone["medicationCodeableConcept"]["coding"][0]["code"] == "8638"
    dose = prednisolone["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert (dose["value"], dose["code"]) == (30, "mg")
    assert prednisolone["subject"] == {"reference": f"Patient/{patient_id}"}
    # the same request through the native order is refused by the same rule
    native = client.post(
        f"/patients/{patient_id}/orders",
        json={"drug": "budesonide", "mg_per_day": 9},
        headers=ehr["clinician"],
    )
    assert native.status_code == 422 and native.json()["rule_ids"] == ["SAFE-BUD-CIRRHOSIS"]
    # nothing of the review was written to the patient, only its audit line with the cards
    history = client.get(f"/patients/{patient_id}", headers=ehr["clinician"]).json()
    assert history["state"] == "screening"
    (reviewed,) = _audit(uow_factory, "order_reviewed")
    assert reviewed["patient_id"] == patient_id and reviewed["actor"].startswith("user:")
    assert card["uuid"] in {c["id"] for c in reviewed["detail"]["cards"]}


def _named_by_atc(order):
    order["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.whocc.no/atc", "code": "A07EA06"}]
    }


def _named_by_text(order):
    order["medicationCodeableConcept"] = {"text": "budesonide 3 mg gastro-resistant capsule"}


def _contained_medication(order):
    concept = order.pop("medicationCodeableConcept")
    order["contained"] = [{"resourceType": "Medication", "id": "med1", "code": concept}]
    order["medicationReference"] = {"reference": "#med1"}


@pytest.mark.parametrize(
    "name", [_named_by_atc, _named_by_text, _contained_medication], ids=lambda f: f.__name__[1:]
)
def test_the_drug_is_found_by_atc_code_text_or_a_contained_medication(name, client, ehr, enrol):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    order = copy.deepcopy(BUDESONIDE)
    name(order)

    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, order), headers=ehr["ehr"]
    ).json()["cards"]

    assert any("SAFE-BUD-CIRRHOSIS" in c["summary"] for c in cards), cards


def test_the_suggested_alternative_itself_passes_the_review(client, ehr, enrol):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, BUDESONIDE), headers=ehr["ehr"]
    ).json()["cards"]
    suggested = next(c for c in cards if c["indicator"] == "critical")["suggestions"][0]
    alternative = {"id": "pred-1", **suggested["actions"][1]["resource"]}

    again = client.post(
        SIGN, json=hook_request("order-sign", patient_id, alternative), headers=ehr["ehr"]
    )

    assert again.status_code == 200 and again.json()["cards"] == [], again.text


def test_an_in_range_prednisolone_order_gets_no_blocking_card(client, ehr, enrol):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    order = medication_request("pred-1", "8638", "prednisolone 5 MG Oral Tablet", 10, frequency=3)

    response = client.post(
        SIGN, json=hook_request("order-sign", patient_id, order), headers=ehr["ehr"]
    )

    assert response.status_code == 200, response.text
    assert response.json()["cards"] == []


def test_a_dose_out_of_range_is_a_warning_with_coded_override_reasons(client, ehr, enrol):
    patient_id = _screened(client, ehr, enrol)
    order = medication_request("pred-1", "8638", "prednisolone 20 MG Oral Tablet", 20, frequency=3)

    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, order), headers=ehr["ehr"]
    ).json()["cards"]

    (card,) = cards
    assert card["indicator"] == "warning" and "IND-STD" in card["summary"]
    assert "60 mg/day is above 30 mg/day" in card["detail"]
    codes = {r["code"] for r in card["overrideReasons"]}
    assert "patient-specific-dose" in codes
    assert all(r["system"].endswith("aih-override-reasons") for r in card["overrideReasons"])


def test_an_alert_the_order_would_raise_is_a_warning_and_nothing_is_written(
    client, ehr, enrol, uow_factory
):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    before = client.get(f"/patients/{patient_id}", headers=ehr["clinician"]).json()
    order = medication_request("aza-1", "1256", "azathioprine 50 MG Oral Tablet", 50, frequency=2)

    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, order), headers=ehr["ehr"]
    ).json()["cards"]

    alert = next(c for c in cards if "would raise an alert" in c["summary"])
    assert alert["indicator"] == "warning" and "SAFE-AZA-ADV" in alert["summary"]
    assert "hepatotoxicity" in alert["detail"] and "overrideReasons" not in alert
    # the rehearsal that found it left nothing behind: no order, no alert, no new version
    after = client.get(f"/patients/{patient_id}", headers=ehr["clinician"]).json()
    assert after == before
    assert _audit(uow_factory, "medication_ordered") == []


def test_each_draft_is_judged_against_the_patient_as_stored(client, ehr, enrol):
    """The first draft's rehearsal (the patient would start induction) is undone before the
    second is judged: 60 mg/day is still above the induction dose, not within the course."""
    patient_id = _screened(client, ehr, enrol)
    first = medication_request("pred-1", "8638", "prednisolone 10 MG Oral Tablet", 30)
    second = medication_request("pred-2", "8638", "prednisolone 20 MG Oral Tablet", 60)

    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, first, second), headers=ehr["ehr"]
    ).json()["cards"]

    (card,) = cards
    assert card["indicator"] == "warning" and "60 mg/day is above 30 mg/day" in card["detail"]


def test_a_dose_above_the_plausible_ceiling_is_critical(client, ehr, enrol):
    patient_id = _screened(client, ehr, enrol)
    order = medication_request("aza-1", "1256", "azathioprine", 0.5, unit="g")

    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, order), headers=ehr["ehr"]
    ).json()["cards"]

    assert [c["indicator"] for c in cards if "500 mg/day" in c["detail"]] == ["critical"], cards


def test_order_select_reviews_only_the_selected_draft_and_skips_the_missing_dose(
    client, ehr, enrol
):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    undosed = medication_request("bud-2", "19831", "Budesonide")
    undosed["dosageInstruction"] = []
    body = hook_request("order-select", patient_id, BUDESONIDE, undosed)
    assert body["context"]["selections"] == ["MedicationRequest/bud-2"]

    cards = client.post(SELECT, json=body, headers=ehr["ehr"]).json()["cards"]

    assert [c["indicator"] for c in cards] == ["critical", "warning"], cards
    assert all(
        "resourceId" not in a or a["resourceId"] == ["MedicationRequest/bud-2"]
        for c in cards
        for s in c.get("suggestions", [])
        for a in s["actions"]
    )
    # a selection of another kind of order (a lab) leaves nothing for this service to judge
    body["context"]["draftOrders"]["entry"].append(
        {"resource": {"resourceType": "ServiceRequest", "id": "lab-1", "status": "draft"}}
    )
    body["context"]["selections"] = ["ServiceRequest/lab-1"]
    lab_only = client.post(SELECT, json=body, headers=ehr["ehr"])
    assert lab_only.status_code == 200 and lab_only.json() == {"cards": []}
    # the same undosed draft at signing says that its dose was not checked
    signed = client.post(
        SIGN, json=hook_request("order-sign", patient_id, undosed), headers=ehr["ehr"]
    ).json()["cards"]
    assert any(c["indicator"] == "info" and "no dose" in c["summary"] for c in signed)


def test_a_drug_the_pathway_does_not_cover_gets_an_info_card(client, ehr, enrol):
    """The specification's order-select example: amoxicillin/clavulanate suspension."""
    patient_id = _screened(client, ehr, enrol)
    amoxicillin = medication_request(
        "smart-MedicationRequest-103",
        "617993",
        "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension",
        5,
        unit="mL",
        frequency=2,
    )

    response = client.post(
        SELECT, json=hook_request("order-select", patient_id, amoxicillin), headers=ehr["ehr"]
    )

    assert response.status_code == 200, response.text
    (card,) = response.json()["cards"]
    assert card["indicator"] == "info" and "not covered by the pathway" in card["summary"]


def test_the_ehr_patient_id_resolves_through_a_prefetched_identifier(client, ehr, enrol):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    with_mrn = client.post(
        "/patients",
        json={
            "site": "north",
            "clinician": "dr-a",
            "birth_date": "1980-01-01",
            "sex": "M",
            "weight_kg": 80,
            "external_id": "MRN-77",
            "facts": {"cirrhosis": True},
        },
        headers=ehr["clinician"],
    )
    assert with_mrn.status_code == 201, with_mrn.text
    prefetch = {
        "patient": {
            "resourceType": "Patient",
            "id": "ehr-5521",
            "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-77"}],
        }
    }

    without = client.post(
        SIGN, json=hook_request("order-sign", "ehr-5521", BUDESONIDE), headers=ehr["ehr"]
    )
    prefetched = client.post(
        SIGN,
        json=hook_request("order-sign", "ehr-5521", BUDESONIDE, prefetch=prefetch),
        headers=ehr["ehr"],
    )
    by_our_id = client.post(
        SIGN,
        json=hook_request("order-sign", patient_id, BUDESONIDE, prefetch={"patient": None}),
        headers=ehr["ehr"],
    )

    assert without.status_code == 404, without.text
    assert prefetched.status_code == 200, prefetched.text
    assert "SAFE-BUD-CIRRHOSIS" in prefetched.json()["cards"][0]["summary"]
    create = prefetched.json()["cards"][0]["suggestions"][0]["actions"][1]["resource"]
    assert create["subject"] == {"reference": "Patient/ehr-5521"}  # the EHR's own id
    assert by_our_id.status_code == 200
    # an EHR without a site knows patients by our id only
    global_ehr = client.post(
        SIGN,
        json=hook_request("order-sign", "ehr-5521", BUDESONIDE, prefetch=prefetch),
        headers=ehr["ehr-anywhere"],
    )
    assert global_ehr.status_code == 404


def test_prefetched_active_medications_the_pathway_has_not_recorded_get_an_info_card(
    client, ehr, enrol
):
    patient_id = _screened(client, ehr, enrol)
    order = medication_request("pred-1", "8638", "prednisolone 10 MG Oral Tablet", 30)
    azathioprine = {**medication_request("aza-9", "1256", "azathioprine", 100), "status": "active"}
    stopped = {**medication_request("tac-9", "42316", "tacrolimus", 2), "status": "stopped"}
    medications = {
        "resourceType": "Bundle",
        "entry": [{"resource": azathioprine}, {"resource": stopped}],
    }

    plain = client.post(
        SIGN, json=hook_request("order-sign", patient_id, order), headers=ehr["ehr"]
    )
    prefetched = client.post(
        SIGN,
        json=hook_request("order-sign", patient_id, order, prefetch={"medications": medications}),
        headers=ehr["ehr"],
    )

    assert plain.json()["cards"] == []
    (card,) = prefetched.json()["cards"]
    assert card["indicator"] == "info" and "lists azathioprine as active" in card["summary"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_feedback_records_overrides_and_accepted_suggestions_in_the_audit_trail(
    client, ehr, enrol, uow_factory
):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, BUDESONIDE), headers=ehr["ehr"]
    ).json()["cards"]
    critical = next(c for c in cards if c["indicator"] == "critical")
    warning = next(c for c in cards if c["indicator"] == "warning")
    feedback = {
        "feedback": [
            {
                "card": critical["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": critical["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2026-11-20T09:00:00Z",
            },
            {
                "card": warning["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": warning["overrideReasons"][3],
                    "userComment": "hepatology advised budesonide",
                },
                "outcomeTimestamp": "2026-11-20T09:00:05Z",
            },
        ]
    }

    response = client.post(f"{SIGN}/feedback", json=feedback, headers=ehr["ehr"])

    assert response.status_code == 200, response.text
    lines = _audit(uow_factory, "order_review_feedback")
    assert [(r["patient_id"], r["detail"]["outcome"]) for r in lines] == [
        (patient_id, "accepted"),
        (patient_id, "overridden"),
    ]
    assert lines[0]["detail"]["accepted_suggestions"] == [critical["suggestions"][0]["uuid"]]
    (overridden,) = _audit(uow_factory, "safety_rule_overridden")
    assert overridden["patient_id"] == patient_id and overridden["rule_ids"] == ["IND-BUD"]
    assert overridden["detail"]["overrides"] == "budesonide-without-high-steroid-risk"
    assert overridden["detail"]["reason_code"] == "specialist-advice"
    assert "hepatology advised budesonide" in overridden["reason"]


BAD_FEEDBACK = {
    "unknown card": (lambda f: f.update(card="5b5b1d7e-3e77-4a8c-9a53-1f7c1d3a9d11"), 404),
    "not a uuid": (lambda f: f.update(card="not-a-uuid"), 400),
    "unknown outcome": (lambda f: f.update(outcome="ignored"), 400),
    "reason not offered": (lambda f: f.update(overrideReason={"reason": {"code": "busy"}}), 400),
    "suggestion not offered": (lambda f: f.update(acceptedSuggestions=[{"id": "x"}]), 400),
    "comment with CR/LF": (lambda f: f.update(overrideReason={"userComment": "a\r\nb"}), 400),
    "no feedback": (None, 400),
}


def test_bad_feedback_is_refused_with_a_reason_and_writes_nothing(client, ehr, enrol, uow_factory):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, BUDESONIDE), headers=ehr["ehr"]
    ).json()["cards"]

    for case, (change, status) in BAD_FEEDBACK.items():
        entry = {"card": cards[0]["uuid"], "outcome": "overridden"}
        if change is not None:
            change(entry)
        feedback = {"feedback": [entry] if change is not None else []}

        response = client.post(f"{SIGN}/feedback", json=feedback, headers=ehr["ehr"])

        assert response.status_code == status, (case, response.text)
        assert response.json()["detail"], case
    assert _audit(uow_factory, "order_review_feedback") == []


def test_another_sites_patient_and_cards_are_not_found(client, ehr, enrol, uow_factory):
    patient_id = _screened(client, ehr, enrol, cirrhosis=True)
    cards = client.post(
        SIGN, json=hook_request("order-sign", patient_id, BUDESONIDE), headers=ehr["ehr"]
    ).json()["cards"]

    review = client.post(
        SIGN, json=hook_request("order-sign", patient_id, BUDESONIDE), headers=ehr["ehr-south"]
    )
    feedback = client.post(
        f"{SIGN}/feedback",
        json={"feedback": [{"card": cards[0]["uuid"], "outcome": "accepted"}]},
        headers=ehr["ehr-south"],
    )

    assert review.status_code == 404 and feedback.status_code == 404
    refusals = _audit(uow_factory, "access_refused")
    assert any(r["detail"]["route"] == "/cds-services/{service_id}" for r in refusals)


def test_only_the_ehr_role_may_call_the_service(client, ehr, enrol):
    patient_id = enrol()["patient_id"]
    body = hook_request("order-sign", patient_id, BUDESONIDE)

    for caller in ("clinician", "coordinator", "admin", "lab-interface", "auditor"):
        assert client.get("/cds-services", headers=ehr[caller]).status_code == 403, caller
        assert client.post(SIGN, json=body, headers=ehr[caller]).status_code == 403, caller
    assert client.post(SIGN, json=body).status_code == 401
    assert client.get("/cds-services", headers=ehr["ehr-anywhere"]).status_code == 200


def _drop_context(body):
    del body["context"]


def _dose(value):
    def change(body):
        rate = body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]
        rate["doseAndRate"][0]["doseQuantity"]["value"] = value

    return change


def _unit(unit):
    def change(body):
        rate = body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]
        rate["doseAndRate"][0]["doseQuantity"].update(unit=unit, code=unit)

    return change


MALFORMED = {
    "no context": (_drop_context, "context is required"),
    "wrong hook": (lambda b: b.update(hook="patient-view"), "answers the order-sign hook"),
    "no patient": (lambda b: b["context"].pop("patientId"), "patientId is required"),
    "no bundle": (lambda b: b["context"].update(draftOrders={"entry": []}), "FHIR Bundle"),
    "no MedicationRequest": (
        lambda b: b["context"]["draftOrders"].update(
            entry=[{"resource": {"resourceType": "ServiceRequest", "id": "lab-1"}}]
        ),
        "no MedicationRequest",
    ),
    "zero dose": (_dose(0), "must be above 0"),
    "text dose": (_dose("9"), "finite number"),
    "1e308": (_dose(1e308), "not a plausible daily dose"),
    "unknown unit": (_unit("tablet"), "unit 'tablet'"),
    "dose for a drug given in mg only": (_unit("mg/kg"), "ordered in mg/day"),
    "bad prefetch": (
        lambda b: b.update(prefetch={"patient": {"resourceType": "Group"}}),
        "Patient",
    ),
    "other prefetched patient": (
        lambda b: b.update(prefetch={"patient": {"resourceType": "Patient", "id": "zz"}}),
        "not the patient",
    ),
    "CR/LF id": (lambda b: b["context"].update(patientId="a\r\nb"), "one line"),
}


def test_a_malformed_request_is_a_400_with_the_reason(client, ehr, enrol, uow_factory):
    patient_id = enrol(cirrhosis=True)["patient_id"]

    for case, (change, reason) in MALFORMED.items():
        body = copy.deepcopy(hook_request("order-sign", patient_id, BUDESONIDE))
        change(body)

        response = client.post(SIGN, json=body, headers=ehr["ehr"])

        assert response.status_code == 400, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json", case
        assert reason in response.json()["detail"], (case, response.json()["detail"])
    assert _audit(uow_factory, "order_reviewed") == []


UNREADABLE = {
    "NaN": b'{"hook": "order-sign", "context": {"patientId": "x", "n": NaN}}',
    "deep JSON": b'{"hook": "order-sign", "context": ' + b'{"a": ' * 200 + b"1" + b"}" * 201,
    "not an object": b"[1, 2]",
    "not JSON": b"not json",
}


def test_unreadable_bodies_are_refused_before_the_service(client, ehr):
    for case, raw in UNREADABLE.items():
        response = client.post(
            SIGN, content=raw, headers={**ehr["ehr"], "Content-Type": "application/json"}
        )

        assert 400 <= response.status_code < 500, (case, response.text)
        assert response.json()["detail"], case


def test_an_unknown_service_is_404(client, ehr):
    response = client.post("/cds-services/nope", json={}, headers=ehr["ehr"])

    assert response.status_code == 404 and "aih-order-sign" in response.json()["detail"]
