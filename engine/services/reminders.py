"""Delivering due reminders: claim them, send each exactly once in effect, escalate, fail loudly.

`claim_due_batches` leases due rows (those stranded by a dead worker first) and cuts them into
batches; `deliver_reminder_batch` takes a batch of leased rows and emails the patients or
clinicians over one SMTP connection, or puts work items in the coordinator queue, recording
every outcome with one statement. Each email's Message-ID comes from the reminder, so a
re-send after a crash carries the same Message-ID, and each accepted email is journalled
(engine/adapters/delivery_journal.py) before it is recorded, so a database outage longer than
the lease sends nothing twice.
Transient mail failures are retried with exponential backoff from the database (no broker
timers); after `max_attempts`, or at once for a permanent failure (no address, opted out,
refused), the reminder becomes a failed-delivery item in the coordinator queue. So does a
reminder whose message cannot be built or handed over at all (a header the email policy
refuses, an address the transport cannot encode): one failed-delivery item with the reason,
never a row left claimed for ever, and the rest of the round goes out.

Typed on the abstract `UnitOfWork`: it uses only the reminder store, the audit and the clock.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import lru_cache
from typing import Any

from engine.adapters.database import DatabaseError
from engine.adapters.delivery_journal import DeliveryJournal, ProcessJournal
from engine.adapters.mail import DeliveryError, Mailer
from engine.config import Settings
from engine.domain.model import AuditRecord
from engine.domain.reminders import CoordinatorItem, Reminder, item_for, retry_delay
from engine.notifications.compose import (
    InvalidAddress,
    ReminderNotice,
    compose_reminder,
)
from engine.services.care_pathways import care_pathway
from engine.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    """How reminders are leased, retried and signed."""

    lease_seconds: float = 60.0
    max_attempts: int = 5
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0
    mail_from: str = "reminders@aih-pathways.local"
    message_domain: str = "aih-pathways.local"
    clinic_name: str = "Hepatology clinic"
    #: Where people reach the pages: clinician and coordinator emails link to the patient.
    public_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            lease_seconds=settings.stale_claim_seconds,
            max_attempts=settings.delivery_max_attempts,
            retry_base_seconds=settings.delivery_retry_base_seconds,
            retry_cap_seconds=settings.delivery_retry_cap_seconds,
            mail_from=settings.mail_from,
            message_domain=settings.message_domain,
            clinic_name=settings.clinic_name,
            public_url=settings.public_url,
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def record_patience_seconds(self) -> float:
        """How long a worker keeps trying to record emails already sent (database away)."""
        return max(5 * self.lease_seconds, 60.0)

    @property
    def sending_window_seconds(self) -> float:
        """How long one batch may send: half its lease, the other half is for recording."""
        return self.lease_seconds / 2


class Undeliverable(Exception):
    """This reminder cannot reach its recipient as things stand (no address, opted out)."""


#: The embedded dispatcher's journal (one process); Celery workers pass the Redis one.
PROCESS_JOURNAL = ProcessJournal()


@dataclass(frozen=True)
class ClaimedBatch:
    """Reminder ids claimed under one lease token, for one delivery task (never ORM objects)."""

    reminder_ids: list[str]
    token: str
    stranded: bool = False  # taken over from a worker whose lease ran out


def claim_due_reminders(
    uow: UnitOfWork, policy: DeliveryPolicy, limit: int = 500
) -> list[tuple[str, str]]:
    """Lease up to `limit` due reminders (including expired leases of dead workers)."""
    with uow:
        claimed = uow.reminders.claim_due(uow.clock.now(), limit, policy.lease)
        uow.commit()
    return claimed


def claim_due_batches(
    uow: UnitOfWork, policy: DeliveryPolicy, limit: int, batch_size: int
) -> list[ClaimedBatch]:
    """Lease up to `limit` due reminders and cut them into delivery batches.

    Reminders stranded by a dead worker (lease run out) come first and in batches of their own,
    so the caller can hand them to the front of the line.
    """
    with uow:
        claim = uow.reminders.claim_due_leases_first(uow.clock.now(), limit, policy.lease)
        uow.commit()
    return [
        ClaimedBatch(ids[i : i + batch_size], claim.token, stranded)
        for ids, stranded in ((claim.stranded, True), (claim.fresh, False))
        for i in range(0, len(ids), batch_size)
    ]


def deliver_reminder(
    uow: UnitOfWork,
    mailer: Mailer,
    policy: DeliveryPolicy,
    reminder_id: str,
    token: str,
    journal: DeliveryJournal | None = None,
) -> str:
    """Deliver one leased reminder; returns what happened (sent, queued, retry, failed, skipped)."""
    outcomes = deliver_reminder_batch(uow, mailer, policy, [reminder_id], token, journal)
    return next(iter(outcomes), "skipped")


def deliver_reminder_batch(
    uow: UnitOfWork,
    mailer: Mailer,
    policy: DeliveryPolicy,
    reminder_ids: list[str],
    token: str,
    journal: DeliveryJournal | None = None,
) -> Counter[str]:
    """Deliver the batch's reminders still leased under `token`; counts what happened to each.

    One transaction takes the rows (compare-and-set on the token), reads every contact in one
    query and composes the emails; the emails go out over the mailer's one connection, each
    noted in the journal as the server accepts it; one transaction records every outcome
    (one statement for the rows, one for the items, one for the audit). A reminder that
    fails does not hold back the rest; a batch never sends past half its lease.
    """
    journal = PROCESS_JOURNAL if journal is None else journal
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    refused, done = _Outcomes(), _Outcomes()
    with uow:
        now = uow.clock.now()
        taken = uow.reminders.start_sending_batch(list(reminder_ids), token, now, policy.lease)
        if len(taken) < len(reminder_ids):
            outcomes["skipped"] += len(reminder_ids) - len(taken)
        emails = [r for r in taken if r.channel != "queue"]
        for reminder in taken:
            if reminder.channel == "queue":
                outcomes[_queue(uow, reminder)] += 1
        contacts = uow.reminders.contacts_for_batch([r.id for r in emails])
        ready: list[tuple[Reminder, EmailMessage]] = []
        for reminder in emails:
            try:
                ready.append((reminder, _compose(reminder, contacts.get(reminder.id), policy, now)))
            except DatabaseError:
                raise
            except Exception as exc:  # no address, opted out, or the message cannot be built
                refused.fail(reminder, _why_not_built(exc), now)
        refused.write(uow, token)
        uow.commit()
    outcomes.update(refused.counts)
    # Accepted under an earlier lease (the database was away when it should have been recorded)
    earlier = journal.accepted([r.id for r, _ in ready if r.attempts > 1])
    unreachable: DeliveryError | None = None
    for reminder, message in ready:
        mid = message["Message-ID"]
        if reminder.id in earlier:
            done.sent(reminder, earlier[reminder.id], now)
            continue
        if unreachable is None and time.monotonic() - started > policy.sending_window_seconds:
            done.hand_back(reminder, now)  # due again at once: the next batch sends it
            continue
        try:
            if unreachable is not None:
                raise unreachable
            mailer.send(message)
        except DeliveryError as exc:
            done.not_sent(reminder, exc, policy, now)
            unreachable = exc if exc.unreachable else unreachable
        except Exception as exc:  # a transport error no one foresaw: final, with its type only
            unforeseen = DeliveryError(
                f"the transport refused it ({type(exc).__name__})", permanent=True
            )
            done.not_sent(reminder, unforeseen, policy, now)
        else:
            journal.note_accepted(reminder.id, mid)
            done.sent(reminder, mid, now)
    _record(uow, policy, token, done)
    outcomes.update(done.counts)
    if done.counts.keys() - {"sent"}:
        log.warning("reminder batch not wholly delivered: %s", dict(done.counts))
    return outcomes


class _Outcomes:
    """What a batch did to each reminder, as rows, coordinator items and audit records."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.items: list[CoordinatorItem] = []
        self.audit: list[AuditRecord] = []
        self.counts: Counter[str] = Counter()

    def sent(self, reminder: Reminder, mid: str, now: datetime) -> None:
        self.rows.append({"id": reminder.id, "status": "sent", "sent_at": now, "message_id": mid})
        self.audit.append(
            _audit(reminder, "reminder_sent", now, f"emailed the {reminder.recipient}")
        )
        self.counts["sent"] += 1

    def fail(self, reminder: Reminder, reason: str, now: datetime) -> None:
        why = f"{reminder.recipient} reminder not delivered: {reason}"
        self.rows.append({"id": reminder.id, "status": "failed", "last_error": reason[:500]})
        self.items.append(item_for(reminder, "failed_delivery", why, now))
        self.audit.append(_audit(reminder, "reminder_failed", now, why))
        self.counts["failed"] += 1

    def not_sent(
        self, reminder: Reminder, error: DeliveryError, policy: DeliveryPolicy, now: datetime
    ) -> None:
        if error.permanent or reminder.attempts >= policy.max_attempts:
            self.fail(reminder, error.reason, now)
            return
        delay = retry_delay(reminder.attempts, policy.retry_base_seconds, policy.retry_cap_seconds)
        self.rows.append(
            {
                "id": reminder.id,
                "status": "scheduled",
                "next_attempt_at": now + delay,
                "last_error": error.reason[:500],
            }
        )
        self.counts["retry"] += 1

    def hand_back(self, reminder: Reminder, now: datetime) -> None:
        self.rows.append(
            {"id": reminder.id, "status": "scheduled", "next_attempt_at": now, "attempt_back": 1}
        )
        self.counts["deferred"] += 1

    def write(self, uow: UnitOfWork, token: str) -> None:
        uow.reminders.record_outcomes(token, self.rows)
        uow.reminders.add_items_once(self.items)
        uow.audit.append(self.audit)


