"""No log line carries patient data: a whole session through every surface, with a PHI-like
marker in every field a caller controls, and the captured logs never show it.

The session enrols (JSON and FHIR), records labs, events and orders (accepted and refused),
asks a what-if, posts Bundles, works the queue (complete with a note, snooze with a reason),
uses the pages (login with a bad token, an order form), runs a dispatch round for a patient
whose name and external id carry CR/LF, and meets an unexpected error on a page and in the
API whose message quotes the marker.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import update

from engine.adapters.mail import LocalMailbox
from engine.adapters.orm import patients
from engine.domain.errors import InvalidInput
from engine.services import patients as service
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy
from tests.api.conftest import ENROLMENT
from tests.api.fhir_resources import patient as fhir_patient
from tests.api.fhir_resources import quantity, transaction

MARK = "ZZMARKER"
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test client's own request lines, not the server's
ALT = "1742-6"


def marked(text: str = "") -> str:
    return f"{MARK}{text}"


@pytest.fixture
def captured(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_a_whole_session_with_phi_markers_everywhere_leaves_none_in_the_logs(
    client, callers, uow_factory, clock, captured, monkeypatch, tmp_path
):
    clinician, lab = callers["clinician"], callers["lab-interface"]
    enrolment = {
        **ENROLMENT,
        "given_name": marked("Ada"),
        "family_name": marked("Example"),
        "external_id": marked("-EXT-1"),
        "email": f"{MARK.lower()}@example.org",
        "contact_preferences": {"channel": marked()},
    }
    enrolled = client.post("/patients", json=enrolment, headers=clinician)
    assert enrolled.status_code == 201, enrolled.text
    patient = enrolled.json()["patient_id"]

    answers = [
        client.post(
            "/patients", json={**enrolment, "external_id": marked("\r\n")}, headers=clinician
        ),
        client.post("/patients", json={**enrolment, "site": marked()}, headers=clinician),
        client.post(
            f"/patients/{patient}/labs",
            json={"code": marked(), "value": 1, "unit": "U/L"},
            headers=clinician,
        ),
        client.post(
            f"/patients/{patient}/labs",
            json={"code": "ALT", "value": marked(), "unit": "U/L"},
            headers=clinician,
        ),
        client.post(
            f"/patients/{patient}/labs",
            json={"code": "ALT", "value": 420, "unit": "U/L", "source": marked()},
            headers=clinician,
        ),
        client.post(
            f"/patients/{patient}/events",
            json={"kind": marked(), "data": {"note": marked()}},
            headers=clinician,
        ),
        client.post(
            f"/patients/{patient}/orders",
            json={"drug": marked(), "mg_per_day": 30},
            headers=clinician,
        ),
        client.post(
            f"/patients/{patient}/orders",
            json={"drug": "budesonide", "mg_per_day": 9, "route": marked()},
            headers=clinician,
        ),
        client.post(
            f"/patients/{patient}/what-if",
            json={"kind": "lab", "code": marked(), "value": 1, "unit": "U/L"},
            headers=clinician,
        ),
        client.get(f"/patients/{marked()}", headers=clinician),
        client.get("/patients", params={"site": marked(), "state": marked()}, headers=clinician),
        client.get("/patients", headers={"Authorization": f"Bearer {marked()}"}),
        client.post(
            "/fhir/Patient",
            json={
                **fhir_patient("north"),
                "name": [{"family": marked(), "given": [marked()]}],
                "identifier": [{"value": marked()}],
            },
            headers=clinician,
        ),
        client.post(
            "/fhir/Observation",
            json={**quantity(patient, ALT, 80, marked()), "effectiveDateTime": marked()},
            headers=lab,
        ),
        client.post(
            "/fhir/Observation",
            json={**quantity(patient, ALT, 80, "U/L"), "note": [{"text": marked()}]},
            headers=lab,
        ),
        client.post(
            "/fhir",
            json=transaction(
                quantity(marked(), ALT, 80, "U/L"), quantity(patient, ALT, 1e308, "U/L")
            ),
            headers=lab,
        ),
        client.post(
            "/fhir",
            json={**transaction(quantity(patient, marked(), 80, "U/L")), "type": "batch"},
            headers=lab,
        ),
        client.get(f"/fhir/Patient/{patient}", headers=clinician),
    ]
    assert all(a.status_code < 500 for a in answers), [
        (a.status_code, a.text) for a in answers if a.status_code >= 500
    ]

    items = client.get("/queues", headers=callers["coordinator"]).json()["items"]
    for item in items[:2]:
        client.post(f"/queues/items/{item['id']}/claim", json={}, headers=callers["coordinator"])
    if items:
        client.post(
            f"/queues/items/{items[0]['id']}/complete",
            json={"note": marked("\nline two")},
            headers=callers["coordinator"],
        )
        until = (clock.now() + timedelta(days=3)).isoformat()
        client.post(
            f"/queues/items/{items[-1]['id']}/snooze",
            json={"until": until, "reason": marked()},
            headers=callers["coordinator"],
        )

    # the pages: a bad login, then a real one and an order form with marked fields
    from tests.api.test_pages import CSRF, post_login

    client.headers["Origin"] = str(client.base_url).rstrip("/")
    post_login(client, marked("-token"))
    post_login(client, callers.tokens["clinician"]["token"])
    csrf = CSRF.search(client.get(f"/ui/patients/{patient}").text).group(1)
    client.post(
        f"/ui/patients/{patient}/orders",
        data={"csrf": csrf, "drug": marked(), "mg_per_day": marked()},
    )
    client.post(f"/ui/patients/{patient}/orders", data={"csrf": csrf, "drug": marked("\x00")})
    client.get(f"/ui/patients/{marked()}")

    # an unexpected error whose message quotes the marker, on a page and in the API
    from api.pages import patient as patient_page

    def broken(*_, **__):
        raise ValueError(marked(" Ada Example 1979-04-02"))

    monkeypatch.setattr(patient_page, "timeline_figure", broken)
    assert client.get(f"/ui/patients/{patient}").status_code == 500
    monkeypatch.setattr(service, "patient_history", broken)
    assert client.get(f"/patients/{patient}/history", headers=clinician).status_code == 500

    # a dispatch round for a patient whose name and external id carry CR/LF: refused at
    # enrolment, so written as a legacy record would hold it
    details = {
        "site": "north",
        "clinician": "dr-a",
        "birth_date": "1979-04-02",
        "sex": "F",
        "weight_kg": 64,
        "email": f"{MARK.lower()}2@example.org",
    }
    with pytest.raises(InvalidInput):
        service.enrol_patient(uow_factory(), "dr-test", **details, external_id=marked("\r\n"))
    legacy = service.enrol_patient(uow_factory(), "dr-test", **details)["patient_id"]
    with uow_factory() as uow:
        uow.session.execute(
            update(patients)
            .where(patients.c.id == legacy)
            .values(given_name=marked("\r\nBcc: x@evil.example"), external_id=marked("\r\n"))
        )
        uow.session.commit()
    clock.advance(timedelta(days=30))
    dispatch_due_reminders(uow_factory, LocalMailbox(tmp_path / "mail"), DeliveryPolicy())

    server_side = [r for r in captured.records if not r.name.startswith(CLIENT_LOGGERS)]
    logged = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in server_side
    )
    assert captured.records, "the session logged nothing at all: the capture is not working"
    assert "unhandled ValueError" in logged
    assert MARK not in logged and MARK.lower() not in logged
    assert not [r for r in server_side if r.exc_info], "a traceback was logged"
