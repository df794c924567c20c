"""The message bus: domain events of a unit of work handed to their handlers before commit.

The domain records what happened (`engine.domain.events`); the handlers here do what follows
from it inside the same transaction: plan the reminders of opened milestones, cancel the
unsent reminders and close the live queue items of closed ones. Handlers take all the events
of one kind at once, so a batch of inputs costs one statement per kind, not one per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from engine.domain.events import DomainEvent, MilestoneClosed, MilestoneOpened
from engine.domain.reminders import plan_reminders

if TYPE_CHECKING:
    from engine.services.unit_of_work import UnitOfWork

Handler = Callable[[list[Any], "UnitOfWork"], None]


def plan_reminders_of_opened(events: list[MilestoneOpened], uow: UnitOfWork) -> None:
    """Reminders for milestones opened in this unit of work and still open at its end."""
    now = uow.clock.now()
    for event in events:
        if event.milestone.is_open:
            patient = uow.patients.seen[event.patient_id]
            uow.reminders.add(plan_reminders(patient, event.milestone, now))


def cancel_reminders_of_closed(events: list[MilestoneClosed], uow: UnitOfWork) -> None:
    """Cancel what was planned for milestones closed in this unit of work (one statement)."""
    opened_here = {id(e.milestone) for e in uow.events_handled if isinstance(e, MilestoneOpened)}
    closed = [e.milestone.id for e in events if id(e.milestone) not in opened_here]
    uow.reminders.cancel_for_milestones(closed, uow.clock.now(), "milestone closed")


HANDLERS: dict[type[DomainEvent], list[Handler]] = {
    MilestoneOpened: [plan_reminders_of_opened],
    MilestoneClosed: [cancel_reminders_of_closed],
}


def handle(events: Iterable[DomainEvent], uow: UnitOfWork) -> None:
    """Run each kind's handlers once over that kind's events, in the order kinds first appear."""
    by_kind: dict[type[DomainEvent], list[DomainEvent]] = defaultdict(list)
    for event in events:
        by_kind[type(event)].append(event)
    for kind, batch in by_kind.items():
        for handler in HANDLERS.get(kind, ()):
            handler(batch, uow)
