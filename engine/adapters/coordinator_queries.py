"""The coordinator-queue query: live work items with their queue computed in SQL.

The queue an item belongs to depends on the time (a task due yesterday is overdue today), so
it is a CASE expression evaluated by the database, which lets a page filter, count and page
through a queue without loading it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine.adapters.orm import patients
from engine.adapters.reminder_tables import coordinator_items as items


def queue_expression(start_of_today: datetime):
    """SQL for the queue an item belongs to (mirrors CoordinatorItem.queue)."""
    return case(
        (items.c.kind == "escalation", "escalated"),
        (items.c.kind == "failed_delivery", "failed_delivery"),
        (items.c.milestone_kind == "lab", "awaiting_results"),
        (items.c.due_at < start_of_today, "overdue"),
        else_="due_today",
    )


def live_items(
    session: Session,
    now: datetime,
    start_of_today: datetime,
    *,
    queue: str | None = None,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
    include_snoozed: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """(page of items, total matching, counts per queue for the same filters but queue)."""
    queue_of = queue_expression(start_of_today).label("queue")
    visible = or_(
        items.c.status.in_(("open", "claimed")),
        and_(items.c.status == "snoozed", items.c.snoozed_until <= now),
    )
    if include_snoozed:
        visible = items.c.status.in_(("open", "claimed", "snoozed"))
    filters = [visible]
    if site:
        filters.append(items.c.site == site)
    if clinician:
        filters.append(items.c.clinician == clinician)
    joined = items.join(patients, patients.c.id == items.c.patient_id)
    if state:
        filters.append(or_(patients.c.state == state, patients.c.state.like(f"{state}.%")))
    counted = joined if state else items  # the join costs a lookup per item: only for state
    counts = {
        name: n
        for name, n in session.execute(
            select(queue_of, func.count()).select_from(counted).where(*filters).group_by(queue_of)
        )
    }
    if queue:
        filters.append(queue_expression(start_of_today) == queue)
    total = counts.get(queue, 0) if queue else sum(counts.values())
    rows = session.execute(
        select(
            items,
            queue_of,
            patients.c.state.label("patient_state"),
            patients.c.external_id,
            patients.c.given_name,
            patients.c.family_name,
        )
        .select_from(joined)
        .where(*filters)
        .order_by(items.c.urgent.desc(), items.c.due_at, items.c.id)
        .offset(offset)
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows], total, counts
