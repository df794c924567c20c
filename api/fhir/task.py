"""FHIR `Task` search: a patient's reminders and coordinator work items.

`GET /fhir/Task?patient=<id>&status=<status,...>` lists the patient's reminders (`reminder-<id>`)
and work items (`item-<id>`); without `patient`, the live coordinator-queue items of the caller's
site. `for` is the patient, `basedOn` their CarePlan, `code` the milestone, `reasonCode` the
rule IDs (one concept, a coding per rule), `executionPeriod` from the due time to the time it
was sent or closed, `restriction.period` the snooze, and `businessStatus` the engine's own status.

| reminder status | Task.status | | work item status | Task.status |
|---|---|---|---|---|
| scheduled | requested | | open | ready |
| claimed, sending | in-progress | | claimed | in-progress |
| sent | completed | | snoozed | on-hold |
| failed | failed | | completed | completed |
| cancelled | cancelled | | closed | cancelled |
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request

from api.deps import PatientReader, UnitOfWork
from api.fhir.outcome import FhirError
from api.fhir.routing import answer, base_url, new_router, reference_id, searchset
from api.fhir.terminology import MILESTONES, RULES, TASK_KINDS
from engine.services import fhir_reads
from engine.services.access_policy import enforce, queue_scope
from engine.services.coordinator_queue import MAX_PAGE, coordinator_queue

router = new_router()

REMINDER_STATUS = {
    "scheduled": "requested",
    "claimed": "in-progress",
    "sending": "in-progress",
    "sent": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
ITEM_STATUS = {
    "open": "ready",
    "claimed": "in-progress",
    "snoozed": "on-hold",
    "completed": "completed",
    "closed": "cancelled",
}
TASK_STATUSES = set(REMINDER_STATUS.values()) | set(ITEM_STATUS.values())


@router.get("/Task")
def search(
    request: Request,
    principal: PatientReader,
    uow: UnitOfWork,
    patient: Annotated[str | None, Query(max_length=200)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(max_length=200)] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=MAX_PAGE)] = 50,
):
    """Tasks of one patient (reminders and work items), or the caller's live queue items."""
    wanted = {s.strip() for s in status.split(",")} if status else None
    if wanted and not wanted <= TASK_STATUSES:
        unknown = ", ".join(sorted(wanted - TASK_STATUSES))
        raise FhirError(f"unknown Task status {unknown}", 400, "invalid")
    who = patient or subject
    if who:
        patient_id = reference_id(who if "/" in who else f"Patient/{who}", "Patient", "patient")
        found = fhir_reads.patient_tasks(uow(), principal.actor, patient_id, principal.site)
        tasks = [reminder_task(r) for r in found["reminders"]] + [
            item_task(i) for i in found["items"]
        ]
    else:  # the live queue: the policy's queue readers only, as in `GET /queues`
        enforce(principal, "queue.read")
        listing = coordinator_queue(uow(), principal.actor, limit=count, **queue_scope(principal))
        tasks = [item_task(i) for i in listing["items"]]
    tasks = [t for t in tasks if wanted is None or t["status"] in wanted][:count]
    return answer(searchset(base_url(request), tasks))


def reminder_task(reminder: dict[str, Any]) -> dict[str, Any]:
    """A Task for one reminder (a notice to the patient, the clinician or the care team)."""
    task = _task(
        f"reminder-{reminder['id']}",
        REMINDER_STATUS.get(reminder["status"], "requested"),
        reminder,
        kind=reminder["purpose"],
        description=f"{reminder['title']} ({reminder['purpose']} {reminder['recipient']} by "
        f"{reminder['channel']})",
        ended=reminder.get("sent_at"),
    )
    if reminder.get("last_error"):
        task["statusReason"] = {"text": reminder["last_error"][:200]}
    return task


def item_task(item: dict[str, Any]) -> dict[str, Any]:
    """A Task for one coordinator work item (a due task, an escalation, a failed delivery)."""
    task = _task(
        f"item-{item['id']}",
        ITEM_STATUS.get(item["status"], "ready"),
        item,
        kind=item["kind"],
        description=f"{item['title']}: {item['reason']}",
        ended=item.get("closed_at"),
    )
    if item.get("claimed_by"):
        task["owner"] = {"display": item["claimed_by"]}
    if item.get("snoozed_until"):
        task["restriction"] = {"period": {"end": _iso(item["snoozed_until"])}}
    if item.get("note"):
        task["note"] = [{"text": item["note"]}]
    return task


def _task(
    task_id: str,
    status: str,
    row: dict[str, Any],
    *,
    kind: str,
    description: str,
    ended: Any,
) -> dict[str, Any]:
    code = {"coding": [{"system": TASK_KINDS, "code": kind}], "text": kind}
    if row.get("milestone_id"):
        code["coding"].append({"system": MILESTONES, "code": row["milestone_id"]})
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "status": status,
        "businessStatus": {"text": row["status"]},
        "intent": "order",
        "priority": "urgent" if row.get("urgent") else "routine",
        "code": code,
        "description": description,
        "for": {"reference": f"Patient/{row['patient_id']}"},
        "basedOn": [{"reference": f"CarePlan/{row['patient_id']}"}],
        "authoredOn": _iso(row["created_at"]),
        "executionPeriod": {"start": _iso(row["due_at"])},
    }
    if ended:
        task["executionPeriod"]["end"] = _iso(ended)
    if row.get("updated_at"):
        task["lastModified"] = _iso(row["updated_at"])
    if row.get("rule_ids"):
        task["reasonCode"] = {
            "coding": [{"system": RULES, "code": rule} for rule in row["rule_ids"]],
            "text": ", ".join(row["rule_ids"]),
        }
    return task


def _iso(moment: datetime | str) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else moment
