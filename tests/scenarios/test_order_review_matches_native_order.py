# ruff: noqa: F811  (the API fixtures are imported by name and taken as parameters)
"""A CDS Hooks review of a draft gives exactly the native order's verdict, for any patient.

Property: for a random patient (cirrhosis, pregnancy, TPMT deficiency, HBV exposure, high
steroid risk, decompensation, a child or an adult, screened or not, already on prednisolone
or not, days into treatment) and a random draft (a pathway drug named by RxNorm, ATC, text or
a contained Medication; a dose in mg, g, micrograms or mg/kg, per administration with a
frequency per day; oral or IV), the `order-sign` review over HTTP and the native
`POST /patients/{id}/orders` of the same order agree:

- the native order, each overridable refusal lifted in turn with a reason, meets exactly the
  review's findings in the review's order, up to the first one no reason lifts;
- a critical card iff the native order is finally refused; no card but warnings iff it is
  placed once the warnings are lifted, and then the alerts it raises are the alert cards;
- a draft the native order cannot read (a unit the drug is not ordered in, a route the drug
  does not take) is a 400 from the service and a 422 without a rule from the native order.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.adapters.orm import audit_log
from engine.services.care_pathways import care_pathway
from tests.api.conftest import (  # noqa: F401  (fixtures)
    app,
    callers,
    client,
    clock,
    database_url,
    enrol,
    uow_factory,
)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
SIGN = "/cds-services/aih-order-sign"
#: drug -> (RxNorm code or None, ATC code, words a clinician types)
DRUGS = {
    "prednisolone": ("8638", "H02AB06", "Prednisolone 5 MG Oral Tablet"),
    "methylprednisolone": ("6902", "H02AB04", "methylprednisolone sodium succinate"),
    "budesonide": ("19831", "A07EA06", "Budesonide 3 MG Oral Capsule"),
    "azathioprine": ("1256", "L04AX01", "Azathioprine 50 MG Oral Tablet"),
    "mycophenolate_mofetil": (None, None, "mycophenolate 500 mg tablet"),
    "tacrolimus": ("42316", "L04AD02", "Tacrolimus 1 MG Oral Capsule"),
    "mercaptopurine": ("103", "L01BB02", "Mercaptopurine 50 MG Oral Tablet"),
    "obeticholic_acid": (None, "A05AA04", "Ocaliva 5 mg tablet"),
}
#: unit -> (mg per unit or None for mg/kg, the administrations' values a draft may use)
UNITS = {
    "mg": (1, [1, 2.5, 3, 5, 10, 15, 20, 25, 30, 40, 50, 60, 100, 150, 250, 500, 1000, 5000]),
    "g": (1000, [0.5, 1, 2]),
    "ug": (0.001, [500, 5000, 40000]),
    "mg/kg": (None, [0.25, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10]),
}
BASELINE = (("ALT", 420, "U/L"), ("AST", 300, "U/L"), ("IgG", 25, "g/L"), ("BILI", 30, "umol/L"))

patients = st.fixed_dictionaries(
    {
        "facts": st.fixed_dictionaries(
            {},
            optional={
                name: st.just(True)
                for name in (
                    "cirrhosis",
                    "pregnant",
                    "tpmt_deficient",
                    "hbv_exposed",
                    "high_steroid_risk",
                    "decompensated",
                )
            },
        ),
        "child": st.booleans(),
        "weight_kg": st.sampled_from([18, 30, 50, 64, 90]),
        "tpmt": st.sampled_from([None, 3, 30]),  # None: not screened; 3 U/mL is deficient
        "on_prednisolone": st.booleans(),
        "days_on": st.sampled_from([0, 3, 20]),
    }
)
drafts = st.fixed_dictionaries(
    {
        "drug": st.sampled_from(sorted(DRUGS)),
        "named_by": st.sampled_from(["rxnorm", "atc", "text", "contained"]),
        "unit": st.sampled_from(sorted(UNITS)),
        "value_index": st.integers(0, 17),
        "per_day": st.sampled_from([1, 2, 3]),
        "timing": st.sampled_from(["repeat", "code"]),
        "route": st.sampled_from(["oral", "oral", "iv"]),
    }
)


def _medication_request(d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The draft as an EHR sends it, and the same order as the native API takes it."""
    rxnorm, atc, words = DRUGS[d["drug"]]
    named_by = d["named_by"]
    if (named_by == "rxnorm" and not rxnorm) or (named_by == "atc" and not atc):
        named_by = "text"
    concept: dict[str, Any] = {"text": words}
    if named_by in ("rxnorm", "contained") and rxnorm:
        concept = {"coding": [{"system": RXNORM, "code": rxnorm, "display": words}]}
    if named_by == "atc":
        concept = {"coding": [{"system": ATC, "code": atc}]}
    factor, values = UNITS[d["unit"]]
    value = values[d["value_index"] % len(values)]
    per_day = d["per_day"]
    timing: dict[str, Any] = {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    if d["timing"] == "code":
        timing = {"code": {"coding": [{"code": {1: "QD", 2: "BID", 3: "TID"}[per_day]}]}}
    route = {"oral": ("26643006", "Oral route"), "iv": ("47625008", "Intravenous route")}
    code, display = route[d["route"]]
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/example"},
        "dosageInstruction": [
            {
                "timing": timing,
                "route": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": value,
                            "unit": d["unit"],
                            "system": UCUM,
                            "code": d["unit"],
                        }
                    }
                ],
            }
        ],
    }
    if named_by == "contained":
        resource["contained"] = [{"resourceType": "Medication", "id": "m1", "code": concept}]
        resource["medicationReference"] = {"reference": "#m1"}
    else:
        resource["medicationCodeableConcept"] = concept
    native: dict[str, Any] = {"drug": d["drug"], "route": d["route"]}
    if factor is None:
        native["mg_per_kg_day"] = round(value * per_day, 4)
    else:
        native["mg_per_day"] = round(value * factor * per_day, 4)
    return resource, native


