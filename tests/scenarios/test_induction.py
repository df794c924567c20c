"""First-line induction: prednisolone + azathioprine, budesonide, children."""

from __future__ import annotations

from datetime import timedelta

from tests.fixtures_domain import (
    CHILD_BIRTH,
    covers,
    make_patient,
    screened,
    start_azathioprine,
    start_prednisolone,
)


@covers("IND-STD")
def test_prednisolone_order_from_screening_starts_induction_and_the_treatment_clock():
    chart = make_patient()
    screened(chart)
    chart.advance(days=3)

    outcome = start_prednisolone(chart)

    assert chart.state == "induction.prednisolone"
    assert outcome.transition is not None
    assert "IND-STD" in outcome.transition.rules
    assert chart.patient.treatment_start == chart.now
    assert chart.patient.entered("induction") == chart.now
    assert chart.active_drugs()["prednisolone"].mg_per_day == 30


@covers("IND-STD")
def test_prednisone_alias_is_prednisolone_and_starts_induction():
    chart = make_patient()
    screened(chart)

    chart.order("Prednisone", mg_per_day=30)

    assert chart.state == "induction.prednisolone"
    assert set(chart.active_drugs()) == {"prednisolone"}


@covers("IND-STD")
def test_state_change_is_audited_with_its_rule_and_reason():
    chart = make_patient()
    screened(chart)

    start_prednisolone(chart)

    changes = [a for a in chart.patient.audit if a.action == "state_changed"]
    assert changes[-1].from_state == "screening"
    assert changes[-1].to_state == "induction.prednisolone"
    assert "IND-STD" in changes[-1].rule_ids
    assert changes[-1].reason.startswith("IND-STD: ")


@covers("IND-STD", "IND-AZA-DELAY")
def test_azathioprine_before_any_steroid_is_refused_and_does_not_start_induction():
    chart = make_patient()
    screened(chart)

    error = chart.refused(lambda: start_azathioprine(chart), "IND-AZA-DELAY")

    assert error.block_id == "aza-before-steroid-delay" and error.overridable
    assert chart.state == "screening"
    assert chart.patient.treatment_start is None
    assert "azathioprine" not in chart.active_drugs()


@covers("IND-AZA-DELAY", "IND-STD")
def test_start_azathioprine_reminder_is_due_on_day_14_of_the_steroid():
    chart = make_patient()
    screened(chart)

    start_prednisolone(chart)

    reminder = chart.pending("start-azathioprine")
    assert reminder is not None
    assert reminder.due_at == chart.patient.treatment_start + timedelta(days=14)
    assert reminder.recipients == ["clinician"]
    assert "IND-AZA-DELAY" in reminder.rule_ids


@covers("IND-AZA-DELAY")
def test_azathioprine_order_completes_the_start_azathioprine_reminder():
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    chart.advance(days=14)

    outcome = start_azathioprine(chart)

    assert "start-azathioprine" in outcome.milestones_closed
    assert chart.milestones("start-azathioprine")[0].status == "completed"
    assert chart.state == "induction.prednisolone"


@covers("IND-AZA-DELAY")
def test_no_start_azathioprine_reminder_when_already_on_azathioprine():
    chart = make_patient()
    screened(chart)
    chart.order(
        "azathioprine",
        mg_per_kg_day=1.5,
        overrides={"aza-before-steroid-delay": "on azathioprine for years at another centre"},
    )

    start_prednisolone(chart)

    assert chart.milestones("start-azathioprine") == []


@covers("IND-BUD")
def test_budesonide_for_a_non_cirrhotic_patient_starts_budesonide_induction():
    chart = make_patient(cirrhosis=False, high_steroid_risk=True)
    screened(chart)

    outcome = chart.order("budesonide", mg_per_day=9)

    assert chart.state == "induction.budesonide"
    assert "IND-BUD" in outcome.transition.rules
    assert chart.patient.treatment_start == chart.now


