"""Idempotency keys: the same request sent twice with one key does its work once.

The key is reserved before the work (so two concurrent copies cannot both do it), the answer
is stored after it, and the reservation is dropped if the work fails, so a retry can try again.
Keys are per principal; reusing a key for a different request is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from engine.adapters.idempotency_store import drop_key, find_key, insert_key, store_answer
from engine.domain.errors import ConcurrencyConflict, InvalidInput
from engine.services.unit_of_work import SqlAlchemyUnitOfWork


class IdempotencyKeyReused(InvalidInput):
    """The key was already used for a different request."""

    code = "idempotency-key-reused"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


def reserve(
    uow: SqlAlchemyUnitOfWork, principal: str, key: str, method: str, path: str, body_hash: str
) -> StoredResponse | None:
    """Reserve `key` for this request; the stored answer if it was already done."""
    if not 1 <= len(key) <= 128:
        raise InvalidInput("Idempotency-Key must be 1 to 128 characters")
    with uow:
        try:
            insert_key(
                uow.session, principal, key, method, path[:300], body_hash, uow.clock.now()
            )
            uow.session.commit()
            return None
        except IntegrityError:
            uow.session.rollback()
        row = find_key(uow.session, principal, key)
    if row is None:  # the first attempt failed and released the key meanwhile
        raise ConcurrencyConflict("a request with this Idempotency-Key is in progress; retry")
    if (row.method, row.path, row.body_hash) != (method, path[:300], body_hash):
        raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
    if row.status is None:
        raise ConcurrencyConflict("a request with this Idempotency-Key is in progress; retry")
    return StoredResponse(row.status, row.response)


def complete(uow: SqlAlchemyUnitOfWork, principal: str, key: str, status: int, body: Any) -> None:
    """Store the answer to replay for the key."""
    with uow:
        store_answer(uow.session, principal, key, status, body)
        uow.session.commit()


def release(uow: SqlAlchemyUnitOfWork, principal: str, key: str) -> None:
    """Drop a reservation whose work failed, so the client may retry with the same key."""
    with uow:
        drop_key(uow.session, principal, key)
        uow.session.commit()
