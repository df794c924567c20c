"""medication orders: the unit the dose was given in, the dose range it was checked against
and the safety rules overridden for it

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 23:55:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("medication_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dose_given_as", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("dose_range", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("overrides", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("medication_orders", schema=None) as batch_op:
        batch_op.drop_column("overrides")
        batch_op.drop_column("dose_range")
        batch_op.drop_column("dose_given_as")
