"""Domain events: what happened to a patient in one unit of work, recorded by the domain.

`CarePathway` records them on the patient as it decides; the unit of work hands them to the
message bus (`engine.services.message_bus`) on commit, whose handlers plan and cancel
reminders inside the same transaction. The unit of work never digs the changes out of the ORM.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model records these events, so it imports this module
    from engine.domain.model import Alert, Milestone


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to one patient at one moment."""

    patient_id: str
    at: datetime


@dataclass(frozen=True)
class MilestoneOpened(DomainEvent):
    """A milestone (or an alert's work) was opened: its reminders are due to be planned."""

    milestone: Milestone


@dataclass(frozen=True)
class MilestoneClosed(DomainEvent):
    """A milestone was completed or cancelled: its reminders not yet sent are moot."""

    milestone: Milestone


@dataclass(frozen=True)
class AlertRaised(DomainEvent):
    alert: Alert


@dataclass(frozen=True)
class AlertResolved(DomainEvent):
    alert: Alert


@dataclass(frozen=True)
class StateChanged(DomainEvent):
    """The patient moved from one pathway state to another, by the rules named."""

    before: str
    after: str
    rules: tuple[str, ...]
