"""Finding a patient: `/ui/patients`, search by name, external id, birth date, site, clinician
and state, one page at a time (keyset paging through the search service's cursor); a
clinician sees their own patients first ("My patients"). Also where each role starts:
`/` sends the browser to `/ui/start` (the session cookie is scoped to `/ui`), which sends a
visitor to the login form and a user to their first page.

The page calls `search_patients`, which asks the access policy where the caller may look: the
page compares no sites itself. A bad criterion is shown on the page (422), never a 500.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.pages.session import LoginRequired, PatientViewer, base, page_principal, render
from engine.domain.errors import InvalidInput
from engine.services import pathway_catalogue
from engine.services.access_policy import Decision, Principal, decide
from engine.services.patient_directory import search_patients
from engine.services.patient_header import age_on

router = APIRouter(prefix="/patients", include_in_schema=False)
start = APIRouter(include_in_schema=False)
MOUNT = "/ui"  # where api.pages mounts the pages (for `/`, which lies outside them)
PAGE_SIZE = 25
Criterion = Annotated[str | None, Query(max_length=20_000)]
#: Where each caller starts: the first page (under the pages' mount) whose action the policy
#: allows them, in this order; a caller with none of them reads the API documents.
START_PAGES = (
    ("queue.work", "/queues"),
    ("order.place", "/patients"),
    ("patient.read", "/patients"),
    ("pathway.read", "/pathway"),
)


@router.get("", response_class=HTMLResponse)
def patient_list(
    request: Request,
    principal: PatientViewer,
    name: Criterion = None,
    external_id: Criterion = None,
    birth_date: Criterion = None,
    site: Criterion = None,
    clinician: Criterion = None,
    state: Criterion = None,
    show: Annotated[Literal["mine", "all"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> HTMLResponse:
    """The search form and one page of matching patients (audited search)."""
    prescriber = decide(principal, "order.place") is Decision.ALLOW
    show = show or ("mine" if prescriber else "all")
    filters = {
        "name": name,
        "external_id": external_id,
        "birth_date": birth_date,
        "site": site,
        "clinician": clinician,
        "state": state,
    }
    error, found = "", {"items": [], "total": 0, "next_cursor": None}
    try:
        found = search_patients(
            request.app.state.uow_factory(),
            principal,
            **filters,
            mine=show == "mine",
            cursor=cursor,
            limit=PAGE_SIZE,
            surface="pages",
        )
    except InvalidInput as bad:
        error = f"Cannot search: {bad.message}."
    kept = {k: v for k, v in filters.items() if v} | {"show": show}
    next_page = (
        f"?{urlencode(kept | {'cursor': found['next_cursor']})}" if found["next_cursor"] else ""
    )
    today: date = request.app.state.clock.now().date()
    rows = [
        {
            **item,
            "birth_date": item["birth_date"].isoformat(),
            "age": age_on(item["birth_date"], today),
        }
        for item in found["items"]
    ]
    context = {
        "active": "patients",
        "title": "My patients" if show == "mine" else "Patients",
        "filters": filters,
        "show": show,
        "prescriber": prescriber,
        "rows": rows,
        "total": found["total"],
        "next_page": next_page,
        "first_page": f"?{urlencode(kept)}" if cursor else "",
        "error": error,
        "states": list(pathway_catalogue.pathway("aih").states),
    }
    return render(request, "patients.html", context, 422 if error else 200)


def site_root() -> RedirectResponse:
    """`/`: to the pages' start, where the session cookie is sent."""
    return RedirectResponse(f"{MOUNT}/start", status_code=303)


@start.get("/start")
def start_page(request: Request) -> RedirectResponse:
    """The login form for a visitor, else the caller's first page: a coordinator's queues, a
    clinician's own patients, an auditor's patient list, an admin's pathway."""
    try:
        principal: Principal = page_principal(request)
    except LoginRequired:
        return RedirectResponse(f"{base(request)}/login?next={base(request)}/start", 303)
    return RedirectResponse(start_url(request, principal), status_code=303)


def start_url(request: Request, principal: Principal) -> str:
    """The caller's first page: the first of START_PAGES the policy allows, else the API docs."""
    allowed = (p for action, p in START_PAGES if decide(principal, action) is Decision.ALLOW)
    target = next(allowed, None)
    return f"{base(request)}{target}" if target else "/docs"
