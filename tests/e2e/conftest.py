"""Browser tests: a demo database seeded by `aihp demo --no-serve` (a small cohort), two
patients made for the scenarios, the app served by uvicorn on a free port, and Debian's
Chromium driven by Playwright (never a browser Playwright downloads).

Chromium comes from the `chromium` package (`make services` installs it). The server runs
without the in-process dispatcher so the queues hold still while a test compares them with
the database.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.demo_team import DEMO_USERS, dispatch_round
from engine.bootstrap import UnitOfWorkFactory, unit_of_work_factory
from engine.clock import ManualClock
from engine.config import Settings
from engine.services import access
from engine.services.patients import enrol_patient, record_clinical_event
from engine.services.reminders import DeliveryPolicy
from engine.services.sign_in import SignInPolicy, set_password

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
COHORT = 24

if not CHROMIUM.exists():  # `make test` installs it; a bare `pytest` on a new box may not have it
    pytest.skip(
        "needs Debian's chromium at /usr/bin/chromium (make services)", allow_module_level=True
    )


@dataclass
class Demo:
    """The served demo: its URL, database, login tokens by user name, and scenario patients."""

    url: str
    settings: Settings
    uow_factory: UnitOfWorkFactory
    tokens: dict[str, str] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)


def _aihp() -> str:
    found = Path(sys.executable).with_name("aihp")
    return str(found) if found.exists() else shutil.which("aihp") or "aihp"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scenario_patients(settings: Settings) -> dict[str, str]:
    """North patients for the scenarios: one whose transplant referral fell due yesterday
    (overdue, within its two-day grace), one whose referral is five days old (escalated), and
    one with cirrhosis still in screening (budesonide is refused for them)."""
    common: dict[str, Any] = {
        "site": "north",
        "clinician": "dr-adeyemi",
        "birth_date": "1972-05-04",
        "sex": "F",
        "weight_kg": 66,
    }
    made = {}
    for key, days, given in (("overdue", 1, "Olive"), ("escalated", 5, "Esme")):
        then = ManualClock(datetime.now(UTC) - timedelta(days=days))
        past = unit_of_work_factory(settings, then)
        enrolled = enrol_patient(past(), "e2e", **common, given_name=given, family_name=key.title())
        made[key] = enrolled["patient_id"]
        record_clinical_event(
            past(), "e2e", made[key], kind="decompensation", data={"feature": "ascites"}
        )
    now = unit_of_work_factory(settings)
    cirrhotic = enrol_patient(
        now(), "e2e", **common, facts={"cirrhosis": True}, given_name="Cora", family_name="Liver"
    )
    return {**made, "cirrhotic": cirrhotic["patient_id"]}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    import uvicorn

    from api.main import create_app
    from engine.adapters.mail import mailer_from_settings

    folder = tmp_path_factory.mktemp("e2e")
    database = folder / "demo.db"
    seeded = subprocess.run(
        [_aihp(), "demo", "--no-serve", "--patients", str(COHORT), "--path", str(database)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert seeded.returncode == 0, seeded.stdout[-2000:] + seeded.stderr[-2000:]
    assert "/ui/" in seeded.stdout and "coordinator-north" in seeded.stdout
    settings = Settings(
        database_url=f"sqlite:///{database}",
        mail_dir=folder / "demo-mail",
        cookie_secure=False,  # served over plain http, as the demo is
    )
    uow_factory = unit_of_work_factory(settings)
    patients = _scenario_patients(settings)
    mailer = mailer_from_settings(settings)
    dispatch_round(uow_factory, mailer, DeliveryPolicy.from_settings(settings))
    access.create_user(uow_factory(), "e2e", name="lab-feed", role="lab-interface")
    tokens = {
        name: access.issue_token(uow_factory(), "e2e", name)["token"]
        for name in [user[0] for user in DEMO_USERS] + ["lab-feed"]
    }
    passwords = {name: f"e2e-password-of-{name}" for name in tokens}
    for name, password in passwords.items():
        set_password(uow_factory(), "e2e", name, password, SignInPolicy.from_settings(settings))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, dispatch=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Demo(f"http://127.0.0.1:{port}", settings, uow_factory, tokens, patients, passwords)
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory):
    """One headless Chromium with a fresh profile for the session."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1366, "height": 900},
        )
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context):
    """A new tab with no cookies (each test logs in as whom it needs)."""
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def login(page, demo: Demo):
    """Log `page` in as a demo user through the login form (user name and password)."""

    def log_in(name: str):
        page.goto(f"{demo.url}/ui/login")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(demo.passwords[name])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        return page

    return log_in


@pytest.fixture(scope="session")
def screenshot():
    """Save a full-page screenshot under var/artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save
