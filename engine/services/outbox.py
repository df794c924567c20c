"""The reminder outbox: which reminder emails were sent, which failed, which are still pending;
one email opened; a failed one handed back to the dispatcher.

A read model over the reminders table for the coordinator's outbox page. Only emails are
listed (care-team reminders become queue items, not mail). Every listing and every opened
message is audited, and a site-scoped user sees only their site. Patients and clinicians are
named for users the access policy lets read patients; others see the patient reference.

An opened email is composed again from the reminder exactly as the dispatcher composes it (the
same function, the send time of the reminder): the outbox keeps no copy of the mail. A failed
email is re-sent by re-queuing its reminder (status `scheduled`, due now, attempts reset), so
the dispatcher delivers it on its next round through the normal path; the page request never
talks to the mail server.

Read side: typed on `SqlAlchemyUnitOfWork`, whose session it hands to outbox_queries.py.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any

from engine.adapters import outbox_queries
from engine.domain.errors import DomainError, InvalidInput
from engine.domain.model import AuditRecord
from engine.domain.reminders import OPEN_REMINDER_STATUSES
from engine.services import access_policy
from engine.services.access_policy import Decision, Principal, Resource
from engine.services.reminders import DeliveryPolicy, _compose
from engine.services.unit_of_work import SqlAlchemyUnitOfWork

#: What the outbox calls each group of reminder statuses, in the order a page shows them.
OUTBOX_GROUPS: dict[str, tuple[str, ...]] = {
    "pending": OPEN_REMINDER_STATUSES,
    "sent": ("sent",),
    "failed": ("failed",),
    "cancelled": ("cancelled",),
}
MAX_PAGE = 500


class UnknownReminder(DomainError):
    """No reminder with this id that the caller may see (another site's is answered alike)."""

    code = "unknown-reminder"


class NotResendable(DomainError):
    """Only a failed email can be re-sent (a sent one went out; a pending one is on its way)."""

    code = "not-resendable"


def outbox(
    uow: SqlAlchemyUnitOfWork,
    actor: str,
    *,
    group: str = "sent",
    site: str | None = None,
    limit: int = 100,
    site_scope: str | None = None,
    names: bool = False,
) -> dict[str, Any]:
    """Counts of reminder emails per group and the newest `limit` of one group, audited.

    Pending reminders are listed soonest-due first; the other groups newest first. With
    `names`, each item names its patient and its recipient.
    """
    if group not in OUTBOX_GROUPS:
        raise InvalidInput(f"unknown outbox group {group!r}; groups are {', '.join(OUTBOX_GROUPS)}")
    if not 0 < limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE}")
    if site_scope is not None:
        if site not in (None, site_scope):
            raise InvalidInput(f"you can only see site {site_scope!r}")
        site = site_scope
    with uow:
        by_status = outbox_queries.email_counts(uow.session, site)
        counts = {
            name: sum(by_status.get(status, 0) for status in statuses)
            for name, statuses in OUTBOX_GROUPS.items()
        }
        rows = outbox_queries.email_page(
            uow.session,
            OUTBOX_GROUPS[group],
            site,
            by_sent=group == "sent",
            oldest_first=group == "pending",
            limit=limit,
        )
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
        "items": [_view(row, names) for row in rows],
    }


