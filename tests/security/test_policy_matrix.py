"""Tests generated from the access policy, on every surface.

Every route of the native API and every FHIR interaction (read from `app.routes`) and every
page and form under /ui, for every role at the resource's own site, at another site and
without a site, answer what `access_policy.decide` says: allow -> 2xx (a page: 200 or its
redirect), deny -> 403, not found -> 404. Each route's action is the one its dependency asks
the policy about, so a new route is covered, or fails `test_every_route_asks_the_policy`.
Every kind of bad token is refused on every route. The matrix size is printed (`-s`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from api.deps import route_action
from api.main import create_app
from api.pages.session import COOKIE
from engine.config import Settings
from engine.services import access
from engine.services import coordinator_queue as queue_service
from engine.services.access_policy import Decision, Resource, decide
from tests.api import fhir_resources as fhir
from tests.security.policy_world import (  # noqa: F401  (world_fixture: the `world` fixture)
    CALLERS,
    World,
    caller_name,
    cds_hook_request,
    log_in,
    origin,
    world_fixture,
)

#: Routes anyone may call: the API's documents, the FHIR CapabilityStatement, and the FHIR
#: fallback that answers "not supported" under /fhir. No other route may skip the policy.
PUBLIC = {
    "/openapi.json",
    "/docs",
    "/docs/assets/{name}",
    "/docs/oauth2-redirect",
    "/redoc",
    "/fhir/metadata",
    "/fhir/{path:path}",
    "/",  # redirects to /ui/start (below), which sends each caller to their first page
}
#: Pages without an action: the login form, logging out and the landing redirect.
PUBLIC_PAGES = {"/ui/", "/ui/login", "/ui/logout", "/ui/start"}
BAD_TOKENS = ("no token", "wrong token", "not bearer", "revoked", "expired")
EXPECTED = {Decision.ALLOW: "2xx", Decision.DENY: 403, Decision.NOT_FOUND: 404}


def _routes() -> tuple[list[tuple[str, str, str | None]], list[tuple[str, str, str | None]]]:
    """(method, path, action) of every API and FHIR route, and of every page route."""
    app = create_app(Settings(database_url="sqlite://"), dispatch=False)
    api, pages = [], []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        action = route_action(route.dependant) if isinstance(route, APIRoute) else None
        api += [(m, context.path, action) for m in sorted(context.methods or ())]
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/ui")
    for context in iter_route_contexts(mount.app.routes):
        if isinstance(context.original_route, APIRoute):
            action = route_action(context.original_route.dependant)
            pages += [(m, "/ui" + context.path, action) for m in sorted(context.methods or ())]
    return api, pages


ROUTES, PAGE_ROUTES = _routes()
GUARDED = [(m, p, a) for m, p, a in ROUTES if a is not None]
API = [r for r in GUARDED if not r[1].startswith("/fhir")]
FHIR = [r for r in GUARDED if r[1].startswith("/fhir")]
#: The queries a route is called with: the audit of all or one patient, the Tasks of one
#: patient or the queue, the subject of a CarePlan search and of `$apply`, the Observations of
#: the caller's site or of one patient.
VARIANTS = {
    ("GET", "/audit"): ["", "?patient_id={patient_id}"],
    ("GET", "/fhir/Task"): ["", "?patient={patient_id}"],
    ("GET", "/fhir/CarePlan"): ["?subject=Patient/{patient_id}"],
    ("GET", "/fhir/Observation"): ["", "?patient={patient_id}"],
    ("POST", "/fhir/PlanDefinition/{definition_id}/$apply"): ["?subject=Patient/{patient_id}"],
}
#: A second action a route asks the policy about for one of its queries: the Tasks without
#: a patient are the coordinator queue.
SECOND_ACTION = {("GET", "/fhir/Task"): "queue.read"}
#: FHIR searches that answer "not found" as FHIR does: a searchset with no match.
EMPTY_WHEN_NOT_FOUND = {("GET", "/fhir/CarePlan"), ("GET", "/fhir/Observation")}
QUEUE_ACTIONS = ("claim", "release", "complete", "snooze")
PAGES = [
    (m, p.replace("{action}", a), action)
    for m, p, action in PAGE_ROUTES
    if action is not None
    for a in (QUEUE_ACTIONS if "{action}" in p else ("",))
]


def _cases(routes: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str, str]]:
    return [
        (method, path + variant, action, role, where)
        for method, path, action in routes
        for variant in VARIANTS.get((method, path), [""])
        for role, where in CALLERS
    ]


API_CASES, FHIR_CASES, PAGE_CASES = _cases(API), _cases(FHIR), _cases(PAGES)


def _id(case: tuple[str, str, str, str, str]) -> str:
    method, path, _, role, where = case
    return f"{method} {path} as {role} at {where}"


def test_every_route_asks_the_policy():
    """A route without an action is public, and only the documents and login are."""
    unguarded = {path for _, path, action in ROUTES if action is None}
    assert unguarded <= PUBLIC, unguarded - PUBLIC
    assert {path for _, path, action in PAGE_ROUTES if action is None} == PUBLIC_PAGES


def test_the_matrix_covers_every_surface(capsys):
    bad = len(BAD_TOKENS) * (len(API) + len(FHIR) + len(PAGES))
    sizes = {
        "native API": len(API_CASES),
        "FHIR": len(FHIR_CASES),
        "pages": len(PAGE_CASES),
        "bad tokens": bad,
    }
    with capsys.disabled():
        print(f"\npolicy matrix: {sizes}, total {sum(sizes.values())} cases")
    assert all(sizes.values())


# ---- what each case sends --------------------------------------------------------------------


def _prepare(world: World, method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The URL for a case with fresh resources at `north`, and what they are."""
    made: dict[str, Any] = {"resource": None}
    ids: dict[str, Any] = {"key": "aih", "definition_id": "aih"}
    wanted = ("{patient_id}", "{item_id}", "{reminder_id}", "{record_id}", "{plan_id}")
    if any(p in path for p in wanted):
        patient_id = world.patient()
        ids |= {"patient_id": patient_id, "plan_id": patient_id}
        made |= {"patient_id": patient_id, "resource": Resource("north")}
    if "{item_id}" in path or "{reminder_id}" in path:
        item = world.item(ids["patient_id"])
        ids |= {"item_id": item["id"], "reminder_id": item["reminder_id"]}
        if path.endswith("/undo"):  # something to undo: a snooze by the coordinator at north
            holder = world.principal(caller_name("coordinator", "own site")).actor
            until = world.clock.now() + timedelta(days=1)
            queue_service.snooze_item(
                world.uow_factory(), holder, item["id"], until=until, reason="away"
            )
    if "{record_id}" in path:
        ids["record_id"] = world.lab_record(ids["patient_id"])
    if "{user_id}" in path:
        user = world.user()
        ids |= {"user_id": user["id"], "token_id": user["token_id"]}
        made["resource"] = Resource("north", "clinician")
    if (method, path) in (("POST", "/patients"), ("POST", "/fhir/Patient")):
        made["resource"] = Resource("north")
    if (method, path) == ("POST", "/users"):
        made["resource"] = Resource("north", "clinician")
    if (method, path) in (("POST", "/fhir/Observation"), ("POST", "/fhir")):
        made |= {"patient_id": world.patient(), "resource": Resource("north")}
    if "{service_id}" in path:  # CDS Hooks: a north patient's draft order, a card of its review
        ids["service_id"] = "aih-order-sign"
        made |= {"patient_id": world.patient(), "resource": Resource("north")}
        if path.endswith("/feedback"):
            made["card"] = world.cds_card(made["patient_id"])
    return path.format(**ids), made


