"""Adversarial review of the surfaces added last: password login and sessions, patient search,
the clinician's own-patients queue scope, keyset cursors, and PHI in audit lines and logs.

Each test is a probe an attacker would try (another site, the wrong role, another clinician, a
forged cursor, an open redirect, a revoked token's session), answered as it should be.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from engine.adapters.mail import LocalMailbox
from engine.adapters.orm import audit_log
from engine.adapters.reminder_tables import coordinator_items
from engine.services import access
from engine.services import patients as patient_service
from engine.services.dispatch import dispatch_due_reminders
from engine.services.reminders import DeliveryPolicy

ORIGIN = {"Origin": "http://testserver"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
#: A family name that appears nowhere else, to look for in audit lines and logs.
SEARCHED = "Zwackelmann"


def _enrol(uow_factory, tmp_path, *, clinician: str, site: str = "north", family: str = "Example"):
    """A patient of `clinician` with their screening work items in the queue."""
    status = patient_service.enrol_patient(
        uow_factory(),
        "test",
        site=site,
        clinician=clinician,
        birth_date=date(1979, 4, 2),
        sex="F",
        weight_kg=64,
        given_name="Ada",
        family_name=family,
        email="ada@example.org",
    )
    dispatch_due_reminders(uow_factory, LocalMailbox(str(tmp_path / "mail")), DeliveryPolicy())
    return status["patient_id"]


def _log_in(client, token: str, next_path: str | None = None):
    """Log in through the form with an API token; the redirect answer."""
    form = client.get("/ui/login")
    fields = {"token": token, "csrf": CSRF.search(form.text).group(1)}
    if next_path is not None:
        fields["next"] = next_path
    return client.post("/ui/login", data=fields, headers=ORIGIN, follow_redirects=False)


@pytest.fixture
def two_clinicians(client, callers, uow_factory, tmp_path) -> SimpleNamespace:
    """Clinicians dr-a and dr-b at north (their user names are their clinician ids), a patient
    of each, and a south patient of dr-a's namesake."""
    for name in ("dr-a", "dr-b"):
        callers.add(uow_factory, name, "clinician", "north")
    patients = {
        "a": _enrol(uow_factory, tmp_path, clinician="dr-a"),
        "b": _enrol(uow_factory, tmp_path, clinician="dr-b"),
        "south": _enrol(uow_factory, tmp_path, clinician="dr-a", site="south"),
    }
    return SimpleNamespace(callers=callers, patients=patients)


def _items_of(uow_factory, patient_id: str) -> set[str]:
    with uow_factory() as uow:
        rows = uow.session.execute(
            select(coordinator_items.c.id).where(coordinator_items.c.patient_id == patient_id)
        )
        return {row.id for row in rows}


# ---- the clinician's scope: their own patients' items, on every surface ----------------------


