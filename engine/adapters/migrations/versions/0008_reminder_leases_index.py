"""reminders: a partial index over leased rows (claimed, sending) by lease end, so the scanner
takes reminders stranded by a dead worker first, before the backlog of scheduled ones

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_LEASED = sa.text("status IN ('claimed', 'sending')")


def upgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reminders_leased_until",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=_LEASED,
            sqlite_where=_LEASED,
        )


def downgrade() -> None:
    with op.batch_alter_table("reminders", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_reminders_leased_until", postgresql_where=_LEASED, sqlite_where=_LEASED
        )
