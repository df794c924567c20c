"""The coordinator's pages: server-rendered HTML under `/ui`, beside the JSON API.

Login, queues, patient, pathway and outbox pages, rendered with Jinja2; htmx (vendored in
`static/`) refreshes the queue and submits its buttons without a reload, and every form also
works without JavaScript. Pages call the service layer only. They are a mounted sub-app so
their errors are HTML pages (a redirect to the login form, a 403 page) rather than the API's
problem+json, and they stay out of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from api.boundary import LastResort
from api.errors import status_of
from api.pages import login, outbox, pathway, patient, patients, queues
from api.pages.session import (
    COOKIE,
    LoginRequired,
    PageForbidden,
    PageInputRefused,
    base,
    is_htmx,
    render,
)
from api.refusals import audit_if_refused, audit_refusal
from engine.domain.errors import DomainError

MOUNT = "/ui"


def install(app: FastAPI) -> None:
    """Mount the pages on `app` at /ui, sharing its settings, clock and units of work."""
    pages = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    pages.state = app.state
    for module in (login, queues, patients, patient, pathway, outbox):
        pages.include_router(module.router)
    pages.include_router(patients.start)
    app.add_api_route("/", patients.site_root, include_in_schema=False)
    pages.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @pages.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        if request.cookies.get(COOKIE) or request.method != "GET":  # a bad session, not a visit
            await run_in_threadpool(audit_refusal, request, 401, "pages")
        wanted = request.url.path if request.method == "GET" else f"{base(request)}/queues"
        target = f"{base(request)}/login?next={quote(wanted, safe='/')}"
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @pages.exception_handler(PageForbidden)
    async def _forbidden(request: Request, error: PageForbidden) -> HTMLResponse:
        await run_in_threadpool(audit_refusal, request, 403, "pages")
        return render(request, "error.html", {"status": 403, "message": error.message}, 403)

    @pages.exception_handler(PageInputRefused)
    async def _unreadable(request: Request, error: PageInputRefused) -> HTMLResponse:
        return render(request, "error.html", {"status": 400, "message": error.message}, 400)

    @pages.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> HTMLResponse:
        await run_in_threadpool(audit_if_refused, request, error, "pages")
        status = status_of(error)[0]
        return render(request, "error.html", {"status": status, "message": error.message}, status)

    pages.add_middleware(LastResort)  # an error of a page never reaches the server's log
    app.mount(MOUNT, pages, name="pages")
