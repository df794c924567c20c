"""Response definitions that drive the pathway: non-response, insufficient response, intolerance."""

from __future__ import annotations

from engine.domain.durations import parse_duration
from tests.fixtures_domain import (
    covers,
    make_patient,
    on_standard_induction,
    screened,
    start_prednisolone,
    sustained_remission,
    to_maintenance,
    to_taper_10mg,
)


@covers("RSP-NONRESP")
def test_alt_fall_under_50pct_at_4_weeks_moves_to_second_line():
    chart = make_patient()
    screened(chart, alt=400)
    start_prednisolone(chart)
    chart.advance(weeks=4)

    outcome = chart.lab("ALT", 250)  # 37.5% fall

    assert chart.state == "second_line.assessment"
    assert outcome.transition.rules == ("RSP-NONRESP",)
    assert "second-line-regimen-choice" in chart.pending_ids()


@covers("RSP-NONRESP")
def test_alt_fall_under_50pct_before_4_weeks_does_not_yet_move():
    chart = make_patient()
    screened(chart, alt=400)
    start_prednisolone(chart)
    chart.advance(weeks=3, days=6)

    chart.lab("ALT", 250)

    assert chart.state == "induction.prednisolone"


@covers("RSP-NONRESP")
def test_alt_fall_of_exactly_50pct_at_4_weeks_is_a_response():
    chart = make_patient()
    screened(chart, alt=400)
    start_prednisolone(chart)
    chart.advance(weeks=4)

    chart.lab("ALT", 200)

    assert chart.state == "induction.prednisolone"
    assert "partial-response" in chart.alert_ids()


@covers("RSP-NONRESP")
def test_alt_rise_at_4_weeks_is_non_response():
    chart = make_patient()
    screened(chart, alt=400)
    start_prednisolone(chart)
    chart.advance(weeks=5)

    chart.lab("ALT", 600)

    assert chart.state == "second_line.assessment"


@covers("RSP-INSUFF", "SAFE-PARTIAL", "GOAL-CBR")
def test_complete_response_check_is_due_6_months_after_start():
    chart = on_standard_induction()

    row = chart.pending("complete-response-check")

    assert row.due_at == parse_duration("P6M").after(chart.patient.treatment_start)
    assert {"RSP-INSUFF", "SAFE-PARTIAL", "GOAL-CBR"} <= set(row.rule_ids)


@covers("RSP-INSUFF", "SAFE-PARTIAL")
def test_no_complete_response_by_6_months_moves_to_second_line_on_review():
    chart = to_taper_10mg()
    chart.labs(ALT=45, IgG=20)  # improved but not normal: partial response
    chart.advance(months=5)
    chart.review()
    assert chart.state == "taper.10mg"

    chart.advance(months=1)
    outcome = chart.review()

    assert chart.state == "second_line.assessment"
    assert set(outcome.transition.rules) == {"RSP-INSUFF", "SAFE-PARTIAL"}


@covers("RSP-INSUFF")
def test_no_complete_response_by_6_months_moves_to_second_line_on_the_next_result():
    chart = to_taper_10mg()
    chart.advance(months=6)

    chart.lab("IgG", 19)  # ALT 60 from week 4 is still the latest

    assert chart.state == "second_line.assessment"


@covers("RSP-INSUFF", "GOAL-CBR")
def test_complete_response_at_6_months_stays_on_first_line():
    chart = to_taper_10mg()
    chart.labs(ALT=30, AST=30, IgG=12)
    chart.advance(months=6)

    chart.review()

    assert chart.state == "taper.10mg"


@covers("RSP-INTOL")
def test_azathioprine_intolerance_moves_to_second_line():
    chart = on_standard_induction()

    outcome = chart.event("intolerance", drug="azathioprine")

    assert chart.state == "second_line.assessment"
    assert outcome.transition.rules == ("RSP-INTOL",)
    assert chart.patient.clinical_events[-1].data == {"drug": "azathioprine"}


@covers("RSP-INTOL")
def test_prednisolone_intolerance_via_alias_in_maintenance_moves_to_second_line():
    chart = to_maintenance()

    chart.event("intolerance", drug="prednisone")

    assert chart.state == "second_line.assessment"


@covers("RSP-INTOL")
def test_intolerance_of_a_drug_outside_first_line_is_recorded_but_does_not_move():
    chart = on_standard_induction()

    outcome = chart.event("intolerance", drug="methotrexate")

    assert chart.state == "induction.prednisolone"
    assert outcome.transition is None
    assert chart.patient.clinical_events[-1].kind == "intolerance"


@covers("RSP-INTOL", "SL-MMF", "SL-TAC")
def test_intolerance_on_a_second_line_agent_returns_to_regimen_choice():
    chart = on_standard_induction()
    chart.event("intolerance", drug="azathioprine")
    chart.order("mycophenolate_mofetil", mg_per_day=1000)
    assert chart.state == "second_line.mmf"

    chart.event("intolerance", drug="mmf")

    assert chart.state == "second_line.assessment"
    chart.order("tacrolimus", mg_per_kg_day=0.075)
    assert chart.state == "second_line.tacrolimus"


@covers("SL-AZA2")
def test_no_remission_after_2_years_of_standard_therapy_moves_to_second_line_on_review():
    chart = to_maintenance()
    sustained_remission(chart, 12)
    chart.labs(IgG=22)  # IgG raised again: no longer complete response
    chart.advance(months=6)
    chart.review()
    assert chart.state == "maintenance"  # not yet 2 years since treatment start

    chart.clock.now = parse_duration("P2Y").after(chart.patient.treatment_start)
    outcome = chart.review()

    assert chart.state == "second_line.assessment"
    assert outcome.transition.rules == ("SL-AZA2",)
