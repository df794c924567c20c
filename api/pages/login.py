"""Log in with an API token, log out; `/ui/` sends each role to its first page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.pages.session import (
    COOKIE,
    Form,
    base,
    page_principal,
    render,
)
from engine.services import access
from engine.services.access import NotAuthenticated, Principal
from engine.services.access_policy import Decision, decide

router = APIRouter(include_in_schema=False)


def _landing(request: Request, principal: Principal) -> str:
    pages = (("queues", "queue.read"), ("outbox", "outbox.read"))
    allowed = (p for p, action in pages if decide(principal, action) is Decision.ALLOW)
    page = next(allowed, "pathway")
    return f"{base(request)}/{page}"


def _safe_next(request: Request, wanted: str | None) -> str | None:
    """Only a path on this site's pages: never `//evil.example` or an absolute URL."""
    if wanted and wanted.startswith(f"{base(request)}/") and not wanted.startswith("//"):
        return wanted
    return None


@router.get("/")
def home(request: Request, principal: Annotated[Principal, Depends(page_principal)]):
    return RedirectResponse(_landing(request, principal), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=300)] = None
) -> HTMLResponse:
    return render(request, "login.html", {"next": _safe_next(request, next) or "", "error": ""})


@router.post("/login")
async def login(request: Request):
    """Check the token with the access service; keep it in an HttpOnly SameSite=Strict cookie."""
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    token = form.get("token", "").strip()
    wanted = _safe_next(request, form.get("next"))
    try:
        principal = access.authenticate(request.app.state.uow_factory(), token)
    except NotAuthenticated:
        context = {"next": wanted or "", "error": "That token is unknown, expired or revoked."}
        return render(request, "login.html", context, 401)
    response = RedirectResponse(wanted or _landing(request, principal), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=base(request) or "/",
        max_age=12 * 3600,
    )
    return response


@router.post("/logout")
def logout(request: Request, _: Form):
    response = RedirectResponse(f"{base(request)}/login", status_code=303)
    response.delete_cookie(COOKIE, path=base(request) or "/")
    return response
