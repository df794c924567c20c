"""The idempotency keys table: read a key back, and store a key with its answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine.adapters.access_tables import idempotency_keys


def insert_key(
    session: Session,
    principal: str,
    key: str,
    method: str,
    path: str,
    body_hash: str,
    at: datetime,
    status: int,
    body: Any,
) -> None:
    """Store the key with the answer given (IntegrityError if the principal already holds it:
    on PostgreSQL a concurrent holder's INSERT makes this one wait for its commit)."""
    session.execute(
        insert(idempotency_keys).values(
            principal=principal,
            key=key,
            method=method,
            path=path,
            body_hash=body_hash,
            created_at=at,
            status=status,
            response=body,
        )
    )


def find_key(session: Session, principal: str, key: str) -> Any:
    """The key's row, or None."""
    return session.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
        )
    ).first()
