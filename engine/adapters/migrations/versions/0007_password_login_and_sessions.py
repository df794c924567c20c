"""users: an argon2 password hash; login_sessions: the pages' server-side sessions (hashes of
their ids); login_throttle: failed logins per user name and the lockout they cause

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 02:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import engine.adapters.orm

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

MOMENT = engine.adapters.orm.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("password_set_at", MOMENT, nullable=True))
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("api_token_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("last_seen_at", MOMENT, nullable=False),
        sa.Column("expires_at", MOMENT, nullable=False),
        sa.Column("revoked_at", MOMENT, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["api_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_login_sessions_api_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_login_sessions_session_hash")),
    )
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_login_sessions_user", ["user_id"], unique=False)
    op.create_table(
        "login_throttle",
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", MOMENT, nullable=True),
        sa.Column("locked_until", MOMENT, nullable=True),
        sa.PrimaryKeyConstraint("name_hash", name=op.f("pk_login_throttle")),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    with op.batch_alter_table("login_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_login_sessions_user")
    op.drop_table("login_sessions")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("password_set_at")
        batch_op.drop_column("password_hash")
