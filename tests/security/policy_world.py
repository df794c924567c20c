"""The world the policy matrix runs in: one app and database per module (`world`, a fixture
the matrix modules import), a user for every role at `north`, at `south` and without a site,
and a fresh patient, work item, lab record and managed user for every case.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from engine.adapters.database import make_engine, session_factory
from engine.adapters.mail import LocalMailbox
from engine.adapters.migrate import upgrade
from engine.adapters.reminder_tables import coordinator_items
from engine.clock import ManualClock
from engine.config import Settings
from engine.services import access
from engine.services import patients as patient_service
from engine.services.access_policy import ROLES, Principal
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy
from engine.services.unit_of_work import SqlAlchemyUnitOfWork
from tests.api.conftest import Callers

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: Where a caller stands relative to the resource (which is always at `north`).
SITES: dict[str, str | None] = {"own site": "north", "other site": "south", "no site": None}


def caller_name(role: str, where: str) -> str:
    return f"{role}-{where.replace(' ', '-')}"


#: Every (role, where) a user can exist for: a coordinator always has a site.
CALLERS = [
    (role, where)
    for role in ROLES
    for where in SITES
    if not (role == "coordinator" and not SITES[where])
]


@dataclass
class World:
    """One app on one database shared by a module's cases, and a user per role and site."""

    app: FastAPI
    client: TestClient
    uow_factory: Any
    clock: ManualClock
    callers: Callers
    mail_dir: str
    made: dict[str, int] = field(default_factory=dict)

    def principal(self, name: str) -> Principal:
        user = self.callers.users[name]
        return Principal(user["id"], user["name"], user["role"], user["site"])

    def token(self, name: str) -> str:
        return self.callers.tokens[name]["token"]

    def serial(self, kind: str) -> int:
        self.made[kind] = self.made.get(kind, 0) + 1
        return self.made[kind]

    def patient(self, site: str = "north") -> str:
        """A fresh patient at `site` with its screening work items in the queue."""
        status = patient_service.enrol_patient(
            self.uow_factory(),
            "test",
            site=site,
            clinician="dr-a",
            birth_date=date(1979, 4, 2),
            sex="F",
            weight_kg=64,
            given_name="Ada",
            family_name="Example",
            email="ada@example.org",
        )
        dispatch_due_reminders(self.uow_factory, LocalMailbox(self.mail_dir), DeliveryPolicy())
        return status["patient_id"]

    def item(self, patient_id: str) -> dict[str, Any]:
        """A live coordinator item of the patient."""
        with self.uow_factory() as uow:
            row = uow.session.execute(
                select(coordinator_items).where(coordinator_items.c.patient_id == patient_id)
            ).first()
        return dict(row._mapping)

    def lab_record(self, patient_id: str) -> str:
        """A recorded ALT result of the patient (an Observation to read)."""
        outcome = patient_service.record_lab_result(
            self.uow_factory(), "test", patient_id, code="ALT", value=80, unit="U/L"
        )
        return outcome["record_id"]

    def cds_card(self, patient_id: str) -> str:
        """The id of a card the north EHR's order-sign review gave for the patient."""
        response = self.client.post(
            "/cds-services/aih-order-sign",
            json=cds_hook_request(patient_id),
            headers={"Authorization": f"Bearer {self.token('ehr-own-site')}"},
        )
        assert response.status_code == 200, response.text
        return response.json()["cards"][0]["uuid"]

    def user(self, site: str = "north", role: str = "clinician") -> dict[str, Any]:
        """A fresh user (and one token of theirs) for the admin routes to manage."""
        name = f"managed-{self.serial('user')}"
        made = access.create_user(self.uow_factory(), "test", name=name, role=role, site=site)
        token = access.issue_token(self.uow_factory(), "test", made["id"])
        return {**made, "token_id": token["id"], "token": token["token"]}


def cds_hook_request(patient_id: str) -> dict[str, Any]:
    """An order-sign request for budesonide 9 mg/day (a warning card without high steroid risk)."""
    budesonide = {
        "resourceType": "MedicationRequest",
        "id": "bud-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "budesonide 3 mg capsule"},
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 3, "code": "mg"}}],
            }
        ],
    }
    draft_orders = {"resourceType": "Bundle", "entry": [{"resource": budesonide}]}
    return {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/1",
            "patientId": patient_id,
            "draftOrders": draft_orders,
        },
    }


def origin(client: TestClient) -> dict[str, str]:
    """The Origin header of a form the pages themselves served."""
    return {"Origin": str(client.base_url).rstrip("/")}


def log_in(client: TestClient, token: str) -> str:
    """Log in through the login form, as a browser does; the CSRF token of the session's forms."""
    form = client.get("/ui/login")
    fields = {"token": token}
    if found := CSRF.search(form.text):
        fields["csrf"] = found.group(1)
    response = client.post("/ui/login", data=fields, headers=origin(client), follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/ui/pathway")  # or the 403 page: both carry the log-out form
    return CSRF.search(page.text).group(1)


@pytest.fixture(scope="module", name="world")
def world_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("security")
    url = f"sqlite:///{folder / 'security.db'}"
    upgrade(url)
    clock = ManualClock()
    engine = make_engine(url)
    uow_factory = partial(SqlAlchemyUnitOfWork, session_factory(engine), clock)
    app = create_app(Settings(database_url=url), clock, dispatch=False)
    callers = Callers()
    callers.add(uow_factory, "expired", "clinician", None, days=1)
    clock.advance(days=2)
    for role, where in CALLERS:
        callers.add(uow_factory, caller_name(role, where), role, SITES[where])
    callers.add(uow_factory, "revoked", "clinician", None)
    access.revoke_token(uow_factory(), "test", callers.tokens["revoked"]["id"])
    https = "https://testserver"  # the session cookie may be Secure
    with TestClient(app, base_url=https, raise_server_exceptions=False) as test_client:
        yield World(app, test_client, uow_factory, clock, callers, tempfile.mkdtemp(dir=folder))
    engine.dispose()
