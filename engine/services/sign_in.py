"""Signing people in to the pages: passwords (argon2), lockout after repeated failures, and
server-side sessions that end when idle, at an absolute limit, or at logout.

- **Passwords** are stored as argon2id hashes (argon2-cffi). The policy: at least
  `AIHP_PASSWORD_MIN_LENGTH` characters, at most 1,024, not the user name. Setting a password
  ends the user's open sessions and lifts a lockout of their name.
- **Lockout** is per user name: `AIHP_LOGIN_MAX_FAILURES` failures within
  `AIHP_LOGIN_FAILURE_WINDOW_MINUTES` lock it for `AIHP_LOGIN_LOCKOUT_MINUTES`. An unknown
  name is throttled exactly like a known one and a wrong password costs one argon2
  verification either way, so neither the message nor the timing says whether an account
  exists.
- **Sessions**: the cookie carries a random session id (never the API token); only its
  SHA-256 hash is stored. A session opened with an API token (the login page's "system"
  option) also ends when that token is revoked or expires. A page request authenticates with
  one SELECT, or none when this process checked the same session within
  `AIHP_SESSION_CACHE_SECONDS`; logging out, revoking a token or setting a password empties
  that cache in this process (another process sees the change within the same few seconds).
- **Audit**: `login_succeeded`, `login_failed` (with the reason, never the password nor the
  name typed for an unknown account, nor a token that opens nothing), `login_locked`, `logout`,
  `password_set`.

Typed on `SqlAlchemyUnitOfWork`: logins are rows, not patients, kept by login_store.py in
its session.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.adapters.login_store import LiveSession, SqlLoginStore, Throttle
from engine.config import Settings
from engine.domain.errors import InvalidInput
from engine.domain.model import AuditRecord, new_id
from engine.services import access
from engine.services.access import NotAuthenticated, UnknownUser, token_hash
from engine.services.access_policy import Principal
from engine.services.unit_of_work import SqlAlchemyUnitOfWork, UnitOfWork

MAX_PASSWORD_LENGTH = 1024
#: A session's last activity is written at most this often (idle expiry needs no finer grain).
TOUCH_SECONDS = 60


class WrongCredentials(NotAuthenticated):
    """The user name and password do not match (or the name is unknown: the same answer)."""

    code = "wrong-credentials"


class AccountLocked(NotAuthenticated):
    """Too many failed logins for this user name: locked for a while."""

    code = "account-locked"


@dataclass(frozen=True)
class SignInPolicy:
    """The numbers of password login and sessions (from `engine/config.py`)."""

    password_min_length: int = 12
    max_failures: int = 5
    failure_window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=12)
    session_idle: timedelta = timedelta(minutes=30)
    cache_seconds: float = 5.0
    hash_cost: tuple[int, int, int] = (2, 19456, 1)  # argon2id passes, memory KiB, lanes

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInPolicy:
        return cls(
            password_min_length=settings.password_min_length,
            max_failures=settings.login_max_failures,
            failure_window=timedelta(minutes=settings.login_failure_window_minutes),
            lockout=timedelta(minutes=settings.login_lockout_minutes),
            session_lifetime=timedelta(hours=settings.session_hours),
            session_idle=timedelta(minutes=settings.session_idle_minutes),
            cache_seconds=settings.session_cache_seconds,
            hash_cost=(
                settings.password_hash_time_cost,
                settings.password_hash_memory_kib,
                settings.password_hash_parallelism,
            ),
        )

    @property
    def hasher(self) -> PasswordHasher:
        return _hasher(self.hash_cost)[0]

    @property
    def decoy(self) -> str:
        """A hash verified when the name is unknown (or has no password), so that a wrong name
        costs what a wrong password costs."""
        return _hasher(self.hash_cost)[1]

    @property
    def locked_message(self) -> str:
        minutes = max(1, round(self.lockout.total_seconds() / 60))
        return (
            f"Too many failed attempts for this user name: it is locked for {minutes} minutes. "
            "Try again later, or ask an admin to set a new password."
        )


@dataclass(frozen=True)
class OpenedSession:
    """A new session: the id for the cookie (shown only here), its user, and when it ends."""

    session_id: str
    principal: Principal
    expires_at: datetime


# ---- passwords -----------------------------------------------------------------------------


def check_password(name: str, password: str, policy: SignInPolicy) -> None:
    """The password policy; InvalidInput naming what is wrong (never echoing the password)."""
    if len(password) < policy.password_min_length:
        raise InvalidInput(f"a password needs at least {policy.password_min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    if password != password.strip():
        raise InvalidInput("a password must not begin or end with a space")
    if password.casefold() == name.strip().casefold():
        raise InvalidInput("a password must not be the user name")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("a password must be valid text (no lone surrogate)") from None


@cache
def _hasher(cost: tuple[int, int, int]) -> tuple[PasswordHasher, str]:
    passes, memory_kib, lanes = cost
    hasher = PasswordHasher(time_cost=passes, memory_cost=memory_kib, parallelism=lanes)
    return hasher, hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str, policy: SignInPolicy) -> str:
    """The stored (argon2id) form of a password."""
    return policy.hasher.hash(password)


def set_password(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    user: str,
    password: str,
    policy: SignInPolicy,
    *,
    by: Principal | None = None,
) -> dict[str, Any]:
    """Give a user (by name or id) a new password; their open sessions end and a lockout of
    their name is lifted. Managed like tokens: a site admin only for its site's users."""
    with uow:
        store = SqlLoginStore(uow.session)
        account = store.account(user)
        if account is None or not account.active:
            raise UnknownUser(f"no active user {user!r}")
        access.may_manage(by, "password.set", account, user)
        check_password(account.name, password, policy)
        now = uow.clock.now()
        store.set_password_hash(account.id, hash_password(password, policy), now)
        ended = store.revoke_user_sessions(account.id, now)
        store.clear_throttle(_name_hash(account.name))
        detail = {"user_id": account.id, "sessions_ended": ended}
        uow.audit.append([AuditRecord(now, actor, "password_set", None, detail=detail)])
        uow.session.commit()
    forget_sessions()
    return {"user_id": account.id, "name": account.name, "password_set_at": now}


