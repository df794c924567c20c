# ruff: noqa: F811  (the API fixtures are imported by name)
"""Undoing a coordinator's completion must not put back work that is done: once the item's
milestone has closed (its results came in), the completion stands and the queue stays clear."""

from __future__ import annotations

from sqlalchemy import select

from engine.adapters.orm import milestones
from tests.api.conftest import app, callers, client, clock, database_url, enrol, uow_factory  # noqa: F401
from tests.api.test_queues_api import work_item_of

SCREENING_LABS = (
    ("ALT", 420, "U/L"),
    ("AST", 300, "U/L"),
    ("IgG", 25, "g/L"),
    ("BILI", 30, "umol/L"),
    ("TPMT", 31, "U/mL"),
    ("HBSAG", "negative", None),
    ("ANTI_HBC", "negative", None),
    ("ANTI_HBS", "negative", None),
)


def _milestone_status(uow_factory, row_id: str) -> str:
    with uow_factory() as uow:
        return uow.session.execute(
            select(milestones.c.status).where(milestones.c.id == row_id)
        ).scalar_one()


def test_a_completion_whose_milestone_closed_since_cannot_be_undone(
    client, callers, enrol, uow_factory
):
    patient_id = enrol()["patient_id"]
    item = work_item_of(patient_id, uow_factory)
    headers, url = callers["coordinator"], f"/queues/items/{item['id']}"
    done = client.post(f"{url}/complete", json={"outcome": "lab_booked"}, headers=headers)
    assert done.status_code == 200, done.text
    for code, value, unit in SCREENING_LABS:
        body = {"code": code, "value": value} | ({"unit": unit} if unit else {})
        recorded = client.post(
            f"/patients/{patient_id}/labs", json=body, headers=callers["clinician"]
        )
        assert recorded.status_code == 200, recorded.text
    assert _milestone_status(uow_factory, item["milestone_row_id"]) != "pending"

    undone = client.post(f"{url}/undo", headers=headers)

    assert undone.status_code == 422, undone.text
    assert "milestone has since been" in undone.json()["detail"]
    live = client.get("/queues", headers=headers).json()["items"]
    assert item["id"] not in {i["id"] for i in live}
    completed = client.get("/queues", params={"view": "completed"}, headers=headers).json()
    (listed,) = [i for i in completed["items"] if i["id"] == item["id"]]
    assert listed["undoable"] is False  # no Undo offered for a completion that stands
