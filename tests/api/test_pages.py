"""The pages under /ui over HTTP: the cookie login, the same roles as the API, CSRF on every
form, site scoping, and the in-process dispatcher that starts and stops with the app."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from engine.config import Settings
from engine.services.access_policy import allowed_roles
from tests.api.conftest import ROLES

PAGES = ("/ui/queues", "/ui/outbox", "/ui/pathway")
#: The policy action each page asks for (tests/security generates the full page matrix).
PAGE_ACTIONS = {
    "/ui/queues": "queue.read",
    "/ui/outbox": "outbox.read",
    "/ui/pathway": "pathway.read",
}


CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@pytest.fixture
def client(client: TestClient) -> TestClient:
    """The API's test client, posting forms as a browser on this site does (Origin header)."""
    client.headers["Origin"] = str(client.base_url).rstrip("/")
    return client


def post_login(client: TestClient, token: str):
    """Post the login form as a browser does: first fetch it for its CSRF token."""
    csrf = CSRF.search(client.get("/ui/login").text).group(1)
    return client.post("/ui/login", data={"token": token, "csrf": csrf}, follow_redirects=False)


def log_in(client: TestClient, callers, caller: str) -> str:
    """Log in through the form; returns the CSRF token of the session's forms."""
    response = post_login(client, callers.tokens[caller]["token"])
    assert response.status_code == 303, response.text
    assert "HttpOnly" in response.headers["set-cookie"]
    assert "SameSite=strict" in response.headers["set-cookie"]
    page = client.get("/ui/pathway")
    return CSRF.search(page.text).group(1)


@pytest.mark.parametrize("path", [*PAGES, "/ui/patients/anyone"])
def test_without_a_session_every_page_redirects_to_the_login_form(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/login?next={path}"


def test_an_unknown_token_is_refused_at_the_login_form(client):
    response = post_login(client, "not-a-token")
    assert response.status_code == 401
    assert "unknown, expired or revoked" in response.text
    assert "aihp_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_the_pages_the_api_lets_it_read(client, callers, role):
    log_in(client, callers, role)
    for path in PAGES:
        allowed = allowed_roles(PAGE_ACTIONS[path])
        status = client.get(path).status_code
        assert status == (200 if role in allowed else 403), (role, path)


def test_a_form_without_its_csrf_token_is_refused(client, callers):
    log_in(client, callers, "coordinator")
    response = client.post("/ui/queues/items/x/claim", data={"csrf": "forged"})
    assert response.status_code == 403
    assert "did not come from this site" in response.text


def test_an_auditor_cannot_claim_work(client, callers):
    csrf = log_in(client, callers, "auditor")
    response = client.post("/ui/queues/items/x/claim", data={"csrf": csrf})
    assert response.status_code == 403


def test_a_patient_of_another_site_is_not_found(client, callers, enrol):
    patient = enrol(site="south")
    log_in(client, callers, "coordinator")
    response = client.get(f"/ui/patients/{patient['patient_id']}")
    assert response.status_code == 404
    assert "Not found" in response.text


def test_logging_out_ends_the_session(client, callers):
    csrf = log_in(client, callers, "coordinator")
    client.post("/ui/logout", data={"csrf": csrf})
    assert client.get("/ui/queues", follow_redirects=False).status_code == 303


def test_with_no_broker_the_app_runs_the_dispatcher_and_stops_it_on_shutdown(
    database_url, tmp_path
):
    mail_dir = tmp_path / "not-yet" / "mail"
    app = create_app(Settings(database_url=database_url, broker_url=None, mail_dir=mail_dir))
    with TestClient(app):
        dispatcher = app.state.dispatcher
        assert dispatcher._thread.is_alive()
    assert not dispatcher._thread.is_alive()


def test_with_a_broker_the_app_leaves_dispatch_to_celery(database_url):
    app = create_app(Settings(database_url=database_url, broker_url="redis://127.0.0.1:1/0"))
    with TestClient(app):
        assert not hasattr(app.state, "dispatcher")
