"""Transplant evaluation: indications, referral, outcome; children who deteriorate."""

from __future__ import annotations

import pytest

from engine.domain.errors import EventNotAllowed
from tests.fixtures_domain import (
    CHILD_BIRTH,
    covers,
    make_patient,
    on_standard_induction,
    screened,
    start_prednisolone,
)


@covers("TX-IND")
def test_transplant_referral_without_criteria_does_not_move():
    chart = on_standard_induction()

    outcome = chart.event("transplant_referral")

    assert chart.state == "induction.prednisolone"
    assert outcome.transition is None


@covers("TX-IND")
@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("severity_scores", {"meld": 16}),
        ("severity_scores", {"child_pugh": 11}),
        ("hcc_diagnosed", {}),
        ("decompensation", {"feature": "hepatorenal_syndrome"}),
    ],
)
def test_each_transplant_indication_raises_the_criteria_alert(kind, data):
    chart = make_patient()
    chart.event("acute_severe_presentation")  # decompensation here does not move the patient

    chart.event(kind, **data)

    assert chart.state == "acute_severe"

    alert = chart.alert("transplant-criteria-met")
    assert alert is not None
    assert alert.severity == "critical"
    assert "TX-IND" in alert.rule_ids


@covers("TX-IND")
def test_meld_exactly_15_and_child_pugh_exactly_10_are_not_transplant_criteria():
    chart = on_standard_induction()

    chart.event("severity_scores", meld=15, child_pugh=10)
    chart.event("transplant_referral")

    assert chart.facts["meld"] == 15 and chart.facts["child_pugh"] == 10
    assert "transplant-criteria-met" not in chart.alert_ids()
    assert chart.state == "induction.prednisolone"


@covers("TX-IND")
def test_referral_with_meld_over_15_enters_transplant_evaluation():
    chart = on_standard_induction()
    chart.event("severity_scores", meld=18)

    outcome = chart.event("transplant_referral")

    assert chart.state == "transplant_evaluation"
    assert set(outcome.transition.rules) == {"TX-IND", "CHILD-TX"}
    assert "transplant-criteria-met" not in chart.alert_ids()  # not in evaluation
    referral = chart.pending("transplant-referral")
    assert referral.urgent and set(referral.recipients) == {"clinician", "care_team"}


@covers("TX-IND", "SL-OTHER")
def test_transplant_declined_returns_to_second_line_regimen_choice():
    chart = on_standard_induction()
    chart.event("hcc_diagnosed")
    chart.event("transplant_referral")

    outcome = chart.event("transplant_declined")

    assert chart.state == "second_line.assessment"
    assert chart.milestones("transplant-referral")[0].status == "completed"
    assert outcome.transition.rules == ("TX-IND", "SL-OTHER")


@covers("TX-OUT")
def test_transplant_performed_moves_to_transplanted_and_stops_everything():
    chart = on_standard_induction()
    chart.lab("ALT", 200)  # under 10x ULN: no steroid trial
    chart.event("decompensation", feature="ascites")
    assert chart.state == "transplant_evaluation"

    outcome = chart.event("transplant_performed")

    assert chart.state == "transplanted"
    assert outcome.transition.rules == ("TX-OUT",)
    assert chart.active_drugs() == {}
    assert {o.status for o in chart.patient.orders} == {"stopped"}
    assert chart.patient.open_milestones() == []
    assert chart.milestones("transplant-referral")[0].status == "completed"
    assert chart.cp.pathway.states["transplanted"].final


@covers("TX-OUT", "MON-LIFELONG")
def test_transplanted_is_final_no_discharge_or_second_transplant():
    chart = on_standard_induction()
    chart.event("hcc_diagnosed")
    chart.event("transplant_referral")
    chart.event("transplant_performed")
    before = chart.snapshot()

    for kind, data in (("discharged", {"reason": "x"}), ("transplant_performed", {})):
        with pytest.raises(EventNotAllowed):
            chart.event(kind, **data)

    assert chart.snapshot() == before


@covers("TX-OUT")
def test_transplant_performed_from_screening_is_not_allowed_and_changes_nothing():
    chart = make_patient()
    before = chart.snapshot()

    with pytest.raises(EventNotAllowed) as caught:
        chart.event("transplant_performed")

    assert "screening" in caught.value.message
    assert chart.state == "screening"
    assert chart.snapshot() == before


@covers("CHILD-TX", "IND-CHILD")
def test_child_deteriorating_despite_treatment_is_referred_like_an_adult():
    chart = make_patient(birth_date=CHILD_BIRTH, weight_kg=30)
    screened(chart)
    start_prednisolone(chart, mg_per_day=60)
    assert chart.state == "induction.paediatric"
    chart.event("severity_scores", child_pugh=11)

    outcome = chart.event("transplant_referral")

    assert chart.state == "transplant_evaluation"
    assert "CHILD-TX" in outcome.transition.rules
    assert "paediatric-treatment-failure-watch" in chart.alert_ids()
