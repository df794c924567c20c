"""The coordinator-queue queries: pages of work items read in index order, counts per queue.

The queue an item belongs to depends on the time (a task due yesterday is overdue today), so it
is computed by the database: a CASE expression for the counts, and plain predicates on kind,
milestone kind and due time for one queue's listing, so the page is read in the order of a
partial index over live items (migration 0006) and stops after one page, whatever the size of
the site. Three rules keep the indexes usable:

* the live-item filter is written as the indexes' own predicate (`status IN ('open',
  'claimed', 'snoozed')`, literal, so a generic plan still implies it), with the expired-snooze
  test beside it;
* paging is by keyset (the sort keys of the last row seen), never OFFSET;
* the urgency order is `(NOT urgent), due_at, id`, all ascending, as the index holds it, so one
  row comparison continues a page.

Counts read only columns the urgency index carries, so PostgreSQL answers them from an
index-only scan.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select, text, tuple_
from sqlalchemy.orm import Session

from engine.adapters.access_tables import users
from engine.adapters.orm import milestones, patients
from engine.adapters.reminder_tables import coordinator_items as items

#: The listings a coordinator can open: live work, their own claims, snoozed, completed.
VIEWS = ("live", "mine", "snoozed", "completed")
#: Orders of the live listings: urgent first then by due time, or by due time only.
SORTS = ("urgency", "due")
#: Not a task of its own: an escalation or a failed delivery.
_SPECIAL_KINDS = ("escalation", "failed_delivery")
#: The indexes' predicate, written exactly as they state it.
_LIVE = text("coordinator_items.status IN ('open', 'claimed', 'snoozed')")
_URGENCY = literal_column("(NOT coordinator_items.urgent)")


def queue_expression(start_of_today: datetime):
    """SQL for the queue an item belongs to: escalations and failed deliveries in their own
    queues; any other item due before today is overdue; due today: awaiting results for a lab,
    due today otherwise."""
    return case(
        (items.c.kind == "escalation", "escalated"),
        (items.c.kind == "failed_delivery", "failed_delivery"),
        (items.c.due_at < start_of_today, "overdue"),
        (items.c.milestone_kind == "lab", "awaiting_results"),
        else_="due_today",
    )


def queue_condition(queue: str, start_of_today: datetime) -> ColumnElement[bool]:
    """The items of one queue, as plain predicates (the same partition as `queue_expression`)."""
    if queue == "escalated":
        return items.c.kind == "escalation"
    if queue == "failed_delivery":
        return items.c.kind == "failed_delivery"
    task = items.c.kind.notin_(_SPECIAL_KINDS)
    if queue == "overdue":
        return and_(task, items.c.due_at < start_of_today)
    lab = items.c.milestone_kind == "lab"
    if queue == "awaiting_results":
        return and_(task, items.c.due_at >= start_of_today, lab)
    return and_(task, items.c.due_at >= start_of_today, or_(items.c.milestone_kind.is_(None), ~lab))


def _shown(view: str, now: datetime, actor: str | None) -> list[ColumnElement[bool]]:
    """What a view lists: live items (a snooze that has run out is live again), the actor's
    claims, items still snoozed, or completed items."""
    if view == "completed":
        return [items.c.status == "completed"]
    if view == "snoozed":
        return [_LIVE, items.c.status == "snoozed", items.c.snoozed_until > now]
    live = [_LIVE, or_(items.c.status != "snoozed", items.c.snoozed_until <= now)]
    if view == "mine":
        return [*live, items.c.status == "claimed", items.c.claimed_by == actor]
    return live


def sort_keys(view: str, sort: str) -> list[ColumnElement[Any]]:
    """The columns a view is ordered by (all ascending; completed: newest first)."""
    if view == "completed":
        return [items.c.closed_at, items.c.id]
    if view == "snoozed":
        return [items.c.snoozed_until, items.c.id]
    if sort == "due":
        return [items.c.due_at, items.c.id]
    return [_URGENCY, items.c.due_at, items.c.id]


def _filters(
    now: datetime,
    *,
    view: str,
    actor: str | None,
    site: str | None,
    clinician: str | None,
    state: str | None,
) -> list[ColumnElement[bool]]:
    filters = _shown(view, now, actor)
    if site:
        filters.append(items.c.site == site)
    if clinician:
        filters.append(items.c.clinician == clinician)
    if state:
        filters.append(or_(patients.c.state == state, patients.c.state.like(f"{state}.%")))
    return filters


def queue_counts(
    session: Session,
    now: datetime,
    start_of_today: datetime,
    *,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
    view: str = "live",
    actor: str | None = None,
) -> dict[str, int]:
    """Items per queue of the live view (or the actor's claims, `view="mine"`) for the filters
    (the join on patients only for a state filter)."""
    queue_of = queue_expression(start_of_today).label("queue")
    where = _filters(now, view=view, actor=actor, site=site, clinician=clinician, state=state)
    source = items.join(patients, patients.c.id == items.c.patient_id) if state else items
    query = select(queue_of, func.count()).select_from(source).where(*where).group_by(queue_of)
    return {name: n for name, n in session.execute(query)}


def count_items(
    session: Session,
    now: datetime,
    *,
    view: str,
    actor: str | None = None,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
) -> int:
    """How many items a view (other than the live one, counted per queue) holds."""
    where = _filters(now, view=view, actor=actor, site=site, clinician=clinician, state=state)
    source = items.join(patients, patients.c.id == items.c.patient_id) if state else items
    return session.scalar(select(func.count()).select_from(source).where(*where)) or 0


def item_page(
    session: Session,
    now: datetime,
    start_of_today: datetime,
    *,
    view: str = "live",
    sort: str = "urgency",
    queue: str | None = None,
    actor: str | None = None,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Up to `limit` items of a view in its order, after the row whose sort keys are `after`
    (keyset paging); each with its queue, its patient's state, record number and name and its
    sort keys (`sort_key`, for the next page's cursor)."""
    where = _filters(now, view=view, actor=actor, site=site, clinician=clinician, state=state)
    if queue:
        where.append(queue_condition(queue, start_of_today))
    keys = sort_keys(view, sort)
    newest_first = view == "completed"
    if after is not None:
        row, given = tuple_(*keys), tuple_(*after)
        where.append(row < given if newest_first else row > given)
    query = (
        select(
            items,
            queue_expression(start_of_today).label("queue"),
            patients.c.state.label("patient_state"),
            patients.c.external_id,
            patients.c.given_name,
            patients.c.family_name,
            *(key.label(f"sort_key_{n}") for n, key in enumerate(keys)),
        )
        .select_from(items.join(patients, patients.c.id == items.c.patient_id))
        .where(*where)
        .order_by(*(key.desc() if newest_first else key for key in keys))
        .limit(limit)
    )
    page = []
    for row in session.execute(query):
        found = dict(row._mapping)
        found["sort_key"] = tuple(found.pop(f"sort_key_{n}") for n in range(len(keys)))
        page.append(found)
    return page


def people_named(session: Session, actors: Iterable[str | None]) -> dict[str, str]:
    """The user name behind each `user:<id>` actor (others, e.g. `system:...`, are left out)."""
    ids = {a.removeprefix("user:") for a in actors if a and a.startswith("user:")}
    if not ids:
        return {}
    rows = session.execute(select(users.c.id, users.c.name).where(users.c.id.in_(sorted(ids))))
    return {f"user:{user_id}": name for user_id, name in rows}


def work_closed_since(session: Session, milestone_row_id: str, item_id: str) -> str | None:
    """Why the work an item stands for is no longer open, or None: its milestone has closed
    (done, cancelled) or a later live item of the same milestone replaced it (an escalation).
    What the system would have closed, had the item been live, does not come back by an undo."""
    status = session.execute(
        select(milestones.c.status).where(milestones.c.id == milestone_row_id)
    ).scalar_one_or_none()
    if status is not None and status != "pending":
        return f"its milestone has since been {status}"
    later = session.execute(
        select(items.c.id)
        .where(
            items.c.milestone_row_id == milestone_row_id,
            items.c.id != item_id,
            items.c.kind == "escalation",
            items.c.status.in_(("open", "claimed", "snoozed")),
        )
        .limit(1)
    ).scalar_one_or_none()
    return "an escalation of its milestone is in the queue now" if later else None
