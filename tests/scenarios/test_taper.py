"""Steroid taper: 10 mg at 4 weeks, 7.5 mg once aminotransferases are normal, 5 mg at 3 months."""

from __future__ import annotations

from datetime import timedelta

from engine.domain.durations import parse_duration
from tests.fixtures_domain import (
    covers,
    on_standard_induction,
    to_maintenance,
    to_taper_7_5mg,
    to_taper_10mg,
)


@covers("TAP-4W")
def test_taper_to_10mg_reminder_is_due_at_week_4():
    chart = on_standard_induction()

    reminder = chart.pending("taper-to-10mg")

    assert reminder is not None
    assert reminder.due_at == chart.patient.treatment_start + timedelta(weeks=4)
    assert reminder.rule_ids == ["TAP-4W"]


@covers("TAP-4W")
def test_prednisolone_10mg_before_4_weeks_does_not_advance_to_taper():
    chart = on_standard_induction()  # day 14
    chart.advance(days=7)

    outcome = chart.order("prednisolone", mg_per_day=10)

    assert chart.state == "induction.prednisolone"
    assert outcome.transition is None


@covers("TAP-4W")
def test_prednisolone_10mg_at_4_weeks_enters_taper_and_completes_the_reminder():
    chart = on_standard_induction()
    chart.advance(days=14)
    chart.lab("ALT", 60)

    outcome = chart.order("prednisolone", mg_per_day=10)

    assert chart.state == "taper.10mg"
    assert outcome.transition.rules == ("TAP-4W",)
    assert chart.milestones("taper-to-10mg")[0].status == "completed"
    # The previous 30 mg order is superseded, not left active alongside.
    prednisolone = [o for o in chart.patient.orders if o.drug == "prednisolone"]
    assert [o.status for o in prednisolone] == ["superseded", "active"]
    assert chart.active_drugs()["prednisolone"].mg_per_day == 10


@covers("TAP-4W")
def test_prednisolone_15mg_at_4_weeks_is_not_yet_the_10mg_step():
    chart = on_standard_induction()
    chart.advance(days=14)

    chart.order("prednisolone", mg_per_day=15)

    assert chart.state == "induction.prednisolone"


@covers("TAP-7.5")
def test_7_5mg_step_refused_while_aminotransferases_are_raised():
    chart = to_taper_10mg()
    chart.labs(ALT=30, AST=60)

    error = chart.refused(lambda: chart.order("prednisolone", mg_per_day=7.5), "TAP-7.5")

    assert error.block_id == "taper-below-10mg-while-raised" and error.overridable
    assert chart.state == "taper.10mg"
    assert chart.pending("taper-to-7-5mg") is None


@covers("TAP-7.5")
def test_aminotransferases_rising_again_on_7_5mg_raise_an_alert_to_review_the_taper():
    chart = to_taper_7_5mg()

    outcome = chart.labs(ALT=90)

    assert "taper-below-10mg-while-raised" in outcome.alerts_raised
    assert chart.alert("taper-below-10mg-while-raised").severity == "critical"


@covers("TAP-7.5")
def test_normal_aminotransferases_on_10mg_schedule_the_7_5mg_step_now():
    chart = to_taper_10mg()
    chart.advance(days=20)
    chart.lab("ALT", 30)
    assert chart.pending("taper-to-7-5mg") is None  # AST not yet normal

    outcome = chart.lab("AST", 30)

    assert "taper-to-7-5mg" in outcome.milestones_scheduled
    assert chart.pending("taper-to-7-5mg").due_at == chart.now


@covers("TAP-7.5")
def test_7_5mg_order_with_normal_aminotransferases_enters_the_7_5mg_step():
    chart = to_taper_10mg()
    chart.advance(days=20)
    chart.labs(ALT=30, AST=30)

    outcome = chart.order("prednisolone", mg_per_day=7.5)

    assert chart.state == "taper.7_5mg"
    assert outcome.transition.rules == ("TAP-7.5",)
    assert chart.milestones("taper-to-7-5mg")[0].status == "completed"


@covers("TAP-5")
def test_entering_7_5mg_schedules_the_5mg_step_3_months_later():
    chart = to_taper_7_5mg()

    reminder = chart.pending("taper-to-5mg")

    entered = chart.patient.entered("taper.7_5mg")
    assert entered == chart.now
    assert reminder.due_at == parse_duration("P3M").after(entered)
    assert reminder.rule_ids == ["TAP-5"]


@covers("TAP-5")
def test_5mg_order_before_3_months_at_7_5mg_does_not_advance():
    chart = to_taper_7_5mg()
    chart.advance(months=2)

    chart.order("prednisolone", mg_per_day=5)

    assert chart.state == "taper.7_5mg"


@covers("TAP-5")
def test_5mg_order_after_3_months_at_7_5mg_enters_the_5mg_step():
    chart = to_taper_7_5mg()
    chart.advance(months=3)

    outcome = chart.order("prednisolone", mg_per_day=5)

    assert chart.state == "taper.5mg"
    assert outcome.transition.rules == ("TAP-5",)
    assert chart.milestones("taper-to-5mg")[0].status == "completed"


@covers("TAP-AZA", "LT-MAINT")
def test_azathioprine_stays_the_active_steroid_sparing_agent_through_taper_into_maintenance():
    chart = to_maintenance()

    assert chart.state == "maintenance"
    aza = [o for o in chart.patient.orders if o.drug == "azathioprine"]
    assert len(aza) == 1
    assert aza[0].status == "active"
    assert aza[0].ordered_at == chart.patient.treatment_start + timedelta(days=14)
    assert aza[0].mg_per_kg_day == 1.5
    assert "TAP-AZA" in chart.cp.pathway.states["taper"].rules