def test_a_clinician_sees_only_their_own_patients_items_on_the_api_page_and_cli(
    client, two_clinicians, uow_factory, database_url, monkeypatch
):
    from cli.main import app as cli_app
    from engine.config import get_settings

    callers, patients = two_clinicians.callers, two_clinicians.patients
    own = _items_of(uow_factory, patients["a"])
    others = _items_of(uow_factory, patients["b"]) | _items_of(uow_factory, patients["south"])
    assert own and others

    listing = client.get("/queues", headers=callers["dr-a"]).json()
    api_seen = {item["id"] for item in listing["items"]}
    asked_for_b = client.get("/queues", params={"clinician": "dr-b"}, headers=callers["dr-a"])

    assert _log_in(client, callers.tokens["dr-a"]["token"]).status_code == 303
    page = client.get("/ui/queues").text

    monkeypatch.setenv("AIHP_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        user_id = callers.users["dr-a"]["id"]  # the CLI reads the wall clock, not the test's
        token = access.issue_token(uow_factory(), "test", user_id, days=3650)["token"]
        result = CliRunner().invoke(cli_app, ["queue", "list", "--token", token])
        completed = CliRunner().invoke(
            cli_app, ["queue", "list", "--view", "completed", "--token", token]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, (result.exit_code, result.output, result.stderr)
    cli_seen = {item["id"] for item in json.loads(result.output)["items"]}

    assert api_seen == own
    assert asked_for_b.status_code == 422
    assert all(item not in page for item in others) and any(item in page for item in own)
    assert result.exit_code == 0 and cli_seen == own
    assert completed.exit_code == 0 and json.loads(completed.output)["view"] == "completed"


def test_a_clinician_sees_only_their_own_patients_items_as_fhir_tasks(
    client, two_clinicians, uow_factory
):
    callers, patients = two_clinicians.callers, two_clinicians.patients
    others = _items_of(uow_factory, patients["b"])

    bundle = client.get("/fhir/Task", headers=callers["dr-a"]).json()
    seen = {entry["resource"]["id"].removeprefix("item-") for entry in bundle.get("entry", [])}

    assert seen and not seen & others


# ---- forged keyset cursors -------------------------------------------------------------------


def _cursor(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("view", "sort", "keys"),
    [
        ("live", "urgency", [False, "0001-01-01T00:00:00+00:00", ""]),
        ("live", "due", ["0001-01-01T00:00:00+00:00", ""]),
        ("completed", "due", ["9999-01-01T00:00:00+00:00", "~"]),
    ],
)
def test_a_forged_queue_cursor_reads_no_other_sites_items(
    client, two_clinicians, uow_factory, view, sort, keys
):
    south = _items_of(uow_factory, two_clinicians.patients["south"])
    cursor = _cursor([view, sort, *keys])

    answer = client.get(
        "/queues",
        params={"view": view, "sort": sort, "cursor": cursor},
        headers=two_clinicians.callers["coordinator"],  # north
    )

    assert answer.status_code == 200, answer.text
    assert not {item["id"] for item in answer.json()["items"]} & south
    assert all(item["site"] == "north" for item in answer.json()["items"])


def test_forged_patient_and_observation_cursors_read_no_other_sites_rows(
    client, two_clinicians, uow_factory
):
    before_everyone = _cursor(["", "", ""])
    callers = two_clinicians.callers
    south = two_clinicians.patients["south"]
    patient_service.record_lab_result(
        uow_factory(), "test", south, code="ALT", value=80, unit="U/L"
    )
    newest = base64.urlsafe_b64encode(b"2199-01-01T00:00:00+00:00 zzzz").decode()

    api = client.get("/patients", params={"cursor": before_everyone}, headers=callers["dr-a"])
    fhir = client.get("/fhir/Patient", params={"_cursor": before_everyone}, headers=callers["dr-a"])

    assert api.status_code == 200, api.text
    assert {p["site"] for p in api.json()["items"]} == {"north"}
    assert two_clinicians.patients["south"] not in api.text
    everyone = client.get(
        "/patients", params={"cursor": before_everyone}, headers=callers["clinician-anywhere"]
    )
    assert south in everyone.text  # the forged cursor does reach the row for a global caller
    assert two_clinicians.patients["south"] not in fhir.text
    observations = client.get(
        "/fhir/Observation", params={"_cursor": newest}, headers=callers["dr-a"]
    )
    assert observations.status_code == 200, observations.text
    assert south not in observations.text
    unscoped = client.get(
        "/fhir/Observation", params={"_cursor": newest}, headers=callers["clinician-anywhere"]
    )
    assert south in unscoped.text  # the probe can see the row when the caller may


# ---- login -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wanted",
    [
        "//evil.example/ui/queues",
        "https://evil.example/ui/queues",
        "/\\evil.example",
        "\\\\evil.example",
        "/ui\\@evil.example",
        "/ui@evil.example",
        "/uievil.example",
        "/ui/%0d%0aLocation:%20https://evil.example",
        "/ui/\r\nSet-Cookie: aihp_session=x",
        "javascript:alert(1)",
    ],
)
def test_login_never_sends_the_browser_off_this_site(client, callers, wanted):
    answer = _log_in(client, callers.tokens["coordinator"]["token"], wanted)

    location = answer.headers["location"]
    assert answer.status_code == 303
    assert location.startswith("/ui/") and not location.startswith(("//", "/\\"))
    assert "\r" not in location and "\n" not in location
    assert "set-cookie: aihp_session=x" not in str(answer.headers).casefold()


def test_a_session_opened_with_a_token_ends_when_the_token_is_revoked(client, callers):
    token = callers.tokens["coordinator"]
    assert _log_in(client, token["token"]).status_code == 303
    assert client.get("/ui/queues").status_code == 200

    revoked = client.post(
        f"/users/{token['user_id']}/tokens/{token['id']}/revoke", headers=callers["admin"]
    )

    assert revoked.status_code == 200
    answer = client.get("/ui/queues", follow_redirects=False)
    assert answer.status_code in (303, 307) and "/ui/login" in answer.headers["location"]


# ---- searched names stay out of audit lines and logs -----------------------------------------


def test_searched_names_reach_no_audit_line_nor_log_on_any_surface(
    client, two_clinicians, uow_factory, caplog, tmp_path
):
    callers = two_clinicians.callers
    callers.add(uow_factory, "ehr", "ehr", "north")
    _enrol(uow_factory, tmp_path, clinician="dr-a", family=SEARCHED)  # a search that finds
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    before = _audit_text(uow_factory)

    answers = [
        client.get("/patients", params={"name": SEARCHED}, headers=callers["dr-a"]),
        client.get("/fhir/Patient", params={"name": SEARCHED}, headers=callers["dr-a"]),
        client.get("/patients", params={"name": SEARCHED}, headers=callers["ehr"]),  # refused
        client.get("/fhir/Patient", params={"family": SEARCHED}, headers=callers["ehr"]),
    ]
    assert _log_in(client, callers.tokens["dr-a"]["token"]).status_code == 303
    answers.append(client.get("/ui/patients", params={"name": SEARCHED}))

    assert [a.status_code for a in answers] == [200, 200, 403, 403, 200]
    assert answers[0].json()["total"] == 1 and SEARCHED in answers[4].text
    written = _audit_text(uow_factory)[len(before) :]
    assert "patient_search" in written and "access_refused" in written
    server_log = "\n".join(
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith("httpx")  # the client's
    )
    assert "/patients" in server_log
    for text in (written, server_log):
        assert SEARCHED.casefold() not in text.casefold()


def _audit_text(uow_factory) -> str:
    with uow_factory() as uow:
        rows = uow.session.execute(select(audit_log).order_by(audit_log.c.id)).all()
    return "\n".join(json.dumps(dict(row._mapping), default=str) for row in rows)


# ---- a crafted link cannot make the patient page confirm what did not happen -----------------


@pytest.mark.parametrize(
    ("query", "claim"),
    [
        ({"ordered": "azathioprine 200 mg, call 555-0100 to confirm"}, "Order placed"),
        ({"ordered": "prednisolone"}, "Order placed"),  # a drug of the pathway, never ordered
        ({"recorded": "biopsy"}, "Recorded"),
    ],
)
def test_a_crafted_link_does_not_show_an_order_or_record_that_was_not_made(
    client, two_clinicians, query, claim
):
    patient = two_clinicians.patients["a"]
    assert _log_in(client, two_clinicians.callers.tokens["dr-a"]["token"]).status_code == 303

    page = client.get(f"/ui/patients/{patient}", params=query)

    assert page.status_code == 200
    assert claim not in page.text and "555-0100" not in page.text


# ---- a bulk claim of another site's items is a refusal, audited as one claim's would be ------


def _refusals(uow_factory) -> int:
    return _audit_text(uow_factory).count('"access_refused"')


def test_a_bulk_claim_of_another_sites_items_is_audited_as_a_refusal_on_api_and_page(
    client, two_clinicians, uow_factory
):
    south = sorted(_items_of(uow_factory, two_clinicians.patients["south"]))
    coordinator = two_clinicians.callers["coordinator"]  # north
    before = _refusals(uow_factory)

    answer = client.post("/queues/items/claim", json={"item_ids": south}, headers=coordinator)
    unknown = client.post("/queues/items/claim", json={"item_ids": ["nope"]}, headers=coordinator)
    after_api = _refusals(uow_factory)
    assert _log_in(client, two_clinicians.callers.tokens["coordinator"]["token"]).status_code == 303
    csrf = CSRF.search(client.get("/ui/queues").text).group(1)
    page = client.post(
        "/ui/queues/items/claim",
        data={"csrf": csrf, **{f"pick:{item}": "on" for item in south}},
        headers=ORIGIN,
        follow_redirects=False,
    )

    assert answer.status_code == 200 and answer.json()["claimed"] == []
    assert all(r["reason"].startswith("no coordinator item") for r in answer.json()["refused"])
    assert unknown.json()["refused"][0]["reason"] == "no coordinator item with id 'nope'"
    assert after_api == before + len(south) + 1  # one row per refused item
    assert page.status_code == 303
    assert _refusals(uow_factory) == after_api + len(south)


# ---- CR/LF in search parameters is refused with its reason, never echoed into a header -------


@pytest.mark.parametrize("name", ["Ada\r\nSet-Cookie: evil=1", "Ada\nX-Injected: 1", "Ada\u2028"])
def test_line_breaks_in_a_search_are_refused_on_api_fhir_and_page(client, two_clinicians, name):
    headers = two_clinicians.callers["dr-a"]
    api = client.get("/patients", params={"name": name}, headers=headers)
    fhir = client.get("/fhir/Patient", params={"name": name}, headers=headers)
    assert _log_in(client, two_clinicians.callers.tokens["dr-a"]["token"]).status_code == 303
    page = client.get("/ui/patients", params={"name": name})

    assert (api.status_code, fhir.status_code, page.status_code) == (422, 400, 422)
    assert fhir.json()["resourceType"] == "OperationOutcome"
    assert "Cannot search" in page.text
    for answer in (api, fhir, page):
        assert "evil" not in answer.headers.get("set-cookie", "")
        assert "x-injected" not in answer.headers


# ---- every page form that changes something checks its CSRF token and origin -----------------


def _dependency_calls(dependant) -> set:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _dependency_calls(sub)
    return found


def test_every_changing_page_route_checks_its_form_and_refuses_one_without_a_token(
    client, two_clinicians, uow_factory
):
    from fastapi.routing import APIRoute, iter_route_contexts
    from starlette.routing import Mount

    from api.pages.session import checked_form

    mount = next(r for r in client.app.routes if isinstance(r, Mount) and r.path == "/ui")
    changing = [
        "/ui" + context.path
        for context in iter_route_contexts(mount.app.routes)
        if isinstance(context.original_route, APIRoute)
        and context.original_route.methods - {"GET", "HEAD"}
    ]
    unchecked = [
        "/ui" + context.path
        for context in iter_route_contexts(mount.app.routes)
        if isinstance(context.original_route, APIRoute)
        and context.original_route.methods - {"GET", "HEAD"}
        and context.path != "/login"  # its own pre-session token (tested apart)
        and checked_form not in _dependency_calls(context.original_route.dependant)
    ]
    assert len(changing) >= 7 and not unchecked

    item = sorted(_items_of(uow_factory, two_clinicians.patients["a"]))[0]
    assert _log_in(client, two_clinicians.callers.tokens["coordinator"]["token"]).status_code == 303
    csrf = CSRF.search(client.get("/ui/queues").text).group(1)
    for url in ("/ui/queues/items/claim", f"/ui/queues/items/{item}/undo", "/ui/logout"):
        without = client.post(url, data={f"pick:{item}": "on"}, headers=ORIGIN)
        foreign = client.post(
            url,
            data={"csrf": csrf, f"pick:{item}": "on"},
            headers={"Origin": "https://evil.example"},
        )
        assert (without.status_code, foreign.status_code) == (403, 403), url
    assert client.get("/ui/queues").status_code == 200  # still logged in: logout was refused


# ---- a refused recipient's address is not kept in the reminder's error -----------------------


@pytest.mark.parametrize(
    "to", ["ada.lovelace@example.org", "ada.lovelace@example.org, someone@example.org"]
)
def test_an_smtp_refusal_names_no_email_address(smtp_sink, to):
    """The error becomes the reminder's last_error, shown in audit lines, the outbox and FHIR
    Task.statusReason: it says what happened, not to whom (the address is the patient's)."""
    from email.message import EmailMessage

    from engine.adapters.mail import DeliveryError, SmtpMailer

    smtp_sink.refuse("ada")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "aihp@example.org", to, "Reminder"
    message["Message-ID"] = "<m1@example.org>"
    message.set_content("body")

    with pytest.raises(DeliveryError) as refused:
        SmtpMailer(smtp_sink.host, smtp_sink.port).send(message)

    assert "SMTP 550" in refused.value.reason
    assert "@" not in refused.value.reason and "lovelace" not in refused.value.reason


def test_a_server_reply_that_repeats_the_address_is_kept_without_it():
    import smtplib

    from engine.adapters import mail

    echoed = smtplib.SMTPResponseException(550, b"5.1.1 <ada@example.org>: user unknown")

    assert mail._describe(echoed) == "SMTP 550: 5.1.1 <address>: user unknown"


# ---- a wrong token typed into the login form is audited like a wrong password ----------------


def test_a_failed_token_login_is_audited_without_the_token(client, callers, uow_factory):
    form = client.get("/ui/login")
    fields = {"token": "guessed-token-value", "csrf": CSRF.search(form.text).group(1)}
    before = _audit_text(uow_factory)

    answer = client.post("/ui/login", data=fields, headers=ORIGIN, follow_redirects=False)

    written = _audit_text(uow_factory)[len(before) :]
    assert answer.status_code == 401
    assert '"login_failed"' in written and '"method": "token"' in written
    assert "guessed-token-value" not in written
