"""Coordinator queues over HTTP: counts, filters, claim/complete/snooze, site scoping, audit;
claims owned (409 for anyone but the holder) and the audited take-over; bounded snoozes; views
(mine, snoozed, completed), keyset paging, outcomes, undo, bulk claim, days overdue, stale items,
names of holders, a clinician's own patients only."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from typing import Any

import pytest

from engine.adapters.mail import LocalMailbox
from engine.services.coordinator_queue import coordinator_queue
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy


def work_item_of(patient_id: str, uow_factory) -> dict[str, Any]:
    """A coordinator item (and its reminder) for the patient: the screening reminders are due
    at enrolment, so one in-process dispatch round puts them in the queue."""
    dispatch_due_reminders(uow_factory, LocalMailbox(tempfile.mkdtemp()), DeliveryPolicy())
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
        f"/queues/items/{item['id']}/complete",
        json={"outcome": "lab_booked", "note": "lab chased"},
        headers=headers,
    )
    assert done.status_code == 200 and done.json()["status"] == "completed"
    remaining = client.get("/queues", headers=headers).json()
    assert item["id"] not in {i["id"] for i in remaining["items"]}
    again = client.post(
        f"/queues/items/{item['id']}/complete", json={"outcome": "other"}, headers=headers
    )
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
        ("complete", {"outcome": "called_patient"}),
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


@pytest.mark.parametrize("offset", ["1", "-1"])
def test_an_offset_is_refused_with_422_pages_use_the_cursor(client, callers, offset):
    response = client.get("/queues", params={"offset": offset}, headers=callers["coordinator"])
    assert response.status_code == 422, response.text


def _items(client, headers, **params) -> dict[str, Any]:
    response = client.get("/queues", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_complete_needs_a_known_outcome_and_other_needs_a_note(client, callers, item):
    url, headers = f"/queues/items/{item['id']}/complete", callers["coordinator"]
    assert client.post(url, json={"note": "x"}, headers=headers).status_code == 422
    unknown = client.post(url, json={"outcome": "faxed"}, headers=headers)
    assert unknown.status_code == 422 and "called_patient" in unknown.json()["detail"]
    bare_other = client.post(url, json={"outcome": "other"}, headers=headers)
    assert bare_other.status_code == 422 and "note" in bare_other.json()["detail"]
    assert client.get("/queues/outcomes", headers=headers).json()["left_message"]


def test_completion_with_outcome_is_listed_under_completed_and_undone_the_same_day(
    client, callers, item, clock
):
    headers = callers["coordinator"]
    url = f"/queues/items/{item['id']}"
    client.post(f"{url}/claim", headers=headers)
    done = client.post(
        f"{url}/complete", json={"outcome": "left_message", "note": "voicemail"}, headers=headers
    ).json()
    assert done["outcome"] == "left_message" and done["undoable"]
    completed = _items(client, headers, view="completed")
    (row,) = [i for i in completed["items"] if i["id"] == item["id"]]
    assert row["outcome_text"] == "Left a message" and row["note"] == "voicemail"
    assert row["closed_by_name"] == "coordinator"
    assert client.post(f"{url}/undo", headers=callers["coordinator-south"]).status_code == 404
    undone = client.post(f"{url}/undo", headers=headers)
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "claimed" and undone.json()["outcome"] is None
    assert item["id"] in {i["id"] for i in _items(client, headers, view="mine")["items"]}
    audit = client.get(
        "/audit", params={"patient_id": item["patient_id"]}, headers=callers["auditor"]
    ).json()
    assert "item_completion_undone" in {e["action"] for e in audit}
    # a completion of an earlier day stays
    client.post(f"{url}/complete", json={"outcome": "lab_booked"}, headers=headers)
    clock.advance(days=1)
    late = client.post(f"{url}/undo", headers=headers)
    assert late.status_code == 422 and "day" in late.json()["detail"]


def test_a_snooze_is_listed_as_snoozed_and_undone_back_to_the_queue(client, callers, item, clock):
    headers = callers["coordinator"]
    url = f"/queues/items/{item['id']}"
    until = (clock.now() + timedelta(days=3)).isoformat()
    client.post(f"{url}/snooze", json={"until": until, "reason": "on holiday"}, headers=headers)
    assert item["id"] not in {i["id"] for i in _items(client, headers)["items"]}
    snoozed = _items(client, headers, view="snoozed")
    assert [i["id"] for i in snoozed["items"]] == [item["id"]] and snoozed["total"] == 1
    assert snoozed["items"][0]["snoozed_by_name"] == "coordinator"
    callers.add(client.app.state.uow_factory, "coordinator-b", "coordinator", "north")
    other = client.post(f"{url}/undo", headers=callers["coordinator-b"])
    assert other.status_code == 422
    assert client.post(f"{url}/undo", headers=headers).json()["status"] == "open"
    assert item["id"] in {i["id"] for i in _items(client, headers)["items"]}
    assert client.post(f"{url}/undo", headers=headers).status_code == 422  # nothing to undo


def test_bulk_claim_takes_the_free_items_and_names_the_refused(
    client, callers, enrol, uow_factory, item
):
    work_item_of(enrol()["patient_id"], uow_factory)
    listing = _items(client, callers["coordinator"])
    ids = [i["id"] for i in listing["items"]]
    assert len(ids) >= 4
    callers.add(uow_factory, "coordinator-b", "coordinator", "north")
    client.post(f"/queues/items/{ids[0]}/claim", headers=callers["coordinator-b"])
    answer = client.post(
        "/queues/items/claim",
        json={"item_ids": [*ids, "no-such-item"]},
        headers=callers["coordinator"],
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {i["id"] for i in body["claimed"]} == set(ids[1:])
    assert {r["id"] for r in body["refused"]} == {ids[0], "no-such-item"}
    assert all(i["claimed_by_name"] == "coordinator" for i in body["claimed"])
    mine = _items(client, callers["coordinator"], view="mine")
    assert mine["mine"] == mine["total"] == sum(mine["counts"].values()) == len(ids) - 1
    for queue, count in mine["counts"].items():
        assert _items(client, callers["coordinator"], view="mine", queue=queue)["total"] == count
    shown = _items(client, callers["coordinator"])
    (held,) = [i for i in shown["items"] if i["id"] == ids[0]]
    assert held["claimed_by_name"] == "coordinator-b"
    too_many = client.post(
        "/queues/items/claim", json={"item_ids": []}, headers=callers["coordinator"]
    )
    assert too_many.status_code == 422


def test_keyset_pages_cover_the_queue_once_in_order(client, callers, enrol, uow_factory):
    for _ in range(3):
        enrol()
    work_item_of(enrol()["patient_id"], uow_factory)
    headers = callers["coordinator"]
    everything = _items(client, headers, limit=200)
    for sort in ("urgency", "due"):
        seen, cursor = [], None
        while True:
            page = _items(
                client, headers, limit=3, sort=sort, **({"cursor": cursor} if cursor else {})
            )
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(i["id"] for i in everything["items"])
        assert len(seen) == len(set(seen)) == everything["total"] >= 8
    bad = client.get("/queues", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=headers)
    assert bad.status_code == 422 and "cursor" in bad.json()["detail"]
    wrong_sort = client.get("/queues", params={"cursor": cursor or "x", "sort": "due"})
    assert wrong_sort.status_code in (401, 422)


def test_overdue_means_past_due_with_days_overdue_and_counts_matching_listings(
    client, callers, uow_factory, item, clock
):
    clock.advance(days=5)
    headers = callers["coordinator"]
    listing = _items(client, headers)
    assert listing["counts"]["overdue"] >= 2 and listing["counts"]["awaiting_results"] == 0
    for queue, count in listing["counts"].items():
        assert _items(client, headers, queue=queue)["total"] == count
        shown = _items(client, headers, queue=queue, limit=200)["items"]
        assert len(shown) == count and {i["queue"] for i in shown} <= {queue}
    overdue = _items(client, headers, queue="overdue")["items"]
    assert {i["days_overdue"] for i in overdue} == {5}
    assert not any(i["stale"] for i in overdue)
    clock.advance(days=90)  # past the data's stale_after (P90D); tokens last 30 days
    callers.add(uow_factory, "coordinator-later", "coordinator", "north")
    later = _items(client, callers["coordinator-later"], queue="overdue")["items"]
    assert later and all(i["stale"] and i["days_overdue"] == 95 for i in later)


def test_a_clinician_lists_only_their_own_patients_items(client, callers, uow_factory, item):
    callers.add(uow_factory, "dr-a", "clinician", None)
    callers.add(uow_factory, "dr-b", "clinician", None)
    own = _items(client, callers["dr-a"])
    assert own["total"] >= 2 and {i["clinician"] for i in own["items"]} == {"dr-a"}
    assert _items(client, callers["dr-b"])["total"] == 0
    other = client.get("/queues", params={"clinician": "dr-a"}, headers=callers["dr-b"])
    assert other.status_code == 422