def _body(world: World, method: str, path: str, made: dict[str, Any]) -> Any:
    soon = (world.clock.now() + timedelta(days=7)).isoformat()
    bodies: dict[str, Any] = {
        "/patients": {
            "site": "north",
            "clinician": "dr-a",
            "birth_date": "1980-01-01",
            "sex": "M",
            "weight_kg": 80,
        },
        "/patients/{patient_id}/what-if": {
            "kind": "lab",
            "code": "ALT",
            "value": 80,
            "unit": "U/L",
        },
        "/patients/{patient_id}/labs": {"code": "ALT", "value": 420, "unit": "U/L"},
        "/patients/{patient_id}/events": {"kind": "elastography", "data": {"kpa": 8}},
        "/patients/{patient_id}/orders": {"drug": "prednisolone", "mg_per_day": 30},
        "/queues/items/{item_id}/complete": {"outcome": "called_patient", "note": "phoned the lab"},
        "/queues/items/claim": {"item_ids": ["an-item-of-nobody"]},
        "/queues/items/{item_id}/snooze": {"until": soon, "reason": "patient away"},
        "/queues/items/{item_id}/take-over": {"reason": "holder on leave"},
        "/users": {"name": f"new-{world.serial('new')}", "role": "clinician", "site": "north"},
        "/users/{user_id}/tokens": {"days": 7},
        "/users/{user_id}/password": {"password": "a matrix passphrase"},
        "/fhir/Patient": fhir.patient("north"),
    }
    if path == "/cds-services/{service_id}":
        return cds_hook_request(made["patient_id"])
    if path == "/cds-services/{service_id}/feedback":
        return {"feedback": [{"card": made["card"], "outcome": "accepted"}]}
    if (method, path) == ("POST", "/fhir/Observation"):
        return fhir.quantity(made["patient_id"], "1742-6", 80, "U/L")
    if path == "/fhir":
        observation = fhir.quantity(made["patient_id"], "1742-6", 80, "U/L")
        entry = {"resource": observation, "request": {"method": "POST", "url": "Observation"}}
        return {"resourceType": "Bundle", "type": "batch", "entry": [entry]}
    return bodies.get(path.split("?")[0]) if method == "POST" else None


