"""Coordinator work items one at a time: by id (to change it in the unit of work) and a
patient's (the FHIR Task read). Pages and counts of the queues are in coordinator_queries.py.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.adapters.reminder_tables import coordinator_items
from engine.domain.reminders import CoordinatorItem


def work_item(session: Session, item_id: str) -> CoordinatorItem | None:
    """The item, tracked by the session (its changes are written on commit), or None."""
    return session.get(CoordinatorItem, item_id)


def work_items_of(session: Session, patient_id: str) -> list[CoordinatorItem]:
    """The patient's work items, oldest due first."""
    return list(
        session.scalars(
            select(CoordinatorItem)
            .where(coordinator_items.c.patient_id == patient_id)
            .order_by(coordinator_items.c.due_at, coordinator_items.c.id)
        )
    )
