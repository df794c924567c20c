"""Coordinator queues: list the work (views, filters, counts, sort, keyset paging with
`cursor`), claim one item or several, release, complete with an outcome, snooze, undo a
completion or a snooze the same day, take over another coordinator's item (with a reason),
acknowledge reminders. A user with a site sees and acts on that site only, a clinician on their
own patients' items only (the access policy); an item someone else holds is a 409."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

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
from api.refusals import audit_unknown_items
from engine.services import coordinator_queue as queues
from engine.services.access_policy import Principal, queue_scope

router = APIRouter(tags=["queues"], dependencies=[Depends(reject_unknown_query)])

ItemId = Annotated[str, Path(min_length=1, max_length=64, description="Work item id")]
QueueName = Literal["escalated", "failed_delivery", "overdue", "due_today", "awaiting_results"]
ViewName = Literal["live", "mine", "snoozed", "completed"]
SortName = Literal["urgency", "due"]
Text = Annotated[str | None, Query(min_length=1, max_length=64)]


class QueueItem(schemas.QueueItem):
    """A work item with what the page shows: days overdue, stale, names, outcome, undo."""

    days_overdue: int
    stale: bool
    claimed_by_name: str | None = None
    closed_by_name: str | None = None
    snoozed_by_name: str | None = None
    outcome: str | None = None
    outcome_text: str | None = None
    closed_at: str | None = None
    undoable: bool


class QueueListing(BaseModel):
    items: list[QueueItem]
    total: int
    counts: dict[str, int] = Field(
        description="items per queue, same filters: the caller's claims in the mine view, "
        "live items otherwise"
    )
    mine: int = Field(description="live items claimed by the caller")
    view: ViewName
    sort: SortName
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    limit: int


class QueueItemChange(schemas.QueueItemChange):
    outcome: str | None = None
    claimed_by_name: str | None = None
    undoable: bool


class CompleteRequest(BaseModel):
    """What was done: an outcome code (GET /queues/outcomes) and a note (`other` needs one)."""

    model_config = ConfigDict(extra="forbid")

    outcome: str = Field(min_length=1, max_length=32)
    note: schemas.Note = Field("", max_length=1000)
    expected_version: int | None = Field(None, ge=0)


class BulkClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=queues.MAX_BULK
    )


class Refusal(BaseModel):
    id: str
    reason: str


class BulkClaim(BaseModel):
    claimed: list[QueueItemChange]
    refused: list[Refusal]


@router.get(
    "/queues",
    response_model=QueueListing,
    responses=problems(401, 403),
    summary="Work items of a view with live counts per queue, keyset paged (listing is audited)",
)
def list_queue(
    principal: QueueReader,
    uow: UnitOfWork,
    view: ViewName = "live",
    queue: QueueName | None = None,
    site: Text = None,
    clinician: Text = None,
    state: Text = None,
    sort: SortName = "urgency",
    cursor: Annotated[str | None, Query(min_length=1, max_length=400)] = None,
    limit: Annotated[int, Query(ge=1, le=queues.MAX_PAGE)] = 50,
) -> dict:
    return queues.coordinator_queue(
        uow(),
        principal.actor,
        view=view,
        queue=queue,
        site=site,
        clinician=clinician,
        state=state,
        sort=sort,
        cursor=cursor,
        limit=limit,
        **queue_scope(principal),
    )


@router.get(
    "/queues/outcomes",
    response_model=dict[str, str],
    responses=problems(401, 403),
    summary="The outcome codes a completion records, with their words",
)
def list_outcomes(principal: QueueReader) -> dict[str, str]:
    return queues.outcomes()


@router.post(
    "/queues/items/claim",
    response_model=BulkClaim,
    responses=problems(403, 422),
    summary="Claim several items; those another coordinator holds are listed with the reason",
)
def claim_several(
    request: Request, body: BulkClaimRequest, principal: QueueWorker, uow: UnitOfWork
) -> dict:
    done = queues.claim_items(
        uow(),
        principal.actor,
        body.item_ids,
        **queue_scope(principal),
    )
    audit_unknown_items(request, done["refused"], "api")
    return done


@router.post(
    "/queues/items/{item_id}/claim",
    response_model=QueueItemChange,
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
    response_model=QueueItemChange,
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
    response_model=QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Mark an item handled with an outcome and a note (409 if another holds it)",
)
def complete(
    item_id: ItemId, body: CompleteRequest, principal: QueueWorker, uow: UnitOfWork
) -> dict:
    return queues.complete_item(
        uow(),
        principal.actor,
        item_id,
        note=body.note,
        outcome=body.outcome,
        **_scope(principal, body),
    )


@router.post(
    "/queues/items/{item_id}/snooze",
    response_model=QueueItemChange,
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
    "/queues/items/{item_id}/undo",
    response_model=QueueItemChange,
    responses=problems(403, 404, 409),
    summary="Undo your completion or snooze of an item, the same day (audited)",
)
def undo(
    item_id: ItemId,
    principal: QueueWorker,
    uow: UnitOfWork,
    body: schemas.VersionRequest | None = None,
) -> dict:
    return queues.undo_item(uow(), principal.actor, item_id, **_scope(principal, body))


@router.post(
    "/queues/items/{item_id}/take-over",
    response_model=QueueItemChange,
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
    return {**queue_scope(principal), "expected_version": getattr(body, "expected_version", None)}