def _expected(world: World, case: tuple[str, str, str, str, str], made: dict[str, Any]):
    """What the policy says: the route's action on the case's resource, then any second
    action (a listing, so on no single resource)."""
    method, path, action, role, where = case
    principal = world.principal(caller_name(role, where))
    decision = decide(principal, action, made["resource"])
    second = SECOND_ACTION.get((method, path))
    if decision is Decision.ALLOW and second:
        decision = decide(principal, second)
    return EXPECTED[decision]


def _check(response, expected, where: str) -> None:
    if expected == "2xx":
        assert 200 <= response.status_code < 300 or response.status_code == 303, (
            where,
            response.status_code,
            response.text[:300],
        )
    else:
        assert response.status_code == expected, (where, response.text[:300])


# ---- the matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", API_CASES, ids=[_id(c) for c in API_CASES])
def test_native_api_answers_what_the_policy_decides(case, world: World):
    method, path, _, role, where = case
    url, made = _prepare(world, method, path)
    headers = {"Authorization": f"Bearer {world.token(caller_name(role, where))}"}

    response = world.client.request(
        method, url, json=_body(world, method, path, made), headers=headers
    )

    _check(response, _expected(world, case, made), _id(case))
    if response.status_code in (403, 404):
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("case", FHIR_CASES, ids=[_id(c) for c in FHIR_CASES])
def test_fhir_facade_answers_what_the_policy_decides(case, world: World):
    method, path, _, role, where = case
    url, made = _prepare(world, method, path)
    headers = {"Authorization": f"Bearer {world.token(caller_name(role, where))}"}
    body = _body(world, method, path, made)
    expected = _expected(world, case, made)

    response = world.client.request(method, url, json=body, headers=headers)

    if (method, path.split("?")[0]) in EMPTY_WHEN_NOT_FOUND and expected == 404:
        assert response.status_code == 200 and response.json()["total"] == 0, response.text
        return
    if path == "/fhir" and expected != 403:  # a batch answers per entry
        assert response.status_code == 200, response.text[:300]
        entry_status = response.json()["entry"][0]["response"]["status"]
        assert entry_status.startswith("201" if expected == "2xx" else "404"), entry_status
        return
    _check(response, expected, _id(case))
    assert response.headers["content-type"].startswith(fhir.FHIR_JSON)
    if response.status_code in (403, 404):
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("case", PAGE_CASES, ids=[_id(c) for c in PAGE_CASES])
def test_pages_answer_what_the_policy_decides(case, world: World):
    method, path, _, role, where = case
    url, made = _prepare(world, method, path)
    csrf = log_in(world.client, world.token(caller_name(role, where)))
    form = {
        "csrf": csrf,
        "reason": "holder on leave",
        "days": "7",
        "drug": "prednisolone",
        "mg_per_day": "30",
        "kind": "elastography",
        "f_kpa": "8",
        "outcome": "called_patient",
        "pick:an-item-of-nobody": "on",
    }
    try:
        if method == "GET":
            response = world.client.get(url, follow_redirects=False)
        else:
            response = world.client.post(
                url, data=form, headers=origin(world.client), follow_redirects=False
            )
    finally:
        world.client.cookies.clear()

    _check(response, _expected(world, case, made), _id(case))
    if response.status_code in (403, 404):
        assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("who", BAD_TOKENS)
def test_every_route_and_page_refuses_a_bad_token(who, world: World):
    tokens = {
        "no token": None,
        "wrong token": "not-a-token",
        "not bearer": None,
        "revoked": world.token("revoked"),
        "expired": world.token("expired"),
    }
    headers = {"Authorization": f"Bearer {tokens[who]}"} if tokens[who] else {}
    if who == "not bearer":
        headers = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    ids = {
        k: "x"
        for k in (
            "patient_id",
            "item_id",
            "reminder_id",
            "user_id",
            "token_id",
            "record_id",
            "plan_id",
            "service_id",
        )
    }
    ids |= {"key": "aih", "definition_id": "aih"}
    for method, path, _ in API + FHIR:
        response = world.client.request(method, path.format(**ids), json={}, headers=headers)
        assert response.status_code == 401, (method, path, response.text[:200])
        assert response.headers["www-authenticate"] == "Bearer"
    if who == "revoked":  # a session whose token is revoked after logging in
        user = world.user()
        log_in(world.client, user["token"])
        access.revoke_token(world.uow_factory(), "test", user["token_id"])
    elif tokens[who]:
        world.client.cookies.set(COOKIE, tokens[who])
    try:
        for method, path, _ in PAGES:
            response = world.client.request(
                method, path.format(**ids), headers=origin(world.client), follow_redirects=False
            )
            assert response.status_code == 303, (method, path)
            assert "/ui/login" in response.headers["location"]
    finally:
        world.client.cookies.clear()
