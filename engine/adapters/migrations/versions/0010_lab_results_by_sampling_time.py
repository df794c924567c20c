"""lab_results: an index by sampling time and id, so an Observation search over a whole site (or
every site) walks the results newest first and stops after one page, however many there are

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 03:00:00.000000
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lab_results", schema=None) as batch_op:
        batch_op.create_index("ix_lab_results_taken_at", ["taken_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lab_results", schema=None) as batch_op:
        batch_op.drop_index("ix_lab_results_taken_at")
