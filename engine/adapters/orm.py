"""Tables and the imperative mapping of the domain classes onto them (SQLAlchemy 2).

The domain imports nothing from here; `start_mappers()` is called once at start-up.
`patients.version` is SQLAlchemy's optimistic-locking column; `audit_log` is append-only
(triggers on both SQLite and PostgreSQL refuse UPDATE and DELETE).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.ext.mutable import MutableDict
from sqlalchemy.orm import registry, relationship
from sqlalchemy.types import TypeDecorator

from engine.domain.model import (
    Alert,
    ClinicalEvent,
    LabResult,
    MedicationOrder,
    Milestone,
    Patient,
)
from engine.domain.patient_names import search_key


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps them naive on disk)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: the engine stores UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


ID = String(32)
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _name_key(column: str):
    """A column default: the search key of the row's `column` (a name)."""
    return lambda context: search_key(context.get_current_parameters().get(column))


def _patient_fk() -> Column:
    return Column("patient_id", ID, ForeignKey("patients.id", ondelete="CASCADE"), nullable=False)


patients = Table(
    "patients",
    metadata,
    Column("id", ID, primary_key=True),
    Column("external_id", String(64)),
    Column("site", String(64), nullable=False),
    Column("clinician", String(64), nullable=False),
    Column("given_name", String(128), nullable=False, default=""),
    Column("family_name", String(128), nullable=False, default=""),
    # search keys (engine/domain/patient_names.py), written with the row; names never change
    Column("given_name_key", String(128), nullable=False, default=_name_key("given_name")),
    Column("family_name_key", String(128), nullable=False, default=_name_key("family_name")),
    Column("birth_date", Date, nullable=False),
    Column("sex", String(16), nullable=False),
    Column("weight_kg", Float, nullable=False),
    Column("email", String(254)),
    Column("phone", String(32)),
    Column("contact_preferences", MutableDict.as_mutable(JSON), nullable=False, default=dict),
    Column("facts", MutableDict.as_mutable(JSON), nullable=False, default=dict),
    Column("pathway_key", String(64), nullable=False),
    Column("state", String(64), nullable=False),
    Column("state_entered", JSON, nullable=False, default=dict),
    Column("treatment_start", UTCDateTime),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime),
    Column("version", Integer, nullable=False),
    UniqueConstraint("site", "external_id", name="uq_patients_site_external_id"),
    Index("ix_patients_site_state", "site", "state"),
    Index("ix_patients_clinician", "clinician"),
    Index("ix_patients_name_search", "family_name_key", "given_name_key", "id"),
    Index("ix_patients_given_name_key", "given_name_key"),
    Index("ix_patients_birth_date", "birth_date"),
    Index("ix_patients_external_id", "external_id"),
)

lab_results = Table(
    "lab_results",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("code", String(16), nullable=False),
    Column("value", Float),
    Column("text", String(32)),
    Column("unit", String(16)),
    Column("reported_value", String(64), nullable=False),
    Column("reported_unit", String(16)),
    Column("source", String(32), nullable=False),
    Column("taken_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_lab_results_patient", "patient_id", "code", "taken_at"),
    Index("ix_lab_results_taken_at", "taken_at", "id"),  # a site's results newest first
)

clinical_events = Table(
    "clinical_events",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("kind", String(48), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("data", JSON, nullable=False, default=dict),
    Index("ix_clinical_events_patient", "patient_id", "occurred_at"),
)

medication_orders = Table(
    "medication_orders",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("drug", String(48), nullable=False),
    Column("mg_per_day", Float),
    Column("mg_per_kg_day", Float),
    Column("route", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("ordered_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("ordered_by", String(64), nullable=False, default=""),
    Column("dose_given_as", String(16)),
    Column("dose_range", String(64)),
    Column("overrides", JSON, nullable=False, default=list, server_default=text("'[]'")),
    Index("ix_medication_orders_patient", "patient_id", "status"),
)

milestones = Table(
    "milestones",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("milestone_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("grace_until", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("cycle", String(40), nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("rule_ids", JSON, nullable=False),
    Column("urgent", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False),
    Column("closed_at", UTCDateTime),
    Column("close_reason", String(200)),
    Column("reviewed_at", UTCDateTime),
    UniqueConstraint("idempotency_key", name="uq_milestones_idempotency_key"),
    Index("ix_milestones_patient", "patient_id", "status"),
    Index("ix_milestones_due", "status", "due_at"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("alert_id", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("rule_ids", JSON, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("closed_at", UTCDateTime),
    Column("closed_by", String(64)),
    Index("ix_alerts_patient", "patient_id", "status"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(48), nullable=False),
    Column("patient_id", ID),
    Column("from_state", String(64)),
    Column("to_state", String(64)),
    Column("reason", Text, nullable=False, default=""),
    Column("rule_ids", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_audit_log_patient", "patient_id", "id"),
    Index("ix_audit_log_at", "at"),
)

APPEND_ONLY_SQL = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$ LANGUAGE plpgsql",
        "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    ],
}


@event.listens_for(audit_log, "after_create")
def _audit_append_only(target, connection, **kw) -> None:
    for statement in APPEND_ONLY_SQL.get(connection.dialect.name, []):
        connection.execute(text(statement))


mapper_registry = registry(metadata=metadata)
_mapped = False


def start_mappers() -> None:
    """Map the domain classes onto the tables (idempotent)."""
    global _mapped
    if _mapped:
        return
    for cls, table in (
        (LabResult, lab_results),
        (ClinicalEvent, clinical_events),
        (MedicationOrder, medication_orders),
        (Milestone, milestones),
        (Alert, alerts),
    ):
        mapper_registry.map_imperatively(cls, table)

    def children(cls, *order_by: Column) -> relationship:
        return relationship(
            cls, cascade="all, delete-orphan", lazy="selectin", order_by=list(order_by)
        )

    mapper_registry.map_imperatively(
        Patient,
        patients,
        version_id_col=patients.c.version,
        exclude_properties=["given_name_key", "family_name_key"],
        properties={
            # ties in clinical time in the order recorded (a later one amends), as care_loading
            "labs": children(LabResult, lab_results.c.taken_at, lab_results.c.recorded_at),
            "clinical_events": children(
                ClinicalEvent, clinical_events.c.occurred_at, clinical_events.c.recorded_at
            ),
            "orders": children(MedicationOrder, medication_orders.c.ordered_at),
            "milestones": children(Milestone, milestones.c.due_at),
            "alerts": children(Alert, alerts.c.raised_at),
        },
    )
    reminder_tables.map_reminders()
    _mapped = True


# Tables that live in their own modules but share this metadata (imported last: they import it).
from engine.adapters import reminder_tables  # noqa: E402
