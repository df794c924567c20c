"""The work queue page: a coordinator's queues (or a clinician's worklist of their own
patients' items), counts per queue, views (work, my items, snoozed, completed), filters, sort
by urgency or due date, pages by cursor; claim (one item or the selected ones), release,
complete with an outcome and a note, snooze, undo the same day, take over with a reason.

`GET /queues` is the page; with `HX-Request` it answers only the queue panel, which htmx
swaps in to refresh without a reload. The action forms post to `/queues/items/{id}/...`
(`/queues/items/claim` for the selected rows), answer the refreshed panel to htmx, and
redirect back to the same view and filters without it. A refused change (someone else holds
the item, a bad snooze, no outcome) shows its reason on the panel; after a completion or a
snooze the notice offers its undo.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.errors import status_of
from api.pages.session import (
    Form,
    QueueTakeOver,
    QueueViewer,
    QueueWorker,
    base,
    is_htmx,
    render,
)
from api.refusals import audit_unknown_items
from engine.domain.errors import DomainError, InvalidInput, UnknownWorkItem
from engine.domain.reminders import QUEUES
from engine.services import coordinator_queue as queue_service
from engine.services import pathway_catalogue
from engine.services.access import Principal
from engine.services.access_policy import queue_scope

router = APIRouter(prefix="/queues", include_in_schema=False)
FILTERS = ("view", "queue", "site", "clinician", "state", "sort")
DONE = {
    "claim": "Claimed.",
    "release": "Released.",
    "complete": "Completed.",
    "snooze": "Snoozed.",
    "undo": "Undone.",
}
SNOOZE_DAYS = (1, 3, 7, 14, 28)
PAGE = 50
LABELS = {
    "escalated": "Escalated (overdue past grace)",
    "failed_delivery": "Failed delivery",
    "overdue": "Overdue, not escalated",
    "due_today": "Due today",
    "awaiting_results": "Awaiting results",
}
VIEW_LABELS = {"live": "To do", "mine": "My items", "snoozed": "Snoozed", "completed": "Completed"}
SORT_LABELS = {"urgency": "Urgency", "due": "Due date"}
Filter = Annotated[str | None, Query(max_length=64)]
ItemId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", response_class=HTMLResponse)
def queues_page(
    request: Request,
    principal: QueueViewer,
    view: Filter = None,
    queue: Filter = None,
    site: Filter = None,
    clinician: Filter = None,
    state: Filter = None,
    sort: Filter = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> HTMLResponse:
    filters = {
        "view": view,
        "queue": queue,
        "site": site,
        "clinician": clinician,
        "state": state,
        "sort": sort,
    }
    return _panel_or_page(request, principal, _clean(filters), cursor)


@router.post("/items/claim")
def claim_selected(request: Request, principal: QueueWorker, form: Form) -> Response:
    """Claim the selected rows (checkboxes named `pick:<item id>`); those another coordinator
    holds are named in the notice."""
    picked = [key.removeprefix("pick:") for key in form if key.startswith("pick:")]
    said: list[str] = []

    def change(uow: Any, scope: dict[str, Any]) -> None:
        if not picked:
            raise InvalidInput("select the items to claim first")
        done = queue_service.claim_items(uow, principal.actor, picked, **scope)
        audit_unknown_items(request, done["refused"], "pages")
        said.append(f"Claimed {len(done['claimed'])}.")
        said.extend(f"Not claimed: {r['reason']}" for r in done["refused"])

    return _change(request, principal, form, said, change)


@router.post("/items/{item_id}/take-over")
def take_over(request: Request, principal: QueueTakeOver, item_id: ItemId, form: Form) -> Response:
    """Take over an item another coordinator holds, with a reason (audited)."""
    reason = form.get("reason", "")
    return _change(
        request,
        principal,
        form,
        ["Taken over."],
        lambda uow, scope: queue_service.take_over_item(
            uow, principal.actor, item_id, reason=reason, **scope
        ),
    )


@router.post("/items/{item_id}/{action}")
def act(
    request: Request, principal: QueueWorker, item_id: ItemId, action: str, form: Form
) -> Response:
    """Claim, release, complete, snooze or undo one item, then show the queue again."""
    undo: dict[str, str] = {}

    def change(uow: Any, scope: dict[str, Any]) -> None:
        if action == "claim":
            queue_service.claim_item(uow, principal.actor, item_id, **scope)
        elif action == "release":
            queue_service.release_item(uow, principal.actor, item_id, **scope)
        elif action == "complete":
            queue_service.complete_item(
                uow,
                principal.actor,
                item_id,
                note=form.get("note", ""),
                outcome=form.get("outcome") or None,
                **scope,
            )
            undo["id"] = item_id
        elif action == "snooze":
            until = request.app.state.clock.now() + timedelta(days=_days(form.get("days")))
            reason = form.get("reason", "")
            queue_service.snooze_item(
                uow, principal.actor, item_id, until=until, reason=reason, **scope
            )
            undo["id"] = item_id
        elif action == "undo":
            queue_service.undo_item(uow, principal.actor, item_id, **scope)
        else:
            raise InvalidInput(f"unknown action {action!r}")

    return _change(request, principal, form, [DONE.get(action, "")], change, undo)


def _scope(principal: Principal) -> dict[str, Any]:
    return queue_scope(principal)


def _change(
    request: Request,
    principal: Principal,
    form: dict[str, str],
    notice: list[str],
    change: Callable[[Any, dict[str, Any]], Any],
    undo: dict[str, str] | None = None,
) -> Response:
    """Make one change, then show the queue again: the refreshed panel to htmx, a redirect
    otherwise; a refusal is shown on the page with its reason and status (409 when another
    coordinator holds the item). Another site's item is a 404 page, like an unknown one."""
    filters = _clean({name: form.get(name) for name in FILTERS})
    try:
        change(request.app.state.uow_factory(), _scope(principal))
    except UnknownWorkItem:
        raise
    except DomainError as refused:
        status = status_of(refused)[0]
        return _panel_or_page(
            request, principal, filters, None, error=refused.message, status=status
        )
    if is_htmx(request):
        return _panel_or_page(
            request, principal, filters, None, notice=" ".join(notice), undo=(undo or {}).get("id")
        )
    return RedirectResponse(_url(f"{base(request)}/queues", filters), status_code=303)


