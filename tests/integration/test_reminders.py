"""Reminders follow the pathway: created, cancelled, delivered once, escalated, failed loudly.

Real databases (SQLite and PostgreSQL), a real SMTP server (aiosmtpd) and the test clock:
months of a pathway run in seconds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email.utils import parseaddr

import pytest
from sqlalchemy import select

from engine.adapters.delivery_journal import ProcessJournal
from engine.adapters.mail import SmtpMailer
from engine.adapters.pathway_files import latest
from engine.adapters.reminder_tables import coordinator_items, reminders
from engine.domain.errors import ConcurrencyConflict, InvalidInput, UnknownWorkItem
from engine.notifications.compose import message_id
from engine.services import patients as service
from engine.services.care_team import register_clinician
from engine.services.coordinator_queue import (
    claim_item,
    complete_item,
    coordinator_queue,
    release_item,
    snooze_item,
)
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import (
    DeliveryPolicy,
    claim_due_batches,
    claim_due_reminders,
    deliver_reminder,
    deliver_reminder_batch,
)
from tests.integration.baseline import record_baseline
from tests.support.servers import free_port

POLICY = DeliveryPolicy(lease_seconds=60, max_attempts=3, retry_base_seconds=30)


def enrol(uow_factory, email: str | None = "ada@example.org", **details) -> str:
    status = service.enrol_patient(
        uow_factory(),
        "dr-test",
        site=details.pop("site", "north"),
        clinician="dr-a",
        birth_date="1979-04-02",
        sex="F",
        weight_kg=64,
        given_name="Ada",
        email=email,
        **details,
    )
    return status["patient_id"]


def start_prednisolone(uow_factory, patient_id: str) -> None:
    service.order_medication(uow_factory(), "dr-a", patient_id, drug="prednisolone", mg_per_day=30)


def rows(uow_factory, table, **where) -> list[dict]:
    with uow_factory() as uow:
        query = select(table).where(*(table.c[k] == v for k, v in where.items()))
        return [dict(r._mapping) for r in uow.session.execute(query)]


def by_milestone(uow_factory, patient_id: str) -> dict[tuple[str, str, str], str]:
    return {
        (r["milestone_id"], r["purpose"], r["recipient"]): r["status"]
        for r in rows(uow_factory, reminders, patient_id=patient_id)
    }


@pytest.fixture
def sink_mailer(smtp_sink):
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port)
    yield mailer
    mailer.close()


@pytest.fixture
def clinician(uow_factory):
    register_clinician(uow_factory(), "admin", "dr-a", name="Dr A", email="dr.a@clinic.example.org")


def test_enrolment_schedules_screening_reminders_for_the_care_team_with_escalations(uow_factory):
    patient_id = enrol(uow_factory)
    assert by_milestone(uow_factory, patient_id) == {
        ("tpmt-screening", "notify", "care_team"): "scheduled",
        ("tpmt-screening", "escalate", "coordinator"): "scheduled",
        ("hbv-screening", "notify", "care_team"): "scheduled",
        ("hbv-screening", "escalate", "coordinator"): "scheduled",
    }


def test_due_screening_reminders_land_in_the_awaiting_results_queue(uow_factory, sink_mailer):
    patient_id = enrol(uow_factory)
    outcomes = dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    assert outcomes == {"queued": 2}
    listing = coordinator_queue(uow_factory(), "coord-1", queue="awaiting_results")
    assert listing["total"] == 2
    assert {i["patient_id"] for i in listing["items"]} == {patient_id}
    assert listing["counts"]["awaiting_results"] == 2


def test_resulted_screening_cancels_its_reminders_and_closes_its_queue_items(
    uow_factory, sink_mailer
):
    patient_id = enrol(uow_factory)
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    record_baseline(uow_factory, patient_id, serology=True)
    statuses = by_milestone(uow_factory, patient_id)
    assert statuses[("tpmt-screening", "escalate", "coordinator")] == "cancelled"
    assert statuses[("hbv-screening", "escalate", "coordinator")] == "cancelled"
    assert coordinator_queue(uow_factory(), "coord-1")["total"] == 0
    assert {r["status"] for r in rows(uow_factory, coordinator_items)} == {"closed"}


def test_day_14_azathioprine_reminder_emails_the_clinician_once_with_the_reason(
    uow_factory, clock, sink_mailer, smtp_sink, clinician
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=13))
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {}
    clock.advance(timedelta(days=1))
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {"sent": 1}
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {}
    assert smtp_sink.wait_for(1)
    (message,) = smtp_sink.messages
    assert parseaddr(message["To"])[1] == "dr.a@clinic.example.org"
    body = message.get_body(("plain",)).get_content()
    assert "IND-AZA-DELAY" in body
    sent = rows(uow_factory, reminders, milestone_id="start-azathioprine", recipient="clinician")
    assert sent[0]["status"] == "sent"
    assert sent[0]["message_id"] == message["Message-ID"]


def test_ordering_azathioprine_on_day_14_before_the_reminder_goes_cancels_it(uow_factory, clock):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=14))  # IND-AZA-DELAY: not before 2 weeks of steroid
    service.order_medication(
        uow_factory(), "dr-a", patient_id, drug="azathioprine", mg_per_kg_day=1
    )
    statuses = by_milestone(uow_factory, patient_id)
    assert statuses[("start-azathioprine", "notify", "clinician")] == "cancelled"
    assert statuses[("start-azathioprine", "escalate", "coordinator")] == "cancelled"


def test_response_assessment_reaches_patient_without_diagnosis_and_clinician_with_why(
    uow_factory, clock, sink_mailer, smtp_sink, clinician
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(weeks=2))  # IND-AZA-DELAY: not before 2 weeks of steroid
    service.order_medication(
        uow_factory(), "dr-a", patient_id, drug="azathioprine", mg_per_kg_day=1
    )
    clock.advance(timedelta(weeks=2))
    linked = replace(POLICY, public_url="https://aihp.clinic.test")
    dispatch_due_reminders(uow_factory, sink_mailer, linked)
    assert smtp_sink.wait_for(2)
    (patient_mail,) = [m for m in smtp_sink.messages if "ada@" in m["To"]]
    assert "hepatitis" not in patient_mail["Subject"].lower()
    assert "blood test" in patient_mail["Subject"].lower()
    assert "/ui/patients/" not in patient_mail.get_body(("plain",)).get_content()
    bodies = [
        m.get_body(("plain",)).get_content() for m in smtp_sink.messages if "dr.a@" in m["To"]
    ]
    (assessment,) = [b for b in bodies if "Response assessment" in b]
    rules = next(m.rules for m in latest().milestones if m.id == "response-assessment")
    assert all(rule in assessment for rule in rules)
    assert f"https://aihp.clinic.test/ui/patients/{patient_id}" in assessment


def test_missed_milestone_escalates_after_its_grace_period_and_supersedes_the_due_item(
    uow_factory, clock, sink_mailer, clinician
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=14))
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    assert coordinator_queue(uow_factory(), "c", queue="escalated")["total"] == 0
    clock.advance(timedelta(days=7))  # grace of start-azathioprine: P7D
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    escalated = coordinator_queue(uow_factory(), "c", queue="escalated")["items"]
    assert [i["title"] for i in escalated] == ["Start azathioprine (TPMT permitting)"] or len(
        escalated
    ) == 1
    assert escalated[0]["rule_ids"] and escalated[0]["patient_id"] == patient_id


def test_urgent_acute_severe_review_escalates_one_day_after_it_is_due(
    uow_factory, clock, sink_mailer, clinician
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    service.record_clinical_event(
        uow_factory(), "dr-a", patient_id, kind="acute_severe_presentation"
    )
    rows_ = rows(uow_factory, reminders, milestone_id="acute-severe-review", purpose="escalate")
    (escalation,) = rows_
    notify = rows(uow_factory, reminders, milestone_id="acute-severe-review", purpose="notify")
    assert escalation["urgent"] is True
    assert escalation["due_at"] - notify[0]["due_at"] == timedelta(days=1)
    clock.advance(timedelta(days=15))
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    (item,) = coordinator_queue(uow_factory(), "c", queue="escalated")["items"]
    assert item["urgent"] is True and item["reason"].startswith("URGENT")


def test_catch_up_after_an_outage_sends_each_missed_reminder_exactly_once(
    uow_factory, clock, sink_mailer, smtp_sink, clinician
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=60))  # everything was down for two months
    first = dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    second = dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    assert first["sent"] >= 3 and second == {}
    counts = smtp_sink.count_by_message_id()
    assert len(counts) == first["sent"]
    assert set(counts.values()) == {1}


def test_missing_clinician_email_is_a_failed_delivery_with_a_reason(
    uow_factory, clock, sink_mailer
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=14))
    assert dispatch_due_reminders(uow_factory, sink_mailer, POLICY) == {"failed": 1}
    (item,) = coordinator_queue(uow_factory(), "c", queue="failed_delivery")["items"]
    assert "no email address on file for clinician 'dr-a'" in item["reason"]


@pytest.mark.parametrize(
    ("email", "preferences", "reason"),
    [
        ("not-an-address", {}, "not delivered"),
        (None, {}, "no email address on file"),
        ("ada@example.org", {"opt_out": True}, "opted out"),
    ],
)
def test_patient_who_cannot_be_emailed_becomes_a_failed_delivery_not_a_crash(
    uow_factory, clock, sink_mailer, clinician, email, preferences, reason
):
    patient_id = enrol(uow_factory, email=email, contact_preferences=preferences)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(weeks=4, days=1))
    outcomes = dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    assert outcomes["failed"] >= 1
    failed = coordinator_queue(uow_factory(), "c", queue="failed_delivery")["items"]
    assert any(reason in i["reason"] and "patient" in i["reason"] for i in failed)


def test_unreachable_smtp_is_retried_with_backoff_then_fails_into_the_queue(
    uow_factory, clock, clinician
):
    dead = SmtpMailer("127.0.0.1", free_port(), timeout=1)
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=14))
    assert dispatch_due_reminders(uow_factory, dead, POLICY) == {"retry": 1}
    (row,) = rows(uow_factory, reminders, milestone_id="start-azathioprine", recipient="clinician")
    assert row["status"] == "scheduled" and row["attempts"] == 1
    assert row["next_attempt_at"] - clock.now() == timedelta(seconds=30)
    assert dispatch_due_reminders(uow_factory, dead, POLICY) == {}
    clock.advance(timedelta(seconds=30))
    assert dispatch_due_reminders(uow_factory, dead, POLICY) == {"retry": 1}
    clock.advance(timedelta(seconds=60))
    assert dispatch_due_reminders(uow_factory, dead, POLICY) == {"failed": 1}
    failed = coordinator_queue(uow_factory(), "c", queue="failed_delivery")["items"]
    assert len(failed) == 1


def test_reminder_claimed_by_a_dead_worker_is_claimed_again_after_the_lease(
    uow_factory, clock, sink_mailer, smtp_sink, clinician
):
    patient_id = enrol(uow_factory)
    record_baseline(uow_factory, patient_id, serology=True)
    start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(days=14))
    (lost,) = claim_due_reminders(uow_factory(), POLICY)  # the worker dies with it
    assert claim_due_reminders(uow_factory(), POLICY) == []
    clock.advance(timedelta(seconds=61))
    (again,) = claim_due_reminders(uow_factory(), POLICY)
    assert again[0] == lost[0] and again[1] != lost[1]
    assert deliver_reminder(uow_factory(), sink_mailer, POLICY, *lost) == "skipped"
    assert deliver_reminder(uow_factory(), sink_mailer, POLICY, *again) == "sent"
    assert deliver_reminder(uow_factory(), sink_mailer, POLICY, *again) == "skipped"
    assert smtp_sink.wait_for(1) and len(smtp_sink.messages) == 1


def test_coordinator_claims_snoozes_releases_and_completes_items_with_audit(
    uow_factory, clock, sink_mailer
):
    patient_id = enrol(uow_factory)
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    first, second = coordinator_queue(uow_factory(), "c")["items"]
    claimed = claim_item(uow_factory(), "coord-1", first["id"])
    assert claimed["status"] == "claimed" and claimed["claimed_by"] == "coord-1"
    with pytest.raises(ConcurrencyConflict):
        claim_item(uow_factory(), "coord-2", first["id"])
    assert release_item(uow_factory(), "coord-1", first["id"])["status"] == "open"
    with pytest.raises(InvalidInput):
        snooze_item(
            uow_factory(),
            "coord-1",
            second["id"],
            until=clock.now() + timedelta(days=1),
            reason=" ",
        )
    snooze_item(
        uow_factory(),
        "coord-1",
        second["id"],
        until=clock.now() + timedelta(days=1),
        reason="patient phoned: on holiday",
    )
    assert coordinator_queue(uow_factory(), "c")["total"] == 1
    clock.advance(timedelta(days=1))
    assert coordinator_queue(uow_factory(), "c")["total"] == 2
    with pytest.raises(InvalidInput):  # what was done is part of completing, on every surface
        complete_item(uow_factory(), "coord-1", first["id"], note="called lab")
    done = complete_item(uow_factory(), "coord-1", first["id"], outcome="lab_booked", note="")
    assert done["status"] == "completed"
    with pytest.raises(InvalidInput):
        complete_item(uow_factory(), "coord-1", first["id"])
    history = service.patient_history(uow_factory(), "auditor", patient_id)
    actions = [entry["action"] for entry in history["care_team_actions"]]
    for action in ("item_claimed", "item_released", "item_snoozed", "item_completed"):
        assert action in actions


def test_coordinator_sees_only_their_site(uow_factory, sink_mailer):
    enrol(uow_factory, site="north")
    enrol(uow_factory, site="south")
    dispatch_due_reminders(uow_factory, sink_mailer, POLICY)
    north = coordinator_queue(uow_factory(), "c", site_scope="north")
    assert north["total"] == 2 and {i["site"] for i in north["items"]} == {"north"}
    south_item = coordinator_queue(uow_factory(), "c", site_scope="south")["items"][0]
    with pytest.raises(UnknownWorkItem):
        claim_item(uow_factory(), "c", south_item["id"], site_scope="north")
    with pytest.raises(InvalidInput):
        coordinator_queue(uow_factory(), "c", site="south", site_scope="north")


def test_unknown_queue_and_bad_paging_are_clear_errors(uow_factory):
    with pytest.raises(InvalidInput, match="unknown queue"):
        coordinator_queue(uow_factory(), "c", queue="everything")
    with pytest.raises(InvalidInput):
        coordinator_queue(uow_factory(), "c", limit=0)


def due_emails(uow_factory, clock, patients: int) -> None:
    """`patients` patients on prednisolone for four weeks: emails due to them and dr-a."""
    for _ in range(patients):
        patient_id = enrol(uow_factory)
        record_baseline(uow_factory, patient_id, serology=True)
        start_prednisolone(uow_factory, patient_id)
    clock.advance(timedelta(weeks=4, days=1))


def test_an_email_accepted_before_its_lease_ran_out_unrecorded_is_recorded_not_sent_again(
    uow_factory, clock, sink_mailer, smtp_sink, clinician
):
    due_emails(uow_factory, clock, 1)
    (first, *_) = claim_due_reminders(uow_factory(), POLICY, 1)
    with uow_factory() as uow:  # a worker takes it, its SMTP server accepts the email ...
        uow.reminders.start_sending_batch([first[0]], first[1], clock.now(), POLICY.lease)
        uow.commit()
    journal = ProcessJournal()
    journal.note_accepted(first[0], message_id(first[0], POLICY.message_domain))
    clock.advance(timedelta(seconds=61))  # ... and the database is away past the lease

    (batch,) = claim_due_batches(uow_factory(), POLICY, 1, 10)
    outcomes = deliver_reminder_batch(
        uow_factory(), sink_mailer, POLICY, batch.reminder_ids, batch.token, journal
    )

    assert batch.stranded and batch.reminder_ids == [first[0]]
    assert outcomes == {"sent": 1}
    assert smtp_sink.messages == []
    (row,) = rows(uow_factory, reminders, id=first[0])
    assert row["status"] == "sent" and row["message_id"] == journal.accepted([first[0]])[first[0]]


def test_a_lease_that_ran_out_is_claimed_before_older_scheduled_reminders(uow_factory, clock):
    enrol(uow_factory)
    enrol(uow_factory)
    (lost,) = claim_due_reminders(uow_factory(), POLICY, 1)
    clock.advance(timedelta(seconds=61))
    first, *rest = claim_due_batches(uow_factory(), POLICY, 4, 2)
    assert first.stranded and first.reminder_ids == [lost[0]]
    assert [len(b.reminder_ids) for b in rest] == [2, 1] and not any(b.stranded for b in rest)


def test_a_batch_sends_past_a_failing_reminder_and_hands_back_what_its_window_cannot_send(
    uow_factory, clock, smtp_sink, clinician
):
    due_emails(uow_factory, clock, 2)
    bad = enrol(uow_factory, email="not-an-address")
    record_baseline(uow_factory, bad, serology=True)
    start_prednisolone(uow_factory, bad)
    clock.advance(timedelta(weeks=4, days=1))
    brief = DeliveryPolicy(lease_seconds=3, max_attempts=3)  # sends for 1.5 s at most
    smtp_sink.delay_seconds = 0.5
    mailer = SmtpMailer(smtp_sink.host, smtp_sink.port)
    claimed = claim_due_reminders(uow_factory(), brief, 100)
    ids, token = [rid for rid, _ in claimed], claimed[0][1]

    outcomes = deliver_reminder_batch(uow_factory(), mailer, brief, ids, token)
    mailer.close()

    assert outcomes["failed"] >= 1 and outcomes["sent"] >= 1 and outcomes["deferred"] >= 1
    assert sum(outcomes.values()) == len(ids)
    assert len(smtp_sink.messages) == outcomes["sent"]
    by_status: dict[str, list[dict]] = {}
    for row in rows(uow_factory, reminders):
        if row["id"] in ids:
            by_status.setdefault(row["status"], []).append(row)
    deferred = by_status["scheduled"]
    assert len(deferred) == outcomes["deferred"]
    assert {(r["next_attempt_at"], r["attempts"]) for r in deferred} == {(clock.now(), 0)}
    failed = coordinator_queue(uow_factory(), "c", queue="failed_delivery")["items"]
    assert len(failed) == outcomes["failed"]
