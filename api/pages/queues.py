"""The coordinator's queues: counts per queue, filters, and claim / release / complete / snooze,
and take-over (with a reason) of an item another coordinator holds.

`GET /queues` is the page; with `HX-Request` it answers only the queue panel, which htmx
swaps in to refresh without a reload. The action forms post to `/queues/items/{id}/...`,
answer the refreshed panel to htmx, and redirect back to the same filters without it. A
refused change (someone else holds the item, a bad snooze) shows its reason on the panel.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.errors import STATUS
from api.pages.session import (
    Form,
    QueueTakeOver,
    QueueViewer,
    QueueWorker,
    base,
    is_htmx,
    render,
)
from engine.domain.errors import DomainError, InvalidInput, UnknownWorkItem
from engine.domain.reminders import QUEUES
from engine.services import coordinator_queue as queue_service
from engine.services import pathway_catalogue
from engine.services.access import Principal

router = APIRouter(prefix="/queues", include_in_schema=False)
FILTERS = ("queue", "site", "clinician", "state")
DONE = {"claim": "Claimed.", "release": "Released.", "complete": "Completed.", "snooze": "Snoozed."}
SNOOZE_DAYS = (1, 3, 7, 14, 28)
PAGE = 50
LABELS = {
    "escalated": "Escalated",
    "failed_delivery": "Failed delivery",
    "overdue": "Overdue",
    "due_today": "Due today",
    "awaiting_results": "Awaiting results",
}
Filter = Annotated[str | None, Query(max_length=64)]
ItemId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("", response_class=HTMLResponse)
def queues_page(
    request: Request,
    principal: QueueViewer,
    queue: Filter = None,
    site: Filter = None,
    clinician: Filter = None,
    state: Filter = None,
    offset: Annotated[int, Query(ge=0, le=queue_service.MAX_OFFSET)] = 0,
) -> HTMLResponse:
    filters = {"queue": queue, "site": site, "clinician": clinician, "state": state}
    return _panel_or_page(request, principal, _clean(filters), offset)


@router.post("/items/{item_id}/take-over")
def take_over(request: Request, principal: QueueTakeOver, item_id: ItemId, form: Form) -> Response:
    """Take over an item another coordinator holds, with a reason (audited)."""
    reason = form.get("reason", "")
    return _change(
        request,
        principal,
        form,
        "Taken over.",
        lambda uow, scope: queue_service.take_over_item(
            uow, principal.actor, item_id, reason=reason, **scope
        ),
    )


@router.post("/items/{item_id}/{action}")
def act(
    request: Request, principal: QueueWorker, item_id: ItemId, action: str, form: Form
) -> Response:
    """Claim, release, complete or snooze one item, then show the queue again."""

    def change(uow: Any, scope: dict[str, Any]) -> None:
        if action == "claim":
            queue_service.claim_item(uow, principal.actor, item_id, **scope)
        elif action == "release":
            queue_service.release_item(uow, principal.actor, item_id, **scope)
        elif action == "complete":
            note = form.get("note", "")
            queue_service.complete_item(uow, principal.actor, item_id, note=note, **scope)
        elif action == "snooze":
            until = request.app.state.clock.now() + timedelta(days=_days(form.get("days")))
            reason = form.get("reason", "")
            queue_service.snooze_item(
                uow, principal.actor, item_id, until=until, reason=reason, **scope
            )
        else:
            raise InvalidInput(f"unknown action {action!r}")

    return _change(request, principal, form, DONE.get(action, ""), change)


def _change(
    request: Request,
    principal: Principal,
    form: dict[str, str],
    notice: str,
    change: Callable[[Any, dict[str, Any]], Any],
) -> Response:
    """Make one change, then show the queue again: the refreshed panel to htmx, a redirect
    otherwise; a refusal is shown on the page with its reason and status (409 when another
    coordinator holds the item). Another site's item is a 404 page, like an unknown one."""
    filters = _clean({name: form.get(name) for name in FILTERS})
    try:
        change(request.app.state.uow_factory(), {"site_scope": principal.site})
    except UnknownWorkItem:
        raise
    except DomainError as refused:
        status = next(s for cls, s, _ in STATUS if isinstance(refused, cls))
        return _panel_or_page(request, principal, filters, 0, error=refused.message, status=status)
    if is_htmx(request):
        return _panel_or_page(request, principal, filters, 0, notice=notice)
    return RedirectResponse(_url(f"{base(request)}/queues", filters), status_code=303)


def _panel_or_page(
    request: Request,
    principal: Principal,
    filters: dict[str, str | None],
    offset: int,
    *,
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> HTMLResponse:
    site = None if principal.site else filters["site"]
    listing = queue_service.coordinator_queue(
        request.app.state.uow_factory(),
        principal.actor,
        queue=filters["queue"],
        site=site,
        clinician=filters["clinician"],
        state=filters["state"],
        offset=offset,
        limit=PAGE,
        site_scope=principal.site,
    )
    here = f"{base(request)}/queues"
    others = {k: v for k, v in filters.items() if v and k != "queue"}
    context: dict[str, Any] = {
        "listing": listing,
        "queues": QUEUES,
        "labels": LABELS,
        "filters": filters,
        "self_url": _url(here, filters),
        "links": {"all": _url(here, others)}
        | {q: _url(here, {**others, "queue": q}) for q in QUEUES},
        "sites": sorted({item["site"] for item in listing["items"]}),
        "clinicians": sorted({item["clinician"] for item in listing["items"]}),
        "offset": offset,
        "page": PAGE,
        "snooze_days": SNOOZE_DAYS,
        "states": [s for s in pathway_catalogue.pathway("aih").states if "." not in s],
        "error": error,
        "notice": notice,
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
    return cleaned


def _days(text: str | None) -> int:
    try:
        days = int(text or "1")
    except ValueError:
        raise InvalidInput("snooze for a whole number of days") from None
    if days not in SNOOZE_DAYS:
        raise InvalidInput(f"snooze for one of {', '.join(map(str, SNOOZE_DAYS))} days")
    return days
