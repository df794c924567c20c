"""SQL for logging in: users' password hashes, the failed-login throttle per user name, and the
pages' server-side sessions (only SHA-256 hashes of session ids are stored).

The sign-in service (engine/services/sign_in.py) decides; this module only reads and writes rows
in the unit of work's session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from engine.adapters.access_tables import api_tokens, login_sessions, login_throttle, users


@dataclass(frozen=True)
class Account:
    """A user as the login form sees them."""

    id: str
    name: str
    role: str
    site: str | None
    active: bool
    password_hash: str | None


@dataclass(frozen=True)
class Throttle:
    """Failed logins of one user name: how many since when, and until when it is locked."""

    failures: int = 0
    first_failed_at: datetime | None = None
    locked_until: datetime | None = None


@dataclass(frozen=True)
class LiveSession:
    """A session row joined with its user (and the API token it was opened with, if any)."""

    id: str
    user_id: str
    name: str
    role: str
    site: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    token_expires_at: datetime | None


class SqlLoginStore:
    """Rows of users, login_throttle and login_sessions, in one SQLAlchemy session."""

    def __init__(self, session: Session):
        self.session = session

    def account(self, name: str, *, or_id: bool = True) -> Account | None:
        """The user of this name (or id, unless `or_id` is False), or None."""
        row = self.session.execute(
            select(
                users.c.id,
                users.c.name,
                users.c.role,
                users.c.site,
                users.c.active,
                users.c.password_hash,
            ).where(
                or_(users.c.name == name, users.c.id == name) if or_id else users.c.name == name
            )
        ).first()
        return Account(**row._mapping) if row else None

    def token(self, token_hash: str) -> tuple[str, datetime]:
        """The id and expiry of the API token with this hash (known to exist)."""
        row = self.session.execute(
            select(api_tokens.c.id, api_tokens.c.expires_at).where(
                api_tokens.c.token_hash == token_hash
            )
        ).one()
        return row.id, row.expires_at

    def tokens(self, user_id: str | None = None, site: str | None = None) -> list[dict]:
        """API tokens (never their hashes), of one user or of every user of a site, oldest
        first."""
        query = (
            select(
                api_tokens.c.id,
                api_tokens.c.user_id,
                users.c.name.label("user"),
                api_tokens.c.created_at,
                api_tokens.c.expires_at,
                api_tokens.c.revoked_at,
            )
            .join(users, users.c.id == api_tokens.c.user_id)
            .order_by(api_tokens.c.created_at, api_tokens.c.id)
        )
        if user_id is not None:
            query = query.where(api_tokens.c.user_id == user_id)
        if site is not None:
            query = query.where(users.c.site == site)
        return [dict(row._mapping) for row in self.session.execute(query)]

    def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> None:
        self.session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(password_hash=password_hash, password_set_at=now)
        )

    def throttle(self, name_hash: str) -> Throttle:
        row = self.session.execute(
            select(
                login_throttle.c.failures,
                login_throttle.c.first_failed_at,
                login_throttle.c.locked_until,
            ).where(login_throttle.c.name_hash == name_hash)
        ).first()
        return Throttle(**row._mapping) if row else Throttle()

    def save_throttle(self, name_hash: str, throttle: Throttle) -> None:
        values = {
            "failures": throttle.failures,
            "first_failed_at": throttle.first_failed_at,
            "locked_until": throttle.locked_until,
        }
        changed = self.session.execute(
            update(login_throttle).where(login_throttle.c.name_hash == name_hash).values(**values)
        )
        if changed.rowcount == 0:
            self.session.execute(insert(login_throttle).values(name_hash=name_hash, **values))

    def prune(self, now: datetime, window_start: datetime) -> None:
        """Forget throttles whose lock and failure window are over, and sessions that ended
        (so names tried once, e.g. by a password sprayer, do not pile up)."""
        self.session.execute(
            delete(login_throttle).where(
                or_(login_throttle.c.locked_until.is_(None), login_throttle.c.locked_until <= now),
                or_(
                    login_throttle.c.first_failed_at.is_(None),
                    login_throttle.c.first_failed_at < window_start,
                ),
            )
        )
        self.session.execute(
            delete(login_sessions).where(
                or_(login_sessions.c.expires_at <= now, login_sessions.c.revoked_at.is_not(None))
            )
        )

    def clear_throttle(self, name_hash: str) -> None:
        self.session.execute(delete(login_throttle).where(login_throttle.c.name_hash == name_hash))

    def open_session(
        self,
        *,
        session_id: str,
        session_hash: str,
        user_id: str,
        api_token_id: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> None:
        self.session.execute(
            insert(login_sessions).values(
                id=session_id,
                session_hash=session_hash,
                user_id=user_id,
                api_token_id=api_token_id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
            )
        )

    def live_session(self, session_hash: str) -> LiveSession | None:
        """The session with this hash if not revoked, its user active and its token (if it was
        opened with one) not revoked: one SELECT. Expiry is judged by the caller."""
        row = self.session.execute(
            select(
                login_sessions.c.id,
                login_sessions.c.user_id,
                users.c.name,
                users.c.role,
                users.c.site,
                login_sessions.c.created_at,
                login_sessions.c.last_seen_at,
                login_sessions.c.expires_at,
                api_tokens.c.expires_at.label("token_expires_at"),
            )
            .join(users, users.c.id == login_sessions.c.user_id)
            .outerjoin(api_tokens, api_tokens.c.id == login_sessions.c.api_token_id)
            .where(
                login_sessions.c.session_hash == session_hash,
                login_sessions.c.revoked_at.is_(None),
                users.c.active.is_(True),
                or_(login_sessions.c.api_token_id.is_(None), api_tokens.c.revoked_at.is_(None)),
            )
        ).first()
        return LiveSession(**row._mapping) if row else None

    def touch_session(self, session_id: str, now: datetime) -> bool:
        """Record activity now; False if the session was revoked meanwhile."""
        changed = self.session.execute(
            update(login_sessions)
            .where(login_sessions.c.id == session_id, login_sessions.c.revoked_at.is_(None))
            .values(last_seen_at=now)
        )
        return changed.rowcount == 1

    def revoke_session(self, session_hash: str, now: datetime) -> str | None:
        """End the session with this hash; the user id it belonged to (None if none was live)."""
        row = self.session.execute(
            select(login_sessions.c.id, login_sessions.c.user_id).where(
                login_sessions.c.session_hash == session_hash,
                login_sessions.c.revoked_at.is_(None),
            )
        ).first()
        if row is None:
            return None
        self.session.execute(
            update(login_sessions).where(login_sessions.c.id == row.id).values(revoked_at=now)
        )
        return row.user_id

    def revoke_user_sessions(self, user_id: str, now: datetime) -> int:
        """End every live session of a user (a new password, a deactivated account)."""
        changed = self.session.execute(
            update(login_sessions)
            .where(login_sessions.c.user_id == user_id, login_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return changed.rowcount
