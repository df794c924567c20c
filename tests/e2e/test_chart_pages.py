"""The chart pages in a real browser: the timeline's values read from its table and its SVG,
the pathway diagram Graphviz lays out (arrowheads, clusters, no raw data, text inside its
boxes), and the outbox: names, an email opened, a failed one re-sent and audited."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from api.pages.timeline import amount, table_rows
from cli.demo_team import dispatch_round
from engine.adapters.mail import mailer_from_settings
from engine.bootstrap import unit_of_work_factory
from engine.clock import ManualClock
from engine.services.audit_trail import audit_entries
from engine.services.outbox import outbox
from engine.services.patient_directory import list_patients
from engine.services.patient_timeline import timeline_series
from engine.services.patients import (
    enrol_patient,
    order_medication,
    patient_history,
    patient_status,
)
from engine.services.reminders import DeliveryPolicy
from tests.e2e.accessibility import assert_accessible


@pytest.fixture(scope="module")
def failed_email(demo) -> str:
    """A north patient on prednisolone for six weeks with no email address on file: their
    response-assessment reminder email fails at the first dispatch round, as in the clinic."""
    past = unit_of_work_factory(demo.settings, ManualClock(datetime.now(UTC) - timedelta(days=42)))
    enrolled = enrol_patient(
        past(),
        "e2e",
        site="north",
        clinician="dr-adeyemi",
        birth_date="1968-02-11",
        sex="F",
        weight_kg=71,
        given_name="Fay",
        family_name="Unreachable",
    )
    order_medication(past(), "e2e", enrolled["patient_id"], drug="prednisolone", mg_per_day=30)
    mailer = mailer_from_settings(demo.settings)
    dispatch_round(demo.uow_factory, mailer, DeliveryPolicy.from_settings(demo.settings))
    failed = outbox(demo.uow_factory(), "test", group="failed", site="north", names=True)
    return next(
        r["id"]
        for r in failed["items"]
        if r["patient_id"] == enrolled["patient_id"] and r["recipient"] == "patient"
    )


def _richest_patient(demo) -> str:
    listed = [
        patient
        for state in ("second_line", "maintenance", "taper")
        for patient in list_patients(demo.uow_factory(), "test", state=state, limit=8)["items"]
    ]
    histories = [patient_history(demo.uow_factory(), "test", p["patient_id"]) for p in listed]
    richest = max(histories, key=lambda h: (len({o["drug"] for o in h["orders"]}), len(h["labs"])))
    return richest["patient_id"]


def test_the_timeline_shows_its_values_in_a_table_and_on_the_chart(login, demo, screenshot):
    patient_id = _richest_patient(demo)
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/patients/{patient_id}")
    status = patient_status(demo.uow_factory(), "test", patient_id)
    history = patient_history(demo.uow_factory(), "test", patient_id)
    shown_now = datetime.now(UTC)
    series = timeline_series(status, history, shown_now)
    expected = table_rows(series)

    table = page.get_by_role("table", name=re.compile("^Timeline values"))
    expect(table.locator("tbody tr")).to_have_count(len(expected))
    labs = [f"{code} {value}" for _, kind, code, value in expected if kind == "lab"]
    shown = [
        " ".join(row.locator("th, td").all_inner_texts()[1:])
        for row in table.locator('tbody tr[data-kind="lab"]').all()
    ]
    assert sorted(shown) == sorted(labs) and labs
    assert any("x ULN" in text for text in shown)

    chart = page.locator("svg.timeline")
    lanes = chart.locator("g.drug-lane")
    assert lanes.evaluate_all("gs => gs.map(g => g.dataset.drug)") == series["drugs"]
    assert len(series["drugs"]) >= 2
    written = chart.locator("text.dose-value").all_text_contents()
    amounts = {amount(d) for d in series["doses"]}
    assert written and set(written) <= amounts | {a.split(" mg")[0] for a in amounts}
    ticks = chart.locator("text.lab-tick").all_text_contents()
    assert {"0.5x", "1x", "2x", "5x", "10x", "20x"} <= set(ticks)
    expect(chart.locator("text.uln-label")).to_have_text("ULN")
    tick_box = chart.locator("text.lab-tick", has_text=re.compile("^1x$")).bounding_box()
    uln_box = chart.locator("text.uln-label").bounding_box()
    assert uln_box["x"] > tick_box["x"] + tick_box["width"] + 100  # far apart, no overlap
    screenshot(page, "10-patient-timeline")
    assert_accessible(page, context="patient page with the timeline and its table")


def test_the_pathway_diagram_has_arrowheads_clusters_and_no_raw_data(login, demo, screenshot):
    page = login("coordinator-north")
    page.goto(f"{demo.url}/ui/pathway")
    diagram = page.locator("figure.diagram svg")
    expect(diagram).to_be_visible()
    expect(diagram.locator("g.cluster")).to_have_count(3)  # induction, taper, second line
    arrows = diagram.locator("g.edge[id^=transition-]:not([id*=from])")
    assert arrows.count() == page.locator("table.transitions tbody tr").count()
    assert diagram.locator("g.edge polygon").count() >= arrows.count()  # a head on each
    texts = " ".join(diagram.locator("text").all_text_contents())
    assert "medication ordered [IND-STD]" in texts
    assert "{" not in texts and '"' not in texts
    guards = " ".join(page.locator("table.transitions td.guards").all_inner_texts())
    assert "{" not in guards and "the drug ordered is budesonide" in guards
    spilling = diagram.locator("g.node").evaluate_all(
        """nodes => nodes.filter(n => {
             const shape = n.querySelector('path, polygon, ellipse');
             const label = n.querySelector('text');
             if (!shape || !label) return false;
             const s = shape.getBBox(), t = label.getBBox();
             return t.x < s.x - 1 || t.x + t.width > s.x + s.width + 1;
           }).map(n => n.id)"""
    )
    assert spilling == []
    screenshot(page, "11-pathway-diagram")
    assert_accessible(page, context="pathway page with the Graphviz diagram")


def test_the_outbox_names_patients_and_opens_an_email(login, demo, screenshot):
    page = login("coordinator-north")
    page.goto(f"{demo.url}/ui/outbox?group=sent")
    listing = outbox(demo.uow_factory(), "test", group="sent", site="north", names=True)
    first = listing["items"][0]
    row = page.locator(f'tr[data-reminder="{first["id"]}"]')
    expect(row).to_contain_text(first["patient_name"])
    expect(row).to_contain_text(first["recipient_name"])
    assert first["patient_name"] != first["patient_id"][:8]
    assert_accessible(page, context="outbox, sent group")
    row.locator(f'a[data-open="{first["id"]}"]').click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(first["title"])
    subject = page.locator('[data-field="subject"]')
    expect(subject).not_to_be_empty()
    expect(page.locator('[data-field="text"]')).to_contain_text(first["recipient_name"].split()[0])
    frame = page.locator("iframe[sandbox]")
    assert frame.get_attribute("sandbox") == ""
    email_body = page.frame_locator("iframe[sandbox]").locator("body")
    expect(email_body).to_contain_text(first["recipient_name"].split()[0])
    screenshot(page, "12-outbox-email")
    assert_accessible(page, context="an email opened from the outbox")


def test_a_coordinator_re_sends_a_failed_email_and_it_is_audited(
    login, demo, screenshot, failed_email
):
    page = login("coordinator-north")
    page.goto(f"{demo.url}/ui/outbox?group=failed")
    row = page.locator(f'tr[data-reminder="{failed_email}"]')
    expect(row).to_contain_text("Fay Unreachable")
    expect(row).to_contain_text("no email address on file")
    row.locator(f'a[data-open="{failed_email}"]').click()
    expect(page.locator('[data-field="problem"]')).to_contain_text("no email address on file")
    screenshot(page, "13-outbox-failed-email")
    page.get_by_role("button", name="Re-send this email").click()
    expect(page.get_by_role("status")).to_contain_text("Re-sent")
    expect(page.locator("dd[data-status]")).to_have_text("scheduled")
    assert_accessible(page, context="a failed email after re-sending")

    pending = outbox(demo.uow_factory(), "test", group="pending", site="north")["items"]
    assert failed_email in {r["id"] for r in pending}
    patient_id = next(r["patient_id"] for r in pending if r["id"] == failed_email)
    audit = audit_entries(demo.uow_factory(), "test", patient_id=patient_id, limit=20)
    resent = [a for a in audit if a["action"] == "reminder_resend_requested"]
    assert len(resent) == 1 and resent[0]["detail"]["reminder"] == failed_email
    assert resent[0]["actor"].startswith("user:")

    expect(page.get_by_role("button", name="Re-send this email")).to_have_count(0)
    page.goto(f"{demo.url}/ui/outbox?group=pending")
    expect(page.locator(f'tr[data-reminder="{failed_email}"]')).to_have_count(1)


def test_an_auditor_may_open_an_email_but_not_re_send_it(login, demo, failed_email):
    page = login("auditor")
    page.goto(f"{demo.url}/ui/outbox/{failed_email}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Reminder email")
    expect(page.get_by_role("button", name="Re-send this email")).to_have_count(0)
