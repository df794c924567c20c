"""Tables for reminders, coordinator work items and the care-team directory.

Reminders are not part of the patient aggregate: the unit of work writes them beside the
milestones they belong to, and the dispatcher reads them by due time through a partial index
over the open rows only, so a million not-yet-due reminders do not slow the scan.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from engine.adapters.orm import ID, UTCDateTime, mapper_registry, metadata
from engine.domain.reminders import CoordinatorItem, Reminder

_OPEN = text("status IN ('scheduled', 'claimed', 'sending')")
_LEASED = text("status IN ('claimed', 'sending')")
_LIVE_ITEM = text("status IN ('open', 'claimed', 'snoozed')")
#: The urgency sort key (urgent items first) as the index holds it: (NOT urgent), ascending.
URGENCY_KEY = text("(NOT urgent)")
_COMPLETED_ITEM = text("status = 'completed'")
_CLAIMED_ITEM = text("status = 'claimed'")


def _patient_fk() -> Column:
    return Column("patient_id", ID, ForeignKey("patients.id", ondelete="CASCADE"), nullable=False)


reminders = Table(
    "reminders",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("milestone_row_id", ID, ForeignKey("milestones.id", ondelete="CASCADE"), nullable=False),
    Column("milestone_id", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("milestone_kind", String(16), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("recipient", String(16), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("idempotency_key", String(240), nullable=False, unique=True),
    Column("site", String(64), nullable=False),
    Column("clinician", String(64), nullable=False),
    Column("urgent", Boolean, nullable=False, default=False),
    Column("rule_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("claim_token", String(32)),
    Column("claimed_at", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("sent_at", UTCDateTime),
    Column("message_id", String(200)),
    Column("last_error", Text),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(128)),
    Index(
        "ix_reminders_open_next_attempt",
        "next_attempt_at",
        postgresql_where=_OPEN,
        sqlite_where=_OPEN,
    ),
    # the leases of dead workers, found first without walking the scheduled backlog (0008)
    Index(
        "ix_reminders_leased_until",
        "next_attempt_at",
        postgresql_where=_LEASED,
        sqlite_where=_LEASED,
    ),
    Index("ix_reminders_milestone", "milestone_row_id"),
    Index("ix_reminders_patient", "patient_id", "due_at"),
)

coordinator_items = Table(
    "coordinator_items",
    metadata,
    Column("id", ID, primary_key=True),
    _patient_fk(),
    Column("kind", String(24), nullable=False),
    Column("title", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("site", String(64), nullable=False),
    Column("clinician", String(64), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("milestone_row_id", ID, ForeignKey("milestones.id", ondelete="CASCADE")),
    Column("milestone_kind", String(16)),
    Column("reminder_id", ID, ForeignKey("reminders.id", ondelete="CASCADE"), unique=True),
    Column("urgent", Boolean, nullable=False, default=False),
    Column("rule_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("claimed_by", String(128)),
    Column("claimed_at", UTCDateTime),
    Column("snoozed_until", UTCDateTime),
    Column("note", Text),
    Column("closed_at", UTCDateTime),
    Column("closed_by", String(128)),
    Column("updated_at", UTCDateTime),
    Column("version", Integer, nullable=False),
    Column("outcome", String(32)),  # the coded outcome of a completed item (coordinator data)
    Column("snoozed_by", String(128)),
    Index("ix_coordinator_items_milestone", "milestone_row_id"),
    Index("ix_coordinator_items_patient", "patient_id"),
)
# The queue page's two sort orders (urgency: urgent first, then due; due date), each read in
# order within a site from a partial index over live items (migration 0006). Both carry what
# the counts per queue read, so the counts come from an index-only scan of either.
_COUNTED = ["kind", "milestone_kind", "status", "snoozed_until", "clinician"]
Index(
    "ix_coordinator_items_live_urgency",
    coordinator_items.c.site,
    URGENCY_KEY,
    coordinator_items.c.due_at,
    coordinator_items.c.id,
    postgresql_include=_COUNTED,
    postgresql_where=_LIVE_ITEM,
    sqlite_where=_LIVE_ITEM,
)
Index(
    "ix_coordinator_items_live_due",
    coordinator_items.c.site,
    coordinator_items.c.due_at,
    coordinator_items.c.id,
    postgresql_include=_COUNTED,
    postgresql_where=_LIVE_ITEM,
    sqlite_where=_LIVE_ITEM,
)
Index(
    "ix_coordinator_items_completed",
    coordinator_items.c.site,
    coordinator_items.c.closed_at,
    coordinator_items.c.id,
    postgresql_where=_COMPLETED_ITEM,
    sqlite_where=_COMPLETED_ITEM,
)
Index(
    "ix_coordinator_items_claimed_by",
    coordinator_items.c.claimed_by,
    postgresql_where=_CLAIMED_ITEM,
    sqlite_where=_CLAIMED_ITEM,
)

clinicians = Table(
    "clinicians",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("email", String(254)),
    Column("site", String(64)),
)


def map_reminders() -> None:
    """Map Reminder and CoordinatorItem (called from `start_mappers`)."""
    mapper_registry.map_imperatively(Reminder, reminders)
    mapper_registry.map_imperatively(
        CoordinatorItem, coordinator_items, version_id_col=coordinator_items.c.version
    )
