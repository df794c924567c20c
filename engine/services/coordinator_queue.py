"""Care-coordinator queues: list the work, claim it (one item or several), release it, complete
it with an outcome, snooze it, and undo a completion or a snooze the same day.

Queues (live items): escalated, failed_delivery, overdue (any other item due before today),
due_today, awaiting_results (a lab due today); the counts per queue use the same partition as
the listings. Views: live work, my items (claimed by me), snoozed, completed. Filters by site,
clinician and pathway state; two orders (urgency: urgent first, then due; or due date); pages by
keyset (`cursor` = the sort keys of the last row, opaque to callers). Every action and every
listing is audited. `site_scope` restricts a user to one site and `clinician_scope` to one
clinician's patients (both from the access policy): an item outside them is reported as unknown.

Claims are owned: an item claimed by one coordinator can be released, completed or snoozed only
by them; anyone else gets a conflict unless they take it over, with a reason, which is audited
(`item_taken_over`, naming the previous holder). Snoozes last at most `MAX_SNOOZE`. An item
open longer than the data's `stale_after` (pathways/coordinator-queue.yaml) is flagged stale.

Read side (and the items it changes): typed on `SqlAlchemyUnitOfWork`, whose session it
hands to coordinator_queries.py and work_items.py.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

from engine.adapters.coordinator_data import coordinator_data
from engine.adapters.coordinator_queries import (
    SORTS,
    VIEWS,
    count_items,
    item_page,
    people_named,
    queue_counts,
    work_closed_since,
)
from engine.adapters.work_items import work_item
from engine.domain.errors import ConcurrencyConflict, InvalidInput, UnknownWorkItem
from engine.domain.model import AuditRecord
from engine.domain.reminders import QUEUES, CoordinatorItem
from engine.services.access_policy import in_scope
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

MAX_PAGE = 200
#: Kept for callers that still send an offset: only 0 (page with `cursor`).
MAX_OFFSET = 0
#: The longest snooze (the page offers 1 to 28 days).
MAX_SNOOZE = timedelta(days=28)
#: The most items one bulk claim takes.
MAX_BULK = 50


def coordinator_queue(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    view: str = "live",
    queue: str | None = None,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
    sort: str = "urgency",
    cursor: str | None = None,
    offset: int = 0,
    limit: int = 50,
    site_scope: str | None = None,
    clinician_scope: str | None = None,
) -> dict[str, Any]:
    """One page of a view's items, its total, the counts per queue (of the actor's claims in
    the "mine" view, of the live items otherwise), how many items the actor holds, and the
    cursor of the next page (None on the last)."""
    if view not in VIEWS:
        raise InvalidInput(f"unknown view {view!r}; views are {', '.join(VIEWS)}")
    if queue is not None and queue not in QUEUES:
        raise InvalidInput(f"unknown queue {queue!r}; queues are {', '.join(QUEUES)}")
    if sort not in SORTS:
        raise InvalidInput(f"unknown sort {sort!r}; sorts are {', '.join(SORTS)}")
    if not 0 < limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE}")
    if offset:
        raise InvalidInput("pages are reached with the listing's next_cursor, not an offset")
    site = _within(site, site_scope, "site")
    clinician = _within(clinician, clinician_scope, "clinician")
    after = _decode_cursor(cursor, view, sort) if cursor else None
    with uow:
        now = uow.clock.now()
        start_of_today = datetime.combine(now.date(), time(), now.tzinfo)
        where = {"site": site, "clinician": clinician, "state": state}
        counted = "mine" if view == "mine" else "live"
        counts = queue_counts(uow.session, now, start_of_today, view=counted, actor=actor, **where)
        mine = (
            sum(counts.values())
            if view == "mine"
            else count_items(uow.session, now, view="mine", actor=actor, **where)
        )
        rows = item_page(
            uow.session,
            now,
            start_of_today,
            view=view,
            sort=sort,
            queue=queue,
            actor=actor,
            after=after,
            limit=limit + 1,
            **where,
        )
        more, rows = len(rows) > limit, rows[:limit]
        if view in ("live", "mine"):
            total = counts.get(queue, 0) if queue else sum(counts.values())
        else:
            total = count_items(uow.session, now, view=view, actor=actor, **where)
        names = people_named(
            uow.session,
            {row[k] for row in rows for k in ("claimed_by", "closed_by", "snoozed_by")},
        )
        listing = {
            "items": _offer_undo_where_it_holds(
                uow, [_item_view(row, now, actor, names) for row in rows]
            ),
            "total": total,
            "counts": {name: counts.get(name, 0) for name in QUEUES},
            "mine": mine,
            "view": view,
            "sort": sort,
            "next_cursor": _encode_cursor(view, sort, rows[-1]["sort_key"]) if more else None,
            "offset": 0,
            "limit": limit,
        }
        filters = {"view": view, "queue": queue, "site": site, "clinician": clinician}
        uow.record_only(
            [
                AuditRecord(
                    at=now,
                    actor=actor,
                    action="queue_viewed",
                    patient_id=None,
                    reason=f"{len(rows)} of {total} items",
                    detail={
                        "filters": {k: v for k, v in (filters | {"state": state}).items() if v},
                        "patients": sorted({row["patient_id"] for row in rows}),
                    },
                )
            ]
        )
    return listing


def outcomes() -> dict[str, str]:
    """The outcome codes a completion may record, with their words (coordinator data)."""
    return dict(coordinator_data().outcomes)


def claim_item(uow: SqlAlchemyUnitOfWork, actor: str, item_id: str, **scope: Any) -> dict:
    """Take an item so other coordinators see it is being handled."""
    return _act(uow, actor, item_id, "item_claimed", _claim(actor), **scope)


def claim_items(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    item_ids: list[str],
    site_scope: str | None = None,
    clinician_scope: str | None = None,
) -> dict[str, Any]:
    """Claim several items in one transaction: each one nobody else holds is claimed (and
    audited); the others are listed with the reason and its code, and do not stop the rest
    (the entry point audits an unknown or out-of-scope one as a refused access)."""
    wanted = list(dict.fromkeys(item_ids))
    if not 0 < len(wanted) <= MAX_BULK:
        raise InvalidInput(f"claim 1 to {MAX_BULK} items at a time")
    claimed, refused, audit = [], [], []
    with uow:
        now = uow.clock.now()
        claim = _claim(actor)
        for item_id in wanted:
            item = work_item(uow.session, item_id)
            try:
                _check(item, item_id, site_scope, clinician_scope)
                claim(item, now)
            except (UnknownWorkItem, InvalidInput, ConcurrencyConflict) as why:
                refused.append({"id": item_id, "reason": why.message, "code": why.code})
                continue
            item.updated_at = now
            claimed.append(item)
            audit.append(_audit(item, now, actor, "item_claimed", "", {"item": item.id}))
        uow.audit.append(audit)
        uow.commit()
        names = people_named(uow.session, [actor])
        return {
            "claimed": [_item_view(_columns(i), now, actor, names) for i in claimed],
            "refused": refused,
        }


def take_over_item(
    uow: SqlAlchemyUnitOfWork, actor: str, item_id: str, *, reason: str, **scope: Any
) -> dict:
    """Take an item another coordinator holds (they are away, the work is urgent), with a
    reason; the audit row names the previous holder."""
    if not reason or not reason.strip():
        raise InvalidInput("a take-over needs a reason")
    previous: list[str | None] = []

    def take_over(item: CoordinatorItem, now: datetime) -> None:
        previous.append(item.claimed_by)
        item.status, item.claimed_by, item.claimed_at = "claimed", actor, now

    return _act(
        uow, actor, item_id, "item_taken_over", take_over, note=reason, held_by=previous, **scope
    )


def release_item(uow: SqlAlchemyUnitOfWork, actor: str, item_id: str, **scope: Any) -> dict:
    """Give an item back to the queue (only its holder can)."""

    def release(item: CoordinatorItem, now: datetime) -> None:
        _held_by_actor_or_nobody(item, actor)
        item.status, item.claimed_by, item.claimed_at = "open", None, None

    return _act(uow, actor, item_id, "item_released", release, **scope)


def complete_item(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    item_id: str,
    note: str = "",
    outcome: str | None = None,
    **scope: Any,
) -> dict:
    """Mark an item handled, with what was done (an outcome code of the coordinator data, and
    a note; `other` needs the note). The clinical milestone itself completes only with its
    input; an item someone else holds is theirs to complete (checked first)."""
    known = coordinator_data().outcomes

    def complete(item: CoordinatorItem, now: datetime) -> None:
        _held_by_actor_or_nobody(item, actor)
        if outcome is None:
            raise InvalidInput("choose what was done (the outcome) to complete an item")
        if outcome is not None and outcome not in known:
            raise InvalidInput(f"unknown outcome {outcome!r}; outcomes are {', '.join(known)}")
        if outcome == "other" and not note.strip():
            raise InvalidInput("the outcome 'other' needs a note saying what was done")
        item.status, item.closed_at, item.closed_by = "completed", now, actor
        item.note, item.outcome = note.strip() or None, outcome

    said = " - ".join(part for part in (known.get(outcome or ""), note.strip()) if part)
    return _act(uow, actor, item_id, "item_completed", complete, note=said, **scope)


def snooze_item(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    item_id: str,
    *,
    until: datetime,
    reason: str,
    **scope: Any,
) -> dict:
    """Hide an item until a later time (at most MAX_SNOOZE ahead), with a reason (e.g. 'patient
    on holiday'); an item someone else holds is theirs to snooze."""
    if not reason or not reason.strip():
        raise InvalidInput("a snooze needs a reason")
    if until.tzinfo is None:
        raise InvalidInput("snooze time must carry a timezone")

    def snooze(item: CoordinatorItem, now: datetime) -> None:
        if until <= now:
            raise InvalidInput("snooze until a time in the future")
        if until - now > MAX_SNOOZE:
            raise InvalidInput(f"snooze for at most {MAX_SNOOZE.days} days")
        _held_by_actor_or_nobody(item, actor)
        item.status, item.snoozed_until, item.note = "snoozed", until, reason.strip()
        item.claimed_by = item.claimed_at = None
        item.snoozed_by = actor

    return _act(uow, actor, item_id, "item_snoozed", snooze, note=reason, **scope)


def undo_item(uow: SqlAlchemyUnitOfWork, actor: str, item_id: str, **scope: Any) -> dict:
    """Undo one's own completion or snooze, the same day: a completed item goes back to its
    holder (or the queue), a snoozed one back to the queue. Audited as what was undone."""
    undone: list[str] = []

    def undo(item: CoordinatorItem, now: datetime) -> None:
        if item.status == "completed":
            if item.closed_by != actor or item.closed_at is None:
                raise InvalidInput("only who completed an item can undo it")
            if item.closed_at.date() != now.date():
                raise InvalidInput("a completion can be undone on the day it was made only")
            gone = item.milestone_row_id and work_closed_since(
                uow.session, item.milestone_row_id, item.id
            )
            if gone:
                raise InvalidInput(f"the completion stands: {gone}, so nothing is left to do")
            item.status = "claimed" if item.claimed_by else "open"
            item.closed_at = item.closed_by = item.outcome = item.note = None
            undone.append("item_completion_undone")
        elif item.status == "snoozed":
            if item.snoozed_by != actor:
                raise InvalidInput("only who snoozed an item can undo the snooze")
            if item.updated_at is None or item.updated_at.date() != now.date():
                raise InvalidInput("a snooze can be undone on the day it was made only")
            item.status, item.snoozed_until, item.snoozed_by, item.note = "open", None, None, None
            undone.append("item_snooze_undone")
        else:
            raise InvalidInput("only a completion or a snooze can be undone")

    return _act(uow, actor, item_id, undone, undo, undoing=True, **scope)


def acknowledge_reminder(
    uow: SqlAlchemyUnitOfWork, actor: str, reminder_id: str, site_scope: str | None = None
) -> dict[str, Any]:
    """A clinician or coordinator confirms they have seen a reminder."""
    with uow:
        now = uow.clock.now()
        reminder = uow.reminders.get(reminder_id)
        if reminder is None or not in_scope(site_scope, reminder.site):
            raise UnknownWorkItem(f"no reminder with id {reminder_id!r}")
        if reminder.acknowledged_at is None:
            reminder.acknowledged_at, reminder.acknowledged_by = now, actor
        uow.audit.append(
            [
                AuditRecord(
                    at=now,
                    actor=actor,
                    action="reminder_acknowledged",
                    patient_id=reminder.patient_id,
                    reason=reminder.title,
                    rule_ids=tuple(reminder.rule_ids),
                    detail={"reminder": reminder.id},
                )
            ]
        )
        uow.commit()
        return {
            "id": reminder.id,
            "status": reminder.status,
            "acknowledged_at": reminder.acknowledged_at.isoformat(),
            "acknowledged_by": reminder.acknowledged_by,
        }


def _within(asked: str | None, scope: str | None, what: str) -> str | None:
    """The filter a scoped caller gets: their scope (asking for another is refused)."""
    if scope is None:
        return asked
    if asked not in (None, scope):
        raise InvalidInput(f"you can only see {what} {scope!r}")
    return scope


def _claim(actor: str) -> Callable[[CoordinatorItem, datetime], None]:
    def claim(item: CoordinatorItem, now: datetime) -> None:
        _held_by_actor_or_nobody(item, actor)
        item.status, item.claimed_by, item.claimed_at = "claimed", actor, now

    return claim


def _check(
    item: CoordinatorItem | None,
    item_id: str,
    site_scope: str | None,
    clinician_scope: str | None,
    undoing: bool = False,
) -> CoordinatorItem:
    """The item if the caller may see it and it is still open to change."""
    if (
        item is None
        or not in_scope(site_scope, item.site)
        or not in_scope(clinician_scope, item.clinician)
    ):
        raise UnknownWorkItem(f"no coordinator item with id {item_id!r}")
    if item.status == "closed" or (item.status == "completed" and not undoing):
        raise InvalidInput(f"the item is already {item.status}")
    return item


def _act(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    item_id: str,
    action: str | list[str],
    change: Callable[[CoordinatorItem, datetime], None],
    note: str = "",
    site_scope: str | None = None,
    clinician_scope: str | None = None,
    expected_version: int | None = None,
    held_by: list[str | None] | None = None,
    undoing: bool = False,
) -> dict[str, Any]:
    """Change one item (`action` names the audit row; a list is filled in by `change`)."""
    with uow:
        now = uow.clock.now()
        item = _check(
            work_item(uow.session, item_id), item_id, site_scope, clinician_scope, undoing
        )
        if expected_version is not None and expected_version != item.version:
            raise ConcurrencyConflict("the item was changed by someone else; reload it")
        change(item, now)
        item.updated_at = now
        detail = {"item": item.id} | ({"previous_holder": held_by[0]} if held_by else {})
        name = action if isinstance(action, str) else action[0]
        uow.audit.append([_audit(item, now, actor, name, note, detail)])
        uow.commit()
        names = people_named(uow.session, [item.claimed_by, item.closed_by, item.snoozed_by])
        return _item_view(_columns(item), now, actor, names)


def _audit(
    item: CoordinatorItem, now: datetime, actor: str, action: str, note: str, detail: dict
) -> AuditRecord:
    return AuditRecord(
        at=now,
        actor=actor,
        action=action,
        patient_id=item.patient_id,
        reason=f"{item.title}" + (f": {note.strip()}" if note.strip() else ""),
        rule_ids=tuple(item.rule_ids),
        detail=detail,
    )


def _held_by_actor_or_nobody(item: CoordinatorItem, actor: str) -> None:
    """ConcurrencyConflict if someone else holds the item (they must release it, or the actor
    must take it over with a reason)."""
    if item.status == "claimed" and item.claimed_by != actor:
        raise ConcurrencyConflict(
            f"claimed by {item.claimed_by}; only they can change it, or take it over with a reason"
        )


def _columns(item: CoordinatorItem) -> dict[str, Any]:
    fields = (*CoordinatorItem.__dataclass_fields__, "outcome", "snoozed_by")
    return {name: getattr(item, name, None) for name in fields}


def _offer_undo_where_it_holds(
    uow: SqlAlchemyUnitOfWork, views: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """No Undo is offered for a completion whose work has since closed (the check the undo
    itself makes), so the page never shows a button that can only be refused."""
    for view in views:
        row_id = view.get("milestone_row_id")
        if view["undoable"] and view["status"] == "completed" and row_id:
            view["undoable"] = work_closed_since(uow.session, row_id, view["id"]) is None
    return views


def _item_view(
    row: dict[str, Any], now: datetime, actor: str, names: dict[str, str]
) -> dict[str, Any]:
    """The JSON shape of a work item, with what the page shows beside the columns: days overdue,
    stale, who holds / completed / snoozed it by name, the outcome in words, whether the actor
    may undo it now."""
    view = {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in row.items()
        if key not in ("given_name", "family_name", "sort_key")
    }
    if "given_name" in row:
        view["patient_name"] = f"{row['given_name']} {row['family_name']}".strip()
    data = coordinator_data()
    due, status = row["due_at"], row["status"]
    live = status in ("open", "claimed", "snoozed")
    view["days_overdue"] = max(0, (now.date() - due.date()).days) if live else 0
    view["stale"] = live and due < data.stale_after.before(now)
    for who in ("claimed_by", "closed_by", "snoozed_by"):
        view[f"{who}_name"] = names.get(row.get(who) or "", row.get(who))
    view["outcome_text"] = data.outcomes.get(row.get("outcome") or "")
    today = now.date()
    view["undoable"] = (
        status == "completed"
        and row.get("closed_by") == actor
        and row["closed_at"] is not None
        and row["closed_at"].date() == today
    ) or (
        status == "snoozed"
        and row.get("snoozed_by") == actor
        and row.get("updated_at") is not None
        and row["updated_at"].date() == today
    )
    return view


def _encode_cursor(view: str, sort: str, keys: tuple[Any, ...]) -> str:
    plain = [view, sort] + [
        k.isoformat() if isinstance(k, datetime) else bool(k) if n == 0 and len(keys) == 3 else k
        for n, k in enumerate(keys)
    ]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, view: str, sort: str) -> tuple[Any, ...]:
    """The sort keys a cursor holds, checked against the listing it is used on."""
    refused = InvalidInput("the cursor is not one this listing gave out; start from page 1")
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        raise refused from None
    urgency = view in ("live", "mine") and sort == "urgency"
    if not isinstance(plain, list) or plain[:2] != [view, sort]:
        raise refused
    keys = plain[2:]
    shape = (bool, str, str) if urgency else (str, str)
    if len(keys) != len(shape) or not all(
        isinstance(k, t) for k, t in zip(keys, shape, strict=True)
    ):
        raise refused
    moment = keys[-2]
    try:
        when = datetime.fromisoformat(moment)
    except ValueError:
        raise refused from None
    if when.tzinfo is None or len(keys[-1]) > 64:
        raise refused
    return (*keys[:-2], when, keys[-1])
