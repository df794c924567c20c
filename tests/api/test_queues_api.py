"""Coordinator queues over HTTP: counts, filters, claim/complete/snooze, site scoping, audit."""

from __future__ import annotations

import pytest

from tests.api.test_role_matrix import work_item_of


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
