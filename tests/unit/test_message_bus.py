"""The message bus with a fake unit of work: reminders follow the domain's events alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


@dataclass
class FakeReminders:
    added: list[Any] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def add(self, rows: Any) -> None:
        self.added.extend(rows)

    def cancel_for_milestones(self, ids: list[str], now: datetime, why: str) -> None:
        self.cancelled.extend(ids)


@dataclass
class FakePatients:
    seen: dict[str, Patient]


class FakeUnitOfWork:
    """What the handlers use of a unit of work: the seen patients, reminders, the clock."""

    def __init__(self, patient: Patient, clock: Clock):
        self.patients = FakePatients({patient.id: patient})
        self.reminders = FakeReminders()
        self.clock = ManualClock(clock.now)
        self.events_handled = list(patient.events)


def _handled(patient: Patient, clock: Clock) -> FakeUnitOfWork:
    uow = FakeUnitOfWork(patient, clock)
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
