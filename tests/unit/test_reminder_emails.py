"""Reminder emails: patients get the minimum, clinicians get what, when and why."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from engine.adapters.pathway_files import latest
from engine.domain.pathway import MilestoneDefinition, Pathway
from engine.notifications.compose import (
    InvalidAddress,
    ReminderNotice,
    checked_address,
    compose_reminder,
)

SENT_AT = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
DUE_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PUBLIC_URL = "https://aihp.clinic.test/"
PATIENT_ID = "5f0e2c1a9b8d4e7f8a6b5c4d3e2f1a0b"
MAIL = {
    "mail_from": "reminders@aih-pathways.local",
    "message_domain": "aih-pathways.local",
    "public_url": PUBLIC_URL,
}
DIAGNOSIS_WORDS = ("autoimmune", "hepatitis", "liver", "AIH", "cirrhosis", "hepatic")


@pytest.fixture(scope="module")
def pathway() -> Pathway:
    return latest()


def reasons_for(pathway: Pathway, milestone: MilestoneDefinition):
    return tuple(
        (
            rule_id,
            pathway.rules[rule_id].text,
            tuple(
                f"{s} {pathway.sources[s]['title']} {pathway.sources[s].get('year') or ''}".strip()
                for s in pathway.rules[rule_id].sources
            ),
        )
        for rule_id in milestone.rules
    )


def notice_for(pathway: Pathway, milestone: MilestoneDefinition, **changes) -> ReminderNotice:
    notice = ReminderNotice(
        reminder_id=f"rem-{milestone.id}",
        recipient_role="patient",
        to_address="ann.example@example.org",
        recipient_name="Ann",
        patient_ref="EXT-4711",
        milestone_title=milestone.title,
        milestone_kind=milestone.kind,
        due_at=DUE_AT,
        urgent=milestone.urgent,
        escalation=False,
        reasons=reasons_for(pathway, milestone),
        site="north",
        clinic_name="Northside clinic",
    )
    return dataclasses.replace(notice, **changes)


def forbidden_in_patient_mail(pathway: Pathway, notice: ReminderNotice) -> list[re.Pattern[str]]:
    """Whole-word patterns for everything that would disclose the diagnosis or treatment."""
    words: set[str] = set(DIAGNOSIS_WORDS)
    for name, drug in pathway.drugs.items():
        words |= {name, name.replace("_", " "), drug["class"].replace("_", " ")}
    words |= set(pathway.drug_aliases)
    for lab in pathway.labs.values():
        words |= {lab.code, lab.code.replace("_", "-"), lab.name, lab.loinc, lab.name.split()[0]}
    words |= set(pathway.rules)
    words |= {notice.milestone_title, notice.patient_ref}
    words |= {text for _, text, _ in notice.reasons}
    return [re.compile(rf"(?<![\w-]){re.escape(w)}(?![\w-])", re.IGNORECASE) for w in words]


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def html_of(message: EmailMessage) -> str:
    return message.get_body(("html",)).get_content()


def patient_variants(pathway: Pathway):
    for milestone in pathway.milestones:
        for urgent in (False, True):
            for escalation in (False, True):
                yield notice_for(
                    pathway, milestone, urgent=urgent, escalation=escalation, patient_id=PATIENT_ID
                )


def test_patient_email_discloses_no_diagnosis_drug_lab_or_rule(pathway):
    checked = 0
    for notice in patient_variants(pathway):
        message = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
        patterns = forbidden_in_patient_mail(pathway, notice)
        patterns.append(re.compile(re.escape(PATIENT_ID)))
        for part, content in (
            ("subject", str(message["Subject"])),
            ("text", text_of(message)),
            ("html", html_of(message)),
        ):
            leaks = [p.pattern for p in patterns if p.search(content)]
            assert not leaks, f"{notice.reminder_id} {part} leaks {leaks}"
        checked += 1
    assert checked == 4 * len(pathway.milestones) > 0


def test_the_forbidden_list_catches_a_milestone_title_in_a_patient_body(pathway):
    milestone = next(m for m in pathway.milestones if m.id == "taper-to-10mg")
    notice = notice_for(pathway, milestone)
    patterns = forbidden_in_patient_mail(pathway, notice)
    assert any(p.search(f"Dear Ann, {milestone.title}") for p in patterns)
    assert any(p.search("your ALT result") for p in patterns)
    assert not any(p.search("A blood test is due this week. Please contact") for p in patterns)


def test_patient_lab_reminder_asks_for_a_blood_test_by_the_due_date(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "lab" and not m.urgent)
    message = compose_reminder(notice_for(pathway, milestone), sent_at=SENT_AT, **MAIL)
    assert message["Subject"] == "A blood test is due this week"
    body = text_of(message)
    assert body.startswith("Dear Ann,")
    assert "Tuesday 1 December 2026" in body
    assert "Northside clinic" in body
    assert "contact Northside clinic" in body


def test_patient_lab_reminder_due_later_names_the_date_in_the_subject(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "lab")
    notice = notice_for(pathway, milestone, urgent=False)
    message = compose_reminder(notice, sent_at=DUE_AT - timedelta(days=20), **MAIL)
    assert message["Subject"] == "A blood test is due by Tuesday 1 December 2026"


def test_overdue_patient_lab_reminder_says_overdue(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "lab")
    notice = notice_for(pathway, milestone, escalation=True, urgent=False)
    message = compose_reminder(notice, sent_at=DUE_AT + timedelta(days=3), **MAIL)
    assert message["Subject"] == "A blood test is overdue"


@pytest.mark.parametrize("kind", ["action", "review"])
def test_patient_visit_reminder_says_the_clinic_asked_to_see_you(pathway, kind):
    milestone = next(m for m in pathway.milestones if m.kind == kind)
    notice = notice_for(pathway, milestone, urgent=False)
    message = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
    assert message["Subject"] == "Your clinic has asked to see you"
    assert "asked to see you by Tuesday 1 December 2026" in text_of(message)


def test_urgent_patient_reminder_is_marked_urgent_in_subject_and_body(pathway):
    milestone = next(m for m in pathway.milestones if m.id == "acute-severe-review")
    notice = notice_for(pathway, milestone, urgent=True)
    message = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
    assert message["Subject"] == "Urgent: your clinic has asked to see you"
    assert "urgent" in text_of(message).lower()


def test_clinician_email_says_what_is_due_when_and_each_rule_with_its_sentence(pathway):
    milestone = next(m for m in pathway.milestones if m.id == "complete-response-check")
    notice = notice_for(pathway, milestone, recipient_role="clinician", recipient_name="Dr Lee")
    message = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
    text, html = text_of(message), html_of(message)
    assert milestone.title in text
    assert "2026-12-01 09:00 UTC" in text
    assert "EXT-4711" in text
    assert len(notice.reasons) == len(milestone.rules) > 1
    for rule_id, sentence, sources in notice.reasons:
        assert f"{rule_id}: {sentence} [{', '.join(sources)}]" in text
        assert rule_id in html
    assert "S1 Treatment of Autoimmune Hepatitis" in text or "S2 Management" in text


def test_clinician_subject_carries_the_due_date_but_no_patient_text_diagnosis_or_lab(pathway):
    milestone = next(m for m in pathway.milestones if m.id == "monthly-aminotransferases")
    notice = notice_for(pathway, milestone, recipient_role="clinician", urgent=False)
    subject = str(compose_reminder(notice, sent_at=SENT_AT, **MAIL)["Subject"])
    assert subject == "Pathway reminder due 2026-12-01"
    for word in (*DIAGNOSIS_WORDS, "ALT", "AST", milestone.title):
        assert word.lower() not in subject.lower()


@pytest.mark.parametrize(
    ("urgent", "escalation", "subject"),
    [
        (True, False, "URGENT Pathway reminder due 2026-12-01"),
        (False, True, "Overdue pathway reminder: was due 2026-12-01"),
        (True, True, "URGENT Overdue pathway reminder: was due 2026-12-01"),
    ],
)
def test_coordinator_subject_flags_urgent_and_overdue(pathway, urgent, escalation, subject):
    milestone = next(m for m in pathway.milestones if m.id == "acute-severe-review")
    notice = notice_for(
        pathway, milestone, recipient_role="coordinator", urgent=urgent, escalation=escalation
    )
    assert compose_reminder(notice, sent_at=SENT_AT, **MAIL)["Subject"] == subject


def test_html_escapes_markup_in_a_title_and_a_name(pathway):
    milestone = pathway.milestones[0]
    notice = notice_for(
        pathway,
        milestone,
        recipient_role="clinician",
        recipient_name="<b>Dr</b>",
        milestone_title="<script>alert(1)</script>",
    )
    html = html_of(compose_reminder(notice, sent_at=SENT_AT, **MAIL))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Dr&lt;/b&gt;" in html


def test_message_id_is_the_same_for_every_send_of_a_reminder(pathway):
    notice = notice_for(pathway, pathway.milestones[0], reminder_id="8f14e45f-ceea-467a")
    first = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
    again = compose_reminder(notice, sent_at=SENT_AT + timedelta(hours=2), **MAIL)
    other = compose_reminder(
        dataclasses.replace(notice, reminder_id="c9f0f895"), sent_at=SENT_AT, **MAIL
    )
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"] == "<reminder-8f14e45f-ceea-467a@aih-pathways.local>"
    assert other["Message-ID"] != first["Message-ID"]


def test_headers_mark_an_automatic_reminder(pathway):
    notice = notice_for(pathway, pathway.milestones[0], reminder_id="r42")
    message = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
    assert message["From"] == "reminders@aih-pathways.local"
    assert message["To"].addresses[0].addr_spec == "ann.example@example.org"
    assert message["Date"] == "Fri, 27 Nov 2026 08:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-AIHP-Reminder"] == "r42"


@pytest.mark.parametrize("role", ["patient", "clinician", "coordinator"])
def test_every_role_gets_text_and_html_alternatives(pathway, role):
    notice = notice_for(pathway, pathway.milestones[0], recipient_role=role)
    message = compose_reminder(notice, sent_at=SENT_AT, **MAIL)
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    assert text_of(message).strip()
    assert html_of(message).lstrip().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        (None, "no email address on file"),
        ("", "no email address on file"),
        ("   ", "no email address on file"),
        ("ann.example.org", "@-sign"),
        ("ann@@example.org", "invalid characters"),
        ("ann smith@example.org", "invalid characters"),
        ("ann@example", "period"),
        ("ann@clinic.invalid", "special-use or reserved"),
    ],
)
def test_unusable_address_is_rejected_with_a_reason(address, reason):
    with pytest.raises(InvalidAddress) as caught:
        checked_address(address)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("address", ["ann@example.org", "dr.lee@clinic.test", "Ann@Example.ORG"])
def test_test_domains_are_accepted(address):
    assert checked_address(address).lower() == address.lower()


def test_composing_for_a_patient_without_an_address_fails_with_a_reason(pathway):
    notice = notice_for(pathway, pathway.milestones[0], to_address=None)
    with pytest.raises(InvalidAddress, match="no email address on file"):
        compose_reminder(notice, sent_at=SENT_AT, **MAIL)


# ---- late catch-up reminders and the clinician's link --------------------------------------

LATE = DUE_AT + timedelta(days=5)  # the reminder went out after downtime, five days late


def bodies(message: EmailMessage) -> tuple[str, str, str]:
    return str(message["Subject"]), text_of(message), html_of(message)


def test_a_late_patient_lab_reminder_says_when_it_was_due_not_this_week(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "lab" and not m.urgent)
    subject, text, html = bodies(
        compose_reminder(notice_for(pathway, milestone), sent_at=LATE, **MAIL)
    )
    assert subject == "A blood test was due on 1 December 2026"
    assert "A blood test was due on 1 December 2026. Please have it taken as soon as you" in text
    assert "was due on <strong>1 December 2026</strong>" in html
    assert "this week" not in text + html + subject


def test_a_late_patient_visit_reminder_asks_to_arrange_a_time_as_soon_as_possible(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "review" and not m.urgent)
    subject, text, _ = bodies(
        compose_reminder(notice_for(pathway, milestone), sent_at=LATE, **MAIL)
    )
    assert subject == "Your clinic is still waiting to see you"
    assert "asked to see you by Tuesday 1 December 2026" in text
    assert "as soon as you can" in text and "has asked" not in text


def test_a_reminder_sent_later_on_its_due_day_is_not_late(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "lab" and not m.urgent)
    message = compose_reminder(
        notice_for(pathway, milestone), sent_at=DUE_AT + timedelta(hours=8), **MAIL
    )
    assert message["Subject"] == "A blood test is due this week"
    assert "A blood test is due this week. Please have it taken by Tuesday" in text_of(message)


def test_a_late_clinician_reminder_says_it_is_late_and_when_it_was_due(pathway):
    milestone = next(m for m in pathway.milestones if m.id == "monthly-aminotransferases")
    notice = notice_for(pathway, milestone, recipient_role="clinician", urgent=False)
    subject, text, html = bodies(compose_reminder(notice, sent_at=LATE, **MAIL))
    assert subject == "Late pathway reminder: was due 2026-12-01"
    assert f"Late reminder, was due on 1 December 2026: {milestone.title}" in text
    assert "was due on 1 December 2026" in html


@pytest.mark.parametrize("role", ["clinician", "coordinator"])
def test_a_clinician_email_links_to_the_patient_page(pathway, role):
    notice = notice_for(pathway, pathway.milestones[0], recipient_role=role, patient_id=PATIENT_ID)
    _, text, html = bodies(compose_reminder(notice, sent_at=SENT_AT, **MAIL))
    link = f"https://aihp.clinic.test/ui/patients/{PATIENT_ID}"
    assert f"Page:        {link}\n" in text
    assert f'<a href="{link}">Open the patient page</a>' in html


def test_without_a_public_url_or_a_patient_id_no_link_is_written(pathway):
    clinician = notice_for(pathway, pathway.milestones[0], recipient_role="clinician")
    for notice, url in (
        (clinician, PUBLIC_URL),
        (dataclasses.replace(clinician, patient_id=PATIENT_ID), ""),
    ):
        _, text, html = bodies(
            compose_reminder(notice, sent_at=SENT_AT, **{**MAIL, "public_url": url})
        )
        assert "/ui/patients/" not in text + html


def test_a_patient_email_never_links_to_the_clinic_pages(pathway):
    milestone = next(m for m in pathway.milestones if m.kind == "lab")
    for sent_at in (SENT_AT, LATE):
        notice = notice_for(pathway, milestone, patient_id=PATIENT_ID)
        subject, text, html = bodies(compose_reminder(notice, sent_at=sent_at, **MAIL))
        assert "aihp.clinic.test" not in subject + text + html
        assert "href" not in html
