"""Screening before treatment: TPMT, hepatitis B serology, vaccination, baseline labs."""

from __future__ import annotations

import pytest

from engine.domain.durations import parse_duration
from tests.fixtures_domain import (
    covers,
    make_patient,
    screened,
    start_prednisolone,
)


@covers("SCR-TPMT", "SCR-HBV")
def test_enrolment_schedules_tpmt_and_hbv_screening_reminders_for_the_care_team():
    chart = make_patient()

    assert chart.state == "screening"
    for milestone_id in ("tpmt-screening", "hbv-screening"):
        row = chart.pending(milestone_id)
        assert row is not None
        assert row.due_at == chart.patient.enrolled_at
        assert row.recipients == ["care_team"]
    assert "SCR-TPMT" in chart.pending("tpmt-screening").rule_ids
    assert "SCR-HBV" in chart.pending("hbv-screening").rule_ids


@covers("SCR-TPMT")
def test_tpmt_reminder_is_completed_by_the_tpmt_result():
    chart = make_patient()

    outcome = chart.lab("TPMT", 30)

    assert "tpmt-screening" in outcome.milestones_closed
    assert chart.pending("tpmt-screening") is None
    assert chart.milestones("tpmt-screening")[0].status == "completed"


@covers("SCR-HBV")
def test_hbv_reminder_stays_open_until_all_three_serologies_are_resulted():
    chart = make_patient()

    chart.lab("HBSAG", "negative")
    chart.lab("ANTI_HBC", "negative")
    assert chart.pending("hbv-screening") is not None

    outcome = chart.lab("ANTI_HBS", "positive")

    assert "hbv-screening" in outcome.milestones_closed
    assert chart.pending("hbv-screening") is None


@covers("SCR-TPMT", "SCR-HBV")
def test_screening_reminders_cancelled_when_treatment_moves_past_induction_unresulted():
    chart = make_patient()
    chart.labs(ALT=400, AST=300, IgG=25, BILI=30)
    start_prednisolone(chart)
    assert {"tpmt-screening", "hbv-screening"} <= chart.pending_ids()

    chart.event("intolerance", drug="prednisolone")

    assert chart.state == "second_line.assessment"
    assert chart.milestones("tpmt-screening")[0].status == "cancelled"
    assert chart.milestones("hbv-screening")[0].status == "cancelled"


@covers("SCR-HBV")
def test_past_hepatitis_b_raises_reactivation_warning():
    chart = make_patient()

    outcome = chart.lab("ANTI_HBC", "positive")

    assert "hbv-reactivation-risk" in outcome.alerts_raised
    alert = chart.alert("hbv-reactivation-risk")
    assert alert.severity == "warning"
    assert alert.rule_ids == ["SCR-HBV"]


@covers("SCR-HBV")
def test_present_hepatitis_b_raises_reactivation_warning_and_negative_serology_does_not():
    positive = make_patient()
    positive.lab("HBSAG", "Positive")  # qualitative results are case-insensitive
    assert "hbv-reactivation-risk" in positive.alert_ids()

    negative = make_patient()
    screened(negative)
    assert "hbv-reactivation-risk" not in negative.alert_ids()


@covers("SCR-VACC")
def test_non_immune_patient_is_flagged_for_hepatitis_a_and_b_vaccination():
    chart = make_patient()

    screened(chart, anti_hbs="negative", anti_hbc="negative")
    chart.lab("ANTI_HAV", "negative")

    assert {"hbv-vaccination-due", "hav-vaccination-due"} <= chart.alert_ids()
    assert chart.alert("hbv-vaccination-due").rule_ids == ["SCR-VACC"]


@covers("SCR-VACC")
def test_vaccination_alert_resolves_once_immune():
    chart = make_patient()
    screened(chart, anti_hbs="negative")
    assert "hbv-vaccination-due" in chart.alert_ids()

    outcome = chart.lab("ANTI_HBS", "positive")

    assert "hbv-vaccination-due" in outcome.alerts_resolved
    assert "hbv-vaccination-due" not in chart.alert_ids()


@covers("SCR-VACC")
def test_immune_patient_is_not_flagged_for_vaccination():
    chart = make_patient()

    screened(chart, anti_hbs="positive")
    chart.lab("ANTI_HAV", "positive")

    assert not {"hbv-vaccination-due", "hav-vaccination-due"} & chart.alert_ids()


@covers("SCR-BASE")
def test_induction_without_baseline_labs_raises_baseline_incomplete_warning():
    chart = make_patient()
    chart.lab("TPMT", 30)

    start_prednisolone(chart)

    assert chart.state == "induction.prednisolone"
    assert "baseline-incomplete" in chart.alert_ids()
    assert chart.alert("baseline-incomplete").rule_ids == ["SCR-BASE"]


@covers("SCR-BASE")
def test_baseline_warning_resolves_when_alt_ast_igg_and_bilirubin_are_known():
    chart = make_patient()
    start_prednisolone(chart)
    chart.labs(ALT=400, AST=300, IgG=25)
    assert "baseline-incomplete" in chart.alert_ids()

    outcome = chart.lab("BILI", 30)

    assert "baseline-incomplete" in outcome.alerts_resolved


@covers("SCR-BASE", "RSP-NONRESP")
@pytest.mark.parametrize(
    ("week_4_alt", "state"), [(180, "induction.prednisolone"), (210, "second_line.assessment")]
)
def test_baseline_is_the_last_value_before_treatment_started(week_4_alt, state):
    chart = make_patient()
    chart.lab("ALT", 1000)
    chart.advance(days=2)
    screened(chart, alt=400)  # the last pre-treatment ALT is the baseline
    start_prednisolone(chart)
    chart.advance(weeks=4)

    # 180 is a 55% fall from 400 (but only 82% from the older 1000): a response;
    # 210 is under a 50% fall from the baseline 400: non-response.
    chart.labs(ALT=week_4_alt, AST=week_4_alt)

    assert chart.state == state


@covers("SCR-HBV")
def test_past_hbv_on_treatment_gets_hbv_dna_monitoring_every_3_months():
    chart = make_patient()
    screened(chart, anti_hbc="positive")
    start_prednisolone(chart)

    row = chart.pending("hbv-dna-monitoring")

    assert row is not None and row.recipients == ["patient", "care_team"]
    assert row.due_at == parse_duration("P3M").after(chart.patient.treatment_start)
    assert chart.facts["hbv_exposed"] is True


@covers("SCR-HBV")
def test_a_later_negative_anti_hbc_keeps_the_monitoring_and_detectable_dna_alerts_at_once():
    chart = make_patient()
    screened(chart, anti_hbc="positive")
    start_prednisolone(chart)
    chart.advance(weeks=2)
    chart.lab("ANTI_HBC", "negative")
    assert chart.facts["hbv_exposed"] is True
    assert chart.pending("hbv-dna-monitoring") is not None
    assert "hbv-vaccination-due" not in chart.alert_ids()

    outcome = chart.lab("HBV_DNA", 850, "IU/mL")

    assert "hbv-reactivation" in outcome.alerts_raised
    work = chart.pending("alert:hbv-reactivation")
    assert work.urgent and set(work.recipients) == {"clinician", "care_team"}
    assert work.due_at == chart.now