@covers("IND-BUD", "GOAL-CBR")
def test_budesonide_induction_with_complete_response_after_4_weeks_goes_to_maintenance():
    chart = make_patient(high_steroid_risk=True)
    screened(chart)
    chart.order("budesonide", mg_per_day=9)
    chart.advance(weeks=2)
    chart.labs(IgG=12, ALT=30)
    assert chart.state == "induction.budesonide"  # not before 4 weeks

    chart.advance(weeks=2)
    outcome = chart.lab("ALT", 30)  # IgG still normal from week 2

    assert chart.state == "maintenance"
    assert "GOAL-CBR" in outcome.transition.rules


@covers("IND-CHILD")
def test_child_on_prednisolone_enters_paediatric_induction():
    chart = make_patient(birth_date=CHILD_BIRTH, weight_kg=30)
    screened(chart)

    outcome = chart.order("prednisolone", mg_per_kg_day=2)

    assert chart.state == "induction.paediatric"
    assert outcome.transition.rules == ("IND-CHILD",)
    assert chart.active_drugs()["prednisolone"].mg_per_day == 60


@covers("IND-CHILD")
def test_adult_on_the_same_weight_based_order_enters_adult_induction():
    chart = make_patient(weight_kg=30)
    screened(chart)

    chart.order("prednisolone", mg_per_kg_day=1)  # 30 mg/day

    assert chart.state == "induction.prednisolone"


@covers("IND-CHILD")
def test_child_gets_a_dose_decrease_reminder_after_2_weeks_of_high_dose():
    chart = make_patient(birth_date=CHILD_BIRTH, weight_kg=30)
    screened(chart)
    chart.order("prednisolone", mg_per_kg_day=2)

    reminder = chart.pending("paediatric-dose-decrease")

    assert reminder is not None
    assert reminder.due_at == chart.patient.treatment_start + timedelta(weeks=2)
    assert "start-azathioprine" not in chart.pending_ids()  # scoped to adult prednisolone


@covers("IND-CHILD", "TAP-4W")
def test_child_gradual_decrease_advances_at_each_step_and_completes_the_reminder():
    chart = make_patient(birth_date=CHILD_BIRTH, weight_kg=30)
    screened(chart)
    chart.order("prednisolone", mg_per_kg_day=2)  # 60 mg/day
    chart.advance(days=14)

    outcome = chart.order("prednisolone", mg_per_day=40)

    assert chart.state == "induction.paediatric_decrease"
    assert "IND-CHILD" in outcome.transition.rules
    assert chart.milestones("paediatric-dose-decrease")[0].status == "completed"

    chart.advance(days=7)
    chart.order("prednisolone", mg_per_day=20)
    assert chart.state == "induction.paediatric_decrease"

    chart.advance(days=7)
    chart.order("prednisolone", mg_per_day=10)
    assert chart.state == "taper.10mg"


@covers("IND-CHILD")
def test_child_may_not_drop_straight_to_10mg_before_2_weeks_of_high_dose():
    chart = make_patient(birth_date=CHILD_BIRTH, weight_kg=30)
    screened(chart)
    chart.order("prednisolone", mg_per_kg_day=2)
    chart.advance(days=10)

    chart.order("prednisolone", mg_per_day=10)

    assert chart.state == "induction.paediatric_decrease"  # a decrease, not yet the taper


@covers("IND-CHILD")
def test_child_high_dose_above_the_cap_is_refused_with_the_rule():
    chart = make_patient(birth_date=CHILD_BIRTH, weight_kg=40)
    screened(chart)

    error = chart.refused(
        lambda: chart.order("prednisolone", mg_per_kg_day=2.5), "IND-CHILD"
    )  # 100 mg/day: above 2 mg/kg/day and above 60 mg/day

    assert error.block_id == "prednisolone-child-high-dose"
    assert chart.state == "screening"
