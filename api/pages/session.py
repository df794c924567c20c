"""How a page knows its user: a server-side session whose random id is the HttpOnly cookie, the
same roles as the API, and a CSRF token and an Origin check on every form.

The login form takes a user name and password (or, for systems, an API token) and opens a
session with `engine.services.sign_in`: the cookie carries only the session's random id (the
database keeps its SHA-256 hash), never the password or the API token. It is HttpOnly,
SameSite=Strict and Secure unless `AIHP_COOKIE_SECURE=false` (the embedded demo on plain http).
A session ends `AIHP_SESSION_HOURS` after the login, `AIHP_SESSION_IDLE_MINUTES` after its last
request, or at logout (revoked on the server), whatever the browser keeps.

Every state-changing form (login included) must come from this site: its `Origin` (or, when a
browser sends none, its `Referer`) must name this host, and it must carry its CSRF token. The
CSRF token of a form is derived from the session cookie, so it needs no server-side store, and
a page of another origin cannot compute it; the login form's comes from a pre-session cookie
set with the form.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from engine.services import access_policy, sign_in
from engine.services.access import NotAuthenticated, Principal
from engine.services.access_policy import Decision
from engine.services.sign_in import SignInPolicy

COOKIE = "aihp_session"
LOGIN_COOKIE = "aihp_login"
#: Control characters a form field may not carry (tab, CR and LF stay: a note may span lines).
_FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _moment(value: str | datetime | None) -> datetime | None:
    if not value:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _day(value: str | datetime | None) -> str:
    moment = _moment(value)
    return f"{moment:%d %b %Y}" if moment else ""


def _stamp(value: str | datetime | None) -> str:
    moment = _moment(value)
    if moment is None:
        return ""
    return f"{moment.astimezone(UTC) if moment.tzinfo else moment:%d %b %Y %H:%M} UTC"


TEMPLATES.env.filters["day"] = _day
TEMPLATES.env.filters["stamp"] = _stamp


class LoginRequired(Exception):
    """No valid session cookie: the page sends the browser to the login form."""


class PageForbidden(Exception):
    """The user's role may not see or do this (403 page)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class PageInputRefused(Exception):
    """A form the pages cannot read (400 page)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def base(request: Request) -> str:
    """Where the pages are mounted (`/ui`), for links and redirects."""
    return request.scope.get("root_path", "")


def csrf_token(session_token: str) -> str:
    """The CSRF token for forms of the session holding `session_token`."""
    return hashlib.sha256(b"aihp-pages-csrf\0" + session_token.encode()).hexdigest()


def sign_in_policy(request: Request) -> SignInPolicy:
    """The login and session numbers of this app's settings."""
    return SignInPolicy.from_settings(request.app.state.settings)


def from_this_site(request: Request) -> bool:
    """Whether a form post's Origin (else its Referer) names this host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.headers.get("host", "")


def login_csrf(nonce: str) -> str:
    """The login form's CSRF token, from its pre-session cookie."""
    return hashlib.sha256(b"aihp-login-csrf\0" + nonce.encode()).hexdigest()


def form_fields(body: bytes) -> dict[str, str]:
    """A URL-encoded form, each value stripped; a control character is a 400 page."""
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    if any(_FORM_CONTROL.search(key + value) for key, value in form.items()):
        raise PageInputRefused("A field holds a control character; remove it and try again.")
    return {key: value.strip() for key, value in form.items()}


def page_principal(request: Request) -> Principal:
    """The user of the session cookie, or LoginRequired."""
    session_id = request.cookies.get(COOKIE)
    uow = request.app.state.uow_factory()
    try:
        principal = sign_in.session_principal(uow, session_id, sign_in_policy(request))
    except NotAuthenticated:
        raise LoginRequired() from None
    request.state.principal_id = principal.user_id  # the access log names the caller by id
    request.state.principal = principal
    return principal


def allow(action: str) -> Callable[[Principal], Principal]:
    """A dependency admitting only users the access policy lets take `action` (a 403 page
    otherwise): the same policy as the API's. The action is kept on the dependency for tests."""

    def check(principal: Annotated[Principal, Depends(page_principal)]) -> Principal:
        if access_policy.decide(principal, action) is not Decision.ALLOW:
            raise PageForbidden(f"The {principal.role} role cannot use this page.")
        return principal

    check.action = action  # type: ignore[attr-defined]
    return check


PatientViewer = Annotated[Principal, Depends(allow("patient.read"))]
PathwayViewer = Annotated[Principal, Depends(allow("pathway.read"))]
QueueViewer = Annotated[Principal, Depends(allow("queue.read"))]
QueueWorker = Annotated[Principal, Depends(allow("queue.work"))]
QueueTakeOver = Annotated[Principal, Depends(allow("queue.take_over"))]
OutboxViewer = Annotated[Principal, Depends(allow("outbox.read"))]
Prescriber = Annotated[Principal, Depends(allow("order.place"))]
EventRecorder = Annotated[Principal, Depends(allow("event.record"))]


async def checked_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST, after checking where it came from and its CSRF token
    (403 page if either is wrong)."""
    form = form_fields(await request.body())
    sent = form.pop(CSRF_FIELD, None) or request.headers.get(CSRF_HEADER, "")
    session = request.cookies.get(COOKIE, "")
    fresh = bool(session) and hmac.compare_digest(sent, csrf_token(session))
    if not (fresh and from_this_site(request)):
        raise PageForbidden("The form has expired or did not come from this site; reload it.")
    return form


Form = Annotated[dict[str, str], Depends(checked_form)]


def is_htmx(request: Request) -> bool:
    """True for a request htmx made (it wants a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A template with what every page needs: the mount point, the user, the CSRF token."""
    session = request.cookies.get(COOKIE)
    now: datetime = request.app.state.clock.now()
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "base": base(request),
            "user": getattr(request.state, "principal", None),
            "csrf": csrf_token(session) if session else "",
            "now": now,
            "may_see_queues": may(request, "queue.read"),
            "may_see_outbox": may(request, "outbox.read"),
            "may_work_queues": may(request, "queue.work"),
            "may_take_over": may(request, "queue.take_over"),
            "may_see_patients": may(request, "patient.read"),
            "may_prescribe": may(request, "order.place"),
            "may_record_events": may(request, "event.record"),
            **context,
        },
        status_code=status_code,
    )
    response.headers["Vary"] = "HX-Request, Cookie"
    response.headers["Cache-Control"] = "no-store"
    return response


def may(request: Request, action: str) -> bool:
    """Whether the page's user may take `action` (the policy's answer, for links and buttons)."""
    principal = getattr(request.state, "principal", None)
    return principal is not None and access_policy.decide(principal, action) is Decision.ALLOW
