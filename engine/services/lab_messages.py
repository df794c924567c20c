"""A laboratory's message of lab results (the HL7 v2 feed), recorded exactly once.

`record_lab_message` records the results through `record_lab_results`, all or nothing, and
remembers the message (sending facility, control id, a digest of its content) in the SAME
transaction: the feed acknowledges only what this committed, and a message sent again is
answered from what was remembered instead of being recorded twice. A refused message is not
remembered (nothing of it was written), so a resend after the clinic fixed the cause (enrolled
the patient, added a local code) is tried again.

Typed on `SqlAlchemyUnitOfWork`: its reads hand the session to lab_message_store.py; the
message is remembered by the unit of work's own commit (`KeyedRequest`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.adapters.lab_message_store import (
    METHOD,
    PATH,
    RememberedMessage,
    lab_message_principal,
    patients_by_record_number,
    remembered_message,
)
from engine.services.idempotency import IdempotencyKeyReused, KeyedRequest, Replay
from engine.services.patients import record_lab_results
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

UnitOfWorkFactory = Callable[..., SqlAlchemyUnitOfWork]

ATTEMPTS = 3  # a batch that lost a race with another writer is tried again this many times


@dataclass(frozen=True)
class MessageKey:
    """What makes a message the same message: who sent it, its control id, its content."""

    facility: str
    control_id: str
    digest: str


@dataclass
class MessageOutcome:
    """`recorded` (committed now), `replayed` (committed before), `refused` (nothing written,
    `answers` say why) or `busy` (the patients kept changing: nothing written, send again)."""

    status: str
    answers: list[dict[str, Any]] = field(default_factory=list)
    remembered: RememberedMessage | None = None


def message_context(
    uow: SqlAlchemyUnitOfWork, key: MessageKey, site: str, record_numbers: Iterable[str]
) -> tuple[RememberedMessage | None, dict[str, tuple[str, str]]]:
    """In one read: what was answered when this control id was recorded (if it was), and
    record number -> (patient id, pathway key) for the site's patients among `record_numbers`."""
    with uow:
        before = remembered_message(uow.session, key.facility, key.control_id)
        found = {} if before else patients_by_record_number(uow.session, site, record_numbers)
        return before, found


def remembered(uow: SqlAlchemyUnitOfWork, key: MessageKey) -> RememberedMessage | None:
    """What was answered when this facility's control id was recorded, if it was."""
    with uow:
        return remembered_message(uow.session, key.facility, key.control_id)


def record_lab_message(
    uow_factory: UnitOfWorkFactory,
    actor: str,
    key: MessageKey,
    items: list[dict[str, Any]],
) -> MessageOutcome:
    """Record every result of the message or none, remembering the message with them: the
    message is a `KeyedRequest` (principal the sending facility, key its control id, body hash
    its digest), stored by the results' own commit, as an Idempotency-Key is."""
    answer = {"ack": "AA", "results": len(items)}
    keyed = KeyedRequest(
        lab_message_principal(key.facility),
        key.control_id,
        METHOD,
        PATH,
        key.digest,
        200,
        render=lambda result: answer,
    )
    for _ in range(ATTEMPTS):
        uow = uow_factory(keyed=keyed)
        try:
            answers = record_lab_results(lambda uow=uow: uow, actor, items, all_or_nothing=True)
        except (Replay, IdempotencyKeyReused):  # committed before (or by a copy racing this one)
            return MessageOutcome("replayed", remembered=remembered(uow_factory(), key))
        if all(result["accepted"] for result in answers):
            return MessageOutcome("recorded", answers)
        if any(result["error"] not in ("conflict", "not-applied") for result in answers):
            return MessageOutcome("refused", answers)
    return MessageOutcome("busy", answers)
