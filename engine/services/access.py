"""Who may use the API: users with one role (and optionally a site), and their bearer tokens.

A token is shown once when issued; only its SHA-256 hash is stored. Tokens expire and can be
revoked. A token checked in the last few seconds is trusted from this process's memory
(`TOKEN_CACHE_SECONDS`), so a request costs no transaction to authenticate; revoking empties
that memory at once in this process, and another process sees it within those seconds.
Expiry is still checked against the clock on every call.

Creating users and issuing or revoking tokens is audited like any other change. When an admin
does it (`by`), the access policy decides: a site admin manages only its own site's users;
`by=None` is the operator at the command line.

Typed on `SqlAlchemyUnitOfWork`: users and tokens are rows, not patients, read and written
through engine/adapters/access_store.py in the unit of work's session.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from engine.adapters.access_store import SqlAccessStore
from engine.adapters.login_store import SqlLoginStore
from engine.domain.errors import DomainError, InvalidInput
from engine.domain.model import AuditRecord, new_id
from engine.services.access_policy import ROLES, Principal, Resource, enforce
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

SITE_REQUIRED = ("coordinator",)
#: How long a checked token is trusted without reading it again (as sessions are).
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_CACHE_SIZE = 10_000
_TOKEN_CACHE: dict[str, tuple[Principal, datetime, float]] = {}
_TOKEN_CACHE_LOCK = threading.Lock()


class UnknownUser(DomainError):
    """No user (or token) with that id or name."""

    code = "unknown-user"


class NotAuthenticated(DomainError):
    """The bearer token is missing, unknown, expired or revoked."""

    code = "not-authenticated"


def token_hash(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_user(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    name: str,
    role: str,
    site: str | None = None,
    by: Principal | None = None,
    password: str | None = None,
    password_policy: Any = None,
) -> dict[str, Any]:
    """Create a user with one role; coordinators must belong to a site. A site given but blank
    is refused (it must not silently become a user of every site). With `password` (checked
    against `password_policy`, a `sign_in.SignInPolicy`), the user can log in to the pages."""
    name = name.strip()
    if site is not None:
        site = site.strip()
        if not site:
            raise InvalidInput("site must not be blank; leave it out for a user of every site")
    if not name or len(name) > 64:
        raise InvalidInput("name is required (at most 64 characters)")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if role in SITE_REQUIRED and site is None:
        raise InvalidInput(f"a {role} needs a site")
    if by is not None:
        enforce(by, "user.create", Resource(site, role))
    if password is not None:
        from engine.services.sign_in import SignInPolicy, check_password, hash_password

        password_policy = password_policy or SignInPolicy()
        check_password(name, password, password_policy)
    with uow:
        store = SqlAccessStore(uow.session)
        if store.name_taken(name):
            raise InvalidInput(f"a user named {name!r} already exists")
        now = uow.clock.now()
        row = {"id": new_id(), "name": name, "role": role, "site": site, "active": True}
        stored = {}
        if password is not None:
            hashed = hash_password(password, password_policy)
            stored = {"password_hash": hashed, "password_set_at": now}
        store.add_user({**row, **stored, "created_at": now})
        detail = {**_public(row), "password": bool(stored)}
        uow.audit.append([AuditRecord(now, actor, "user_created", None, detail=detail)])
        created = {**_public(row), "created_at": now}
        uow.commit(lambda: created)  # an Idempotency-Key is stored with it
        return created


def list_users(uow: SqlAlchemyUnitOfWork, by: Principal | None = None) -> list[dict[str, Any]]:
    """Every user the caller manages (a site admin: its site's), oldest first."""
    if by is not None:
        enforce(by, "user.list")
    with uow:
        rows = SqlAccessStore(uow.session).users(by.site if by is not None else None)
        return [{**_public(row), "created_at": row["created_at"]} for row in rows]


def list_tokens(
    uow: SqlAlchemyUnitOfWork, user: str | None = None, by: Principal | None = None
) -> list[dict[str, Any]]:
    """The API tokens of one user (by id or name) or of everyone the caller manages: when
    issued, until when, and whether revoked (never the token, never its hash)."""
    with uow:
        store = SqlLoginStore(uow.session)
        owner = None
        if user is not None:
            owner = store.account(user)
            if owner is None:
                raise UnknownUser(f"no user {user!r}")
            may_manage(by, "token.issue", owner, user)
        elif by is not None:
            enforce(by, "user.list")
        site = by.site if by is not None else None
        return store.tokens(owner.id if owner else None, site)


def issue_token(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    user: str,
    *,
    days: int = 30,
    by: Principal | None = None,
) -> dict[str, Any]:
    """A new random token for a user (by id or name), valid for `days`; shown only here."""
    if not 1 <= days <= 3650:
        raise InvalidInput("days must be between 1 and 3650")
    with uow:
        found = SqlLoginStore(uow.session).account(user)
        if found is None or not found.active:
            raise UnknownUser(f"no active user {user!r}")
        may_manage(by, "token.issue", found, user)
        now = uow.clock.now()
        token = secrets.token_urlsafe(32)
        row = {
            "id": new_id(),
            "user_id": found.id,
            "token_hash": token_hash(token),
            "created_at": now,
            "expires_at": now + timedelta(days=days),
        }
        SqlAccessStore(uow.session).add_token(row)
        uow.audit.append(
            [AuditRecord(now, actor, "token_issued", None, detail={"token_id": row["id"]})]
        )
        uow.session.commit()
        return {**_token_view(row), "token": token}


def revoke_token(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    token_id: str,
    *,
    user_id: str | None = None,
    by: Principal | None = None,
) -> dict[str, Any]:
    """Revoke a token now (revoking twice keeps the first time); `user_id` must own it if given."""
    with uow:
        store = SqlAccessStore(uow.session)
        row = store.token(token_id)
        if row is None or (user_id is not None and row["user_id"] != user_id):
            raise UnknownUser(f"no token {token_id!r}")
        may_manage(by, "token.revoke", store.user(row["user_id"]), token_id)
        now = uow.clock.now()
        revoked_at = row["revoked_at"] or now
        if row["revoked_at"] is None:
            store.revoke_token(token_id, now)
            uow.audit.append(
                [AuditRecord(now, actor, "token_revoked", None, detail={"token_id": token_id})]
            )
            uow.session.commit()
            from engine.services.sign_in import forget_sessions

            forget_tokens(row["token_hash"])  # the token is refused at once in this process
            forget_sessions()  # sessions opened with this token end now in this process
        return _token_view({**row, "revoked_at": revoked_at})


def authenticate(uow: SqlAlchemyUnitOfWork, token: str | None) -> Principal:
    """The principal a bearer token stands for, or NotAuthenticated."""
    if not token:
        raise NotAuthenticated("a bearer token is required")
    key = token_hash(token)
    with _TOKEN_CACHE_LOCK:
        cached = _TOKEN_CACHE.get(key)
    if cached is not None and time.monotonic() - cached[2] < TOKEN_CACHE_SECONDS:
        principal, expires_at, _ = cached
        if _expired(expires_at, uow.clock.now()):
            raise NotAuthenticated("the token is unknown, expired or revoked")
        return principal
    with uow:
        row = SqlAccessStore(uow.session).holder(key)
        if row is None or _expired(row.expires_at, uow.clock.now()):
            forget_tokens(key)
            raise NotAuthenticated("the token is unknown, expired or revoked")
        principal = Principal(row.id, row.name, row.role, row.site)
    with _TOKEN_CACHE_LOCK:
        if len(_TOKEN_CACHE) >= _TOKEN_CACHE_SIZE:
            _TOKEN_CACHE.clear()
        _TOKEN_CACHE[key] = (principal, row.expires_at, time.monotonic())
    return principal


def forget_tokens(key: str | None = None) -> None:
    """Stop trusting a checked token (by its hash), or every one, in this process."""
    with _TOKEN_CACHE_LOCK:
        if key is None:
            _TOKEN_CACHE.clear()
        else:
            _TOKEN_CACHE.pop(key, None)


def may_manage(by: Principal | None, action: str, user: Any, asked: str) -> None:
    """The policy on managing `user`; another site's user is unknown, exactly like a wrong id."""
    if by is not None:
        missing = partial(UnknownUser, f"no such user or token {asked!r}")
        enforce(by, action, Resource(user.site, user.role), missing=missing)


def _expired(expires_at: datetime, now: datetime) -> bool:
    return expires_at <= now


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "name", "role", "site", "active")}


def _token_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "created_at": row["created_at"],
        "expires_at": row["expires_at"],
        "revoked_at": row.get("revoked_at"),
    }
