"""Log in with a user name and password (or, for systems, an API token), log out; `/ui/` sends
each role to its first page. The session itself lives on the server (engine/services/sign_in.py);
the cookie carries only its random id."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.pages.patients import start_url
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
    sign_in_policy,
)
from engine.services import sign_in
from engine.services.access import NotAuthenticated, Principal
from engine.services.sign_in import AccountLocked

router = APIRouter(include_in_schema=False)


def _safe_next(request: Request, wanted: str | None) -> str | None:
    """Only a path on this site's pages: never `//evil.example` or an absolute URL."""
    if wanted and wanted.startswith(f"{base(request)}/") and not wanted.startswith("//"):
        return wanted
    return None


@router.get("/")
def home(request: Request, principal: Annotated[Principal, Depends(page_principal)]):
    return RedirectResponse(start_url(request, principal), status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    next: Annotated[str | None, Query(max_length=300)] = None,
    logged_out: Annotated[str | None, Query(max_length=1)] = None,
) -> HTMLResponse:
    """The form, with a fresh pre-session cookie its CSRF token is derived from."""
    notice = "You are logged out." if logged_out else ""
    return _login_page(request, _safe_next(request, next) or "", "", notice=notice)


def _login_page(
    request: Request,
    wanted: str,
    error: str,
    status: int = 200,
    name: str = "",
    notice: str = "",
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(24)
    context = {
        "next": wanted,
        "error": error,
        "notice": notice,
        "login_csrf": login_csrf(nonce),
        "name": name,
    }
    response = render(request, "login.html", context, status)
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, **_cookie_flags(request))
    return response


def _cookie_flags(request: Request) -> dict:
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.app.state.settings.cookie_secure or request.url.scheme == "https",
        "path": base(request) or "/",
    }


@router.post("/login")
async def login(request: Request):
    """Check where the form came from and its CSRF token, then the user name and password (or
    the API token) with the sign-in service; keep the session's id in an HttpOnly
    SameSite=Strict (and Secure) cookie."""
    form = form_fields(await request.body())
    wanted = _safe_next(request, form.get("next")) or ""
    name = form.get("username", "")[:64]
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not (nonce and hmac.compare_digest(sent, login_csrf(nonce)) and from_this_site(request)):
        error = "The form has expired or did not come from this site; log in again."
        return _login_page(request, wanted, error, 403, name)
    policy = sign_in_policy(request)
    uow = request.app.state.uow_factory()
    token = form.get("token", "")
    try:
        if token:
            opened = await run_in_threadpool(sign_in.sign_in_with_token, uow, token, policy)
        else:
            password = form.get("password", "")
            opened = await run_in_threadpool(sign_in.sign_in, uow, name, password, policy)
    except AccountLocked as locked:
        return _login_page(request, wanted, locked.message, 429, name)
    except NotAuthenticated:
        error = (
            "That token is unknown, expired or revoked."
            if token
            else "That user name and password do not match."
        )
        return _login_page(request, wanted, error, 401, name)
    if previous := request.cookies.get(COOKIE):  # a new login ends the browser's old session
        await run_in_threadpool(sign_in.sign_out, request.app.state.uow_factory(), previous)
    response = RedirectResponse(wanted or start_url(request, opened.principal), status_code=303)
    lifetime = opened.expires_at - request.app.state.clock.now()
    response.set_cookie(
        COOKIE,
        opened.session_id,
        max_age=max(1, int(lifetime.total_seconds())),
        **_cookie_flags(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=base(request) or "/")
    return response


@router.post("/logout")
def logout(request: Request, _: Form):
    """End the session on the server (audited) and drop its cookie."""
    sign_in.sign_out(request.app.state.uow_factory(), request.cookies.get(COOKIE))
    response = RedirectResponse(f"{base(request)}/login?logged_out=1", status_code=303)
    response.delete_cookie(COOKIE, path=base(request) or "/")
    return response
