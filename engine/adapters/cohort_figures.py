"""What a synthetic cohort left in the database: its patients' states, transitions, alerts and
overdue milestones, read in chunks of ids (the simulator's summary, `simulation.summary`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.adapters.orm import alerts, audit_log, milestones, patients

CHUNK = 500


@dataclass
class CohortFigures:
    """Counts over a set of patients."""

    transitions: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    overdue_milestones: Counter[str] = field(default_factory=Counter)


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def states_of(session: Session, ids: list[str]) -> dict[str, str]:
    """The current state of each patient id (unknown ids are left out)."""
    found: dict[str, str] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(patients.c.id, patients.c.state).where(patients.c.id.in_(chunk))
        )
        found.update({row.id: row.state for row in rows})
    return found


def cohort_figures(session: Session, ids: list[str], end: datetime) -> CohortFigures:
    """Transitions audited, alerts raised (by id) and milestones still pending past their grace
    at `end` (by id), over the patients `ids`."""
    figures = CohortFigures()
    for chunk in _chunks(ids):
        figures.transitions += session.execute(
            select(func.count())
            .select_from(audit_log)
            .where(audit_log.c.action == "state_changed", audit_log.c.patient_id.in_(chunk))
        ).scalar_one()
        for row in session.execute(
            select(alerts.c.alert_id, func.count())
            .where(alerts.c.patient_id.in_(chunk))
            .group_by(alerts.c.alert_id)
        ):
            figures.alerts[row[0]] += row[1]
        for row in session.execute(
            select(milestones.c.milestone_id, func.count())
            .where(
                milestones.c.patient_id.in_(chunk),
                milestones.c.status == "pending",
                milestones.c.grace_until < end,
            )
            .group_by(milestones.c.milestone_id)
        ):
            figures.overdue_milestones[row[0]] += row[1]
    return figures
