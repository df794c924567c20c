"""Milestone scheduling, a part of `CarePathway`: open what is due in the patient's scope,
complete what an input satisfies inside its window, cancel what the patient left behind."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from engine.domain.conditions import Situation, holds
from engine.domain.durations import Duration
from engine.domain.model import Milestone, Patient
from engine.domain.pathway import MilestoneDefinition, Pathway

if TYPE_CHECKING:
    from engine.domain.care import Outcome


class MilestoneSchedule:
    """Mixed into `CarePathway`: needs `pathway`, `_early` and `_order_situation`."""

    pathway: Pathway
    _early: Duration

    def _settle_milestones(
        self, patient: Patient, s: Situation, outcome: Outcome, now: datetime
    ) -> None:
        definitions = {m.id: m for m in self.pathway.milestones}
        for row in patient.open_milestones():
            mdef = definitions.get(row.milestone_id)
            if mdef is None:
                continue
            # The input that completes a milestone may also move the patient out of its
            # scope (the transplant that a referral waits for): completion is checked first.
            if self._satisfied(mdef, patient, s, row.due_at, row.created_at):
                patient.close_milestone(row, "completed", now, "done")
                outcome.milestones_closed.append(row.milestone_id)
            elif not self.pathway.in_any(patient.state, mdef.scope):
                status = "completed" if mdef.completed_on_leave else "cancelled"
                patient.close_milestone(row, status, now, f"left {'/'.join(mdef.scope)}")
                outcome.milestones_closed.append(row.milestone_id)
        open_ids = {m.milestone_id for m in patient.open_milestones()}
        for mdef in self.pathway.milestones:
            if mdef.id in open_ids or not self.pathway.in_any(patient.state, mdef.scope):
                continue
            row = self._next_occurrence(patient, mdef, s, now)
            if row is not None:
                patient.open_milestone(row)
                outcome.milestones_scheduled.append(mdef.id)

    def _next_occurrence(
        self, patient: Patient, mdef: MilestoneDefinition, s: Situation, now: datetime
    ) -> Milestone | None:
        scope_entry = self._scope_entry(patient, mdef)
        course = patient.treatment_start or patient.enrolled_at
        cycle_start = {
            "enrolled": patient.enrolled_at,
            "treatment_start": patient.treatment_start,
            "last_completed": course,
        }.get(mdef.anchor, scope_entry)
        if cycle_start is None:
            return None
        cycle = cycle_start.isoformat()
        # Of the closed rows, only the latest occurrence and the latest completed one of each
        # milestone and cycle need to be loaded: occurrences run 1, 2, 3... within a cycle.
        rows = [m for m in patient.milestones if m.milestone_id == mdef.id and m.cycle == cycle]
        if rows and not mdef.repeat and not _left_and_back(rows):
            return None
        if mdef.when is not None and not holds(mdef.when, s):
            return None
        if mdef.unless is not None and holds(mdef.unless, s):
            return None
        completed = [m.closed_at for m in rows if m.status == "completed" and m.closed_at]
        anchor_at = {
            "enrolled": patient.enrolled_at,
            "treatment_start": patient.treatment_start,
            "state_entered": scope_entry,
            "condition_met": now,
            # a first occurrence on treatment counts from the course's start, however the
            # patient moved within the scope since; off treatment, from entering the scope
            "last_completed": max(
                completed,
                default=course
                if all(self.pathway.states[s].on_treatment for s in mdef.scope)
                else max(scope_entry or course, course),
            ),
        }[mdef.anchor]
        due = mdef.offset.after(anchor_at)
        if not mdef.repeat and self._satisfied(mdef, patient, s, due, anchor_at):
            return None
        occurrence = max((m.occurrence for m in rows), default=0) + 1
        return Milestone(
            milestone_id=mdef.id,
            title=mdef.title,
            kind=mdef.kind,
            due_at=due,
            grace_until=mdef.grace.after(due),
            created_at=now,
            cycle=cycle,
            occurrence=occurrence,
            idempotency_key=f"{patient.id}:{mdef.id}:{cycle}:{occurrence}",
            recipients=list(mdef.recipients),
            rule_ids=list(mdef.rules),
            urgent=mdef.urgent,
            patient_id=patient.id,
        )

    def _scope_entry(self, patient: Patient, mdef: MilestoneDefinition) -> datetime | None:
        for scope in mdef.scope:
            if self.pathway.is_within(patient.state, scope):
                return patient.entered(scope)
        return None

    def _satisfied(
        self,
        mdef: MilestoneDefinition,
        patient: Patient,
        s: Situation,
        due: datetime,
        created: datetime,
    ) -> bool:
        """Has the input this milestone waits for arrived (labs in its window, order, event)?"""
        if mdef.completed_by_labs:
            opens = None if mdef.anchor == "enrolled" else self._early.before(due)
            return all(
                any(opens is None or r.taken_at >= opens for r in s.labs.series(code))
                for code in mdef.completed_by_labs
            )
        opens = created if mdef.opens_before_due is None else mdef.opens_before_due.before(due)
        if mdef.completed_by_orders:
            return any(
                o.drug in mdef.completed_by_orders
                and o.ordered_at >= opens
                and (
                    mdef.completed_by_order is None
                    or holds(mdef.completed_by_order, self._order_situation(patient, o, s))
                )
                for o in patient.orders
                if o.status != "stopped"
            )
        if mdef.completed_by_events:
            return any(
                e.kind in mdef.completed_by_events and e.occurred_at >= opens
                for e in patient.clinical_events
            )
        return False


def _left_and_back(rows: list[Milestone]) -> bool:
    """The latest occurrence was cancelled only because the patient left its scope: it is due
    again on the way back (TPMT still outstanding after a detour through another state)."""
    latest = max(rows, key=lambda m: m.occurrence)
    return latest.status == "cancelled" and (latest.close_reason or "").startswith("left ")
