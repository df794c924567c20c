"""Care-coordinator queues: list the work, claim it, release it, complete it, snooze it.

Queues: escalated, failed_delivery, overdue, due_today, awaiting_results; filters by site,
clinician and pathway state. Every action (and every listing) is audited. `site_scope`
restricts a user to one site: an item of another site is reported as unknown.

Claims are owned: an item claimed by one coordinator can be released, completed or snoozed
only by them; anyone else gets a conflict unless they take it over, with a reason, which is
audited (`item_taken_over`, naming the previous holder). Snoozes last at most `MAX_SNOOZE`.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from engine.adapters.coordinator_queries import live_items
from engine.domain.errors import ConcurrencyConflict, InvalidInput, UnknownWorkItem
from engine.domain.model import AuditRecord
from engine.domain.reminders import QUEUES, CoordinatorItem
from engine.services.access_policy import in_scope
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

MAX_PAGE = 200
MAX_OFFSET = 10_000_000
#: The longest snooze (the page offers 1 to 28 days).
MAX_SNOOZE = timedelta(days=28)


def coordinator_queue(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    queue: str | None = None,
    site: str | None = None,
    clinician: str | None = None,
    state: str | None = None,
    offset: int = 0,
    limit: int = 50,
    site_scope: str | None = None,
) -> dict[str, Any]:
    """One page of live work items, the total, and counts per queue."""
    if queue is not None and queue not in QUEUES:
        raise InvalidInput(f"unknown queue {queue!r}; queues are {', '.join(QUEUES)}")
    if not 0 < limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE} and offset 0..{MAX_OFFSET}")
    if site_scope is not None:
        if site not in (None, site_scope):
            raise InvalidInput(f"you can only see site {site_scope!r}")
        site = site_scope
    with uow:
        now = uow.clock.now()
        rows, total, counts = live_items(
            uow.session,
            now,
            datetime.combine(now.date(), time(), now.tzinfo),
            queue=queue,
            site=site,
            clinician=clinician,
            state=state,
            offset=offset,
            limit=limit,
        )
        listing = {
            "items": [_item_view(row) for row in rows],
            "total": total,
            "counts": {name: counts.get(name, 0) for name in QUEUES},
            "offset": offset,
            "limit": limit,
        }
        filters = {"queue": queue, "site": site, "clinician": clinician, "state": state}
        uow.record_only(
            [
                AuditRecord(
                    at=now,
                    actor=actor,
                    action="queue_viewed",
                    patient_id=None,
                    reason=f"{len(rows)} of {total} items",
                    detail={
                        "filters": {k: v for k, v in filters.items() if v},
                        "patients": sorted({row["patient_id"] for row in rows}),
                    },
                )
            ]
        )
    return listing


def claim_item(uow: SqlAlchemyUnitOfWork, actor: str, item_id: str, **scope: Any) -> dict:
    """Take an item so other coordinators see it is being handled."""

    def claim(item: CoordinatorItem, now: datetime) -> None:
        _held_by_actor_or_nobody(item, actor)
        item.status, item.claimed_by, item.claimed_at = "claimed", actor, now

    return _act(uow, actor, item_id, "item_claimed", claim, **scope)


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
    uow: SqlAlchemyUnitOfWork, actor: str, item_id: str, note: str = "", **scope: Any
) -> dict:
    """Mark an item handled (the clinical milestone itself completes only with its input); an
    item someone else holds is theirs to complete."""

    def complete(item: CoordinatorItem, now: datetime) -> None:
        _held_by_actor_or_nobody(item, actor)
        item.status, item.closed_at, item.closed_by = "completed", now, actor
        item.note = note.strip() or None

    return _act(uow, actor, item_id, "item_completed", complete, note=note, **scope)


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

    return _act(uow, actor, item_id, "item_snoozed", snooze, note=reason, **scope)


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


def _act(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    item_id: str,
    action: str,
    change,
    note: str = "",
    site_scope: str | None = None,
    expected_version: int | None = None,
    held_by: list[str | None] | None = None,
) -> dict[str, Any]:
    with uow:
        now = uow.clock.now()
        item = uow.session.get(CoordinatorItem, item_id)
        if item is None or not in_scope(site_scope, item.site):
            raise UnknownWorkItem(f"no coordinator item with id {item_id!r}")
        if item.status in ("completed", "closed"):
            raise InvalidInput(f"the item is already {item.status}")
        if expected_version is not None and expected_version != item.version:
            raise ConcurrencyConflict("the item was changed by someone else; reload it")
        change(item, now)
        item.updated_at = now
        uow.audit.append(
            [
                AuditRecord(
                    at=now,
                    actor=actor,
                    action=action,
                    patient_id=item.patient_id,
                    reason=f"{item.title}" + (f": {note.strip()}" if note.strip() else ""),
                    rule_ids=tuple(item.rule_ids),
                    detail={"item": item.id} | ({"previous_holder": held_by[0]} if held_by else {}),
                )
            ]
        )
        uow.commit()
        return _item_view(_columns(item))


def _held_by_actor_or_nobody(item: CoordinatorItem, actor: str) -> None:
    """ConcurrencyConflict if someone else holds the item (they must release it, or the actor
    must take it over with a reason)."""
    if item.status == "claimed" and item.claimed_by != actor:
        raise ConcurrencyConflict(
            f"claimed by {item.claimed_by}; only they can change it, or take it over with a reason"
        )


def _columns(item: CoordinatorItem) -> dict[str, Any]:
    return {name: getattr(item, name) for name in CoordinatorItem.__dataclass_fields__}


def _item_view(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON shape of a work item."""
    view = {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in row.items()
        if key not in ("given_name", "family_name")
    }
    if "given_name" in row:
        view["patient_name"] = f"{row['given_name']} {row['family_name']}".strip()
    return view
