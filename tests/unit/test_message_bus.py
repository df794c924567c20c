"""The message bus with a fake unit of work: reminders follow the domain's events alone."""

from __future__ import annotations

from engine.clock import ManualClock
from engine.domain.events import MilestoneClosed, MilestoneOpened
from engine.domain.model import Patient
from engine.services import message_bus
from tests.fixtures_domain import (
    Clock,
    make_patient,
    screened,
    start_azathioprine,
    start_prednisolone,
)
from tests.unit.fakes import FakeUnitOfWork


def _handled(patient: Patient, clock: Clock) -> FakeUnitOfWork:
    """The bus run over the patient's events, as a commit runs it."""
    uow = FakeUnitOfWork(ManualClock(clock.now))
    uow.patients.seen[patient.id] = patient
    uow.events_handled = list(patient.events)
    message_bus.handle(uow.events_handled, uow)
    return uow


def test_enrolment_plans_reminders_for_each_milestone_it_opened():
    chart = make_patient()
    opened = [e.milestone for e in chart.patient.events if isinstance(e, MilestoneOpened)]

    uow = _handled(chart.patient, chart.clock)

    assert opened, "enrolment opens the screening milestones"
    assert {r.milestone_row_id for r in uow.reminders.added} == {m.id for m in opened}
    assert uow.reminders.cancelled == []


def test_starting_azathioprine_cancels_the_reminders_of_the_milestone_it_completed():
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    chart.patient.events.clear()  # as a committed unit of work leaves it
    chart.advance(weeks=2)

    start_azathioprine(chart)
    closed = {e.milestone.id for e in chart.patient.events if isinstance(e, MilestoneClosed)}
    uow = _handled(chart.patient, chart.clock)

    assert closed
    assert set(uow.reminders.cancelled) == closed
    assert not closed & {r.milestone_row_id for r in uow.reminders.added}


def test_a_milestone_opened_and_closed_in_one_unit_of_work_plans_and_cancels_nothing():
    chart = make_patient()
    milestone = next(e.milestone for e in chart.patient.events if isinstance(e, MilestoneOpened))
    chart.patient.events.clear()
    chart.patient.events.append(MilestoneOpened(chart.patient.id, chart.now, milestone))
    chart.patient.close_milestone(milestone, "cancelled", chart.now, "left screening")

    uow = _handled(chart.patient, chart.clock)

    assert uow.reminders.added == [] and uow.reminders.cancelled == []
