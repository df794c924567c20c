"""Reminders and coordinator work items: who is told what, when, for which milestone.

A milestone (a lab, an action, a review the guideline asks for) becomes one reminder per
recipient at its due time, plus one escalation at the end of its grace period. Reminders are
rows with a due time and an idempotency key; the dispatcher delivers them, never a timer.
Plain dataclasses and pure functions: no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.domain.model import Milestone, Patient, new_id

#: Reminder statuses the dispatcher still has to deal with ("open" rows).
OPEN_REMINDER_STATUSES = ("scheduled", "claimed", "sending")

#: Which channel reaches each recipient role.
CHANNELS = {"patient": "email", "clinician": "email", "care_team": "queue"}

#: Queues a coordinator watches, in the order a page shows them.
QUEUES = ("escalated", "failed_delivery", "overdue", "due_today", "awaiting_results")


@dataclass(eq=False)
class Reminder:
    """One notice to one recipient about one milestone occurrence."""

    patient_id: str
    milestone_row_id: str
    milestone_id: str
    title: str
    milestone_kind: str
    purpose: str  # notify | escalate
    channel: str  # email | queue
    recipient: str  # patient | clinician | care_team | coordinator
    due_at: datetime
    next_attempt_at: datetime
    created_at: datetime
    idempotency_key: str
    site: str
    clinician: str
    urgent: bool = False
    rule_ids: list[str] = field(default_factory=list)
    status: str = "scheduled"  # scheduled|claimed|sending|sent|failed|cancelled
    claim_token: str | None = None
    claimed_at: datetime | None = None
    attempts: int = 0
    sent_at: datetime | None = None
    message_id: str | None = None
    last_error: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class CoordinatorItem:
    """A piece of work in a care coordinator's queue (a due task, an escalation, a failure)."""

    patient_id: str
    kind: str  # due | escalation | failed_delivery
    title: str
    reason: str
    site: str
    clinician: str
    due_at: datetime
    created_at: datetime
    milestone_row_id: str | None = None
    milestone_kind: str | None = None
    reminder_id: str | None = None
    urgent: bool = False
    rule_ids: list[str] = field(default_factory=list)
    status: str = "open"  # open | claimed | snoozed | completed | closed
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    snoozed_until: datetime | None = None
    note: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    updated_at: datetime | None = None
    version: int = 0
    id: str = field(default_factory=new_id)

    def queue(self, now: datetime, start_of_today: datetime) -> str:
        """The coordinator queue this item belongs to at `now`."""
        if self.kind == "escalation":
            return "escalated"
        if self.kind == "failed_delivery":
            return "failed_delivery"
        if self.due_at < start_of_today:
            return "overdue"  # past due, whatever it waits for
        return "awaiting_results" if self.milestone_kind == "lab" else "due_today"


def plan_reminders(patient: Patient, milestone: Milestone, now: datetime) -> list[Reminder]:
    """The reminders a newly scheduled milestone needs: one per recipient, one escalation."""
    common: dict[str, Any] = {
        "patient_id": patient.id,
        "milestone_row_id": milestone.id,
        "milestone_id": milestone.milestone_id,
        "title": milestone.title,
        "milestone_kind": milestone.kind,
        "created_at": now,
        "site": patient.site,
        "clinician": patient.clinician,
        "urgent": milestone.urgent,
        "rule_ids": list(milestone.rule_ids),
    }
    planned = [
        Reminder(
            purpose="notify",
            channel=CHANNELS.get(recipient, "queue"),
            recipient=recipient,
            due_at=milestone.due_at,
            next_attempt_at=milestone.due_at,
            idempotency_key=f"{milestone.idempotency_key}:notify:{recipient}",
            **common,
        )
        for recipient in dict.fromkeys(milestone.recipients)
    ]
    planned.append(
        Reminder(
            purpose="escalate",
            channel="queue",
            recipient="coordinator",
            due_at=milestone.grace_until,
            next_attempt_at=milestone.grace_until,
            idempotency_key=f"{milestone.idempotency_key}:escalate",
            **common,
        )
    )
    return planned


def retry_delay(attempts: int, base_seconds: float, cap_seconds: float) -> timedelta:
    """Exponential backoff after `attempts` failed deliveries: base, 2*base, 4*base... capped."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(attempts - 1, 0)))


def item_for(reminder: Reminder, kind: str, reason: str, now: datetime) -> CoordinatorItem:
    """The coordinator work item a reminder turns into (due task, escalation, failure)."""
    return CoordinatorItem(
        patient_id=reminder.patient_id,
        kind=kind,
        title=reminder.title,
        reason=reason,
        site=reminder.site,
        clinician=reminder.clinician,
        due_at=reminder.due_at,
        created_at=now,
        updated_at=now,
        milestone_row_id=reminder.milestone_row_id,
        milestone_kind=reminder.milestone_kind,
        reminder_id=reminder.id,
        urgent=reminder.urgent,
        rule_ids=list(reminder.rule_ids),
    )
