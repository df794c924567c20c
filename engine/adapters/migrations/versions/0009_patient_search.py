"""patients: search keys for names (case- and accent-folded) and the indexes patient search
uses (names in list order, given name, birth date, external id)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

from engine.domain.patient_names import search_key

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

KEYS = ("given_name_key", "family_name_key")
INDEXES = {
    "ix_patients_name_search": ["family_name_key", "given_name_key", "id"],
    "ix_patients_given_name_key": ["given_name_key"],
    "ix_patients_birth_date": ["birth_date"],
    "ix_patients_external_id": ["external_id"],
}


def upgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        for key in KEYS:
            batch_op.add_column(
                sa.Column(key, sa.String(length=128), nullable=False, server_default="")
            )
    _fill_keys()
    with op.batch_alter_table("patients", schema=None) as batch_op:
        for key in KEYS:
            batch_op.alter_column(key, server_default=None)
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
        for key in KEYS:
            batch_op.drop_column(key)


def _fill_keys() -> None:
    """Each existing patient's keys, computed as the engine computes them for a new row."""
    patients = sa.table(
        "patients",
        sa.column("id", sa.String),
        sa.column("given_name", sa.String),
        sa.column("family_name", sa.String),
        sa.column("given_name_key", sa.String),
        sa.column("family_name_key", sa.String),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(patients.c.id, patients.c.given_name, patients.c.family_name))
    for row in rows.all():
        bind.execute(
            patients.update()
            .where(patients.c.id == row.id)
            .values(
                given_name_key=search_key(row.given_name),
                family_name_key=search_key(row.family_name),
            )
        )