def _patient(client, callers, clock, p: dict[str, Any]) -> str:
    body = {
        "site": "north",
        "clinician": "dr-a",
        "birth_date": "2016-03-01" if p["child"] else "1979-04-02",
        "sex": "F",
        "weight_kg": p["weight_kg"],
        "given_name": "Ada",
        "family_name": "Example",
        "facts": p["facts"],
    }
    enrolled = client.post("/patients", json=body, headers=callers["prescriber"])
    assert enrolled.status_code == 201, enrolled.text
    patient_id = enrolled.json()["patient_id"]
    labs = list(BASELINE) + ([("TPMT", p["tpmt"], "U/mL")] if p["tpmt"] is not None else [])
    for code, value, unit in labs:
        recorded = client.post(
            f"/patients/{patient_id}/labs",
            json={"code": code, "value": value, "unit": unit},
            headers=callers["prescriber"],
        )
        assert recorded.status_code == 200, recorded.text
    if p["on_prednisolone"]:
        client.post(
            f"/patients/{patient_id}/orders",
            json={"drug": "prednisolone", "mg_per_day": 30},
            headers=callers["prescriber"],
        )  # refused for some patients: they then have no treatment under way
        clock.advance(days=p["days_on"])
    return patient_id


def _native(client, callers, patient_id: str, order: dict[str, Any]) -> dict[str, Any]:
    """The native order, each overridable refusal lifted with a reason in turn."""
    overrides: dict[str, str] = {}
    while True:
        answer = client.post(
            f"/patients/{patient_id}/orders",
            json={**order, "overrides": overrides},
            headers=callers["prescriber"],
        )
        body = answer.json()
        if answer.status_code == 200:
            return {"placed": True, "lifted": list(overrides), "alerts": body["alerts_raised"]}
        assert answer.status_code == 422, answer.text
        if "block_id" not in body:
            return {"unreadable": body["detail"]}
        if body["overridable"] and body["block_id"] not in overrides:
            overrides[body["block_id"]] = "reviewed for the EHR"
            continue
        return {
            "placed": False,
            "lifted": list(overrides),
            "refused": body["block_id"],
            "rules": body["rule_ids"],
        }


