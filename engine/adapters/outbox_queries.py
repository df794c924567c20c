"""The outbox's reads and its one write over the reminders table (SQL lives here, not in the
service): email counts per status, a page of emails with the patient's and the clinician's
names, one email reminder, and re-queuing a failed one for the dispatcher."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.adapters.orm import patients
from engine.adapters.reminder_tables import clinicians, reminders

_EMAIL = reminders.c.channel == "email"
_COLUMNS = (
    reminders.c.id,
    reminders.c.patient_id,
    reminders.c.title,
    reminders.c.purpose,
    reminders.c.channel,
    reminders.c.recipient,
    reminders.c.site,
    reminders.c.clinician,
    reminders.c.urgent,
    reminders.c.rule_ids,
    reminders.c.status,
    reminders.c.due_at,
    reminders.c.sent_at,
    reminders.c.attempts,
    reminders.c.message_id,
    reminders.c.last_error,
    patients.c.external_id,
    patients.c.given_name,
    patients.c.family_name,
    clinicians.c.name.label("clinician_name"),
)


def _with_names(query: Any) -> Any:
    return (
        query.select_from(reminders)
        .join(patients, patients.c.id == reminders.c.patient_id)
        .outerjoin(clinicians, clinicians.c.id == reminders.c.clinician)
    )


def email_counts(session: Session, site: str | None) -> dict[str, int]:
    """How many reminder emails there are in each status (of one site, or of all)."""
    filters = [_EMAIL] + ([reminders.c.site == site] if site else [])
    rows = session.execute(
        select(reminders.c.status, func.count()).where(*filters).group_by(reminders.c.status)
    )
    return {status: count for status, count in rows}


def email_page(
    session: Session,
    statuses: Sequence[str],
    site: str | None,
    *,
    by_sent: bool,
    oldest_first: bool,
    limit: int,
) -> list[dict[str, Any]]:
    """Reminder emails in `statuses`, ordered by sent time (else due time), with names."""
    filters = [_EMAIL, reminders.c.status.in_(statuses)]
    if site:
        filters.append(reminders.c.site == site)
    when = reminders.c.sent_at if by_sent else reminders.c.due_at
    rows = session.execute(
        _with_names(select(*_COLUMNS))
        .where(*filters)
        .order_by(when.asc() if oldest_first else when.desc(), reminders.c.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]


def reminder_with_names(session: Session, reminder_id: str) -> dict[str, Any] | None:
    """One reminder (any channel) with its patient's and clinician's names, or None."""
    row = session.execute(
        _with_names(select(*_COLUMNS)).where(reminders.c.id == reminder_id)
    ).one_or_none()
    return dict(row._mapping) if row else None


def requeue_failed(session: Session, reminder_id: str, now: datetime) -> bool:
    """Put a failed reminder back in the dispatcher's hands, due now, with a fresh budget of
    attempts; False when it is no longer failed (someone re-sent it first)."""
    changed = session.execute(
        update(reminders)
        .where(reminders.c.id == reminder_id, reminders.c.status == "failed")
        .values(
            status="scheduled",
            next_attempt_at=now,
            attempts=0,
            claim_token=None,
            claimed_at=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return changed.rowcount == 1
