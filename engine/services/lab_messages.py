"""A laboratory's message of lab results (the HL7 v2 feed), recorded exactly once.

`record_lab_message` records the results through `record_lab_results`, all or nothing, and
remembers the message (sending facility, control id, a digest of its content) in the SAME
transaction: the feed acknowledges only what this committed, and a message sent again is
answered from what was remembered instead of being recorded twice. A refused message is not
remembered (nothing of it was written), so a resend after the clinic fixed the cause (enrolled
the patient, added a local code) is tried again.

Typed on `SqlAlchemyUnitOfWork`: the message is remembered in its session, in the same
transaction as the results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.adapters.lab_message_store import (
    RememberedMessage,
    patients_by_record_number,
    remember_message,
    remembered_message,
)
from engine.clock import Clock
from engine.domain.errors import ConcurrencyConflict
from engine.services.patients import record_lab_results
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

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
    uow_factory: Callable[[], SqlAlchemyUnitOfWork],
    actor: str,
    key: MessageKey,
    items: list[dict[str, Any]],
) -> MessageOutcome:
    """Record every result of the message or none, remembering the message with them."""
    answer = {"ack": "AA", "results": len(items)}
    for _ in range(ATTEMPTS):
        base = uow_factory()
        uow = _RememberingUnitOfWork(base._sessions, base.clock, key, answer)
        try:
            answers = record_lab_results(lambda uow=uow: uow, actor, items, all_or_nothing=True)
        except _AlreadyRemembered:
            return MessageOutcome("replayed", remembered=remembered(uow_factory(), key))
        if all(result["accepted"] for result in answers):
            return MessageOutcome("recorded", answers)
        if any(result["error"] not in ("conflict", "not-applied") for result in answers):
            return MessageOutcome("refused", answers)
    return MessageOutcome("busy", answers)


class _AlreadyRemembered(Exception):
    """Another copy of the message committed first."""


class _RememberingUnitOfWork(SqlAlchemyUnitOfWork):
    """A unit of work whose commit also remembers the message, in the same transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Clock, key: MessageKey, answer: dict
    ):
        super().__init__(sessions, clock)
        self._key, self._answer = key, answer

    def commit(self) -> None:
        now: datetime = self.clock.now()
        try:
            with self.session.no_autoflush:  # the base commit flushes the patients, once
                remember_message(
                    self.session,
                    self._key.facility,
                    self._key.control_id,
                    self._key.digest,
                    self._answer,
                    now,
                )
        except IntegrityError:
            self.rollback()
            raise _AlreadyRemembered from None
        except OperationalError as busy:  # SQLite's writer lock, as the base commit treats it
            self.rollback()
            if "locked" in str(busy.orig).lower():
                raise ConcurrencyConflict("the patient record is busy; try again") from busy
            raise
        super().commit()
