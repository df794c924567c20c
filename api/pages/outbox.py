"""The outbox page: reminder emails sent, failed and pending (and cancelled), per site, with
patients and recipients named; one email opened as composed; a failed one re-sent.

An opened email shows its subject and text as escaped text and its HTML in a sandboxed
`<iframe srcdoc>` (no scripts, no same-origin access), so nothing in a message runs in the
page. Re-sending re-queues the reminder for the dispatcher (`engine.services.outbox`); the
page request never sends mail.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.pages.session import Form, OutboxViewer, allow, base, may, render
from api.refusals import audit_refusal
from engine.services.access import Principal
from engine.services.outbox import (
    OUTBOX_GROUPS,
    NotResendable,
    UnknownReminder,
    outbox,
    outbox_message,
    resend_failed,
)
from engine.services.reminders import DeliveryPolicy

router = APIRouter(prefix="/outbox", include_in_schema=False)
OutboxResender = Annotated[Principal, Depends(allow("outbox.resend"))]
ReminderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("", response_class=HTMLResponse)
def outbox_page(
    request: Request,
    principal: OutboxViewer,
    group: Annotated[str, Query(max_length=16)] = "sent",
    site: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    listing = outbox(
        request.app.state.uow_factory(),
        principal.actor,
        group=group if group in OUTBOX_GROUPS else "sent",
        site=None if principal.site else (site or None),
        site_scope=principal.site,
        names=may(request, "patient.read"),
    )
    context = {
        "listing": listing,
        "groups": list(OUTBOX_GROUPS),
        "may_resend": may(request, "outbox.resend"),
    }
    return render(request, "outbox.html", context)


@router.get("/{reminder_id}", response_class=HTMLResponse)
async def message_page(
    request: Request, principal: OutboxViewer, reminder_id: ReminderId, resent: bool = False
) -> Response:
    return await _message(request, principal, reminder_id, resent=resent)


@router.post("/{reminder_id}/resend", response_class=HTMLResponse)
async def resend(
    request: Request, principal: OutboxResender, reminder_id: ReminderId, _: Form
) -> Response:
    try:
        await run_in_threadpool(
            resend_failed, request.app.state.uow_factory(), principal, reminder_id
        )
    except UnknownReminder:
        return await _unknown(request)
    except NotResendable as refused:
        return await _message(request, principal, reminder_id, problem=refused.message)
    if may(request, "outbox.read"):
        return RedirectResponse(f"{base(request)}/outbox/{reminder_id}?resent=1", 303)
    return RedirectResponse(f"{base(request)}/outbox?group=pending", 303)


async def _message(
    request: Request,
    principal: Principal,
    reminder_id: str,
    resent: bool = False,
    problem: str | None = None,
) -> Response:
    policy = DeliveryPolicy.from_settings(request.app.state.settings)
    try:
        message = await run_in_threadpool(
            outbox_message, request.app.state.uow_factory(), principal, reminder_id, policy
        )
    except UnknownReminder:
        return await _unknown(request)
    context = {
        "message": message,
        "resent": resent,
        "refused": problem,
        "may_resend": may(request, "outbox.resend"),
    }
    return render(request, "outbox_message.html", context)


async def _unknown(request: Request) -> HTMLResponse:
    await run_in_threadpool(audit_refusal, request, 404, "pages")
    context = {"status": 404, "message": "No such reminder."}
    return render(request, "error.html", context, 404)
