"""patients: an external id (the site's record number) is unique within its site, not across
sites, so enrolling at one site reveals nothing about another

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 01:00:00.000000
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_constraint("uq_patients_external_id", type_="unique")
        batch_op.create_unique_constraint("uq_patients_site_external_id", ["site", "external_id"])


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_constraint("uq_patients_site_external_id", type_="unique")
        batch_op.create_unique_constraint("uq_patients_external_id", ["external_id"])
