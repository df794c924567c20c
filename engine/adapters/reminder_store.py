"""Reminder and coordinator-item persistence: claiming due rows safely between many workers.

Claiming is one statement: PostgreSQL takes the oldest due open rows with
`FOR UPDATE SKIP LOCKED` (concurrent scanners never wait for nor double-claim a row); SQLite
has one writer at a time, so the same UPDATE ... RETURNING is atomic there. A claim is a lease:
it moves `next_attempt_at` to the end of the lease, so a row claimed by a worker that died is
due again once the lease runs out (seconds, not the broker's visibility timeout).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.adapters.orm import patients
from engine.adapters.reminder_tables import clinicians, coordinator_items, reminders
from engine.domain.reminders import OPEN_REMINDER_STATUSES, CoordinatorItem, Reminder


class SqlReminderStore:
    """Reminders and coordinator items of one unit of work."""

    def __init__(self, session: Session):
        self.session = session

    # ---- scheduling (inside the unit of work that changed the milestones) ------------------

    def add(self, rows: Iterable[Reminder | CoordinatorItem]) -> None:
        self.session.add_all(list(rows))

    def cancel_for_milestones(self, milestone_row_ids: list[str], now: datetime, why: str) -> None:
        """Cancel the undelivered reminders and close the live items of closed milestones."""
        if not milestone_row_ids:
            return
        self.session.execute(
            update(reminders)
            .where(
                reminders.c.milestone_row_id.in_(milestone_row_ids),
                reminders.c.status.in_(("scheduled", "claimed")),
            )
            .values(status="cancelled", last_error=why, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        self._close_items(
            coordinator_items.c.milestone_row_id.in_(milestone_row_ids), now=now, why=why
        )

    # ---- dispatching ---------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[tuple[str, str]]:
        """Claim up to `limit` due open reminders, oldest first: [(reminder id, claim token)]."""
        token = uuid4().hex
        due = (
            select(reminders.c.id)
            .where(reminders.c.status.in_(OPEN_REMINDER_STATUSES))
            .where(reminders.c.next_attempt_at <= now)
            .order_by(reminders.c.next_attempt_at)
            .limit(limit)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claimed = self.session.execute(
            update(reminders)
            .where(reminders.c.id.in_(due.scalar_subquery()))
            .values(
                status="claimed",
                claim_token=token,
                claimed_at=now,
                next_attempt_at=now + lease,
            )
            .returning(reminders.c.id)
            .execution_options(synchronize_session=False)
        )
        return [(row.id, token) for row in claimed]

    def start_sending(
        self, reminder_id: str, token: str, now: datetime, lease: timedelta
    ) -> Reminder | None:
        """Take a claimed reminder for delivery; None if the claim is no longer ours."""
        taken = self.session.execute(
            update(reminders)
            .where(
                reminders.c.id == reminder_id,
                reminders.c.claim_token == token,
                reminders.c.status == "claimed",
            )
            .values(
                status="sending",
                attempts=reminders.c.attempts + 1,
                next_attempt_at=now + lease,
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:
            return None
        return self.session.get(Reminder, reminder_id, populate_existing=True)

    def finish(self, reminder_id: str, token: str, **values: Any) -> bool:
        """Record the end of a delivery attempt we own (sent, failed or rescheduled)."""
        done = self.session.execute(
            update(reminders)
            .where(reminders.c.id == reminder_id, reminders.c.claim_token == token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return done.rowcount == 1

    def get(self, reminder_id: str) -> Reminder | None:
        return self.session.get(Reminder, reminder_id)

    def add_item_once(self, item: CoordinatorItem) -> bool:
        """Add a coordinator item unless its reminder already produced one."""
        if item.reminder_id is not None:
            exists = self.session.scalar(
                select(coordinator_items.c.id).where(
                    coordinator_items.c.reminder_id == item.reminder_id
                )
            )
            if exists:
                return False
        self.session.add(item)
        return True

    def supersede_items(self, milestone_row_id: str, now: datetime, why: str) -> None:
        """Close the live 'due' items of a milestone that has just escalated."""
        self._close_items(
            coordinator_items.c.milestone_row_id == milestone_row_id,
            coordinator_items.c.kind == "due",
            now=now,
            why=why,
        )

    def _close_items(self, *where: Any, now: datetime, why: str) -> None:
        """Close the live items matching `where`, noting why (the system did it)."""
        self.session.execute(
            update(coordinator_items)
            .where(*where, coordinator_items.c.status.in_(("open", "claimed", "snoozed")))
            .values(
                status="closed",
                closed_at=now,
                closed_by="system",
                note=why,
                updated_at=now,
                version=coordinator_items.c.version + 1,
            )
            .execution_options(synchronize_session=False)
        )

    # ---- who to write to -----------------------------------------------------------------

    def contact_of(self, patient_id: str) -> dict[str, Any] | None:
        """The patient's contact details and pathway position (no clinical records)."""
        row = self.session.execute(
            select(
                patients.c.id,
                patients.c.external_id,
                patients.c.given_name,
                patients.c.email,
                patients.c.contact_preferences,
                patients.c.pathway_key,
                patients.c.state,
            ).where(patients.c.id == patient_id)
        ).one_or_none()
        return dict(row._mapping) if row else None

    def clinician(self, clinician_id: str) -> dict[str, Any] | None:
        row = self.session.execute(
            select(clinicians).where(clinicians.c.id == clinician_id)
        ).one_or_none()
        return dict(row._mapping) if row else None

    def save_clinician(self, clinician_id: str, name: str, email: str | None, site: str | None):
        """Add or update a clinician in the care-team directory."""
        values = {"name": name, "email": email, "site": site}
        changed = self.session.execute(
            update(clinicians).where(clinicians.c.id == clinician_id).values(**values)
        )
        if changed.rowcount == 0:
            self.session.execute(clinicians.insert().values(id=clinician_id, **values))

    # ---- reading -------------------------------------------------------------------------

    def for_patient(self, patient_id: str) -> list[Reminder]:
        return list(
            self.session.scalars(
                select(Reminder)
                .where(reminders.c.patient_id == patient_id)
                .order_by(reminders.c.due_at, reminders.c.recipient)
            )
        )

    def counts_by_status(self) -> dict[str, int]:
        rows = self.session.execute(
            select(reminders.c.status, func.count()).group_by(reminders.c.status)
        )
        return {status: n for status, n in rows}
