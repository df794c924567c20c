"""The demo's care team: the cohort's clinicians with example emails, one user per role with a
demo-only password and a token, and one dispatch round so the queues and the outbox have
something in them.

Used by `aihp demo` after it has seeded the synthetic cohort, and by the browser tests.
Everything goes through the services (care-team directory, access, dispatch), as any
deployment would.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass

from engine.adapters.mail import Mailer
from engine.bootstrap import UnitOfWorkFactory
from engine.services import access
from engine.services.care_team import register_clinician
from engine.services.dispatch import dispatch_due_reminders
from engine.services.patients import review_due_patients
from engine.services.reminders import DeliveryPolicy
from engine.services.sign_in import SignInPolicy, set_password
from simulation import CLINICIANS, SITES

ACTOR = "demo"
#: The demo users: (name, role, site). The coordinator works at one site.
DEMO_USERS = (
    ("coordinator-north", "coordinator", SITES[0]),
    (CLINICIANS[0], "clinician", None),
    ("auditor", "auditor", None),
    ("admin", "admin", None),
)


@dataclass(frozen=True)
class DemoLogin:
    """A demo user, the password to log in to the pages with (demo only: a new random one each
    time the demo starts) and an API token."""

    name: str
    role: str
    site: str | None
    password: str
    token: str


def register_cohort_clinicians(uow_factory: UnitOfWorkFactory) -> int:
    """Put every clinician of the synthetic cohort in the directory with an example email."""
    for clinician in CLINICIANS:
        surname = clinician.removeprefix("dr-")
        register_clinician(
            uow_factory(),
            ACTOR,
            clinician,
            name=f"Dr {surname.capitalize()}",
            email=f"{surname}@clinic.example.org",
        )
    return len(CLINICIANS)


def create_demo_logins(
    uow_factory: UnitOfWorkFactory, policy: SignInPolicy, days: int = 30
) -> list[DemoLogin]:
    """One user per role in DEMO_USERS (created if missing), each with a fresh random demo
    password (their earlier sessions end) and a fresh token."""
    existing = {user["name"] for user in access.list_users(uow_factory())}
    logins = []
    for name, role, site in DEMO_USERS:
        if name not in existing:
            access.create_user(uow_factory(), ACTOR, name=name, role=role, site=site)
        password = f"demo-{secrets.token_urlsafe(12)}"
        set_password(uow_factory(), ACTOR, name, password, policy)
        token = access.issue_token(uow_factory(), ACTOR, name, days=days)["token"]
        logins.append(DemoLogin(name, role, site, password, token))
    return logins


def dispatch_round(
    uow_factory: UnitOfWorkFactory, mailer: Mailer, policy: DeliveryPolicy
) -> Counter[str]:
    """What the in-process dispatcher does each round: due reviews, then due reminders."""
    review_due_patients(uow_factory, actor="system:review")
    return dispatch_due_reminders(uow_factory, mailer, policy)
