"""Reminder and coordinator-item persistence: claiming due rows safely between many workers.

Claiming is one statement: PostgreSQL takes the oldest due open rows with
`FOR UPDATE SKIP LOCKED` (concurrent scanners never wait for nor double-claim a row); SQLite
has one writer at a time, so the same UPDATE ... RETURNING is atomic there. A claim is a lease:
it moves `next_attempt_at` to the end of the lease, so a row claimed by a worker that died is
due again once the lease runs out (seconds, not the broker's visibility timeout).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from uuid import uuid4

from sqlalchemy import Integer, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from engine.adapters.orm import patients
from engine.adapters.reminder_tables import clinicians, coordinator_items, reminders
from engine.domain.reminders import CoordinatorItem, Reminder

#: Statuses of a reminder some worker holds a lease on.
LEASED_STATUSES = ("claimed", "sending")


@dataclass(frozen=True)
class Claim:
    """Reminders claimed under one token: leases taken over from dead workers, then fresh ones."""

    token: str
    stranded: list[str]
    fresh: list[str]


class SqlReminderStore:
    """Reminders and coordinator items of one unit of work."""

    def __init__(self, session: Session):
        self.session = session

    # ---- scheduling (inside the unit of work that changed the milestones) ------------------

    def add(self, rows: Iterable[Reminder | CoordinatorItem]) -> None:
        self.session.add_all(list(rows))

    def cancel_for_milestones(self, milestone_row_ids: list[str], now: datetime, why: str) -> None:
        """Cancel the undelivered reminders and close the live items of closed milestones."""
        self.cancel_for_milestones_each([(row_id, now, why) for row_id in milestone_row_ids])

    def cancel_for_milestones_each(self, closed: list[tuple[str, datetime, str]]) -> None:
        """`cancel_for_milestones` for milestones closed at different moments, given as
        (milestone row id, when, why): one executemany per table, not two statements each,
        with statements built once (statuses as plain comparisons: an IN list cannot be
        executed many times)."""
        if not closed:
            return
        rows = [{"row_id": row_id, "at": at, "why": why} for row_id, at, why in closed]
        for statement in _cancellations():
            self.session.execute(statement, rows)

    # ---- dispatching ---------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, lease: timedelta) -> list[tuple[str, str]]:
        """Claim up to `limit` due open reminders, oldest first: [(reminder id, claim token)]."""
        claim = self.claim_due_leases_first(now, limit, lease)
        return [(rid, claim.token) for rid in (*claim.stranded, *claim.fresh)]

    def claim_due_leases_first(self, now: datetime, limit: int, lease: timedelta) -> Claim:
        """Claim up to `limit` due reminders under one token: expired leases, then the oldest due.

        A lease that ran out belongs to a worker that died (or stalled): those reminders are
        claimed first, through a small partial index over leased rows, so recovery never waits
        behind a backlog of scheduled reminders (which the main index holds oldest first).
        """
        token = uuid4().hex
        stranded = self._claim(
            reminders.c.status.in_(LEASED_STATUSES), now=now, limit=limit, lease=lease, token=token
        )
        fresh: list[str] = []
        if len(stranded) < limit:
            fresh = self._claim(
                reminders.c.status == "scheduled",
                now=now,
                limit=limit - len(stranded),
                lease=lease,
                token=token,
            )
        return Claim(token, stranded, fresh)

    def _claim(
        self, which: Any, *, now: datetime, limit: int, lease: timedelta, token: str
    ) -> list[str]:
        due = (
            select(reminders.c.id)
            .where(which, reminders.c.next_attempt_at <= now)
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
        return [row.id for row in claimed]

    def start_sending(
        self, reminder_id: str, token: str, now: datetime, lease: timedelta
    ) -> Reminder | None:
        """Take a claimed reminder for delivery; None if the claim is no longer ours."""
        taken = self.start_sending_batch([reminder_id], token, now, lease)
        return taken[0] if taken else None

    def start_sending_batch(
        self, reminder_ids: list[str], token: str, now: datetime, lease: timedelta
    ) -> list[Reminder]:
        """Take the batch's reminders still claimed under `token` (one statement), a fresh lease.

        The rows come back as detached Reminder objects (attempts already counted); a reminder
        whose claim is no longer ours (re-claimed after its lease, or already taken) is absent.
        """
        if not reminder_ids:
            return []
        taken = self.session.execute(
            update(reminders)
            .where(
                reminders.c.id.in_(reminder_ids),
                reminders.c.claim_token == token,
                reminders.c.status == "claimed",
            )
            .values(
                status="sending",
                attempts=reminders.c.attempts + 1,
                next_attempt_at=now + lease,
            )
            .returning(*reminders.c)
            .execution_options(synchronize_session=False)
        )
        return [Reminder(**row._mapping) for row in taken]

    def contacts_for_batch(self, reminder_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each reminder's patient contact and clinician address, read in one query.

        {reminder id: {patient columns..., "clinician_name", "clinician_email"}}; a reminder
        whose patient is gone is absent. No clinical records are read.
        """
        if not reminder_ids:
            return {}
        rows = self.session.execute(
            select(
                reminders.c.id.label("reminder_id"),
                patients.c.id,
                patients.c.external_id,
                patients.c.given_name,
                patients.c.email,
                patients.c.contact_preferences,
                patients.c.pathway_key,
                patients.c.state,
                clinicians.c.name.label("clinician_name"),
                clinicians.c.email.label("clinician_email"),
                clinicians.c.id.label("clinician_id"),
            )
            .select_from(reminders)
            .join(patients, patients.c.id == reminders.c.patient_id)
            .outerjoin(clinicians, clinicians.c.id == reminders.c.clinician)
            .where(reminders.c.id.in_(reminder_ids))
        )
        return {row.reminder_id: dict(row._mapping) for row in rows}

    def record_outcomes(self, token: str, outcomes: list[dict[str, Any]]) -> None:
        """Record the end of many delivery attempts we own: one statement, many rows.

        Each outcome holds `id` and every column below (None where it does not apply); a row
        re-claimed meanwhile (another claim token) is left alone: compare-and-set per reminder.
        """
        if not outcomes:
            return
        self.session.execute(
            update(reminders)
            .where(
                reminders.c.id == bindparam("reminder_id"),
                reminders.c.claim_token == bindparam("token"),
            )
            .values(
                status=bindparam("new_status"),
                sent_at=bindparam("new_sent_at"),
                message_id=bindparam("new_message_id"),
                next_attempt_at=func.coalesce(
                    bindparam("new_next_attempt_at", type_=reminders.c.next_attempt_at.type),
                    reminders.c.next_attempt_at,
                ),
                last_error=bindparam("new_last_error"),
                attempts=reminders.c.attempts - bindparam("attempt_back", type_=Integer),
            )
            .execution_options(synchronize_session=False),
            [
                {
                    "reminder_id": o["id"],
                    "token": token,
                    "new_status": o["status"],
                    "new_sent_at": o.get("sent_at"),
                    "new_message_id": o.get("message_id"),
                    "new_next_attempt_at": o.get("next_attempt_at"),
                    "new_last_error": o.get("last_error"),
                    "attempt_back": o.get("attempt_back", 0),
                }
                for o in outcomes
            ],
        )

    def add_items_once(self, items: list[CoordinatorItem]) -> None:
        """Add coordinator items, skipping reminders that already produced one (one read)."""
        if not items:
            return
        have = set(
            self.session.scalars(
                select(coordinator_items.c.reminder_id).where(
                    coordinator_items.c.reminder_id.in_([i.reminder_id for i in items])
                )
            )
        )
        self.session.add_all([i for i in items if i.reminder_id not in have])

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


@cache
def _cancellations() -> tuple[Any, Any]:
    """Cancel a closed milestone's unsent reminders; close its live queue items (built once)."""
    cancel = (
        update(reminders)
        .where(
            reminders.c.milestone_row_id == bindparam("row_id"),
            or_(*(reminders.c.status == s for s in ("scheduled", "claimed"))),
        )
        .values(status="cancelled", last_error=bindparam("why"), next_attempt_at=bindparam("at"))
        .execution_options(synchronize_session=False)
    )
    close = (
        update(coordinator_items)
        .where(
            coordinator_items.c.milestone_row_id == bindparam("row_id"),
            or_(*(coordinator_items.c.status == s for s in ("open", "claimed", "snoozed"))),
        )
        .values(
            status="closed",
            closed_at=bindparam("at"),
            closed_by="system",
            note=bindparam("why"),
            updated_at=bindparam("at"),
            version=coordinator_items.c.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return cancel, close
