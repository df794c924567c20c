"""Coordinator queues over HTTP: counts, filters, claim/complete/snooze, site scoping, audit;
claims owned (409 for anyone but the holder) and the audited take-over; bounded snoozes and
offsets."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Any

import pytest

from engine.adapters.mail import MaildirOutbox
from engine.services.coordinator_queue import coordinator_queue
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy


def work_item_of(patient_id: str, uow_factory) -> dict[str, Any]:
    """A coordinator item (and its reminder) for the patient: the screening reminders are due
    at enrolment, so one in-process dispatch round puts them in the queue."""
    dispatch_due_reminders(uow_factory, MaildirOutbox(tempfile.mkdtemp()), DeliveryPolicy())
    items = coordinator_queue(uow_factory(), "test", limit=200)["items"]
    return next(i for i in items if i["patient_id"] == patient_id)


@pytest.fixture
def item(enrol, uow_factory):
    patient_id = enrol()["patient_id"]
    return work_item_of(patient_id, uow_factory)


def test_queue_lists_screening_work_with_counts_per_queue(client, callers, item):
    response = client.get(
        "/queues", params={"queue": "awaiting_results"}, headers=callers["coordinator"]
    )
    assert response.status_code == 200, response.text
    listing = response.json()
    assert listing["total"] == 2 and listing["counts"]["awaiting_results"] == 2
    assert {i["queue"] for i in listing["items"]} == {"awaiting_results"}
    assert all(i["rule_ids"] for i in listing["items"])


def test_claimed_then_completed_item_leaves_the_queue(client, callers, item):
    headers = callers["coordinator"]
    claimed = client.post(f"/queues/items/{item['id']}/claim", headers=headers)
    assert claimed.status_code == 200 and claimed.json()["status"] == "claimed"
    done = client.post(
        f"/queues/items/{item['id']}/complete", json={"note": "lab chased"}, headers=headers
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    remaining = client.get("/queues", headers=headers).json()
    assert item["id"] not in {i["id"] for i in remaining["items"]}
    again = client.post(f"/queues/items/{item['id']}/complete", json={}, headers=headers)
    assert again.status_code == 422
    assert again.headers["content-type"] == "application/problem+json"


def test_snooze_needs_a_reason_and_a_future_time(client, callers, item, clock):
    url, headers = f"/queues/items/{item['id']}/snooze", callers["coordinator"]
    no_reason = client.post(
        url, json={"until": "2099-01-01T00:00:00+00:00", "reason": ""}, headers=headers
    )
    assert no_reason.status_code == 422
    past = client.post(
        url, json={"until": "2000-01-01T00:00:00+00:00", "reason": "x"}, headers=headers
    )
    assert past.status_code == 422 and "future" in past.json()["detail"]
    later = (clock.now().replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    naive = client.post(url, json={"until": later[:-1], "reason": "away"}, headers=headers)
    assert naive.status_code == 422


def test_other_site_coordinator_cannot_see_or_touch_the_item(client, callers, item):
    south = callers["coordinator-south"]
    assert client.get("/queues", headers=south).json()["total"] == 0
    response = client.post(f"/queues/items/{item['id']}/claim", headers=south)
    assert response.status_code == 404
    assert client.get("/queues", params={"site": "north"}, headers=south).status_code == 422


def test_stale_expected_version_is_a_conflict(client, callers, item):
    response = client.post(
        f"/queues/items/{item['id']}/claim",
        json={"expected_version": item["version"] + 5},
        headers=callers["coordinator"],
    )
    assert response.status_code == 409


def test_unknown_queue_is_refused_with_a_reason(client, callers):
    response = client.get("/queues", params={"queue": "everything"}, headers=callers["coordinator"])
    assert response.status_code == 422


def test_acknowledging_a_reminder_is_recorded_and_audited(client, callers, item):
    response = client.post(
        f"/reminders/{item['reminder_id']}/acknowledge", headers=callers["clinician"]
    )
    assert response.status_code == 200, response.text
    assert response.json()["acknowledged_by"].endswith(callers.users["clinician"]["id"])
    audit = client.get(
        "/audit", params={"patient_id": item["patient_id"]}, headers=callers["auditor"]
    ).json()
    assert "reminder_acknowledged" in {entry["action"] for entry in audit}


def test_listing_the_queue_is_audited_with_the_patients_shown(client, callers, item):
    client.get("/queues", headers=callers["coordinator"])
    audit = client.get("/audit", headers=callers["auditor"]).json()
    viewed = [e for e in audit if e["action"] == "queue_viewed"]
    assert viewed and item["patient_id"] in viewed[0]["detail"]["patients"]


def test_another_coordinator_cannot_release_complete_or_snooze_a_claimed_item(
    client, callers, uow_factory, item, clock
):
    callers.add(uow_factory, "coordinator-b", "coordinator", "north")
    url = f"/queues/items/{item['id']}"
    assert client.post(f"{url}/claim", headers=callers["coordinator"]).status_code == 200
    until = (clock.now() + timedelta(days=2)).isoformat()
    for action, body in (
        ("release", None),
        ("complete", {"note": "done"}),
        ("snooze", {"until": until, "reason": "away"}),
        ("claim", None),
    ):
        response = client.post(f"{url}/{action}", json=body, headers=callers["coordinator-b"])
        assert response.status_code == 409, (action, response.text)
        assert "take it over" in response.json()["detail"]


def test_a_take_over_needs_a_reason_and_is_audited_with_the_previous_holder(
    client, callers, uow_factory, item
):
    callers.add(uow_factory, "coordinator-b", "coordinator", "north")
    url = f"/queues/items/{item['id']}"
    client.post(f"{url}/claim", headers=callers["coordinator"])
    no_reason = client.post(
        f"{url}/take-over", json={"reason": ""}, headers=callers["coordinator-b"]
    )
    assert no_reason.status_code == 422
    taken = client.post(
        f"{url}/take-over", json={"reason": "A is on leave"}, headers=callers["coordinator-b"]
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["claimed_by"] == f"user:{callers.users['coordinator-b']['id']}"
    assert client.post(f"{url}/release", headers=callers["coordinator"]).status_code == 409
    audit = client.get(
        "/audit", params={"patient_id": item["patient_id"]}, headers=callers["auditor"]
    ).json()
    row = next(e for e in audit if e["action"] == "item_taken_over")
    assert row["detail"]["previous_holder"] == f"user:{callers.users['coordinator']['id']}"
    assert "A is on leave" in row["reason"]


@pytest.mark.parametrize("days", [29, 365 * 8000])
def test_a_snooze_longer_than_28_days_is_refused_with_a_reason(client, callers, item, clock, days):
    until = (
        "9999-12-31T00:00:00+00:00"
        if days > 365 * 100
        else (clock.now() + timedelta(days=days)).isoformat()
    )
    response = client.post(
        f"/queues/items/{item['id']}/snooze",
        json={"until": until, "reason": "away"},
        headers=callers["coordinator"],
    )
    assert response.status_code == 422, response.text


def test_a_28_day_snooze_is_accepted(client, callers, item, clock):
    until = (clock.now() + timedelta(days=28)).isoformat()
    response = client.post(
        f"/queues/items/{item['id']}/snooze",
        json={"until": until, "reason": "away"},
        headers=callers["coordinator"],
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("offset", ["99999999999999999999", "10000001", "-1"])
def test_an_out_of_range_offset_is_refused_with_422(client, callers, offset):
    response = client.get("/queues", params={"offset": offset}, headers=callers["coordinator"])
    assert response.status_code == 422, response.text
