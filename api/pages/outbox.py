"""The outbox page: reminder emails sent, failed and pending (and cancelled), per site."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from api.pages.session import OutboxViewer, render
from engine.services.outbox import OUTBOX_GROUPS, outbox

router = APIRouter(prefix="/outbox", include_in_schema=False)


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
    )
    return render(request, "outbox.html", {"listing": listing, "groups": list(OUTBOX_GROUPS)})
