"""The idempotency keys table: reserve a key, read it back, store the answer, drop it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
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
) -> None:
    """Reserve the key (IntegrityError if the principal already holds it)."""
    session.execute(
        insert(idempotency_keys).values(
            principal=principal,
            key=key,
            method=method,
            path=path,
            body_hash=body_hash,
            created_at=at,
        )
    )


def find_key(session: Session, principal: str, key: str) -> Any:
    """The key's row, or None."""
    return session.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
        )
    ).first()


def store_answer(session: Session, principal: str, key: str, status: int, body: Any) -> None:
    session.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
        .values(status=status, response=body)
    )


def drop_key(session: Session, principal: str, key: str) -> None:
    session.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
        )
    )