def _review_cards(uow_factory) -> list[dict[str, Any]]:
    with uow_factory() as uow:
        row = uow.session.execute(
            select(audit_log.c.detail)
            .where(audit_log.c.action == "order_reviewed")
            .order_by(audit_log.c.id.desc())
            .limit(1)
        ).one()
    return row.detail["cards"]


def _route_not_covered(client, callers, patient_id, order, reviewed, uow_factory) -> None:
    """A route the pathway does not dose the drug by: the native order refuses to read it; the
    review says so and still finds the drug's blocks, which hold whatever the route (the
    native order of the same drug by mouth meets them)."""
    assert reviewed.status_code == 200, reviewed.text
    cards = reviewed.json()["cards"]
    assert any("route is not covered" in c["summary"] for c in cards), cards
    blocks = {b.id for b in care_pathway().pathway.blocks}
    findings = [c for c in _review_cards(uow_factory) if c["item"] is not None]
    assert {f["item"] for f in findings} <= blocks, findings  # no dose was judged
    oral = _native(client, callers, patient_id, {**order, "route": "oral"})
    met_orally = [*oral.get("lifted", []), *([oral["refused"]] if oral.get("refused") else [])]
    assert [i for i in met_orally if i in blocks] == [
        f["item"] for f in findings if f["item"] in met_orally
    ], (oral, findings)
    if oral.get("refused") in blocks:
        critical = {c["source"]["topic"]["code"] for c in cards if c["indicator"] == "critical"}
        assert oral["rules"][0] in critical, (oral, cards)


@pytest.fixture
def ehr(callers, uow_factory):
    """An EHR and a clinician at north whose tokens outlast the examples' advancing clock."""
    callers.add(uow_factory, "ehr", "ehr", "north", days=3650)
    callers.add(uow_factory, "prescriber", "clinician", "north", days=3650)
    return callers


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(patient=patients, draft=drafts)
def test_a_review_gives_the_native_orders_verdict(
    patient,
    draft,
    client,
    ehr,
    clock,
    uow_factory,
):
    patient_id = _patient(client, ehr, clock, patient)
    resource, order = _medication_request(draft)
    request = {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "hook": "order-sign",
        "context": {
            "userId": "PractitionerRole/1",
            "patientId": patient_id,
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": resource}]},
        },
    }

    reviewed = client.post(SIGN, json=request, headers=ehr["ehr"])
    native = _native(client, ehr, patient_id, order)

    if "route" in native.get("unreadable", ""):
        _route_not_covered(client, ehr, patient_id, order, reviewed, uow_factory)
        return
    if "unreadable" in native:
        assert reviewed.status_code == 400, (native, reviewed.text)
        return
    assert reviewed.status_code == 200, (native, reviewed.text)
    cards = reviewed.json()["cards"]
    audited = _review_cards(uow_factory)
    findings = [c for c in audited if c["item"] is not None]
    met = [f["item"] for f in findings]
    # the native order meets the review's findings in order up to the first no reason lifts
    if native["placed"]:
        assert met == native["lifted"], (native, findings)
        assert all(f["overridable"] for f in findings)
        assert not [c for c in cards if c["indicator"] == "critical"], cards
        alert_cards = [c for c in cards if "would raise an alert" in c["summary"]]
        assert len(alert_cards) == len(native["alerts"]), (native, alert_cards)
    else:
        first_refusal = next(i for i, f in enumerate(findings) if not f["overridable"])
        assert met[: first_refusal + 1] == [*native["lifted"], native["refused"]], (
            native,
            findings,
        )
        assert findings[first_refusal]["rules"] == native["rules"]
        critical = [c for c in cards if c["indicator"] == "critical"]
        assert critical and critical[0]["source"]["topic"]["code"] == native["rules"][0]
