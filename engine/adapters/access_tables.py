"""Tables for access: users (with an argon2 password hash), bearer tokens (SHA-256 hashes only),
the pages' login sessions (SHA-256 hashes of their ids only), the failed-login throttle per user
name, and idempotency keys.

They share `engine.adapters.orm.metadata`, so Alembic sees one schema. Plain Core tables: the
access service reads and writes rows, there is no domain class to map.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from engine.adapters.orm import ID, UTCDateTime, metadata

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(24), nullable=False),
    Column("site", String(64)),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_hash", String(256)),
    Column("password_set_at", UTCDateTime),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index("ix_api_tokens_user", "user_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(64), nullable=False),
    Column("key", String(128), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(300), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("status", Integer),
    Column("response", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("principal", "key"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

login_sessions = Table(
    "login_sessions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("session_hash", String(64), nullable=False, unique=True),
    Column("user_id", ID, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("api_token_id", ID, ForeignKey("api_tokens.id", ondelete="CASCADE")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Index("ix_login_sessions_user", "user_id"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("name_hash", String(64), primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("first_failed_at", UTCDateTime),
    Column("locked_until", UTCDateTime),
)
