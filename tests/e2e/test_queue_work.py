"""Working the queue in a real browser: an item from claim to complete-with-outcome and its
undo, bulk claim and "my items", the snoozed view and its undo, days overdue and counts that
match the database, and a clinician's worklist titled for them and scoped to their patients.
Each screen also passes the axe-core accessibility check."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from playwright.sync_api import Page, expect

from cli.demo_team import dispatch_round
from engine.adapters.mail import mailer_from_settings
from engine.bootstrap import unit_of_work_factory
from engine.clock import ManualClock
from engine.domain.reminders import QUEUES, CoordinatorItem
from engine.services.coordinator_queue import coordinator_queue
from engine.services.patients import enrol_patient, patient_history, record_clinical_event
from engine.services.reminders import DeliveryPolicy
from tests.e2e.accessibility import assert_accessible


def _item(demo, item_id: str) -> SimpleNamespace:
    """The item's row as the database holds it now."""
    with demo.uow_factory() as uow:
        item = uow.session.get(CoordinatorItem, item_id)
        names = ("status", "outcome", "note", "closed_at", "claimed_by", "due_at", "patient_id")
        return SimpleNamespace(**{name: getattr(item, name) for name in names})


def _open_rows(page: Page, demo, count: int) -> list[str]:
    """Ids of `count` open rows of the page, none of the patients test_coordinator_pages works
    on."""
    rows = page.locator('tr[data-item][data-status="open"]')
    scenario = {f"/patients/{demo.patients[key]}" for key in ("overdue", "escalated")}
    found = []
    for n in range(rows.count()):
        row = rows.nth(n)
        if row.locator("a").first.get_attribute("href").split("/ui")[-1] not in scenario:
            found.append(row.get_attribute("data-item"))
        if len(found) == count:
            return found
    shown = page.locator("tr[data-item]").count()
    raise AssertionError(f"fewer than {count} open rows of {shown} on {page.url}")


def _row(page: Page, item_id: str):
    return page.locator(f'tr[data-item="{item_id}"]')


def test_an_item_from_claim_to_complete_with_an_outcome_and_undone(login, demo, screenshot):
    page = login("coordinator-north")
    (item_id,) = _open_rows(page, demo, 1)
    _row(page, item_id).get_by_role("button", name=re.compile("^Claim")).click()
    expect(_row(page, item_id)).to_contain_text("claimed by you")
    _row(page, item_id).get_by_text("Complete…").click()
    _row(page, item_id).get_by_label("Outcome").select_option(label="Lab test booked")
    _row(page, item_id).get_by_label("Note").fill("booked for Tuesday")
    screenshot(page, "queue-work-01-complete-with-outcome")
    assert_accessible(page, context="queue, completing an item (outcome menu open)")
    _row(page, item_id).get_by_role("button", name="Complete", exact=True).click()
    expect(_row(page, item_id)).to_have_count(0)
    expect(page.locator(".notice")).to_contain_text("Completed.")
    done = _item(demo, item_id)
    assert (done.status, done.outcome, done.note) == (
        "completed",
        "lab_booked",
        "booked for Tuesday",
    )

    page.locator('a[data-view="completed"]').click()
    expect(page.locator("#queue-panel")).to_have_attribute("data-view", "completed")
    expect(_row(page, item_id)).to_contain_text("Lab test booked")
    screenshot(page, "queue-work-02-completed-view")
    assert_accessible(page, context="queue, completed view")
    _row(page, item_id).get_by_role("button", name=re.compile("^Undo")).click()
    expect(_row(page, item_id)).to_have_count(0)
    undone = _item(demo, item_id)
    assert undone.status == "claimed" and undone.outcome is None and undone.closed_at is None
    actions = [
        a["action"]
        for a in patient_history(demo.uow_factory(), "t", undone.patient_id)["care_team_actions"]
    ]
    assert "item_completion_undone" in actions


def test_bulk_claim_then_my_items(login, demo, screenshot):
    page = login("coordinator-north")
    picked = _open_rows(page, demo, 2)
    for item_id in picked:
        page.locator(f'input[name="pick:{item_id}"]').check()
    page.get_by_role("button", name="Claim selected").click()
    expect(page.locator(".notice")).to_contain_text("Claimed 2.")
    for item_id in picked:
        expect(_row(page, item_id)).to_have_attribute("data-status", "claimed")
        assert _item(demo, item_id).status == "claimed"
    page.locator('a[data-view="mine"]').click()
    expect(page.locator("#queue-panel")).to_have_attribute("data-view", "mine")
    mine = coordinator_queue(
        demo.uow_factory(), _item(demo, picked[0]).claimed_by, view="mine", site_scope="north"
    )
    expect(page.locator("tr[data-item]")).to_have_count(mine["total"])
    expect(page.locator('[data-count-view="mine"]')).to_have_text(str(mine["total"]))
    for queue, count in mine["counts"].items():  # the counts header counts my items here
        expect(page.locator(f'[data-count="{queue}"]')).to_have_text(str(count))
    for item_id in picked:
        expect(_row(page, item_id)).to_be_visible()
    screenshot(page, "queue-work-03-my-items")
    assert_accessible(page, context="queue, my items")