def _record(uow: UnitOfWork, policy: DeliveryPolicy, token: str, done: _Outcomes) -> None:
    """Record the batch's outcomes, through a database outage up to the patience.

    Emails already accepted are in the journal, so even an outage longer than the lease
    doubles none: the next claimant finds them there and records them without sending.
    """
    deadline = time.monotonic() + policy.record_patience_seconds
    while True:
        try:
            with uow:
                done.write(uow, token)
                uow.commit()
            return
        except DatabaseError:
            if time.monotonic() >= deadline:
                raise
            log.warning("%d reminder outcomes not recorded yet; trying again", len(done.rows))
            time.sleep(0.5)


def _why_not_built(exc: Exception) -> str:
    if isinstance(exc, Undeliverable | InvalidAddress):
        return _reason(exc)
    return f"the message could not be built ({type(exc).__name__})"


def _compose(
    reminder: Reminder, contact: dict[str, Any] | None, policy: DeliveryPolicy, now: datetime
) -> EmailMessage:
    return compose_reminder(
        _notice(reminder, contact, policy),
        mail_from=policy.mail_from,
        message_domain=policy.message_domain,
        sent_at=now,
        public_url=policy.public_url or "",
    )


def _queue(uow: UnitOfWork, reminder: Reminder) -> str:
    now = uow.clock.now()
    if reminder.purpose == "escalate":
        reason = "not done within the grace period after its due date"
        if reminder.urgent:
            reason = "URGENT: " + reason
        uow.reminders.supersede_items(reminder.milestone_row_id, now, "escalated")
        uow.reminders.add_item_once(item_for(reminder, "escalation", reason, now))
        action = "reminder_escalated"
    else:
        uow.reminders.add_item_once(item_for(reminder, "due", "due for the care team", now))
        action = "reminder_queued"
    uow.reminders.finish(reminder.id, reminder.claim_token, status="sent", sent_at=now)
    uow.audit.append([_audit(reminder, action, now, "put in the coordinator queue")])
    return "queued"