def outbox_message(
    uow: SqlAlchemyUnitOfWork, principal: Principal, reminder_id: str, policy: DeliveryPolicy
) -> dict[str, Any]:
    """One reminder and its email (subject, text, HTML) as the dispatcher composes it, audited.

    A reminder that is not an email (a care-team work item) or whose email cannot be built (no
    address on file, opted out) says so in `problem` instead.
    """
    with uow:
        row = _scoped(uow, principal, "outbox.read", reminder_id)
        reminder = uow.reminders.get(reminder_id)
        email: dict[str, str] | None = None
        problem = None
        if row["channel"] != "email":
            problem = "This reminder went to the coordinator queue as a work item, not by email."
        else:
            contact = uow.reminders.contacts_for_batch([reminder_id]).get(reminder_id)
            moment = row["sent_at"] or uow.clock.now()
            try:
                email = _parts(_compose(reminder, contact, policy, moment))
            except Exception as exc:  # no address, opted out, a message that cannot be built
                problem = f"The email cannot be built: {getattr(exc, 'reason', None) or exc}"
        uow.record_only([_audit(uow.clock.now(), principal, "outbox_message_viewed", row)])
    names = access_policy.decide(principal, "patient.read") is Decision.ALLOW
    if email is not None and not names:
        email["to"] = "(the address is shown to users who may read the patient)"
    return {**_view(row, names), "email": email, "problem": problem}


def resend_failed(
    uow: SqlAlchemyUnitOfWork, principal: Principal, reminder_id: str
) -> dict[str, Any]:
    """Hand a failed reminder email back to the dispatcher (due now), audited.

    NotResendable when it is not failed; the failed-delivery work item stays open until the
    coordinator completes it (the re-send may fail again).
    """
    with uow:
        row = _scoped(uow, principal, "outbox.resend", reminder_id)
        if row["channel"] != "email" or row["status"] != "failed":
            raise NotResendable(
                f"Only a failed email can be re-sent; this reminder is {row['status']}"
                + ("" if row["channel"] == "email" else " (a coordinator work item)")
                + "."
            )
        now = uow.clock.now()
        if not outbox_queries.requeue_failed(uow.session, reminder_id, now):
            raise NotResendable("This email was re-sent meanwhile; reload the page.")
        uow.audit.append([_audit(now, principal, "reminder_resend_requested", row)])
        uow.commit()
    return {"reminder_id": reminder_id, "status": "scheduled", "due_at": now.isoformat()}


def _scoped(
    uow: SqlAlchemyUnitOfWork, principal: Principal, action: str, reminder_id: str
) -> dict[str, Any]:
    """The reminder with names, if the policy lets `principal` take `action` on it; an unknown
    id and another site's reminder are both UnknownReminder."""
    row = outbox_queries.reminder_with_names(uow.session, reminder_id)

    def missing() -> UnknownReminder:
        return UnknownReminder(f"no reminder with id {reminder_id!r}")

    if row is None:
        raise missing()
    access_policy.enforce(principal, action, Resource(row["site"]), missing=missing)
    return row


def _audit(at: datetime, principal: Principal, action: str, row: dict[str, Any]) -> AuditRecord:
    return AuditRecord(
        at=at,
        actor=principal.actor,
        action=action,
        patient_id=row["patient_id"],
        reason=f"{row['recipient']} reminder: {row['title']} ({row['status']})",
        rule_ids=tuple(row["rule_ids"] or ()),
        detail={"reminder": row["id"], "recipient": row["recipient"], "error": row["last_error"]},
    )


def _parts(message: EmailMessage) -> dict[str, str]:
    return {
        "subject": str(message["Subject"]),
        "to": str(message["To"]),
        "date": str(message["Date"]),
        "message_id": str(message["Message-ID"]),
        "text": message.get_body(("plain",)).get_content(),
        "html": message.get_body(("html",)).get_content(),
    }


def _view(row: dict[str, Any], names: bool) -> dict[str, Any]:
    """A row as the page shows it: times as ISO text, names only when `names`."""
    view = {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in row.items()
        if k not in ("given_name", "family_name", "clinician_name")
    }
    reference = row["external_id"] or row["patient_id"][:8]
    patient = f"{row['given_name'] or ''} {row['family_name'] or ''}".strip()
    view["patient_name"] = patient if names and patient else reference
    if row["recipient"] == "patient":
        view["recipient_name"] = view["patient_name"]
    else:
        view["recipient_name"] = (names and row["clinician_name"]) or row["clinician"]
    return view
