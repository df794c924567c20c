"""The outbox on a real database and a real SMTP server: names, an email opened as composed,
and a failed email re-sent through the dispatcher once its cause is fixed (audited)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.adapters.mail import SmtpMailer
from engine.adapters.orm import audit_log
from engine.services import patients as service
from engine.services.access_policy import Forbidden, Principal
from engine.services.care_team import register_clinician
from engine.services.dispatch import dispatch_due_reminders
from engine.services.outbox import (
    NotResendable,
    UnknownReminder,
    outbox,
    outbox_message,
    resend_failed,
)
from engine.services.reminders import DeliveryPolicy
from tests.integration.baseline import record_baseline

POLICY = DeliveryPolicy(lease_seconds=60, max_attempts=3, retry_base_seconds=30)
COORDINATOR = Principal("u-coord", "coordinator-north", "coordinator", "north")


@pytest.fixture
def sink_mailer(smtp_sink):
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port)
    yield mailer
    mailer.close()


@pytest.fixture
def failed_clinician_email(uow_factory, clock, sink_mailer) -> dict:
    """The day-14 azathioprine reminder to a clinician with no address on file: failed."""
    patient_id = service.enrol_patient(
        uow_factory(),
        "dr-test",
        site="north",
        clinician="dr-a",
        birth_date="1979-04-02",
        sex="F",
        weight_kg=64,
        given_name="Ada",
        family_name="Lovelace",
        email="ada@example.org",
    )["patient_id"]
    record_baseline(uow_factory, patient_id, serology=True)
    service.order_medication(uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30)
    clock.advance(timedelta(days=14))
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {"failed": 1}
    (failed,) = outbox(uow_factory(), "c", group="failed", names=True)["items"]
    return failed


def test_the_outbox_names_the_patient_and_shows_the_reason(failed_clinician_email):
    assert failed_clinician_email["patient_name"] == "Ada Lovelace"
    assert failed_clinician_email["recipient_name"] == "dr-a"  # not in the directory yet
    assert "no email address on file" in failed_clinician_email["last_error"]


def test_a_failed_email_re_sent_after_its_cause_is_fixed_goes_out_through_the_dispatcher(
    uow_factory, clock, sink_mailer, smtp_sink, failed_clinician_email
):
    reminder_id = failed_clinician_email["id"]
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.test")

    resent = resend_failed(uow_factory(), COORDINATOR, reminder_id)

    assert resent["status"] == "scheduled"
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {"sent": 1}
    assert smtp_sink.wait_for(1)
    (mail,) = smtp_sink.messages
    assert mail["Message-ID"] == f"<reminder-{reminder_id}@aih-pathways.local>"
    (sent,) = outbox(uow_factory(), "c", group="sent", names=True)["items"]
    assert (sent["id"], sent["recipient_name"], sent["attempts"]) == (reminder_id, "Dr A", 1)
    with uow_factory() as uow:
        actions = uow.session.execute(
            select(audit_log.c.action, audit_log.c.actor).where(
                audit_log.c.patient_id == failed_clinician_email["patient_id"]
            )
        ).all()
    assert ("reminder_resend_requested", "user:u-coord") in actions


def test_an_opened_email_is_the_one_the_dispatcher_composes(
    uow_factory, clock, sink_mailer, smtp_sink, failed_clinician_email
):
    failed = outbox_message(uow_factory(), COORDINATOR, failed_clinician_email["id"], POLICY)
    assert failed["email"] is None
    assert "no email address on file" in failed["problem"]
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.test")
    resend_failed(uow_factory(), COORDINATOR, failed_clinician_email["id"])
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    assert smtp_sink.wait_for(1)

    opened = outbox_message(uow_factory(), COORDINATOR, failed_clinician_email["id"], POLICY)

    (mail,) = smtp_sink.messages
    assert opened["email"]["subject"] == mail["Subject"]
    assert opened["email"]["message_id"] == mail["Message-ID"]
    received = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert opened["email"]["text"].strip() == received.strip()


def test_only_a_failed_email_of_ones_own_site_is_re_sent_by_a_coordinator(
    uow_factory, failed_clinician_email
):
    reminder_id = failed_clinician_email["id"]
    south = Principal("u-south", "coordinator-south", "coordinator", "south")
    auditor = Principal("u-aud", "auditor", "auditor", None)
    with pytest.raises(UnknownReminder):
        resend_failed(uow_factory(), south, reminder_id)
    with pytest.raises(UnknownReminder):
        outbox_message(uow_factory(), south, reminder_id, POLICY)
    with pytest.raises(UnknownReminder):
        resend_failed(uow_factory(), COORDINATOR, "no-such-reminder")
    with pytest.raises(Forbidden):
        resend_failed(uow_factory(), auditor, reminder_id)
    resend_failed(uow_factory(), COORDINATOR, reminder_id)
    with pytest.raises(NotResendable, match="scheduled"):
        resend_failed(uow_factory(), COORDINATOR, reminder_id)
