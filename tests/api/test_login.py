"""Logging in to the pages with a user name and password: argon2 hashes, lockout that does not
reveal whether an account exists, sessions that end when idle, at their limit and at logout,
a cookie that carries no token, and users (with passwords) created only by admins."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from engine.adapters.access_tables import login_sessions, login_throttle, users
from engine.adapters.orm import audit_log
from engine.config import Settings
from engine.domain.errors import InvalidInput
from engine.services import access, sign_in
from engine.services.sign_in import AccountLocked, SignInPolicy, WrongCredentials

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
PASSWORD = "correct horse battery staple"
#: argon2id at its lowest cost here (the app reads the same numbers from the environment):
#: these tests count attempts, not hashing cost.
CHEAP_HASHING = {"AIHP_PASSWORD_HASH_TIME_COST": "1", "AIHP_PASSWORD_HASH_MEMORY_KIB": "1024"}
POLICY = SignInPolicy.from_settings(
    Settings(password_hash_time_cost=1, password_hash_memory_kib=1024)
)


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch):
    for name, value in CHEAP_HASHING.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def client(client):
    """The test client posting forms as a browser on this site does (Origin header)."""
    client.headers["Origin"] = str(client.base_url).rstrip("/")
    return client


@pytest.fixture
def anna(uow_factory) -> dict:
    """A coordinator at north with a password."""
    return access.create_user(
        uow_factory(),
        "test",
        name="anna",
        role="coordinator",
        site="north",
        password=PASSWORD,
        password_policy=POLICY,
    )


def post_login(client, **fields: str):
    csrf = CSRF.search(client.get("/ui/login").text).group(1)
    return client.post("/ui/login", data={**fields, "csrf": csrf}, follow_redirects=False)


def log_in(client, name: str = "anna", password: str = PASSWORD):
    return post_login(client, username=name, password=password)


def signed_in(client) -> bool:
    return client.get("/ui/queues", follow_redirects=False).status_code == 200


def audit_rows(uow_factory) -> list:
    with uow_factory() as uow:
        return [r._mapping for r in uow.session.execute(select(audit_log).order_by(audit_log.c.id))]


def test_the_password_is_stored_as_an_argon2id_hash_only(anna, uow_factory):
    with uow_factory() as uow:
        stored = uow.session.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_the_right_password_opens_a_session_on_the_landing_page(client, anna):
    response = log_in(client)
    assert response.status_code == 303 and response.headers["location"] == "/ui/queues"
    assert signed_in(client)


def test_a_wrong_password_is_refused_with_a_message_and_no_session(client, anna):
    response = log_in(client, password="not the password at all")
    assert response.status_code == 401
    assert "That user name and password do not match." in response.text
    assert "aihp_session" not in response.headers.get("set-cookie", "")
    assert not signed_in(client)


def test_an_unknown_user_gets_exactly_the_answer_of_a_wrong_password(client, anna):
    wrong = log_in(client, password="not the password at all")
    unknown = log_in(client, name="nobody-here", password="not the password at all")
    assert (unknown.status_code, _message(unknown)) == (wrong.status_code, _message(wrong))


def test_repeated_failures_lock_the_account_even_for_the_right_password(client, anna, clock):
    for _ in range(POLICY.max_failures - 1):
        assert log_in(client, password="guess guess guess").status_code == 401
    locked = log_in(client, password="guess guess guess")
    assert locked.status_code == 429 and "locked for 15 minutes" in locked.text
    assert log_in(client).status_code == 429
    clock.advance(POLICY.lockout + timedelta(seconds=1))
    assert log_in(client).status_code == 303


def test_an_unknown_name_is_locked_out_exactly_like_a_known_one(client, anna):
    answers = {}
    for name in ("anna", "nobody-here"):
        for _ in range(POLICY.max_failures):
            last = log_in(client, name=name, password="guess guess guess")
        answers[name] = (last.status_code, _message(last))
    assert answers["anna"] == answers["nobody-here"]
    assert answers["anna"][0] == 429


def test_failures_outside_the_window_do_not_add_up(client, anna, clock):
    for _ in range(POLICY.max_failures - 1):
        log_in(client, password="guess guess guess")
    clock.advance(POLICY.failure_window + timedelta(minutes=1))
    assert log_in(client, password="guess guess guess").status_code == 401
    assert log_in(client).status_code == 303


def test_a_session_ends_after_idle_minutes(client, anna, clock):
    log_in(client)
    clock.advance(POLICY.session_idle - timedelta(minutes=1))
    assert signed_in(client)
    clock.advance(POLICY.session_idle + timedelta(seconds=1))
    assert not signed_in(client)


def test_an_active_session_still_ends_at_its_absolute_limit(client, anna, clock):
    log_in(client)
    step, elapsed = POLICY.session_idle / 2, timedelta(0)
    while elapsed + step < POLICY.session_lifetime:
        clock.advance(step)
        elapsed += step
        assert signed_in(client), elapsed
    clock.advance(step)
    assert not signed_in(client)


def test_logging_out_revokes_the_session_on_the_server(client, anna, uow_factory):
    log_in(client)
    cookie = client.cookies["aihp_session"]
    csrf = CSRF.search(client.get("/ui/queues").text).group(1)
    assert client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("aihp_session", cookie, path="/ui")  # a copy of the cookie, kept
    assert not signed_in(client)
    with uow_factory() as uow:
        assert uow.session.execute(select(login_sessions.c.revoked_at)).scalar_one() is not None
    assert "logout" in [r["action"] for r in audit_rows(uow_factory)]


def test_the_cookie_carries_a_random_session_id_never_the_token(client, callers, uow_factory):
    token = callers.tokens["coordinator"]["token"]
    assert post_login(client, token=token).status_code == 303
    cookie = client.cookies["aihp_session"]
    assert token not in cookie and len(cookie) >= 40
    with uow_factory() as uow:
        stored = uow.session.execute(select(login_sessions.c.session_hash)).scalar_one()
    assert cookie not in stored
    assert signed_in(client)
    access.revoke_token(uow_factory(), "test", callers.tokens["coordinator"]["id"])
    assert not signed_in(client)  # a session opened with a token ends with it


def test_the_login_form_needs_its_csrf_token(client, anna):
    client.get("/ui/login")
    forged = client.post(
        "/ui/login", data={"username": "anna", "password": PASSWORD}, follow_redirects=False
    )
    assert forged.status_code == 403 and "aihp_session" not in forged.headers.get("set-cookie", "")


def test_an_admin_creates_a_user_with_a_password_who_can_log_in(client, callers):
    body = {"name": "ben", "role": "clinician", "site": "north", "password": PASSWORD}
    created = client.post("/users", json=body, headers=callers["admin"])
    assert created.status_code == 201, created.text
    assert PASSWORD not in created.text and "password" not in created.json()
    assert log_in(client, name="ben").status_code == 303


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 12 characters"),
        ("Ben-Smith-123", "must not be the user name"),
        (" spaced passphrase ", "begin or end with a space"),
        ("\ud800" * 12, "valid text"),
    ],
)
def test_the_password_policy_is_enforced(client, callers, password, reason):
    body = {"name": "ben-smith-123", "role": "clinician", "site": "north", "password": password}
    headers = {**callers["admin"], "Content-Type": "application/json"}
    refused = client.post("/users", content=json.dumps(body), headers=headers)  # \ud800 escaped
    assert refused.status_code == 422 and reason in refused.json()["detail"]
    assert password.strip() not in refused.text


def test_only_an_admin_creates_users(client, callers):
    body = {"name": "eve", "role": "admin", "password": PASSWORD}
    for caller in ("coordinator", "clinician", "auditor"):
        assert client.post("/users", json=body, headers=callers[caller]).status_code == 403


def test_a_new_password_ends_open_sessions_and_lifts_a_lockout(client, anna, uow_factory):
    log_in(client)
    assert signed_in(client)
    fresh = "a brand new passphrase"
    sign_in.set_password(uow_factory(), "test", "anna", fresh, POLICY)
    assert not signed_in(client)
    for _ in range(POLICY.max_failures):
        log_in(client, password="guess guess guess")
    sign_in.set_password(uow_factory(), "test", "anna", PASSWORD, POLICY)
    assert log_in(client).status_code == 303


def test_the_service_answers_in_its_own_errors(uow_factory, anna):
    with pytest.raises(WrongCredentials):
        sign_in.sign_in(uow_factory(), "anna", "wrong wrong wrong", POLICY)
    strict = SignInPolicy(max_failures=1)
    with pytest.raises(AccountLocked):
        sign_in.sign_in(uow_factory(), "anna", "wrong wrong wrong", strict)
    with pytest.raises(InvalidInput):
        sign_in.set_password(uow_factory(), "test", "anna", "anna", POLICY)


def test_logins_lockouts_and_logouts_are_audited_without_the_password(
    client, anna, uow_factory, caplog
):
    caplog.set_level(logging.DEBUG)
    typed = "wrong horse battery staple"
    for _ in range(POLICY.max_failures):
        log_in(client, password=typed)
    log_in(client, name="nobody-typed-this", password=typed)
    sign_in.set_password(uow_factory(), "test", "anna", "another good passphrase", POLICY)
    log_in(client, password="another good passphrase")
    csrf = CSRF.search(client.get("/ui/queues").text).group(1)
    client.post("/ui/logout", data={"csrf": csrf})
    rows = audit_rows(uow_factory)
    actions = [r["action"] for r in rows]
    for action in ("login_failed", "login_locked", "password_set", "login_succeeded", "logout"):
        assert action in actions
    dumped = repr(rows) + caplog.text
    for secret in (PASSWORD, typed, "another good passphrase", "nobody-typed-this"):
        assert secret not in dumped
    failed = [r for r in rows if r["action"] == "login_failed"]
    assert {r["detail"]["reason"] for r in failed} >= {"wrong-password", "unknown-user"}


def _message(response) -> str:
    found = re.search(r'role="alert"[^>]*>([^<]+)<', response.text)
    return found.group(1) if found else ""


def test_a_new_login_in_the_same_browser_ends_its_previous_session(client, anna):
    log_in(client)
    first = client.cookies["aihp_session"]
    log_in(client)
    assert client.cookies["aihp_session"] != first
    client.cookies.set("aihp_session", first, path="/ui")
    assert not signed_in(client)


def test_failed_names_are_forgotten_once_their_window_is_over(client, anna, clock, uow_factory):
    for name in ("sprayed-1", "sprayed-2", "sprayed-3"):
        log_in(client, name=name, password="guess guess guess")
    clock.advance(POLICY.failure_window + timedelta(minutes=1))
    log_in(client, name="sprayed-4", password="guess guess guess")
    assert log_in(client).status_code == 303
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count()).select_from(login_throttle)).scalar() == 1


def test_an_admin_sets_a_new_password_over_the_api_and_old_sessions_end(client, anna, callers):
    log_in(client)
    fresh = {"password": "a passphrase from the admin"}
    url = f"/users/{anna['id']}/password"
    assert client.post(url, json=fresh, headers=callers["coordinator"]).status_code == 403
    assert client.post(url, json=fresh, headers=callers["coordinator-south"]).status_code == 403
    answer = client.post(url, json=fresh, headers=callers["admin"])
    assert answer.status_code == 200 and fresh["password"] not in answer.text
    assert not signed_in(client)
    assert log_in(client).status_code == 401
    assert log_in(client, password=fresh["password"]).status_code == 303


def test_the_cookie_is_secure_whenever_the_page_is_served_over_https(app, anna):
    with TestClient(app, base_url="https://testserver") as secure:
        secure.headers["Origin"] = "https://testserver"
        response = log_in(secure)
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
