"""The patient aggregate: demographics, facts, pathway position and clinical records.

Plain dataclasses; the persistence adapter maps them to tables without this module knowing.
`Patient.version` is the optimistic-locking counter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from engine.domain.events import (
    AlertRaised,
    AlertResolved,
    DomainEvent,
    MilestoneClosed,
    MilestoneOpened,
)


def new_id() -> str:
    """A random identifier for a new record."""
    return uuid.uuid4().hex


@dataclass(eq=False)
class LabResult:
    code: str
    taken_at: datetime
    recorded_at: datetime
    value: float | None = None
    text: str | None = None
    unit: str | None = None
    reported_value: str = ""
    reported_unit: str | None = None
    source: str = "manual"
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class ClinicalEvent:
    kind: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class MedicationOrder:
    drug: str
    ordered_at: datetime
    mg_per_day: float | None = None
    mg_per_kg_day: float | None = None
    route: str = "oral"
    status: str = "active"  # active | superseded | stopped
    ended_at: datetime | None = None
    ordered_by: str = ""
    dose_given_as: str | None = None  # mg_per_day | mg_per_kg_day: what the clinician stated
    dose_range: str | None = None  # the dose range it was checked against when placed
    overrides: list[str] = field(default_factory=list)  # ids of blocks/ranges lifted, with reason
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class Milestone:
    """A scheduled pathway milestone or reminder (one row per occurrence)."""

    milestone_id: str
    title: str
    kind: str
    due_at: datetime
    grace_until: datetime
    created_at: datetime
    cycle: str
    occurrence: int
    idempotency_key: str
    recipients: list[str] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    urgent: bool = False
    status: str = "pending"  # pending | completed | cancelled
    closed_at: datetime | None = None
    close_reason: str | None = None
    reviewed_at: datetime | None = None
    patient_id: str | None = None
    id: str = field(default_factory=new_id)

    @property
    def is_open(self) -> bool:
        return self.status == "pending"


@dataclass(eq=False)
class Alert:
    alert_id: str
    severity: str
    message: str
    raised_at: datetime
    rule_ids: list[str] = field(default_factory=list)
    status: str = "open"  # open | resolved | acknowledged
    closed_at: datetime | None = None
    closed_by: str | None = None
    id: str = field(default_factory=new_id)


@dataclass(frozen=True)
class AuditRecord:
    """One append-only audit line: who did what to which patient, when and why."""

    at: datetime
    actor: str
    action: str
    patient_id: str | None
    from_state: str | None = None
    to_state: str | None = None
    reason: str = ""
    rule_ids: tuple[str, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Patient:
    """One enrolled patient and their pathway instance."""

    site: str
    clinician: str
    birth_date: date
    sex: str
    weight_kg: float
    pathway_key: str
    state: str
    enrolled_at: datetime
    id: str = field(default_factory=new_id)
    external_id: str | None = None
    given_name: str = ""
    family_name: str = ""
    email: str | None = None
    phone: str | None = None
    contact_preferences: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    state_entered: dict[str, str] = field(default_factory=dict)
    treatment_start: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0
    labs: list[LabResult] = field(default_factory=list)
    clinical_events: list[ClinicalEvent] = field(default_factory=list)
    orders: list[MedicationOrder] = field(default_factory=list)
    milestones: list[Milestone] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def lab_results(self) -> list[Any]:
        """Every lab result the pathway reads, by time recorded: those a care load brought as
        earlier values (`earlier_labs`, read-only) and those in `labs` (a whole load, or the
        results recorded in this unit of work, which are the ones written)."""
        earlier = self.__dict__.get("_earlier_labs")
        return [*earlier, *self.labs] if earlier else self.labs

    def age_years(self, today: date) -> int:
        """Completed years of age on `today`."""
        years = today.year - self.birth_date.year
        return years - ((today.month, today.day) < (self.birth_date.month, self.birth_date.day))

    def active_orders(self) -> list[MedicationOrder]:
        return [o for o in self.orders if o.status == "active"]

    def on_drug(self, drugs: list[str] | tuple[str, ...]) -> bool:
        return any(o.drug in drugs for o in self.active_orders())

    def entered(self, state: str) -> datetime | None:
        """When the patient entered `state` (or the sub-state path containing it)."""
        text = self.state_entered.get(state)
        return datetime.fromisoformat(text) if text else None

    def open_alerts(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "open"]

    def open_milestones(self) -> list[Milestone]:
        return [m for m in self.milestones if m.is_open]

    @property
    def audit(self) -> list[AuditRecord]:
        """Audit records produced by the current unit of work (not persisted on this object)."""
        records = self.__dict__.get("_audit")
        if records is None:
            records = self.__dict__["_audit"] = []
        return records

    @property
    def events(self) -> list[DomainEvent]:
        """Domain events of the current unit of work, handed to the message bus on commit."""
        recorded = self.__dict__.get("_events")
        if recorded is None:
            recorded = self.__dict__["_events"] = []
        return recorded

    def open_milestone(self, milestone: Milestone) -> None:
        """Add an open milestone (its reminders get planned on commit)."""
        self.milestones.append(milestone)
        self.events.append(MilestoneOpened(self.id, milestone.created_at, milestone))

    def close_milestone(self, milestone: Milestone, status: str, at: datetime, reason: str) -> None:
        """Complete or cancel an open milestone (its unsent reminders get cancelled on commit)."""
        milestone.status, milestone.closed_at, milestone.close_reason = status, at, reason
        self.events.append(MilestoneClosed(self.id, at, milestone))

    def raise_alert(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self.events.append(AlertRaised(self.id, alert.raised_at, alert))

    def resolve_alert(self, alert: Alert, at: datetime, by: str) -> None:
        alert.status, alert.closed_at, alert.closed_by = "resolved", at, by
        self.events.append(AlertResolved(self.id, at, alert))