def _notice(
    reminder: Reminder, contact: dict[str, Any] | None, policy: DeliveryPolicy
) -> ReminderNotice:
    if contact is None:
        raise Undeliverable("the patient is no longer on record")
    if reminder.recipient == "patient":
        preferences: dict[str, Any] = contact["contact_preferences"] or {}
        if preferences.get("opt_out") or preferences.get("email") is False:
            raise Undeliverable("the patient has opted out of email reminders; contact them")
        address, name = contact["email"], contact["given_name"] or "there"
    else:
        if contact["clinician_id"] is None or not contact["clinician_email"]:
            raise Undeliverable(f"no email address on file for clinician {reminder.clinician!r}")
        address, name = contact["clinician_email"], contact["clinician_name"]
    reasons = milestone_reasons(contact["pathway_key"], tuple(reminder.rule_ids))
    return ReminderNotice(
        reminder_id=reminder.id,
        recipient_role=reminder.recipient,
        to_address=address,
        recipient_name=name,
        patient_ref=contact["external_id"] or contact["id"][:8],
        milestone_title=reminder.title,
        milestone_kind=reminder.milestone_kind,
        due_at=reminder.due_at,
        urgent=reminder.urgent,
        escalation=reminder.purpose == "escalate",
        reasons=reasons,
        site=reminder.site,
        clinic_name=policy.clinic_name,
        patient_id=reminder.patient_id,
    )


@lru_cache(maxsize=4096)
def milestone_reasons(
    pathway_key: str, rule_ids: tuple[str, ...]
) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """Why a milestone is due: (rule ID, rule sentence, sources) from its pathway version.

    Pathway versions are immutable, so the answer is kept per (version, rules)."""
    pathway = care_pathway(pathway_key).pathway
    return tuple(
        (
            r["rule"],
            r["text"],
            tuple(
                f"{s} {pathway.sources.get(s, {}).get('title', '')}".strip() for s in r["sources"]
            ),
        )
        for r in pathway.explain(list(rule_ids))
    )


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or str(exc)


def _audit(reminder: Reminder, action: str, now: Any, reason: str) -> AuditRecord:
    return AuditRecord(
        at=now,
        actor="system:reminders",
        action=action,
        patient_id=reminder.patient_id,
        reason=f"{reminder.title}: {reason}",
        rule_ids=tuple(reminder.rule_ids),
        detail={"reminder": reminder.id, "recipient": reminder.recipient},
    )
