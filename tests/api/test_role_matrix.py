"""Every route x every role: the allowed roles get a 2xx, the others 403; no token, a wrong, a
revoked or an expired token get 401. Routes are read from `app.routes`, so a new route without
an entry in MATRIX fails `test_every_route_has_a_matrix_entry`.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

try:  # FastAPI >= 0.16x nests included routers in app.routes; this flattens them
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI: app.routes is already flat

    def iter_route_contexts(routes):
        return routes


from tests.api.conftest import ROLES

READERS = {"clinician", "coordinator", "auditor"}
EVERYONE = set(ROLES)

MATRIX: dict[tuple[str, str], set[str]] = {
    ("POST", "/patients"): {"clinician"},
    ("GET", "/patients"): READERS,
    ("GET", "/patients/{patient_id}"): READERS,
    ("GET", "/patients/{patient_id}/history"): READERS,
    ("POST", "/patients/{patient_id}/what-if"): {"clinician"},
    ("POST", "/patients/{patient_id}/labs"): {"clinician", "lab-interface"},
    ("POST", "/patients/{patient_id}/events"): {"clinician"},
    ("POST", "/patients/{patient_id}/orders"): {"clinician"},
    ("GET", "/pathways"): READERS | {"admin"},
    ("GET", "/pathways/{key}"): READERS | {"admin"},
    ("GET", "/pathways/{key}/diagram"): READERS | {"admin"},
    ("GET", "/audit"): {"auditor"},
    ("GET", "/queues"): {"coordinator", "clinician"},
    ("POST", "/queues/items/{item_id}/claim"): {"coordinator"},
    ("POST", "/queues/items/{item_id}/release"): {"coordinator"},
    ("POST", "/queues/items/{item_id}/complete"): {"coordinator"},
    ("POST", "/queues/items/{item_id}/snooze"): {"coordinator"},
    ("POST", "/reminders/{reminder_id}/acknowledge"): {"coordinator", "clinician"},
    ("GET", "/users/me"): EVERYONE,
    ("GET", "/users"): {"admin"},
    ("POST", "/users"): {"admin"},
    ("POST", "/users/{user_id}/tokens"): {"admin"},
    ("POST", "/users/{user_id}/tokens/{token_id}/revoke"): {"admin"},
}

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/patients"): {
        "site": "north",
        "clinician": "dr-a",
        "birth_date": "1980-01-01",
        "sex": "M",
        "weight_kg": 80,
    },
    ("POST", "/patients/{patient_id}/what-if"): {"kind": "lab", "code": "ALT", "value": 80},
    ("POST", "/patients/{patient_id}/labs"): {"code": "ALT", "value": 420, "unit": "U/L"},
    ("POST", "/patients/{patient_id}/events"): {"kind": "elastography", "data": {"kpa": 8}},
    ("POST", "/patients/{patient_id}/orders"): {"drug": "prednisolone", "mg_per_day": 30},
    ("POST", "/users/{user_id}/tokens"): {"days": 7},
    ("POST", "/queues/items/{item_id}/complete"): {"note": "phoned the lab"},
    ("POST", "/queues/items/{item_id}/snooze"): {
        "until": "2099-01-01T09:00:00+00:00",
        "reason": "patient away",
    },
}


def work_item_of(patient_id: str, uow_factory) -> dict[str, Any]:
    """A coordinator item (and its reminder) for the patient: the screening reminders are due
    at enrolment, so one in-process dispatch round puts them in the queue."""
    import tempfile

    from engine.adapters.mail import MaildirOutbox
    from engine.services.coordinator_queue import coordinator_queue
    from engine.services.dispatch import dispatch_due_reminders
    from engine.services.reminders import DeliveryPolicy

    dispatch_due_reminders(uow_factory, MaildirOutbox(tempfile.mkdtemp()), DeliveryPolicy())
    items = coordinator_queue(uow_factory(), "test", limit=200)["items"]
    return next(i for i in items if i["patient_id"] == patient_id)


def flat_routes(app) -> list[tuple[bool, str, set[str]]]:
    """(is an API route, path template, methods) for every route of the app, except the FHIR
    facade's (OperationOutcome errors; its own role and site tests are in test_fhir.py) and the
    pages' under /ui (cookie login; their role tests are in test_pages.py)."""
    return [
        (isinstance(getattr(c, "original_route", c), APIRoute), c.path, set(c.methods or ()))
        for c in iter_route_contexts(app.routes)
        if not c.path.startswith(("/fhir", "/ui"))
    ]


def api_routes(app) -> set[tuple[str, str]]:
    return {(m, path) for is_api, path, methods in flat_routes(app) if is_api for m in methods}


def test_every_route_has_a_matrix_entry(app):
    assert api_routes(app) == set(MATRIX)


def test_only_the_openapi_documents_are_served_without_a_token(app, client):
    public = {path for is_api, path, _ in flat_routes(app) if not is_api}
    assert public == {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    assert client.get("/openapi.json").status_code == 200


def request_for(route: tuple[str, str], patient_id: str, callers, uow_factory, n: int):
    """A well-formed request for the route; unique where the route creates something."""
    from engine.services import access

    method, path = route
    token = access.issue_token(uow_factory(), "test", callers.users["auditor"]["id"])
    item = (
        work_item_of(patient_id, uow_factory)
        if "{item_id}" in path or "{reminder_id}" in path
        else {}
    )
    url = path.format(
        patient_id=patient_id,
        key="aih",
        user_id=callers.users["auditor"]["id"],
        token_id=token["id"],
        item_id=item.get("id"),
        reminder_id=item.get("reminder_id"),
    )
    body = BODIES.get(route)
    if route == ("POST", "/users"):
        body = {"name": f"new-user-{n}", "role": "clinician"}
    return method, url, body


CASES = [(route, role) for route in MATRIX for role in ROLES]


@pytest.mark.parametrize(("route", "role"), CASES, ids=[f"{m} {p} as {r}" for (m, p), r in CASES])
def test_role_gets_2xx_when_allowed_and_403_otherwise(
    route, role, client, callers, enrol, uow_factory
):
    patient_id = enrol(cirrhosis=False)["patient_id"]
    method, url, body = request_for(route, patient_id, callers, uow_factory, 0)

    response = client.request(method, url, json=body, headers=callers[role])

    if role in MATRIX[route]:
        assert 200 <= response.status_code < 300, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("who", ["no token", "wrong token", "not bearer", "revoked", "expired"])
def test_every_route_refuses_a_caller_without_a_valid_token(who, app, client, callers, enrol):
    patient_id = enrol()["patient_id"]
    headers = {
        "no token": {},
        "wrong token": {"Authorization": "Bearer not-a-token"},
        "not bearer": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "revoked": callers["revoked"],
        "expired": callers["expired"],
    }[who]
    for method, path in sorted(api_routes(app)):
        url = path.format(
            patient_id=patient_id,
            key="aih",
            user_id="u",
            token_id="t",
            item_id="i",
            reminder_id="r",
        )
        response = client.request(method, url, json=BODIES.get((method, path)), headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["type"].endswith("/not-authenticated")
