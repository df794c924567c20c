"""Second line: mycophenolate, tacrolimus, high-dose azathioprine and other agents."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fixtures_domain import (
    CHILD_BIRTH,
    Chart,
    covers,
    make_patient,
    normal_labs,
    on_standard_induction,
    screened,
    start_prednisolone,
)


def _in_second_line(**patient) -> Chart:
    chart = make_patient(**patient)
    screened(chart)
    start_prednisolone(chart)
    chart.advance(days=14)
    chart.event("intolerance", drug="prednisolone")
    assert chart.state == "second_line.assessment"
    return chart


@covers("SL-MMF", "RSP-INTOL")
def test_intolerance_asks_for_mycophenolate_within_a_week():
    chart = _in_second_line()

    row = chart.pending("second-line-regimen-choice-intolerance")

    assert row.due_at == chart.now + timedelta(days=7)
    assert row.recipients == ["clinician"]
    assert "mycophenolate" in row.title
    assert chart.pending("second-line-regimen-choice") is None
    assert chart.facts["intolerance_recorded"] is True


@covers("SL-TAC", "SL-AZA2", "RSP-NONRESP")
def test_refractory_disease_asks_for_tacrolimus_or_high_dose_azathioprine():
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    chart.advance(weeks=4)

    chart.lab("ALT", 300)  # 25% fall from 400: non-response

    assert chart.state == "second_line.assessment"
    assert chart.facts["refractory"] is True
    row = chart.pending("second-line-regimen-choice")
    assert "tacrolimus" in row.title and "azathioprine" in row.title
    assert chart.pending("second-line-regimen-choice-intolerance") is None


@covers("RSP-INTOL", "SL-MMF")
def test_azathioprine_after_azathioprine_intolerance_needs_an_override_with_a_reason():
    chart = on_standard_induction()
    chart.event("intolerance", drug="azathioprine")

    error = chart.refused(lambda: chart.order("azathioprine", mg_per_kg_day=2), "RSP-INTOL")
    assert error.block_id == "aza-after-intolerance"

    chart.order(
        "azathioprine",
        mg_per_kg_day=2,
        overrides={"aza-after-intolerance": "mild nausea only; patient prefers re-challenge"},
    )
    assert chart.state == "second_line.aza_high"


@covers("SL-MMF")
def test_mmf_order_in_second_line_starts_mmf_and_its_response_assessment():
    chart = _in_second_line()

    outcome = chart.order("mmf", mg_per_day=1000)

    assert chart.state == "second_line.mmf"
    assert outcome.transition.rules == ("SL-MMF",)
    assert chart.active_drugs()["mycophenolate_mofetil"].mg_per_day == 1000
    assert chart.milestones("second-line-regimen-choice-intolerance")[0].status == "completed"
    row = chart.pending("second-line-response-assessment")
    assert row.due_at == chart.now + timedelta(weeks=4)


@covers("SL-MMF", "GOAL-CBR", "LT-MAINT")
def test_complete_response_on_mmf_after_4_weeks_enters_maintenance():
    chart = _in_second_line()
    chart.order("mmf", mg_per_day=1000)
    chart.advance(weeks=2)
    normal_labs(chart)
    assert chart.state == "second_line.mmf"  # judged after 4 weeks on the agent

    chart.advance(weeks=2)
    outcome = chart.lab("ALT", 30)

    assert chart.state == "maintenance"
    assert "GOAL-CBR" in outcome.transition.rules
    assert chart.milestones("second-line-response-assessment")[0].status == "completed"


@covers("SL-MMF")
def test_mmf_order_outside_second_line_does_not_switch_the_stage():
    chart = on_standard_induction()

    chart.order("mmf", mg_per_day=1000)

    assert chart.state == "induction.prednisolone"


@covers("SL-TAC")
def test_tacrolimus_for_refractory_disease_dosed_per_kg():
    chart = _in_second_line(weight_kg=80)

    outcome = chart.order("tacrolimus", mg_per_kg_day=0.075)

    assert chart.state == "second_line.tacrolimus"
    assert outcome.transition.rules == ("SL-TAC",)
    assert chart.active_drugs()["tacrolimus"].mg_per_day == pytest.approx(6.0)
    regimen = chart.cp.pathway.regimens["tacrolimus"]["components"][0]
    assert regimen["target_trough_ng_ml"] == {"min": 0.6, "max": 1.0}


@covers("SL-TAC", "SL-MMF")
def test_switch_from_mmf_to_tacrolimus_and_back():
    chart = _in_second_line()
    chart.order("mmf", mg_per_day=1000)

    chart.order("tacrolimus", mg_per_kg_day=0.075)
    assert chart.state == "second_line.tacrolimus"

    chart.order("mycophenolate", mg_per_day=1500)
    assert chart.state == "second_line.mmf"


@covers("SL-AZA2")
def test_azathioprine_2mg_per_kg_enters_high_dose_azathioprine():
    chart = _in_second_line()

    outcome = chart.order("azathioprine", mg_per_kg_day=2)

    assert chart.state == "second_line.aza_high"
    assert outcome.transition.rules == ("SL-AZA2",)


@covers("SL-AZA2")
def test_azathioprine_dose_in_mg_counts_per_kg_for_the_high_dose_step():
    chart = _in_second_line(weight_kg=60)

    chart.order("azathioprine", mg_per_day=120)  # 2 mg/kg/day

    assert chart.state == "second_line.aza_high"
    assert chart.active_drugs()["azathioprine"].mg_per_kg_day == 2


@covers("SL-AZA2")
def test_azathioprine_below_2mg_per_kg_in_second_line_is_refused_unless_overridden():
    chart = _in_second_line()

    error = chart.refused(lambda: chart.order("azathioprine", mg_per_kg_day=1.5), "SL-AZA2")
    assert error.block_id == "azathioprine-second-line-high"
    assert error.overridable

    chart.order(
        "azathioprine",
        mg_per_kg_day=1.5,
        overrides={"azathioprine-second-line-high": "intermediate TPMT activity"},
    )
    assert chart.state == "second_line.aza_high"
    order = chart.active_drugs()["azathioprine"]
    assert order.overrides == ["azathioprine-second-line-high"]
    override = [e for e in chart.patient.clinical_events if e.kind == "safety_rule_overridden"]
    assert override[0].data["reason"] == "intermediate TPMT activity"
    assert override[0].data["rules"] == ["SL-AZA2"]


@covers("SL-OTHER")
@pytest.mark.parametrize(
    ("drug", "dose"),
    [
        ("cyclosporine", {"mg_per_kg_day": 3}),
        ("ciclosporin", {"mg_per_kg_day": 3}),
        ("6-mercaptopurine", {"mg_per_kg_day": 1}),
        ("methotrexate", {"mg_per_day": 2}),
        ("cyclophosphamide", {"mg_per_kg_day": 1.5}),
    ],
)
def test_other_agent_with_limited_evidence_enters_second_line_other(drug, dose):
    chart = _in_second_line()

    outcome = chart.order(drug, **dose)

    assert chart.state == "second_line.other"
    assert outcome.transition.rules == ("SL-OTHER",)


@covers("SL-OTHER")
def test_high_dose_prednisone_for_treatment_failure_is_second_line_other():
    chart = _in_second_line()

    chart.order("prednisone", mg_per_day=60)

    assert chart.state == "second_line.other"


@covers("IND-CHILD", "CHILD-TX")
def test_child_in_second_line_raises_the_paediatric_treatment_failure_watch():
    chart = _in_second_line(birth_date=CHILD_BIRTH, weight_kg=30)

    alert = chart.alert("paediatric-treatment-failure-watch")

    assert alert is not None
    assert set(alert.rule_ids) == {"IND-CHILD", "CHILD-TX"}


@covers("IND-CHILD")
def test_adult_in_second_line_has_no_paediatric_watch():
    chart = _in_second_line()

    assert "paediatric-treatment-failure-watch" not in chart.alert_ids()
