"""Review R1 of "one transaction per clinical write": the admission on the loaded patient, the
If-Match / expected_version check and the Idempotency-Key stored by the write's own commit,
attacked as another site's caller, a careless client and concurrent copies would, on the
native API, the FHIR facade and the pages, on SQLite and (where it races) PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select, update

from engine.adapters.access_tables import idempotency_keys
from engine.adapters.orm import audit_log, patients
from tests.api.conftest import ENROLMENT
from tests.api.test_pages import log_in

LAB = {"code": "ALT", "value": 420, "unit": "U/L"}
BUDESONIDE = {"drug": "budesonide", "mg_per_day": 9}
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def _keys(uow_factory) -> list[str]:
    with uow_factory() as uow:
        return list(uow.session.execute(select(idempotency_keys.c.key)).scalars())


def _audit(uow_factory, patient_id: str | None = None) -> list[dict[str, Any]]:
    with uow_factory() as uow:
        query = select(audit_log).order_by(audit_log.c.id)
        if patient_id:
            query = query.where(audit_log.c.patient_id == patient_id)
        return [dict(row._mapping) for row in uow.session.execute(query)]


def _labs(uow_factory, patient_id: str) -> int:
    with uow_factory() as uow:
        return len(uow.patients.get(patient_id).labs)


def _race(send, copies: int = 4) -> list[Any]:
    start = threading.Barrier(copies)
    answers: list[Any] = []

    def one() -> None:
        start.wait()
        answers.append(send())

    threads = [threading.Thread(target=one) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


# --- If-Match and expected_version -------------------------------------------------------


@pytest.mark.parametrize(
    "if_match",
    ["current", "*", 'W/"v{stale}"'],
    ids=["if-match-current", "if-match-star", "weak-stale"],
)
def test_a_stale_body_expected_version_is_refused_whatever_if_match_says(
    client, callers, enrol, uow_factory, if_match
):
    patient = enrol()
    url = f"/patients/{patient['patient_id']}/labs"
    stale = patient["version"]
    moved = client.post(url, json=LAB, headers=callers["clinician"]).json()["version"]
    given = f'"v{moved}"' if if_match == "current" else if_match.format(stale=stale)

    answer = client.post(
        url,
        json={**LAB, "value": 300, "expected_version": stale},
        headers={**callers["clinician"], "If-Match": given},
    )

    assert answer.status_code == 412, answer.text
    assert _labs(uow_factory, patient["patient_id"]) == 1


# --- what a refusal writes and audits ------------------------------------------------------


@BOTH
def test_a_refused_status_read_audits_no_read_and_an_allowed_one_exactly_one(
    client, callers, enrol, uow_factory, database_url
):
    south = enrol("south")["patient_id"]
    north = enrol()
    before = len(_audit(uow_factory, south))

    refused = client.get(f"/patients/{south}", headers=callers["clinician"])
    reads_before = [
        r for r in _audit(uow_factory, north["patient_id"]) if r["action"] == "patient_read"
    ]
    allowed = client.get(f"/patients/{north['patient_id']}", headers=callers["clinician"])

    assert refused.status_code == 404  # a read takes no If-Match: a version is for writes
    assert len(_audit(uow_factory, south)) == before  # nothing about the patient itself
    reads = [r for r in _audit(uow_factory, north["patient_id"]) if r["action"] == "patient_read"]
    assert allowed.status_code == 200 and len(reads) == len(reads_before) + 1 == 1
    assert allowed.json()["version"] == north["version"]  # a read bumps no version


def test_another_sites_patient_and_an_unknown_id_answer_alike_on_every_read_and_write(
    client, callers, enrol, uow_factory
):
    south = enrol("south")["patient_id"]
    answers = {}
    for patient_id in (south, "no-such-patient"):
        base = f"/patients/{patient_id}"
        answers[patient_id] = [
            (r.status_code, r.json().get("detail"), r.json().get("title"))
            for r in (
                client.get(base, headers=callers["clinician"]),
                client.get(f"{base}/history", headers=callers["clinician"]),
                client.post(
                    f"{base}/what-if", json={"kind": "lab", **LAB}, headers=callers["clinician"]
                ),
                client.post(  # the site is judged before the version
                    f"{base}/labs", json=LAB, headers={**callers["clinician"], "If-Match": '"v9"'}
                ),
                client.post(f"{base}/orders", json=BUDESONIDE, headers=callers["clinician"]),
                client.post(
                    f"{base}/events", json={"kind": "pregnancy"}, headers=callers["clinician"]
                ),
            )
        ]
    shapes = {pid: [(s, t) for s, _, t in found] for pid, found in answers.items()}
    assert shapes[south] == shapes["no-such-patient"]
    assert {status for status, _ in shapes[south]} == {404}
    assert len(_audit(uow_factory, south)) == 1  # its enrolment only
    assert _labs(uow_factory, south) == 0


@pytest.mark.parametrize(
    "send, status",
    [
        (lambda c, h, p: c.post(f"/patients/{p}/orders", json=BUDESONIDE, headers=h), 422),
        (
            lambda c, h, p: c.post(f"/patients/{p}/labs", json={**LAB, "value": 1e308}, headers=h),
            422,
        ),
        (
            lambda c, h, p: c.post(
                f"/patients/{p}/labs", json=LAB, headers={**h, "If-Match": '"v999"'}
            ),
            412,
        ),
        (
            lambda c, h, p: c.post(
                f"/patients/{p}/labs", json=LAB, headers={**h, "If-Match": "bogus"}
            ),
            412,
        ),
        (
            lambda c, h, p: c.post(
                f"/patients/{p}/events", json={"kind": "no-such-event"}, headers=h
            ),
            422,
        ),
    ],
    ids=["hard-block", "implausible", "stale", "bad-etag", "unknown-event"],
)
def test_a_refused_keyed_write_stores_no_key_and_the_key_then_does_the_work(
    client, callers, enrol, uow_factory, send, status
):
    patient_id = enrol(cirrhosis=True)["patient_id"]
    headers = {**callers["clinician"], "Idempotency-Key": "refused-once"}

    refused = send(client, headers, patient_id)
    again = send(client, headers, patient_id)

    assert refused.status_code == again.status_code == status, refused.text
    assert "idempotent-replayed" not in again.headers
    assert _keys(uow_factory) == []


# --- Idempotency-Key ---------------------------------------------------------------------


def test_a_key_is_the_principals_own_and_tied_to_its_patient_and_body(
    client, callers, enrol, uow_factory
):
    patient_id = enrol()["patient_id"]
    other_id = enrol()["patient_id"]
    url = f"/patients/{patient_id}/labs"
    north = {**callers["clinician"], "Idempotency-Key": "shared"}
    anywhere = {**callers["clinician-anywhere"], "Idempotency-Key": "shared"}

    mine = client.post(url, json=LAB, headers=north)
    theirs = client.post(url, json=LAB, headers=anywhere)
    other_patient = client.post(f"/patients/{other_id}/labs", json=LAB, headers=north)
    other_body = client.post(url, json={**LAB, "value": 421}, headers=north)
    same_body_reordered = client.post(
        url, json={"unit": "U/L", "value": 420, "code": "ALT"}, headers=north
    )

    assert mine.status_code == theirs.status_code == 200
    assert "idempotent-replayed" not in theirs.headers  # not the other principal's answer
    assert theirs.json()["version"] == mine.json()["version"] + 1
    assert other_patient.status_code == other_body.status_code == 422
    assert same_body_reordered.headers.get("idempotent-replayed") == "true"
    assert _labs(uow_factory, patient_id) == 2 and _labs(uow_factory, other_id) == 0


def test_a_replayed_enrolment_keeps_its_201_and_location(client, callers, uow_factory):
    headers = {**callers["clinician"], "Idempotency-Key": "enrol-once"}

    first = client.post("/patients", json=ENROLMENT, headers=headers)
    again = client.post("/patients", json=ENROLMENT, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["etag"] == first.headers["etag"]
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count()).select_from(patients)).scalar() == 1


def test_a_replay_after_the_patient_left_the_callers_site_is_refused_like_a_stranger(
    client, callers, enrol, uow_factory
):
    patient_id = enrol()["patient_id"]
    headers = {**callers["clinician"], "Idempotency-Key": "before-the-move"}
    url = f"/patients/{patient_id}/labs"
    assert client.post(url, json=LAB, headers=headers).status_code == 200
    with uow_factory() as uow:
        uow.session.execute(
            update(patients).where(patients.c.id == patient_id).values(site="south")
        )
        uow.session.commit()

    before = _audit(uow_factory)

    again = client.post(url, json=LAB, headers=headers)

    assert again.status_code == 404, again.text
    assert "idempotent-replayed" not in again.headers and '"version"' not in again.text
    new = _audit(uow_factory)[len(before) :]
    assert [(row["action"], row["patient_id"]) for row in new] == [("access_refused", None)], new


def test_a_keyed_user_creation_keeps_no_fast_hash_of_the_password(client, callers, uow_factory):
    body = {
        "name": "nurse-n",
        "role": "coordinator",
        "site": "north",
        "password": "correct horse battery staple",
    }
    headers = {**callers["admin"], "Idempotency-Key": "new-user"}

    created = client.post("/users", json=body, headers=headers)
    again = client.post("/users", json=body, headers=headers)
    other = client.post(
        "/users", json={**body, "password": "another long passphrase"}, headers=headers
    )

    assert created.status_code == again.status_code == 201, created.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert other.status_code == 422  # the key, reused with another password
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    with uow_factory() as uow:
        stored = uow.session.execute(select(idempotency_keys.c.body_hash)).scalar_one()
    assert stored != hashlib.sha256(canonical).hexdigest()  # no offline guessing at GPU speed


# --- concurrent copies on PostgreSQL -------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_racing_copies_of_a_keyed_enrolment_enrol_once_and_never_500(
    client, callers, uow_factory, database_url
):
    headers = {**callers["clinician"], "Idempotency-Key": "enrol-race"}
    client.get("/patients", headers=callers["clinician"])  # the token cached

    answers = _race(lambda: client.post("/patients", json=ENROLMENT, headers=headers))

    assert {a.status_code for a in answers} <= {201, 409}, [a.text for a in answers]
    created = [a for a in answers if a.status_code == 201]
    assert {a.headers["location"] for a in created} == {created[0].headers["location"]}
    with uow_factory() as uow:
        assert uow.session.execute(select(func.count()).select_from(patients)).scalar() == 1
    enrolled = [row for row in _audit(uow_factory) if row["action"] == "patient_enrolled"]
    assert len(enrolled) == 1  # the copies that lost left no audit line


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_racing_writes_at_one_if_match_write_once_the_others_412_or_409(
    client, callers, enrol, uow_factory, database_url
):
    patient = enrol()
    headers = {**callers["clinician"], "If-Match": f'"v{patient["version"]}"'}
    url = f"/patients/{patient['patient_id']}/labs"

    answers = _race(lambda: client.post(url, json=LAB, headers=headers))

    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) == 1 and set(statuses) <= {200, 409, 412}, statuses
    assert _labs(uow_factory, patient["patient_id"]) == 1


# --- FHIR and pages ------------------------------------------------------------------------


def test_a_fhir_observation_for_another_sites_patient_writes_nothing_and_is_audited_once(
    client, callers, enrol, uow_factory
):
    south = enrol("south")["patient_id"]
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "subject": {"reference": f"Patient/{south}"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
        "valueQuantity": {
            "value": 420,
            "unit": "U/L",
            "system": "http://unitsofmeasure.org",
            "code": "U/L",
        },
        "effectiveDateTime": "2026-01-01",
    }
    before = _audit(uow_factory)

    answer = client.post("/fhir/Observation", json=observation, headers=callers["clinician"])

    assert answer.status_code == 404 and answer.json()["resourceType"] == "OperationOutcome"
    new = _audit(uow_factory)[len(before) :]
    assert [row["patient_id"] for row in new] == [None], new  # one refusal, no patient named
    assert _labs(uow_factory, south) == 0


@pytest.fixture
def page_client(client):
    client.headers["Origin"] = str(client.base_url).rstrip("/")
    return client


@pytest.mark.parametrize(
    "path, form",
    [
        ("orders", {"drug": "prednisolone", "mg_per_day": "30"}),
        ("events", {"kind": "weight_recorded", "f_weight_kg": "70"}),
    ],
)
def test_a_page_write_on_another_sites_patient_is_not_found_and_changes_nothing(
    page_client, callers, enrol, uow_factory, path, form
):
    south = enrol("south")["patient_id"]
    csrf = log_in(page_client, callers, "clinician")
    before = len(_audit(uow_factory, south))

    answer = page_client.post(f"/ui/patients/{south}/{path}", data={"csrf": csrf, **form})

    assert answer.status_code == 404
    assert len(_audit(uow_factory, south)) == before
    with uow_factory() as uow:
        found = uow.patients.get(south)
        assert (found.orders, found.events) == ([], [])
