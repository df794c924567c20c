"""Acute severe AIH: IV steroids, steroid trial for decompensation, the 2-week verdict."""

from __future__ import annotations

from datetime import timedelta

from tests.fixtures_domain import (
    Chart,
    covers,
    make_patient,
    screened,
    start_prednisolone,
)


def _on_iv_steroids(bili: float = 30) -> Chart:
    chart = make_patient(weight_kg=70)
    screened(chart, bili=bili)
    chart.order("methylprednisolone", mg_per_kg_day=1, route="iv")
    assert chart.state == "acute_severe"
    return chart


@covers("ASV-IV")
def test_iv_methylprednisolone_from_screening_enters_acute_severe():
    chart = make_patient(weight_kg=70)
    screened(chart)

    outcome = chart.order("methylprednisolone", mg_per_kg_day=1, route="IV")

    assert chart.state == "acute_severe"
    assert outcome.transition.rules == ("ASV-IV",)
    order = chart.active_drugs()["methylprednisolone"]
    assert (order.route, order.mg_per_day) == ("iv", 70)
    assert chart.patient.treatment_start == chart.now
    assert chart.facts["steroid_trial_done"] is True


@covers("ASV-IV")
def test_oral_methylprednisolone_is_not_the_acute_severe_regimen():
    chart = make_patient()
    screened(chart)

    chart.order("methylprednisolone", mg_per_day=32, route="oral")

    assert chart.state == "screening"


@covers("ASV-IV")
def test_acute_severe_presentation_during_induction_enters_acute_severe():
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)

    outcome = chart.event("acute_severe_presentation")

    assert chart.state == "acute_severe"
    assert chart.facts["acute_severe"] is True
    assert outcome.transition.rules == ("ASV-IV",)


@covers("ASV-2W", "ASV-FAIL")
def test_acute_severe_gets_an_urgent_review_on_day_14():
    chart = _on_iv_steroids()

    row = chart.pending("acute-severe-review")

    assert row.urgent is True
    assert row.due_at == chart.now + timedelta(days=14)
    assert row.grace_until == row.due_at + timedelta(days=1)


@covers("ASV-2W")
def test_improving_bilirubin_at_day_14_moves_to_oral_induction():
    chart = _on_iv_steroids(bili=80)
    chart.advance(days=14)

    outcome = chart.lab("BILI", 40)

    assert chart.state == "induction.prednisolone"
    assert outcome.transition.rules == ("ASV-2W",)
    assert chart.milestones("acute-severe-review")[0].status == "completed"


@covers("ASV-2W")
def test_improving_bilirubin_before_day_14_is_not_yet_judged():
    chart = _on_iv_steroids(bili=80)
    chart.advance(days=7)

    chart.lab("BILI", 40)

    assert chart.state == "acute_severe"


@covers("ASV-2W")
def test_falling_alt_alone_at_day_14_counts_as_responding_on_review():
    chart = _on_iv_steroids()
    chart.advance(days=5)
    chart.lab("ALT", 150)  # from 400
    chart.advance(days=9)

    chart.review()

    assert chart.state == "induction.prednisolone"


@covers("ASV-2W", "ASV-FAIL")
def test_review_at_day_14_without_new_results_keeps_acute_severe_open():
    chart = _on_iv_steroids()
    chart.advance(days=14)

    chart.review()

    assert chart.state == "acute_severe"
    row = chart.pending("acute-severe-review")
    assert row is not None and row.reviewed_at == chart.now


@covers("ASV-FAIL")
def test_acute_severe_bilirubin_not_improving_at_day_14_goes_to_transplant_evaluation():
    chart = _on_iv_steroids(bili=80)
    chart.advance(days=14)

    outcome = chart.lab("BILI", 95)

    assert chart.state == "transplant_evaluation"
    assert outcome.transition.rules == ("ASV-FAIL",)
    referral = chart.pending("transplant-referral")
    assert referral is not None and referral.urgent


@covers("ASV-FAIL")
def test_bilirubin_not_improving_goes_to_transplant_evaluation_even_if_alt_fell():
    chart = _on_iv_steroids(bili=80)
    chart.advance(days=7)
    chart.lab("BILI", 110)
    chart.advance(days=7)

    chart.lab("ALT", 150)  # ALT fell from 400, but bilirubin is worse

    assert chart.state == "transplant_evaluation"


@covers("ASV-FAIL")
def test_bilirubin_not_improving_found_at_the_day_14_review():
    chart = _on_iv_steroids(bili=80)
    chart.advance(days=10)
    chart.lab("BILI", 80)
    chart.advance(days=4)

    outcome = chart.review()

    assert chart.state == "transplant_evaluation"
    assert outcome.transition.rules == ("ASV-FAIL",)


@covers("ASV-FAIL")
def test_multiacinar_necrosis_on_biopsy_goes_to_transplant_evaluation_at_once():
    chart = _on_iv_steroids()
    chart.advance(days=3)

    outcome = chart.event("biopsy_resulted", histological_activity=True, multiacinar_necrosis=True)

    assert chart.state == "transplant_evaluation"
    assert outcome.transition.rules == ("ASV-FAIL",)


@covers("ASV-FAIL")
def test_biopsy_without_multiacinar_necrosis_keeps_acute_severe():
    chart = _on_iv_steroids()

    chart.event("biopsy_resulted", histological_activity=True, multiacinar_necrosis=False)

    assert chart.state == "acute_severe"


@covers("ASV-TRIAL")
def test_decompensation_with_severe_inflammation_gets_a_steroid_trial_first():
    chart = make_patient()
    screened(chart, alt=450)  # >= 10x ULN

    outcome = chart.event("decompensation", feature="ascites")

    assert chart.state == "acute_severe"
    assert outcome.transition.rules == ("ASV-TRIAL",)
    assert chart.facts["decompensated"] is True
    assert chart.facts["steroid_trial_done"] is True


@covers("ASV-TRIAL", "TX-IND")
def test_decompensation_without_severe_inflammation_goes_to_transplant_evaluation():
    chart = make_patient()
    screened(chart, alt=390)  # under 10x ULN
    start_prednisolone(chart)

    outcome = chart.event("decompensation", feature="hepatic_encephalopathy")

    assert chart.state == "transplant_evaluation"
    assert outcome.transition.rules == ("TX-IND",)


@covers("ASV-TRIAL", "TX-IND")
def test_decompensation_after_a_failed_steroid_trial_goes_to_transplant_evaluation():
    chart = make_patient()
    screened(chart, alt=450)
    chart.event("decompensation", feature="ascites")
    chart.advance(days=14)
    chart.lab("BILI", 20)
    assert chart.state == "induction.prednisolone"

    chart.advance(days=3)
    chart.event("decompensation", feature="variceal_bleeding")  # latest ALT still 450

    assert chart.state == "transplant_evaluation"