# ---- logging in ------------------------------------------------------------------------------


def sign_in(
    uow: SqlAlchemyUnitOfWork, name: str, password: str, policy: SignInPolicy
) -> OpenedSession:
    """Open a session for a user name and password, or WrongCredentials / AccountLocked (the
    same for an unknown name as for a known one)."""
    name = name.strip()[:64]
    with uow:
        store = SqlLoginStore(uow.session)
        now = uow.clock.now()
        key = _name_hash(name)
        throttle = store.throttle(key)
        account = store.account(name, or_id=False) if name else None  # one throttle per name
        actor = f"user:{account.id}" if account else "anonymous"
        if throttle.locked_until is not None and throttle.locked_until > now:
            _audit(uow, actor, "login_failed", {"reason": "locked", "method": "password"})
            uow.session.commit()
            raise AccountLocked(policy.locked_message)
        reason = _check(account, password, policy)
        if reason is not None:
            throttle = _failed(throttle, now, policy)
            store.save_throttle(key, throttle)
            _audit(uow, actor, "login_failed", {"reason": reason, "method": "password"})
            if throttle.locked_until is not None:
                minutes = policy.lockout.total_seconds() / 60
                _audit(uow, actor, "login_locked", {"minutes": minutes})
                uow.session.commit()
                raise AccountLocked(policy.locked_message)
            uow.session.commit()
            raise WrongCredentials("That user name and password do not match.")
        assert account is not None
        if policy.hasher.check_needs_rehash(account.password_hash or ""):
            store.set_password_hash(account.id, hash_password(password, policy), now)
        store.clear_throttle(key)
        store.prune(now, now - policy.failure_window)
        principal = Principal(account.id, account.name, account.role, account.site)
        return _open(uow, store, principal, None, policy, "password")


def sign_in_with_token(
    uow: SqlAlchemyUnitOfWork, token: str, policy: SignInPolicy
) -> OpenedSession:
    """Open a session with an API token (systems, and the login page's secondary option); the
    session ends when the token is revoked or expires, whichever comes first. A token that
    opens nothing is audited as a failed login (never the token itself)."""
    try:
        principal = access.authenticate(uow, token)
    except NotAuthenticated:
        with uow:
            _audit(uow, "anonymous", "login_failed", {"reason": "bad-token", "method": "token"})
            uow.session.commit()
        raise
    with uow:
        store = SqlLoginStore(uow.session)
        token_id, expires_at = store.token(token_hash(token))
        opened = _open(uow, store, principal, token_id, policy, "token", expires_at)
    return opened


