"""Log in with an API token, log out; `/ui/` sends each role to its first page."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.pages.session import (
    COOKIE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    Form,
    base,
    form_fields,
    from_this_site,
    login_csrf,
    page_principal,
    render,
    session_cookie,
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
    """The form, with a fresh pre-session cookie its CSRF token is derived from."""
    return _login_page(request, _safe_next(request, next) or "", "")


def _login_page(request: Request, wanted: str, error: str, status: int = 200) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    context = {"next": wanted, "error": error, "login_csrf": login_csrf(nonce)}
    response = render(request, "login.html", context, status)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, **_cookie_flags(request))
    return response


def _cookie_flags(request: Request) -> dict:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.app.state.settings.cookie_secure,
        "path": base(request) or "/",
    }


@router.post("/login")
async def login(request: Request):
    """Check where the form came from and its CSRF token, then the token with the access
    service; keep the signed session in an HttpOnly SameSite=Strict (and Secure) cookie."""
    form = form_fields(await request.body())
    token = form.get("token", "")
    wanted = _safe_next(request, form.get("next"))
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not (nonce and hmac.compare_digest(sent, login_csrf(nonce)) and from_this_site(request)):
        error = "The form has expired or did not come from this site; log in again."
        return _login_page(request, wanted or "", error, 403)
    try:
        principal = access.authenticate(request.app.state.uow_factory(), token)
    except NotAuthenticated:
        return _login_page(request, wanted or "", "That token is unknown, expired or revoked.", 401)
    response = RedirectResponse(wanted or _landing(request, principal), status_code=303)
    hours = request.app.state.settings.session_hours
    response.set_cookie(
        COOKIE,
        session_cookie(request, token),
        max_age=int(hours * 3600),
        **_cookie_flags(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=base(request) or "/")
    return response


@router.post("/logout")
def logout(request: Request, _: Form):
    response = RedirectResponse(f"{base(request)}/login", status_code=303)
    response.delete_cookie(COOKIE, path=base(request) or "/")
    return response
