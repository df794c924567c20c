"""Read models: what the API, CLI and pages show, each item with its reason (rules, sources)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.domain.care import CarePathway, Outcome
from engine.domain.model import Milestone, Patient


def outcome_view(outcome: Outcome, patient: Patient, care: CarePathway) -> dict[str, Any]:
    """What one input did, with the transition's reasons."""
    t = outcome.transition
    return {
        "patient_id": outcome.patient_id,
        "record_id": outcome.record_id,
        "state_before": outcome.state_before,
        "state": outcome.state_after,
        "transition": None
        if t is None
        else {"trigger": t.trigger, "to": t.dest, "why": care.pathway.explain(t.rules)},
        "alerts_raised": outcome.alerts_raised,
        "alerts_resolved": outcome.alerts_resolved,
        "milestones_scheduled": outcome.milestones_scheduled,
        "milestones_closed": outcome.milestones_closed,
        "version": patient.version,
    }


def milestone_view(m: Milestone, care: CarePathway, now: datetime) -> dict[str, Any]:
    timing = "overdue" if m.grace_until < now else "due" if m.due_at <= now else "upcoming"
    return {
        "id": m.id,
        "milestone": m.milestone_id,
        "title": m.title,
        "kind": m.kind,
        "due_at": m.due_at.isoformat(),
        "grace_until": m.grace_until.isoformat(),
        "status": m.status if m.status != "pending" else timing,
        "urgent": m.urgent,
        "recipients": list(m.recipients),
        "why": care.pathway.explain(m.rule_ids),
    }


def status_view(patient: Patient, care: CarePathway, now: datetime) -> dict[str, Any]:
    """Where the patient is, what is due, and why."""
    pathway = care.pathway
    state = pathway.states[patient.state]
    expected = next(
        (
            pathway.states[s].expected_dose
            for s in reversed(pathway.lineage(patient.state))
            if pathway.states[s].expected_dose
        ),
        None,
    )
    return {
        "patient_id": patient.id,
        "external_id": patient.external_id,
        "site": patient.site,
        "clinician": patient.clinician,
        "pathway": {"key": pathway.key, "review_status": pathway.review["status"]},
        "state": patient.state,
        "stage": patient.state.split(".")[0],
        "state_text": state.text,
        "state_since": patient.state_entered.get(patient.state),
        "state_why": pathway.explain(state.rules),
        "treatment_start": patient.treatment_start.isoformat() if patient.treatment_start else None,
        "facts": dict(patient.facts),
        "regimen": [
            {
                "drug": o.drug,
                "mg_per_day": o.mg_per_day,
                "mg_per_kg_day": o.mg_per_kg_day,
                "given_as": o.dose_given_as,
                "route": o.route,
                "since": o.ordered_at.isoformat(),
                "overrides": list(o.overrides),
            }
            for o in patient.active_orders()
        ],
        "expected_dose": expected,
        "next_milestones": [
            milestone_view(m, care, now)
            for m in sorted(patient.open_milestones(), key=lambda m: (m.due_at, m.milestone_id))
        ],
        "open_alerts": [
            {
                "id": a.id,
                "alert": a.alert_id,
                "severity": a.severity,
                "message": a.message,
                "raised_at": a.raised_at.isoformat(),
                "why": pathway.explain(a.rule_ids),
            }
            for a in sorted(patient.open_alerts(), key=lambda a: (a.raised_at, a.alert_id))
        ],
        "version": patient.version,
    }


def history_view(
    patient: Patient, audit_rows: list[dict[str, Any]], reminders: list[Any] = ()
) -> dict[str, Any]:
    """Everything recorded about the patient, oldest first: records, reminders, work done."""
    return {
        "patient_id": patient.id,
        "transitions": [
            {
                "at": r["at"].isoformat(),
                "from": r["from_state"],
                "to": r["to_state"],
                "by": r["actor"],
                "reason": r["reason"],
                "rules": r["rule_ids"],
            }
            for r in audit_rows
            if r["action"] == "state_changed"
        ],
        "labs": [
            {
                "code": r.code,
                "value": r.value if r.text is None else r.text,
                "unit": r.unit,
                "reported": f"{r.reported_value} {r.reported_unit or ''}".strip(),
                "taken_at": r.taken_at.isoformat(),
                "source": r.source,
            }
            for r in sorted(patient.lab_results, key=lambda r: r.taken_at)
        ],
        "events": [
            {"kind": e.kind, "occurred_at": e.occurred_at.isoformat(), "data": e.data}
            for e in patient.clinical_events
        ],
        "orders": [
            {
                "drug": o.drug,
                "mg_per_day": o.mg_per_day,
                "mg_per_kg_day": o.mg_per_kg_day,
                "given_as": o.dose_given_as,
                "overrides": list(o.overrides),
                "route": o.route,
                "status": o.status,
                "ordered_at": o.ordered_at.isoformat(),
                "ended_at": o.ended_at.isoformat() if o.ended_at else None,
            }
            for o in patient.orders
        ],
        "milestones": [
            {
                "milestone": m.milestone_id,
                "title": m.title,
                "due_at": m.due_at.isoformat(),
                "status": m.status,
                "closed_at": m.closed_at.isoformat() if m.closed_at else None,
                "reason": m.close_reason,
            }
            for m in patient.milestones
        ],
        "refusals": [
            {
                "at": r["at"].isoformat(),
                "by": r["actor"],
                "reason": r["reason"],
                "rules": r["rule_ids"],
            }
            for r in audit_rows
            if r["action"] == "action_refused"
        ],
        "reminders": [
            {
                "id": r.id,
                "milestone": r.milestone_id,
                "purpose": r.purpose,
                "recipient": r.recipient,
                "due_at": r.due_at.isoformat(),
                "status": r.status,
                "attempts": r.attempts,
                "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                "last_error": r.last_error,
            }
            for r in reminders
        ],
        "care_team_actions": [
            {
                "at": r["at"].isoformat(),
                "by": r["actor"],
                "action": r["action"],
                "note": r["reason"],
            }
            for r in audit_rows
            if r["action"].startswith(("item_", "reminder_"))
        ],
    }
