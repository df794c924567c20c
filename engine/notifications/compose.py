"""Compose reminder emails from Jinja2 templates, one pair (text + HTML) per recipient role.

Patient emails carry the minimum a person needs to act: no diagnosis, drug, lab name or value,
rule ID, patient reference or link into the clinic's pages. Clinician and coordinator emails
say what is due, when, and why (rule ID, rule sentence, sources), with no diagnosis or lab value
in the subject line, and link to the patient page (`AIHP_PUBLIC_URL`). A reminder that goes out
after its due date (a catch-up after downtime) says when it was due ("was due on 3 March
2026"), never "due this week".

The headers never carry patient text (names, external ids): the To header is the bare address,
the subject is built from the due date and flags only, and the message is built under the
standard library's SMTP policy, which refuses a CR or LF in any header. Patient text appears
only in the bodies, where it cannot change the message's structure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from engine.clock import SystemClock
from engine.config import get_settings

ROLES = ("patient", "clinician", "coordinator")
KINDS = ("lab", "action", "review", "alert")
_TEMPLATE_SET = {"patient": "patient", "clinician": "clinician", "coordinator": "clinician"}
_MESSAGE_ID_PART = re.compile(r"^[A-Za-z0-9._~+=-]+$")

_templates = Environment(
    loader=PackageLoader("engine.notifications", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class ReminderNotice:
    """Everything one reminder email needs, already read from the database and the pathway."""

    reminder_id: str
    recipient_role: str
    to_address: str | None
    recipient_name: str
    patient_ref: str
    milestone_title: str
    milestone_kind: str
    due_at: datetime
    urgent: bool
    escalation: bool
    reasons: tuple[tuple[str, str, tuple[str, ...]], ...]
    site: str
    clinic_name: str
    #: The patient's id, for the clinician's link to the patient page (never in patient mail).
    patient_id: str | None = None

    def __post_init__(self) -> None:
        if self.recipient_role not in ROLES:
            raise ValueError(f"unknown recipient role {self.recipient_role!r}")
        if self.milestone_kind not in KINDS:
            raise ValueError(f"unknown milestone kind {self.milestone_kind!r}")
        if self.due_at.tzinfo is None:
            raise ValueError("due_at must be timezone-aware")


class InvalidAddress(ValueError):
    """An email address that cannot be used; `.reason` says why, for the coordinator queue."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def checked_address(addr: str | None) -> str:
    """The normalised form of `addr`, or InvalidAddress with the reason it cannot be used."""
    if addr is None or not addr.strip():
        raise InvalidAddress("no email address on file")
    try:
        valid = validate_email(addr.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    return valid.normalized


def message_id(reminder_id: str, message_domain: str) -> str:
    """The Message-ID of a reminder's email: the same on every (re-)send of that reminder."""
    if not _MESSAGE_ID_PART.match(reminder_id) or not _MESSAGE_ID_PART.match(message_domain):
        raise ValueError(f"cannot build a Message-ID from {reminder_id!r}@{message_domain!r}")
    return f"<reminder-{reminder_id}@{message_domain}>"


def compose_reminder(
    notice: ReminderNotice,
    *,
    mail_from: str,
    message_domain: str,
    sent_at: datetime | None = None,
    public_url: str | None = None,
) -> EmailMessage:
    """The reminder email (multipart/alternative: text and HTML) for one notice.

    Clinician and coordinator emails link to the patient page under `public_url` (by default
    the `AIHP_PUBLIC_URL` setting) when the notice names the patient; patient emails never
    carry that link. Raises InvalidAddress when the notice has no usable address.
    """
    to = checked_address(notice.to_address)
    sent_at = sent_at or SystemClock().now()
    context = _context(notice, sent_at, public_url)
    template_set = _TEMPLATE_SET[notice.recipient_role]

    message = EmailMessage(policy=policy.SMTP)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = _subject(notice, sent_at)
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id(notice.reminder_id, message_domain)
    message["Auto-Submitted"] = "auto-generated"
    message["X-AIHP-Reminder"] = notice.reminder_id
    message.set_content(_templates.get_template(f"{template_set}.txt.j2").render(context))
    message.add_alternative(
        _templates.get_template(f"{template_set}.html.j2").render(context), subtype="html"
    )
    return message


def is_late(notice: ReminderNotice, sent_at: datetime) -> bool:
    """Whether the reminder goes out on a day after its due date (a catch-up after downtime)."""
    return sent_at.date() > notice.due_at.date()


def _subject(notice: ReminderNotice, sent_at: datetime) -> str:
    if notice.recipient_role == "patient":
        return _patient_subject(notice, sent_at)
    due = notice.due_at.date().isoformat()
    if notice.escalation:
        subject = f"Overdue pathway reminder: was due {due}"
    elif is_late(notice, sent_at):
        subject = f"Late pathway reminder: was due {due}"
    else:
        subject = f"Pathway reminder due {due}"
    return f"URGENT {subject}" if notice.urgent else subject


def _patient_subject(notice: ReminderNotice, sent_at: datetime) -> str:
    if notice.milestone_kind == "lab":
        if notice.escalation:
            subject = "A blood test is overdue"
        elif is_late(notice, sent_at):
            subject = f"A blood test was due on {_day(notice.due_at)}"
        elif notice.due_at - sent_at <= timedelta(days=7):
            subject = "A blood test is due this week"
        else:
            subject = f"A blood test is due by {_patient_date(notice.due_at)}"
    elif notice.escalation or is_late(notice, sent_at):
        subject = "Your clinic is still waiting to see you"
    else:
        subject = "Your clinic has asked to see you"
    return f"Urgent: {subject[0].lower()}{subject[1:]}" if notice.urgent else subject


def _patient_date(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y}"


def _day(moment: datetime) -> str:
    """`3 March 2026`."""
    return f"{moment.day} {moment:%B %Y}"


def patient_page_url(notice: ReminderNotice, public_url: str | None) -> str | None:
    """The clinician's link to the patient page, or None (a patient email, no public URL, or
    a notice that does not name the patient)."""
    if notice.recipient_role == "patient" or not public_url or not notice.patient_id:
        return None
    return f"{public_url.rstrip('/')}/ui/patients/{quote(notice.patient_id, safe='')}"


def _context(
    notice: ReminderNotice, sent_at: datetime, public_url: str | None
) -> dict[str, object]:
    if public_url is None:
        public_url = get_settings().public_url
    return {
        "notice": notice,
        "due_date": _patient_date(notice.due_at),
        "due_day": _day(notice.due_at),
        "late": is_late(notice, sent_at),
        "due_soon": notice.due_at - sent_at <= timedelta(days=7),
        "due_iso": f"{notice.due_at:%Y-%m-%d %H:%M} UTC",
        "patient_url": patient_page_url(notice, public_url),
        "reasons": [
            {"rule": rule, "text": text, "sources": ", ".join(sources)}
            for rule, text, sources in notice.reasons
        ],
    }
