"""Delivering due reminders: claim them, send each exactly once in effect, escalate, fail loudly.

`claim_due_reminders` leases the oldest due rows; `deliver_reminder` takes one leased row and
emails the patient or clinician, or puts a work item in the coordinator queue. Each email's
Message-ID comes from the reminder, so a re-send after a crash carries the same Message-ID.
Transient mail failures are retried with exponential backoff from the database (no broker
timers); after `max_attempts`, or at once for a permanent failure (no address, opted out,
refused), the reminder becomes a failed-delivery item in the coordinator queue. So does a
reminder whose message cannot be built or handed over at all (a header the email policy
refuses, an address the transport cannot encode): one failed-delivery item with the reason,
never a row left claimed for ever, and the rest of the round goes out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from engine.adapters.mail import DeliveryError, Mailer
from engine.config import Settings
from engine.domain.model import AuditRecord
from engine.domain.reminders import Reminder, item_for, retry_delay
from engine.notifications.compose import (
    InvalidAddress,
    ReminderNotice,
    checked_address,
    compose_reminder,
)
from engine.services.catalogue import care_pathway
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

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
        )

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)


class Undeliverable(Exception):
    """This reminder cannot reach its recipient as things stand (no address, opted out)."""


def claim_due_reminders(
    uow: SqlAlchemyUnitOfWork, policy: DeliveryPolicy, limit: int = 500
) -> list[tuple[str, str]]:
    """Lease up to `limit` due reminders (including expired leases of dead workers)."""
    with uow:
        claimed = uow.reminders.claim_due(uow.clock.now(), limit, policy.lease)
        uow.commit()
    return claimed


def deliver_reminder(
    uow: SqlAlchemyUnitOfWork, mailer: Mailer, policy: DeliveryPolicy, reminder_id: str, token: str
) -> str:
    """Deliver one leased reminder; returns what happened (sent, queued, retry, failed, skipped)."""
    with uow:
        now = uow.clock.now()
        reminder = uow.reminders.start_sending(reminder_id, token, now, policy.lease)
        if reminder is None:
            return "skipped"
        if reminder.channel == "queue":
            outcome = _queue(uow, reminder)
            uow.commit()
            return outcome
        try:
            message = compose_reminder(
                _notice(uow, reminder, policy),
                mail_from=policy.mail_from,
                message_domain=policy.message_domain,
                sent_at=now,
            )
        except (Undeliverable, InvalidAddress) as exc:
            outcome = _fail(uow, reminder, token, _reason(exc))
            uow.commit()
            return outcome
        except DBAPIError:
            raise
        except Exception as exc:  # the message cannot be built: fail it, do not stall the round
            reason = f"the message could not be built ({type(exc).__name__})"
            outcome = _fail(uow, reminder, token, reason)
            uow.commit()
            return outcome
        uow.commit()
    try:
        mailer.send(message)
    except DeliveryError as exc:
        return _after_failed_send(uow, policy, reminder, token, exc)
    except Exception as exc:  # a transport error no one foresaw: final, with its type only
        unforeseen = DeliveryError(
            f"the transport refused it ({type(exc).__name__})", permanent=True
        )
        return _after_failed_send(uow, policy, reminder, token, unforeseen)
    _record_sent(uow, policy, reminder, token, message["Message-ID"])
    log.info("reminder %s sent", reminder.id)
    return "sent"


def _record_sent(
    uow: SqlAlchemyUnitOfWork, policy: DeliveryPolicy, reminder: Reminder, token: str, mid: str
) -> None:
    """Record an email the SMTP server accepted, through a database blip shorter than the lease.

    Giving up at once would leave the row `sending` until its lease ran out, and the email
    would go out a second time; so retry for up to half the lease before raising.
    """
    deadline = time.monotonic() + policy.lease_seconds / 2
    while True:
        try:
            with uow:
                now = uow.clock.now()
                uow.reminders.finish(reminder.id, token, status="sent", sent_at=now, message_id=mid)
                uow.audit.append(
                    [_audit(reminder, "reminder_sent", now, f"emailed the {reminder.recipient}")]
                )
                uow.commit()
            return
        except DBAPIError:
            if time.monotonic() >= deadline:
                raise
            log.warning("reminder %s was sent; recording it failed, trying again", reminder.id)
            time.sleep(0.5)


def _queue(uow: SqlAlchemyUnitOfWork, reminder: Reminder) -> str:
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


def _after_failed_send(
    uow: SqlAlchemyUnitOfWork,
    policy: DeliveryPolicy,
    reminder: Reminder,
    token: str,
    error: DeliveryError,
) -> str:
    with uow:
        now = uow.clock.now()
        if error.permanent or reminder.attempts >= policy.max_attempts:
            outcome = _fail(uow, reminder, token, error.reason)
        else:
            delay = retry_delay(
                reminder.attempts, policy.retry_base_seconds, policy.retry_cap_seconds
            )
            uow.reminders.finish(
                reminder.id,
                token,
                status="scheduled",
                next_attempt_at=now + delay,
                last_error=error.reason[:500],
            )
            outcome = "retry"
        uow.commit()
    log.warning("reminder %s not delivered (%s)", reminder.id, outcome)
    return outcome


def _fail(uow: SqlAlchemyUnitOfWork, reminder: Reminder, token: str, reason: str) -> str:
    now = uow.clock.now()
    why = f"{reminder.recipient} reminder not delivered: {reason}"
    uow.reminders.finish(reminder.id, token, status="failed", last_error=reason[:500])
    uow.reminders.add_item_once(item_for(reminder, "failed_delivery", why, now))
    uow.audit.append([_audit(reminder, "reminder_failed", now, why)])
    return "failed"


def _notice(
    uow: SqlAlchemyUnitOfWork, reminder: Reminder, policy: DeliveryPolicy
) -> ReminderNotice:
    patient = uow.reminders.contact_of(reminder.patient_id)
    if patient is None:
        raise Undeliverable("the patient is no longer on record")
    if reminder.recipient == "patient":
        preferences: dict[str, Any] = patient["contact_preferences"] or {}
        if preferences.get("opt_out") or preferences.get("email") is False:
            raise Undeliverable("the patient has opted out of email reminders; contact them")
        address, name = checked_address(patient["email"]), patient["given_name"] or "there"
    else:
        clinician = uow.reminders.clinician(reminder.clinician)
        if clinician is None or not clinician.get("email"):
            raise Undeliverable(f"no email address on file for clinician {reminder.clinician!r}")
        address, name = checked_address(clinician["email"]), clinician["name"]
    pathway = care_pathway(patient["pathway_key"]).pathway
    reasons = tuple(
        (
            r["rule"],
            r["text"],
            tuple(
                f"{s} {pathway.sources.get(s, {}).get('title', '')}".strip() for s in r["sources"]
            ),
        )
        for r in pathway.explain(reminder.rule_ids)
    )
    return ReminderNotice(
        reminder_id=reminder.id,
        recipient_role=reminder.recipient,
        to_address=address,
        recipient_name=name,
        patient_ref=patient["external_id"] or patient["id"][:8],
        milestone_title=reminder.title,
        milestone_kind=reminder.milestone_kind,
        due_at=reminder.due_at,
        urgent=reminder.urgent,
        escalation=reminder.purpose == "escalate",
        reasons=reasons,
        site=reminder.site,
        clinic_name=policy.clinic_name,
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
