"""Idempotency keys: the same request sent twice with one key does its work once.

The key and the answer are stored by the write's own transaction, at its commit (see
`SqlAlchemyUnitOfWork`), so the work and the key are written together or not at all: no
reservation to release when the work fails, nothing left "in progress" by a crash. Before any
work, a key already answered is replayed (`Replay`). Two copies racing with one key both do
the work, but only one commits: the other's INSERT of the key fails (on PostgreSQL it waits
for the first to commit), its transaction is rolled back whole and it replays the first
answer. Keys are per principal; reusing a key for a different request is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.adapters.idempotency_store import find_key, insert_key
from engine.domain.errors import ConcurrencyConflict, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class IdempotencyKeyReused(InvalidInput):
    """The key was already used for a different request."""

    code = "idempotency-key-reused"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


class Replay(Exception):
    """The request was already answered under its key: give `stored` back, do nothing."""

    def __init__(self, stored: StoredResponse):
        super().__init__("already answered under this Idempotency-Key")
        self.stored = stored


@dataclass(frozen=True)
class KeyedRequest:
    """A write sent with an Idempotency-Key: who sent it, the key, what it asked, the status
    it answers with, and how the use case's result becomes the stored (replayed) body."""

    principal: str
    key: str
    method: str
    path: str
    body_hash: str
    status: int
    render: Callable[[Any], Any]

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= 128:
            raise InvalidInput("Idempotency-Key must be 1 to 128 characters")
        object.__setattr__(self, "path", self.path[:300])

    def replay_if_answered(self, session: Session) -> None:
        """Raise `Replay` if this key was answered, IdempotencyKeyReused if it was used for
        another request; return if the key is new."""
        row = find_key(session, self.principal, self.key)
        if row is None:
            return
        if (row.method, row.path, row.body_hash) != (self.method, self.path, self.body_hash):
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        if row.status is None:  # a reservation left by an older version of the engine
            raise ConcurrencyConflict("a request with this Idempotency-Key is in progress; retry")
        raise Replay(StoredResponse(row.status, row.response))

    def store(self, session: Session, result: Any, at: datetime) -> None:
        """Store the key with the rendered answer, in the caller's transaction."""
        insert_key(
            session,
            self.principal,
            self.key,
            self.method,
            self.path,
            self.body_hash,
            at,
            self.status,
            self.render(result),
        )