def test_a_snoozed_item_is_in_the_snoozed_view_and_its_snooze_undone(login, demo):
    page = login("coordinator-north")
    (item_id,) = _open_rows(page, demo, 1)
    row = _row(page, item_id)
    row.get_by_text("Snooze…").click()
    row.get_by_label("Reason").fill("patient in hospital elsewhere")
    row.get_by_role("button", name="Snooze", exact=True).click()
    expect(_row(page, item_id)).to_have_count(0)
    page.locator('a[data-view="snoozed"]').click()
    expect(_row(page, item_id)).to_contain_text("patient in hospital elsewhere")
    assert_accessible(page, context="queue, snoozed view")
    _row(page, item_id).get_by_role("button", name=re.compile("^Undo")).click()
    expect(_row(page, item_id)).to_have_count(0)
    assert _item(demo, item_id).status == "open"
    page.locator('a[data-view="live"]').click()
    expect(_row(page, item_id)).to_be_visible()


def _patient_due_days_ago(demo, days: int) -> str:
    """A north patient enrolled `days` ago with a decompensation (a transplant referral due
    then), after one dispatch round: the referral's item is `days` days overdue (an
    escalation supersedes it once its grace has passed)."""
    then = unit_of_work_factory(
        demo.settings, ManualClock(datetime.now(UTC) - timedelta(days=days))
    )
    patient_id = enrol_patient(
        then(),
        "e2e",
        site="north",
        clinician="dr-adeyemi",
        birth_date="1969-09-09",
        sex="M",
        weight_kg=80,
        given_name="Otto",
        family_name="Late",
    )["patient_id"]
    record_clinical_event(
        then(), "e2e", patient_id, kind="decompensation", data={"feature": "ascites"}
    )
    policy = DeliveryPolicy.from_settings(demo.settings)
    dispatch_round(demo.uow_factory, mailer_from_settings(demo.settings), policy)
    return patient_id


def test_days_overdue_match_the_database_and_counts_match_the_listings(login, demo, screenshot):
    _patient_due_days_ago(demo, 1)  # within the referral's grace: overdue, not escalated
    page = login("coordinator-north")
    counts = {q: int(page.locator(f'[data-count="{q}"]').inner_text()) for q in QUEUES}
    assert counts["overdue"] >= 1
    page.locator('a[data-queue="overdue"]').click()
    expect(page.locator('a[data-queue="overdue"]')).to_have_attribute("aria-current", "page")
    caption = f"Overdue, not escalated: {counts['overdue']} item"
    expect(page.locator("caption")).to_contain_text(caption)
    today = datetime.now(UTC).date()
    rows = page.locator("tr[data-item]")
    days_seen: set[int] = set()
    for n in range(rows.count()):
        row = rows.nth(n)
        due = _item(demo, row.get_attribute("data-item")).due_at
        shown = int(row.get_attribute("data-days-overdue"))
        assert shown == (today - due.date()).days >= 1
        days_seen.add(shown)
        expect(row.locator("td.num")).to_have_text(str(shown))
    assert 1 in days_seen
    screenshot(page, "queue-work-04-overdue-days")
    for queue, count in counts.items():
        page.locator(f'a[data-queue="{queue}"]').click()
        expect(page.locator("caption")).to_contain_text(f": {count} item")


def test_a_clinicians_worklist_is_titled_for_them_and_shows_only_their_patients(
    login, demo, screenshot
):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/queues")
    expect(page.get_by_role("heading", level=1)).to_have_text("My patients' items")
    expect(page).to_have_title(re.compile("My patients' items"))
    expected = coordinator_queue(demo.uow_factory(), "test", clinician_scope="dr-adeyemi")
    everyone = coordinator_queue(demo.uow_factory(), "test")
    assert sum(everyone["counts"].values()) > sum(expected["counts"].values()) > 0
    shown = {q: int(page.locator(f'[data-count="{q}"]').inner_text()) for q in QUEUES}
    assert shown == expected["counts"]
    clinicians = page.locator("tr[data-item] td:nth-child(5)").all_inner_texts()
    assert clinicians and all(c.startswith("dr-adeyemi ·") for c in clinicians)
    expect(page.get_by_label("Clinician")).to_have_count(0)
    screenshot(page, "queue-work-05-clinician-worklist")
    assert_accessible(page, context="clinician's worklist")
