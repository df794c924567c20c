"""Follow-ups from the clinical read-through: flares in taper, HBsAg carriers, relapse reminder."""

from __future__ import annotations

from tests.fixtures_domain import covers, make_patient, screened, to_taper_10mg, withdrawn


@covers("RSP-NONRESP", "MON-RISK")
def test_alt_flare_during_taper_is_flagged_not_treated_as_primary_non_response():
    chart = to_taper_10mg()
    chart.advance(weeks=6)

    chart.lab("ALT", 380)

    assert chart.state == "taper.10mg"
    assert "partial-response" in chart.alert_ids()


@covers("SCR-VACC", "SCR-HBV")
def test_hbsag_carrier_gets_reactivation_alert_not_a_vaccination_prompt():
    chart = screened(make_patient(), hbsag="positive", anti_hbc="negative", anti_hbs="negative")

    assert "hbv-reactivation-risk" in chart.alert_ids()
    assert "hbv-vaccination-due" not in chart.alert_ids()


@covers("LT-RELAPSE-RISK", "LT-MAINT")
def test_relapse_schedules_an_urgent_re_treatment_reminder_completed_by_restarting():
    chart = withdrawn()
    chart.advance(months=4)
    chart.lab("ALT", 150)
    reminder = chart.pending("re-treatment-after-relapse")
    assert chart.state == "relapse" and reminder is not None and reminder.urgent

    chart.order("prednisolone", mg_per_day=30)

    assert chart.state == "induction.prednisolone"
    assert chart.milestones("re-treatment-after-relapse", "completed")


@covers("SCR-BASE")
def test_lab_codes_are_accepted_in_any_case_and_as_loinc():
    chart = make_patient()

    chart.lab("igg", 20, "g/L")
    chart.lab("1742-6", 90, "U/L")

    assert {r.code for r in chart.patient.labs} == {"IgG", "ALT"}


@covers("RSP-INSUFF", "GOAL-CBR")
def test_abnormal_labs_just_before_6_months_do_not_skip_the_response_review():
    chart = to_taper_10mg()
    due = chart.pending("complete-response-check").due_at
    chart.advance(days=(due - chart.now).days - 3)
    chart.labs(ALT=55, IgG=20)
    assert chart.pending("complete-response-check") is not None

    chart.advance(days=4)
    chart.review()

    assert chart.state == "second_line.assessment"


@covers("SL-AZA2", "LT-MAINT")
def test_two_year_remission_review_is_closed_once_reviewed():
    chart = to_taper_10mg()
    due = chart.pending("no-remission-review").due_at
    chart.advance(days=(due - chart.now).days + 1)
    chart.review()

    assert chart.pending("no-remission-review") is None
    assert chart.milestones("no-remission-review", "completed")
