"""Patient text never reaches an email header, and delivery never stalls on it.

A patient whose name or external id carries CR/LF (data from before the input boundary, or
from an interface that bypassed it) used to make every dispatch round fail for that patient's
reminders, which stayed `claimed` for ever. Now the headers carry no patient text, so the
message goes out clean; and a reminder whose message cannot be sent at all becomes one
failed-delivery item with the reason while the rest of the round goes out. A real SMTP server
receives the mail.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from engine.adapters.mail import SmtpMailer
from engine.adapters.orm import patients
from engine.adapters.reminder_tables import coordinator_items, reminders
from engine.services import patients as service
from engine.services.care_team import register_clinician
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy

POLICY = DeliveryPolicy(lease_seconds=60, max_attempts=3, retry_base_seconds=30)
INJECTED = "ZZMARKER\r\nBcc: attacker@evil.example\r\nX-Injected: yes"


@pytest.fixture
def sink_mailer(smtp_sink):
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port, timeout=5.0)
    yield mailer
    mailer.close()


def store_legacy_text(uow_factory, patient_id: str, **columns: str) -> None:
    """Write text columns of a stored patient directly, as a record from before the rule."""
    with uow_factory() as uow:
        uow.session.execute(update(patients).where(patients.c.id == patient_id).values(**columns))
        uow.session.commit()


def started_on_prednisolone(uow_factory, clinician: str, **details) -> str:
    """A screened patient on prednisolone: its day-14 reminder emails the clinician."""
    patient_id = service.enrol_patient(
        uow_factory(),
        "dr-test",
        site="north",
        clinician=clinician,
        birth_date="1979-04-02",
        sex="F",
        weight_kg=64,
        **details,
    )["patient_id"]
    results = [("ALT", 420, "U/L"), ("AST", 310, "U/L"), ("IgG", 24, "g/L"), ("BILI", 25, "umol/L")]
    results += [("TPMT", 31, "U/mL")]
    for code, value, unit in results:
        service.record_lab_result(
            uow_factory(), "lab", patient_id, code=code, value=value, unit=unit
        )
    for code, value in (("HBSAG", "negative"), ("ANTI_HBC", "negative"), ("ANTI_HBS", "positive")):
        service.record_lab_result(uow_factory(), "lab", patient_id, code=code, value=value)
    service.order_medication(
        uow_factory(), clinician, patient_id, drug="prednisolone", mg_per_day=30
    )
    return patient_id


def statuses(uow_factory, patient_id: str) -> set[str]:
    with uow_factory() as uow:
        query = select(reminders.c.status).where(
            reminders.c.patient_id == patient_id, reminders.c.channel == "email"
        )
        return set(uow.session.execute(query).scalars())


def failed_items(uow_factory) -> list[dict]:
    with uow_factory() as uow:
        query = select(coordinator_items).where(coordinator_items.c.kind == "failed_delivery")
        return [dict(row._mapping) for row in uow.session.execute(query)]


def test_a_patient_with_cr_lf_in_name_and_external_id_does_not_stall_the_round(
    uow_factory, clock, smtp_sink, sink_mailer
):
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.example.org")
    # Enrolment refuses such text on every surface now; a record stored before that rule (or
    # written by another system) may still hold it, so it is written here as legacy data.
    injected = started_on_prednisolone(uow_factory, "dr-a", given_name="Legacy")
    store_legacy_text(
        uow_factory, injected, given_name=INJECTED, family_name=INJECTED, external_id=INJECTED
    )
    plain = started_on_prednisolone(uow_factory, "dr-a", given_name="Ann", external_id="EXT-1")
    clock.advance(timedelta(days=14))

    outcomes = dispatch_due_reminders(uow_factory, sink_mailer, POLICY)

    assert outcomes.get("sent") == 2, outcomes
    assert statuses(uow_factory, injected) >= {"sent"}
    assert not statuses(uow_factory, injected) & {"claimed", "sending"}
    assert smtp_sink.wait_for(2)
    for message in smtp_sink.messages:
        headers = "\n".join(f"{name}: {value}" for name, value in message.items())
        assert "ZZMARKER" not in headers and "X-Injected" not in headers
        assert "attacker@evil.example" not in headers
    assert {str(m["To"]) for m in smtp_sink.messages} == {"dr.a@clinic.example.org"}
    assert plain


def test_a_refused_address_becomes_one_failed_delivery_and_the_rest_go_out(
    uow_factory, clock, smtp_sink, sink_mailer
):
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.example.org")
    register_clinician(uow_factory(), "admin", "dr-u", name="Dr U", email="dr.u@clinic.example.org")
    smtp_sink.refuse(r"^dr\.u@")
    unsendable = started_on_prednisolone(uow_factory, "dr-u", given_name="Ann")
    sendable = started_on_prednisolone(uow_factory, "dr-a", given_name="Bea")
    clock.advance(timedelta(days=14))

    outcomes = dispatch_due_reminders(uow_factory, sink_mailer, POLICY)

    assert outcomes == {"sent": 1, "failed": 1}
    assert_failed_once(uow_factory, unsendable, "550")
    assert "sent" in statuses(uow_factory, sendable)
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {}


class ChokesOn:
    """The real SMTP transport, except that it fails in a way nobody foresaw for one address."""

    def __init__(self, mailer: SmtpMailer, address: str):
        self.mailer, self.address = mailer, address

    def send(self, message) -> None:
        if str(message["To"]) == self.address:
            raise RuntimeError("ZZMARKER unforeseen transport failure")
        self.mailer.send(message)

    def close(self) -> None:
        self.mailer.close()


def test_a_message_the_transport_cannot_handle_fails_once_with_its_type_and_the_rest_go_out(
    uow_factory, clock, smtp_sink, sink_mailer, caplog
):
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.example.org")
    register_clinician(uow_factory(), "admin", "dr-u", name="Dr U", email="dr.u@clinic.example.org")
    unsendable = started_on_prednisolone(uow_factory, "dr-u", given_name="Ann")
    started_on_prednisolone(uow_factory, "dr-a", given_name="Bea")
    clock.advance(timedelta(days=14))

    mailer = ChokesOn(sink_mailer, "dr.u@clinic.example.org")
    assert dispatch_due_reminders(uow_factory, mailer, POLICY) == {"sent": 1, "failed": 1}

    assert_failed_once(uow_factory, unsendable, "RuntimeError")
    assert smtp_sink.wait_for(1)
    assert "ZZMARKER" not in caplog.text


def assert_failed_once(uow_factory, patient_id: str, reason: str) -> None:
    assert "failed" in statuses(uow_factory, patient_id)
    assert not statuses(uow_factory, patient_id) & {"claimed", "sending"}
    (item,) = [i for i in failed_items(uow_factory) if i["patient_id"] == patient_id]
    assert "not delivered" in item["reason"] and reason in item["reason"]