def _check(account: Any, password: str, policy: SignInPolicy) -> str | None:
    """None if the password is the account's; else why not (for the audit log only)."""
    stored = account.password_hash if account is not None and account.active else None
    try:
        policy.hasher.verify(stored or policy.decoy, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return "wrong-password" if stored else "unknown-user" if account is None else "no-password"
    return None if stored else "no-password"


def _failed(throttle: Throttle, now: datetime, policy: SignInPolicy) -> Throttle:
    """One more failure: counted within the window, and a lock when there are too many."""
    started = throttle.first_failed_at
    if started is None or now - started > policy.failure_window:
        throttle = Throttle(0, now, None)
    failures = throttle.failures + 1
    if failures >= policy.max_failures:
        return Throttle(0, None, now + policy.lockout)
    return Throttle(failures, throttle.first_failed_at, None)


def _open(
    uow: SqlAlchemyUnitOfWork,
    store: SqlLoginStore,
    principal: Principal,
    token_id: str | None,
    policy: SignInPolicy,
    method: str,
    token_expires_at: datetime | None = None,
) -> OpenedSession:
    now = uow.clock.now()
    session_id = secrets.token_urlsafe(32)
    row_id = new_id()
    expires_at = now + policy.session_lifetime
    if token_expires_at is not None:
        expires_at = min(expires_at, token_expires_at)
    store.open_session(
        session_id=row_id,
        session_hash=_session_hash(session_id),
        user_id=principal.user_id,
        api_token_id=token_id,
        now=now,
        expires_at=expires_at,
    )
    _audit(uow, principal.actor, "login_succeeded", {"method": method, "session": row_id})
    uow.session.commit()
    return OpenedSession(session_id, principal, expires_at)


# ---- page requests and logging out -----------------------------------------------------------


@dataclass
class _Cached:
    session: LiveSession
    checked: float


_CACHE: dict[str, _Cached] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_LIMIT = 10_000


def session_principal(
    uow: SqlAlchemyUnitOfWork, session_id: str | None, policy: SignInPolicy
) -> Principal:
    """The user of a live session, or NotAuthenticated (unknown, revoked, idle too long, past
    its lifetime, or opened with a token since revoked)."""
    if not session_id or len(session_id) > 128:
        raise NotAuthenticated("no session")
    key = _session_hash(session_id)
    now = uow.clock.now()
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    fresh = cached is not None and time.monotonic() - cached.checked < policy.cache_seconds
    live = cached.session if fresh and cached is not None else None
    needs_touch = live is None or (now - live.last_seen_at).total_seconds() >= TOUCH_SECONDS
    if live is None or needs_touch:
        with uow:
            store = SqlLoginStore(uow.session)
            live = store.live_session(key)
            if live is None or _ended(live, now, policy):
                _forget(key)
                raise NotAuthenticated("the session has ended; log in again")
            if (now - live.last_seen_at).total_seconds() >= TOUCH_SECONDS:
                if not store.touch_session(live.id, now):
                    _forget(key)
                    raise NotAuthenticated("the session has ended; log in again")
                uow.session.commit()
                live = _touched(live, now)
        _remember(key, live)
    elif _ended(live, now, policy):
        _forget(key)
        raise NotAuthenticated("the session has ended; log in again")
    return Principal(live.user_id, live.name, live.role, live.site)


def sign_out(uow: SqlAlchemyUnitOfWork, session_id: str | None) -> bool:
    """End a session on the server (audited); False if it was not live."""
    if not session_id:
        return False
    key = _session_hash(session_id)
    _forget(key)
    with uow:
        store = SqlLoginStore(uow.session)
        now = uow.clock.now()
        user_id = store.revoke_session(key, now)
        if user_id is None:
            return False
        _audit(uow, f"user:{user_id}", "logout", {})
        uow.session.commit()
    return True


def forget_sessions() -> None:
    """Empty this process's session cache (after a token is revoked or a password set)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _ended(live: LiveSession, now: datetime, policy: SignInPolicy) -> bool:
    if now >= live.expires_at or now - live.last_seen_at >= policy.session_idle:
        return True
    return live.token_expires_at is not None and now >= live.token_expires_at


def _touched(live: LiveSession, now: datetime) -> LiveSession:
    fields = {**live.__dict__, "last_seen_at": now}
    return LiveSession(**fields)


def _remember(key: str, live: LiveSession) -> None:
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[key] = _Cached(live, time.monotonic())


def _forget(key: str) -> None:
    with _CACHE_LOCK:
        _CACHE.pop(key, None)


def _audit(uow: UnitOfWork, actor: str, action: str, detail: dict[str, Any]) -> None:
    uow.audit.append([AuditRecord(uow.clock.now(), actor, action, None, detail=detail)])


def _session_hash(session_id: str) -> str:
    return hashlib.sha256(b"aihp-session\0" + session_id.encode()).hexdigest()


def _name_hash(name: str) -> str:
    return hashlib.sha256(b"aihp-login-name\0" + name.casefold().encode()).hexdigest()