def _panel_or_page(
    request: Request,
    principal: Principal,
    filters: dict[str, str | None],
    cursor: str | None,
    *,
    error: str = "",
    notice: str = "",
    undo: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    scope = _scope(principal)
    site = None if principal.site else filters["site"]
    clinician = None if scope["clinician_scope"] else filters["clinician"]
    listing = queue_service.coordinator_queue(
        request.app.state.uow_factory(),
        principal.actor,
        view=filters["view"] or "live",
        queue=filters["queue"] if filters["view"] in (None, "live", "mine") else None,
        site=site,
        clinician=clinician,
        state=filters["state"],
        sort=filters["sort"] or "urgency",
        cursor=cursor,
        limit=PAGE,
        **scope,
    )
    here = f"{base(request)}/queues"
    kept = {k: v for k, v in filters.items() if v and k not in ("queue", "view")}
    others = {k: v for k, v in filters.items() if v and k != "queue"}
    worklist = scope["clinician_scope"] is not None
    context: dict[str, Any] = {
        "listing": listing,
        "queues": QUEUES,
        "labels": LABELS,
        "view_labels": VIEW_LABELS,
        "sort_labels": SORT_LABELS,
        "outcomes": queue_service.outcomes(),
        "filters": filters,
        "view": listing["view"],
        "title": "My patients' items" if worklist else "Coordinator queues",
        "worklist": worklist,
        "self_url": _url(here, {**filters, "cursor": cursor}),
        "first_url": _url(here, filters),
        "next_url": _url(here, {**filters, "cursor": listing["next_cursor"]})
        if listing["next_cursor"]
        else None,
        "links": {"all": _url(here, others)}
        | {q: _url(here, {**others, "queue": q}) for q in QUEUES},
        "view_links": {v: _url(here, {**kept, "view": v}) for v in VIEW_LABELS},
        "sites": sorted({item["site"] for item in listing["items"]}),
        "clinicians": sorted({item["clinician"] for item in listing["items"]}),
        "snooze_days": SNOOZE_DAYS,
        "states": [s for s in pathway_catalogue.pathway("aih").states if "." not in s],
        "error": error,
        "notice": notice,
        "undo": undo,
    }
    template = "queue_panel.html" if is_htmx(request) else "queues.html"
    return render(request, template, context, 200 if is_htmx(request) else status)  # htmx swaps 2xx


def _url(path: str, query: dict[str, str | None]) -> str:
    encoded = urlencode({k: v for k, v in query.items() if v})
    return f"{path}?{encoded}" if encoded else path


def _clean(filters: dict[str, str | None]) -> dict[str, str | None]:
    cleaned = {k: (v or "").strip() or None for k, v in filters.items()}
    if cleaned["queue"] not in (None, *QUEUES):
        cleaned["queue"] = None
    if cleaned["view"] not in (None, *VIEW_LABELS):
        cleaned["view"] = None
    if cleaned["sort"] not in (None, *SORT_LABELS):
        cleaned["sort"] = None
    return cleaned


def _days(text: str | None) -> int:
    try:
        days = int(text or "1")
    except ValueError:
        raise InvalidInput("snooze for a whole number of days") from None
    if days not in SNOOZE_DAYS:
        raise InvalidInput(f"snooze for one of {', '.join(map(str, SNOOZE_DAYS))} days")
    return days
