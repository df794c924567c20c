"""coordinator items: the queue page read in order from partial indexes over live items
(urgency and due-date orders, counts from an index-only scan), completed items by site, claims
by holder; the coded outcome of a completed item and who snoozed an item (for undo)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LIVE = sa.text("status IN ('open', 'claimed', 'snoozed')")
COMPLETED = sa.text("status = 'completed'")
CLAIMED = sa.text("status = 'claimed'")
#: What the counts per queue read: carried by both live indexes for an index-only scan.
COUNTED = ["kind", "milestone_kind", "status", "snoozed_until", "clinician"]


def upgrade() -> None:
    op.add_column("coordinator_items", sa.Column("outcome", sa.String(length=32), nullable=True))
    op.add_column(
        "coordinator_items", sa.Column("snoozed_by", sa.String(length=128), nullable=True)
    )
    op.drop_index("ix_coordinator_items_live", table_name="coordinator_items")
    op.create_index(
        "ix_coordinator_items_live_urgency",
        "coordinator_items",
        ["site", sa.text("(NOT urgent)"), "due_at", "id"],
        postgresql_include=COUNTED,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index(
        "ix_coordinator_items_live_due",
        "coordinator_items",
        ["site", "due_at", "id"],
        postgresql_include=COUNTED,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    op.create_index(
        "ix_coordinator_items_completed",
        "coordinator_items",
        ["site", "closed_at", "id"],
        postgresql_where=COMPLETED,
        sqlite_where=COMPLETED,
    )
    op.create_index(
        "ix_coordinator_items_claimed_by",
        "coordinator_items",
        ["claimed_by"],
        postgresql_where=CLAIMED,
        sqlite_where=CLAIMED,
    )


def downgrade() -> None:
    for name in (
        "ix_coordinator_items_claimed_by",
        "ix_coordinator_items_completed",
        "ix_coordinator_items_live_due",
        "ix_coordinator_items_live_urgency",
    ):
        op.drop_index(name, table_name="coordinator_items")
    op.create_index(
        "ix_coordinator_items_live",
        "coordinator_items",
        ["site", "due_at"],
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    with op.batch_alter_table("coordinator_items", schema=None) as batch_op:
        batch_op.drop_column("snoozed_by")
        batch_op.drop_column("outcome")
