"""The reminder outbox: which reminder emails were sent, which failed, which are still pending.

A read model over the reminders table for the coordinator's outbox page. Only emails are
listed (care-team reminders become queue items, not mail). The listing is audited like any
other read, and a site-scoped user sees only their site.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from engine.adapters.orm import patients
from engine.adapters.reminder_tables import reminders
from engine.domain.errors import InvalidInput
from engine.domain.model import AuditRecord
from engine.domain.reminders import OPEN_REMINDER_STATUSES
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

#: What the outbox calls each group of reminder statuses, in the order a page shows them.
OUTBOX_GROUPS: dict[str, tuple[str, ...]] = {
    "pending": OPEN_REMINDER_STATUSES,
    "sent": ("sent",),
    "failed": ("failed",),
    "cancelled": ("cancelled",),
}
MAX_PAGE = 500


def outbox(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    group: str = "sent",
    site: str | None = None,
    limit: int = 100,
    site_scope: str | None = None,
) -> dict[str, Any]:
    """Counts of reminder emails per group and the newest `limit` of one group, audited.

    Pending reminders are listed soonest-due first; the other groups newest first.
    """
    if group not in OUTBOX_GROUPS:
        raise InvalidInput(f"unknown outbox group {group!r}; groups are {', '.join(OUTBOX_GROUPS)}")
    if not 0 < limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE}")
    if site_scope is not None:
        if site not in (None, site_scope):
            raise InvalidInput(f"you can only see site {site_scope!r}")
        site = site_scope
    filters = [reminders.c.channel == "email"]
    if site:
        filters.append(reminders.c.site == site)
    with uow:
        by_status = dict(
            uow.session.execute(
                select(reminders.c.status, func.count())
                .where(*filters)
                .group_by(reminders.c.status)
            ).all()
        )
        counts = {
            name: sum(by_status.get(status, 0) for status in statuses)
            for name, statuses in OUTBOX_GROUPS.items()
        }
        when = reminders.c.sent_at if group == "sent" else reminders.c.due_at
        order = when.asc() if group == "pending" else when.desc()
        rows = uow.session.execute(
            select(
                reminders.c.id,
                reminders.c.patient_id,
                reminders.c.title,
                reminders.c.purpose,
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
            )
            .join(patients, patients.c.id == reminders.c.patient_id)
            .where(*filters, reminders.c.status.in_(OUTBOX_GROUPS[group]))
            .order_by(order, reminders.c.id)
            .limit(limit)
        ).all()
        uow.record_only(
            [
                AuditRecord(
                    at=uow.clock.now(),
                    actor=actor,
                    action="outbox_viewed",
                    patient_id=None,
                    reason=f"{len(rows)} {group} reminders",
                    detail={"group": group, "site": site},
                )
            ]
        )
    return {
        "group": group,
        "site": site,
        "counts": counts,
        "items": [_view(dict(row._mapping)) for row in rows],
    }


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
