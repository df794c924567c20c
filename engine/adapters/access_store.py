"""SQL for who may use the API: users and their bearer tokens (SHA-256 hashes only).

The access service (engine/services/access.py) decides who may do what and audits it; this
module only reads and writes rows in the unit of work's session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from engine.adapters.access_tables import api_tokens, users
from engine.adapters.login_store import Account

_PUBLIC = (users.c.id, users.c.name, users.c.role, users.c.site, users.c.active)


@dataclass(frozen=True)
class TokenHolder:
    """The active user a live (unrevoked) token belongs to, and the token's expiry."""

    id: str
    name: str
    role: str
    site: str | None
    expires_at: datetime


class SqlAccessStore:
    """Rows of users and api_tokens, in one SQLAlchemy session."""

    def __init__(self, session: Session):
        self.session = session

    def name_taken(self, name: str) -> bool:
        found = self.session.execute(select(users.c.id).where(users.c.name == name)).first()
        return found is not None

    def add_user(self, row: dict[str, Any]) -> None:
        """Insert a user (id, name, role, site, active, created_at, optional password hash)."""
        self.session.execute(insert(users).values(**row))

    def users(self, site: str | None = None) -> list[dict[str, Any]]:
        """Users (of one site, if given) with when they were created, oldest first."""
        query = select(*_PUBLIC, users.c.created_at).order_by(users.c.created_at, users.c.id)
        if site is not None:
            query = query.where(users.c.site == site)
        return [dict(row._mapping) for row in self.session.execute(query)]

    def user(self, user_id: str) -> Account | None:
        """The user with this id (by name or id: `SqlLoginStore.account`), or None."""
        row = self.session.execute(
            select(*_PUBLIC, users.c.password_hash).where(users.c.id == user_id)
        ).first()
        return Account(**row._mapping) if row else None

    def add_token(self, row: dict[str, Any]) -> None:
        """Insert a token (id, user_id, token_hash, created_at, expires_at)."""
        self.session.execute(insert(api_tokens).values(**row))

    def token(self, token_id: str) -> dict[str, Any] | None:
        """The token's row (with its hash), or None."""
        row = self.session.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        return dict(row._mapping) if row else None

    def revoke_token(self, token_id: str, now: datetime) -> None:
        self.session.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now)
        )

    def holder(self, token_hash: str) -> TokenHolder | None:
        """The active user of the unrevoked token with this hash (one SELECT), or None; expiry
        is judged by the caller."""
        row = self.session.execute(
            select(users.c.id, users.c.name, users.c.role, users.c.site, api_tokens.c.expires_at)
            .join(api_tokens, api_tokens.c.user_id == users.c.id)
            .where(
                api_tokens.c.token_hash == token_hash,
                api_tokens.c.revoked_at.is_(None),
                users.c.active.is_(True),
            )
        ).first()
        return TokenHolder(**row._mapping) if row else None
