"""Web and docs (issue 10): a CSP without inline script, no framing, forms only from this
site (Origin/Referer and CSRF, login included), a Secure cookie outside the demo, sessions that
end, and API documentation that works with no internet."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from engine.config import Settings

TEMPLATES = Path(__file__).parents[2] / "api" / "pages" / "templates"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def log_in(client: TestClient, token: str, **headers: str):
    form = client.get("/ui/login")
    csrf = CSRF.search(form.text).group(1)
    origin = {"Origin": str(client.base_url).rstrip("/"), **headers}
    return client.post(
        "/ui/login", data={"token": token, "csrf": csrf}, headers=origin, follow_redirects=False
    )


@pytest.mark.parametrize("path", ["/ui/login", "/patients", "/fhir/metadata", "/docs", "/nowhere"])
def test_every_answer_forbids_framing_and_inline_script(client, path):
    headers = client.get(path).headers
    csp = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_no_template_carries_inline_script_handlers_or_eval(template):
    text = (TEMPLATES / template).read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    assert "javascript:" not in text and "hx-on" not in text
    assert not re.search(r'hx-trigger="[^"]*\[', text), "htmx filter needs eval"
    assert " style=" not in text


def test_a_form_from_another_site_is_refused_even_with_a_valid_session(client, callers):
    assert log_in(client, callers.tokens["coordinator"]["token"]).status_code == 303
    csrf = CSRF.search(client.get("/ui/pathway").text).group(1)
    foreign = client.post(
        "/ui/logout", data={"csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    no_origin = client.post("/ui/logout", data={"csrf": csrf})
    assert foreign.status_code == 403 and no_origin.status_code == 403
    same_site = client.post(
        "/ui/logout",
        data={"csrf": csrf},
        headers={"Referer": f"{client.base_url}/ui/pathway"},
        follow_redirects=False,
    )
    assert same_site.status_code == 303


def test_the_login_form_needs_its_csrf_token_and_this_sites_origin(client, callers):
    token = callers.tokens["coordinator"]["token"]
    forged = client.post(
        "/ui/login",
        data={"token": token},
        headers={"Origin": str(client.base_url)},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert "aihp_session" not in forged.headers.get("set-cookie", "")
    cross_site = log_in(client, token, Origin="https://evil.example")
    assert cross_site.status_code == 403
    assert log_in(client, token).status_code == 303


def test_the_session_cookie_is_secure_by_default(database_url, callers):
    app = create_app(Settings(database_url=database_url), dispatch=False)
    with TestClient(app, base_url="https://testserver") as client:
        response = log_in(client, callers.tokens["coordinator"]["token"])
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_the_demo_turns_the_secure_flag_off_for_plain_http(tmp_path):
    from cli.cohort import demo_settings as _demo_settings

    settings = _demo_settings("sqlite://", tmp_path / "demo.db")
    assert settings.cookie_secure is False
    assert Settings().cookie_secure is True


def test_a_session_ends_after_its_hours(client, callers, clock, app):
    assert log_in(client, callers.tokens["coordinator"]["token"]).status_code == 303
    assert client.get("/ui/queues", follow_redirects=False).status_code == 200
    clock.advance(timedelta(hours=app.state.settings.session_hours, minutes=1))
    assert client.get("/ui/queues", follow_redirects=False).status_code == 303


def test_a_tampered_session_cookie_is_no_session(client, callers):
    token = callers.tokens["coordinator"]["token"]
    assert log_in(client, token).status_code == 303
    session = client.cookies["aihp_session"]
    assert token not in session  # a random session id, never the API token
    altered = session[:-1] + ("A" if session[-1] != "A" else "B")
    client.cookies.set("aihp_session", altered, path="/ui")
    assert client.get("/ui/queues", follow_redirects=False).status_code == 303
    client.cookies.set("aihp_session", token, path="/ui")  # the bare API token of old
    assert client.get("/ui/queues", follow_redirects=False).status_code == 303


def test_the_api_docs_are_served_from_the_app_itself(client):
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert "http" not in page.text.replace("http-equiv", "")
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/docs/assets/..%2Fconsts.py").status_code == 404
