"""Logging in to the pages in a real browser: a user name and password, the message for a wrong
one, the lockout after repeated failures, and logging out (the old session no longer works)."""

from __future__ import annotations

import re
from itertools import count

import pytest
from playwright.sync_api import expect

from engine.services import access
from engine.services.sign_in import SignInPolicy
from tests.e2e.accessibility import assert_accessible

PASSWORD = "nurse-station-passphrase"
_serial = count(1)


@pytest.fixture
def nurse(demo) -> str:
    """A new coordinator at north with a password (its own name, so a lockout locks no one
    else's login)."""
    name = f"e2e-nurse-{next(_serial)}"
    policy = SignInPolicy.from_settings(demo.settings)
    access.create_user(
        demo.uow_factory(),
        "e2e",
        name=name,
        role="coordinator",
        site="north",
        password=PASSWORD,
        password_policy=policy,
    )
    return name


def _submit(page, demo, name: str, password: str) -> None:
    page.goto(f"{demo.url}/ui/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_load_state()


def test_a_coordinator_logs_in_with_user_name_and_password(page, demo, nurse, screenshot):
    page.goto(f"{demo.url}/ui/login")
    assert_accessible(page, context="login form")
    _submit(page, demo, nurse, PASSWORD)
    expect(page).to_have_url(f"{demo.url}/ui/queues")
    expect(page.locator("header")).to_contain_text(f"{nurse} · coordinator · site north")
    cookie = next(c for c in page.context.cookies() if c["name"] == "aihp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert PASSWORD not in cookie["value"] and len(cookie["value"]) >= 40
    screenshot(page, "login-01-signed-in")


def test_a_wrong_password_says_so_and_keeps_the_user_name(page, demo, nurse, screenshot):
    _submit(page, demo, nurse, "not-the-right-passphrase")
    expect(page).to_have_url(f"{demo.url}/ui/login")
    expect(page.get_by_role("alert")).to_have_text("That user name and password do not match.")
    expect(page.get_by_label("User name")).to_have_value(nurse)
    expect(page.get_by_label("Password")).to_be_focused()
    assert_accessible(page, context="login form with a wrong password")
    screenshot(page, "login-02-wrong-password")


def test_repeated_failures_lock_the_account_with_a_message(page, demo, nurse, screenshot):
    policy = SignInPolicy.from_settings(demo.settings)
    for _ in range(policy.max_failures):
        _submit(page, demo, nurse, "guessing-the-passphrase")
    locked = page.get_by_role("alert")
    expect(locked).to_contain_text("Too many failed attempts")
    expect(locked).to_contain_text(re.compile(r"locked for \d+ minutes"))
    _submit(page, demo, nurse, PASSWORD)  # even the right password, while locked
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")
    expect(page).to_have_url(f"{demo.url}/ui/login")
    screenshot(page, "login-03-locked")


def test_logging_out_ends_the_session_on_the_server(page, demo, nurse):
    _submit(page, demo, nurse, PASSWORD)
    expect(page).to_have_url(f"{demo.url}/ui/queues")
    session = next(c for c in page.context.cookies() if c["name"] == "aihp_session")
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    assert_accessible(page, context="login form after logging out")
    page.context.add_cookies([session])  # a copy of the old cookie is no way back in
    page.goto(f"{demo.url}/ui/queues")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/queues"))
