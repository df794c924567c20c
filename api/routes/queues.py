"""Coordinator queues: list the work (filters, counts, paging), claim, release, complete and
snooze items, take over another coordinator's item (with a reason), acknowledge reminders. A
user with a site sees and acts on that site only; an item someone else holds is a 409."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from api import schemas
from api.deps import (
    Acknowledger,
    QueueReader,
    QueueTakeOver,
    QueueWorker,
    UnitOfWork,
    reject_unknown_query,
)
from api.errors import problems
from engine.services import coordinator_queue as queues
from engine.services.access_policy import Principal

router = APIRouter(tags=["queues"], dependencies=[Depends(reject_unknown_query)])

ItemId = Annotated[str, Path(min_length=1, max_length=64, description="Work item id")]
QueueName = Literal["escalated", "failed_delivery", "overdue", "due_today", "awaiting_results"]
Text = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get(
    "/queues",
    response_model=schemas.QueueListing,
    responses=problems(401, 403),
    summary="Live work items with counts per queue (listing is audited)",
)
def list_queue(
    principal: QueueReader,
    uow: UnitOfWork,
    queue: QueueName | None = None,
    site: Text = None,
    clinician: Text = None,
    state: Text = None,
    offset: Annotated[int, Query(ge=0, le=queues.MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=queues.MAX_PAGE)] = 50,
) -> dict:
    return queues.coordinator_queue(
        uow(),
        principal.actor,
        queue=queue,
        site=site,
        clinician=clinician,
        state=state,
        offset=offset,
        limit=limit,
        site_scope=principal.site,
    )


@router.post(
    "/queues/items/{item_id}/claim",
    response_model=schemas.QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Take an item (409 if another coordinator holds it)",
)
def claim(
    item_id: ItemId,
    principal: QueueWorker,
    uow: UnitOfWork,
    body: schemas.VersionRequest | None = None,
) -> dict:
    return queues.claim_item(uow(), principal.actor, item_id, **_scope(principal, body))


@router.post(
    "/queues/items/{item_id}/release",
    response_model=schemas.QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Give an item back to the queue (409 if another coordinator holds it)",
)
def release(
    item_id: ItemId,
    principal: QueueWorker,
    uow: UnitOfWork,
    body: schemas.VersionRequest | None = None,
) -> dict:
    return queues.release_item(uow(), principal.actor, item_id, **_scope(principal, body))


@router.post(
    "/queues/items/{item_id}/complete",
    response_model=schemas.QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Mark an item handled, with an optional note (409 if another coordinator holds it)",
)
def complete(
    item_id: ItemId, body: schemas.CompleteRequest, principal: QueueWorker, uow: UnitOfWork
) -> dict:
    return queues.complete_item(
        uow(), principal.actor, item_id, note=body.note, **_scope(principal, body)
    )


@router.post(
    "/queues/items/{item_id}/snooze",
    response_model=schemas.QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Hide an item for at most 28 days, with a reason (409 if another holds it)",
)
def snooze(
    item_id: ItemId, body: schemas.SnoozeRequest, principal: QueueWorker, uow: UnitOfWork
) -> dict:
    return queues.snooze_item(
        uow(),
        principal.actor,
        item_id,
        until=body.until,
        reason=body.reason,
        **_scope(principal, body),
    )


@router.post(
    "/queues/items/{item_id}/take-over",
    response_model=schemas.QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Take over an item another coordinator holds, with a reason (audited)",
)
def take_over(
    item_id: ItemId, body: schemas.TakeOverRequest, principal: QueueTakeOver, uow: UnitOfWork
) -> dict:
    return queues.take_over_item(
        uow(), principal.actor, item_id, reason=body.reason, **_scope(principal, body)
    )


@router.post(
    "/reminders/{reminder_id}/acknowledge",
    response_model=schemas.ReminderAcknowledgement,
    responses=problems(403, 404),
    summary="Confirm a reminder has been seen",
)
def acknowledge(
    reminder_id: Annotated[str, Path(min_length=1, max_length=64)],
    principal: Acknowledger,
    uow: UnitOfWork,
) -> dict:
    return queues.acknowledge_reminder(
        uow(), principal.actor, reminder_id, site_scope=principal.site
    )


def _scope(principal: Principal, body: object) -> dict:
    return {
        "site_scope": principal.site,
        "expected_version": getattr(body, "expected_version", None),
    }
