"""Milestone mechanics: scheduling from anchors, completion, leaving scope, idempotency."""

from __future__ import annotations

from tests.fixtures_domain import (
    covers,
    make_patient,
    on_standard_induction,
    screened,
    start_prednisolone,
    to_maintenance,
)


@covers("IND-AZA-DELAY", "MON-RESP", "RSP-INTOL")
def test_leaving_a_state_cancels_its_pending_milestones():
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    assert {"start-azathioprine", "response-assessment", "taper-to-10mg"} <= chart.pending_ids()

    outcome = chart.event("intolerance", drug="prednisolone")

    assert chart.state == "second_line.assessment"
    assert chart.milestones("start-azathioprine")[0].status == "cancelled"
    assert chart.milestones("response-assessment")[0].status == "cancelled"
    assert chart.milestones("complete-response-check")[0].status == "cancelled"
    # A reminder to do something the patient no longer needs is closed as done.
    assert chart.milestones("taper-to-10mg")[0].status == "completed"
    assert {"start-azathioprine", "response-assessment"} <= set(outcome.milestones_closed)
    cancelled = chart.milestones("start-azathioprine")[0]
    assert cancelled.closed_at == chart.now
    assert "induction.prednisolone" in cancelled.close_reason
    # Milestones whose scope includes the new state stay open.
    assert chart.pending("monthly-aminotransferases") is not None


@covers("MON-ALT")
def test_milestones_carry_rule_ids_and_unique_idempotency_keys():
    chart = to_maintenance()

    keys = [m.idempotency_key for m in chart.patient.milestones]

    assert len(keys) == len(set(keys))
    rules = chart.cp.pathway.rules
    for row in chart.patient.milestones:
        assert row.rule_ids and set(row.rule_ids) <= set(rules)
        assert row.grace_until >= row.due_at
        assert row.patient_id == chart.patient.id


@covers("MON-ALT")
def test_a_missed_monthly_check_stays_open_and_is_not_rescheduled_twice():
    chart = on_standard_induction()
    row = chart.pending("monthly-aminotransferases")

    chart.advance(months=3)
    chart.review()

    assert chart.pending("monthly-aminotransferases") is row
    assert len(chart.milestones("monthly-aminotransferases")) == 1
    assert row.reviewed_at is None  # only review milestones are marked reviewed
    assert chart.now > row.grace_until  # overdue: the workers escalate it


@covers("TAP-4W", "MON-RESP")
def test_repeating_the_same_input_schedules_nothing_twice():
    chart = on_standard_induction()
    before = {m.id for m in chart.patient.milestones}

    chart.lab("INR", 1.1)
    chart.lab("INR", 1.1)

    assert {m.id for m in chart.patient.milestones} == before
