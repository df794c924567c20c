"""The coordinator's pages in a real browser: log in, queues that match the database, claim and
complete without a reload, the patient timeline, a refused order's rule, roles and login."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from engine.domain.reminders import QUEUES
from engine.services.coordinator_queue import coordinator_queue
from engine.services.outbox import outbox
from engine.services.patient_directory import list_patients
from engine.services.patients import patient_history


def test_a_coordinator_logs_in_with_a_password_and_lands_on_the_queues(page, demo, screenshot):
    page.goto(f"{demo.url}/ui/login")
    screenshot(page, "01-login")
    page.get_by_label("User name").fill("coordinator-north")
    page.get_by_label("Password").fill(demo.passwords["coordinator-north"])
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{demo.url}/ui/queues")
    expect(page.get_by_role("heading", level=1)).to_contain_text("site north")
    cookie = next(c for c in page.context.cookies() if c["name"] == "aihp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_queue_counts_on_the_page_match_the_database(login, demo, screenshot):
    page = login("coordinator-north")
    expected = coordinator_queue(demo.uow_factory(), "test", site_scope="north")["counts"]
    shown = {q: int(page.locator(f'[data-count="{q}"]').inner_text()) for q in QUEUES}
    assert shown == expected
    assert expected["overdue"] >= 1
    screenshot(page, "02-queues-coordinator-north")


def test_a_clinician_sees_the_counts_of_their_own_patients_items(login, demo):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/queues")
    expected = coordinator_queue(demo.uow_factory(), "test", clinician_scope="dr-adeyemi")
    shown = {q: int(page.locator(f'[data-count="{q}"]').inner_text()) for q in QUEUES}
    assert shown == expected["counts"]


def test_claiming_and_completing_an_overdue_item_moves_it_without_a_reload(login, demo, screenshot):
    page = login("coordinator-north")
    page.get_by_role("link", name=re.compile("^Overdue")).click()
    expect(page.locator('a[data-queue="overdue"]')).to_have_attribute("aria-current", "page")
    before = int(page.locator('[data-count="overdue"]').inner_text())
    page.evaluate("window.__sameDocument = true")
    row = page.locator("tr[data-item]", has_text="Olive Overdue").first
    item_id = row.get_attribute("data-item")
    row.get_by_role("button", name=re.compile("^Claim")).click()
    claimed = page.locator(f'tr[data-item="{item_id}"]')
    expect(claimed).to_have_attribute("data-status", "claimed")
    expect(claimed).to_contain_text("claimed by you")
    screenshot(page, "03-queues-item-claimed")
    claimed.get_by_text("Complete…").click()
    claimed.get_by_label("Outcome").select_option("called_patient")
    claimed.get_by_role("button", name="Complete", exact=True).click()
    expect(page.locator(f'tr[data-item="{item_id}"]')).to_have_count(0)
    expect(page.locator('[data-count="overdue"]')).to_have_text(str(before - 1))
    assert page.evaluate("window.__sameDocument") is True  # htmx swapped the panel in place
    counts = coordinator_queue(demo.uow_factory(), "test", site_scope="north")["counts"]
    assert counts["overdue"] == before - 1


def test_snoozing_an_escalation_with_a_reason_hides_it(login, demo):
    page = login("coordinator-north")
    row = page.locator("tr[data-item]", has_text="Esme Escalated").first
    item_id = row.get_attribute("data-item")
    row.get_by_text("Snooze…").click()
    row.get_by_label("Reason").fill("patient asked to be called next week")
    row.get_by_label("For").select_option("7")
    row.get_by_role("button", name="Snooze", exact=True).click()
    expect(page.locator(f'tr[data-item="{item_id}"]')).to_have_count(0)
    expect(page.get_by_text("Snoozed.")).to_be_visible()


def test_the_patient_timeline_draws_one_step_per_dose_of_every_drug(login, demo, screenshot):
    listed = list_patients(demo.uow_factory(), "test", state="taper", limit=50)["items"]
    listed += list_patients(demo.uow_factory(), "test", state="maintenance", limit=50)["items"]
    histories = [patient_history(demo.uow_factory(), "test", p["patient_id"]) for p in listed]
    richest = max(histories, key=lambda h: len(h["orders"]))
    steps = len(richest["orders"])  # every drug has its own lane of dose steps
    assert steps >= 2
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/patients/{richest['patient_id']}")
    timeline = page.locator("svg.timeline")
    expect(timeline).to_be_visible()
    expect(timeline.locator("rect.dose-step")).to_have_count(steps)
    expect(timeline.locator("circle.lab-point[data-lab=ALT]")).to_have_count(
        sum(lab["code"] == "ALT" for lab in richest["labs"])
    )
    assert timeline.locator("rect.state-band").count() >= 2
    expect(page.get_by_role("heading", name="Next milestones")).to_be_visible()
    screenshot(page, "04-patient")


def test_a_refused_order_shows_its_rule_id(login, demo, screenshot):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/patients/{demo.patients['cirrhotic']}")
    page.get_by_label("Drug", exact=True).select_option("budesonide")
    page.get_by_label("mg/day", exact=True).fill("9")
    page.get_by_role("button", name="Order").click()
    refusal = page.get_by_role("alert").filter(has_text="Refused")
    expect(refusal).to_contain_text("SAFE-BUD-CIRRHOSIS")
    expect(refusal).to_contain_text("cirrhosis")
    screenshot(page, "05-patient-refused-order")
    history = patient_history(demo.uow_factory(), "test", demo.patients["cirrhotic"])
    assert history["orders"] == []
    assert history["refusals"][-1]["rules"] == ["SAFE-BUD-CIRRHOSIS"]


def test_the_pathway_page_shows_the_version_review_status_and_cited_transitions(
    login, demo, screenshot
):
    page = login("admin")
    expect(page).to_have_url(f"{demo.url}/ui/pathway")
    expect(page.locator("[data-review]")).to_have_text("pending-clinical-review")
    expect(page.locator("table.transitions")).to_contain_text("IND-STD")
    expect(page.locator("figure.diagram svg")).to_be_visible()
    screenshot(page, "06-pathway")


def test_the_outbox_counts_match_the_reminders_table(login, demo, screenshot):
    page = login("auditor")
    page.get_by_role("link", name="Outbox").click()
    counts = outbox(demo.uow_factory(), "test")["counts"]
    for group, n in counts.items():
        expect(page.locator(f'a[data-group="{group}"] .count')).to_have_text(str(n))
    assert counts["sent"] > 0
    screenshot(page, "07-outbox")


def test_a_lab_interface_is_refused_with_403(login, demo):
    page = login("lab-feed")
    response = page.goto(f"{demo.url}/ui/queues")
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("lab-interface")


def test_without_a_cookie_a_page_redirects_to_the_login_form(page, demo):
    page.goto(f"{demo.url}/ui/patients/{demo.patients['overdue']}")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/patients/"))
    expect(page.get_by_label("Password")).to_be_visible()
