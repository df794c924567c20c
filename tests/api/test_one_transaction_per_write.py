"""A clinical write over HTTP is one transaction: the patient loaded once, the caller admitted on
that load (site, role, the version they saw), the Idempotency-Key stored by the same commit; a
status read is one SELECT and its audit line.

Counted with SQLAlchemy's engine events on the app's own engine, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from engine.adapters.access_tables import idempotency_keys
from tests.api.conftest import ENROLMENT

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
LAB = {"code": "ALT", "value": 420, "unit": "U/L"}


@contextmanager
def counted(app) -> Iterator[Counter]:
    """Transactions begun and committed, and statements by table and verb, on the app's engine."""
    engine = app.state.uow_factory.args[0].kw["bind"]
    seen: Counter = Counter()

    def statement(conn, cursor, sql, params, context, executemany) -> None:
        words = sql.split()
        verb = words[0].upper()
        seen[verb] += 1
        if verb == "SELECT" and re.search(r"FROM patients\b", sql):
            seen["patient row read"] += 1

    listeners = (
        ("begin", lambda conn: seen.update(["BEGIN"])),
        ("commit", lambda conn: seen.update(["COMMIT"])),
        ("before_cursor_execute", statement),
    )
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield seen
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


@BOTH
@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "idempotency-key"])
def test_a_lab_post_is_one_transaction_that_reads_the_patient_once(
    app, client, callers, enrol, database_url, keyed
):
    patient_id = enrol()["patient_id"]
    client.get(f"/patients/{patient_id}", headers=callers["clinician"])  # token now cached
    headers = {**callers["clinician"], **({"Idempotency-Key": "k-1"} if keyed else {})}

    with counted(app) as seen:
        response = client.post(f"/patients/{patient_id}/labs", json=LAB, headers=headers)

    assert response.status_code == 200, response.text
    assert seen["BEGIN"] == seen["COMMIT"] == 1, seen
    assert seen["patient row read"] == 1, seen


@BOTH
def test_a_keyed_enrolment_and_its_replay_are_one_transaction_each(
    app, client, callers, database_url
):
    headers = {**callers["clinician"], "Idempotency-Key": "enrol-1"}
    client.get("/patients", headers=callers["clinician"])  # token now cached

    with counted(app) as first:
        enrolled = client.post("/patients", json=ENROLMENT, headers=headers)
    with counted(app) as again:
        replayed = client.post("/patients", json=ENROLMENT, headers=headers)

    assert enrolled.status_code == replayed.status_code == 201
    assert replayed.json() == enrolled.json()
    assert replayed.headers["idempotent-replayed"] == "true"
    assert first["COMMIT"] == 1 and first["BEGIN"] == 1, first
    assert again["COMMIT"] == 0 and again["INSERT"] == 0, again  # one SELECT of the key


def test_a_replay_answers_the_first_answer_even_after_the_patient_moved_on(
    client, callers, enrol
):
    patient = enrol()
    headers = {
        **callers["clinician"],
        "Idempotency-Key": "lab-at-v1",
        "If-Match": f'"v{patient["version"]}"',
    }
    url = f"/patients/{patient['patient_id']}/labs"

    first = client.post(url, json=LAB, headers=headers)
    client.post(url, json={**LAB, "value": 300}, headers=callers["clinician"])  # moves it on
    again = client.post(url, json=LAB, headers=headers)
    unkeyed = client.post(url, json=LAB, headers={**headers, "Idempotency-Key": "other"})

    assert first.status_code == 200 and again.status_code == 200, again.text
    assert again.json() == first.json()
    assert unkeyed.status_code == 412  # without the replay, the stale version is refused


@pytest.mark.parametrize(
    "site, caller, status",
    [("south", "clinician", 404), ("north", "auditor", 403), ("north", "lab-interface", 200)],
)
def test_the_admission_on_the_loaded_patient_is_the_policy_and_a_refusal_stores_no_key(
    app, client, callers, enrol, uow_factory, site, caller, status
):
    patient_id = enrol(site)["patient_id"]
    headers = {**callers[caller], "Idempotency-Key": f"lab-by-{caller}"}

    response = client.post(f"/patients/{patient_id}/labs", json=LAB, headers=headers)

    assert response.status_code == status, response.text
    with uow_factory() as uow:
        keys = uow.session.execute(select(idempotency_keys.c.key)).scalars().all()
        labs = uow.patients.get(patient_id).labs
    assert (f"lab-by-{caller}" in keys) == (status == 200)
    assert len(labs) == (1 if status == 200 else 0)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_copies_of_a_keyed_request_racing_record_the_lab_once(
    client, callers, enrol, uow_factory, database_url
):
    patient_id = enrol()["patient_id"]
    headers = {**callers["clinician"], "Idempotency-Key": "race-1"}
    url = f"/patients/{patient_id}/labs"
    start = threading.Barrier(4)
    answers = []

    def send() -> None:
        start.wait()
        answers.append(client.post(url, json=LAB, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = [a for a in answers if a.status_code == 200]
    assert len(accepted) + sum(a.status_code == 409 for a in answers) == 4, answers
    assert {a.json()["version"] for a in accepted} == {accepted[0].json()["version"]}
    assert sum("idempotent-replayed" not in a.headers for a in accepted) <= 1
    with uow_factory() as uow:
        assert len(uow.patients.get(patient_id).labs) == 1


@BOTH
def test_a_status_read_is_one_select_and_its_audit_line_in_one_transaction(
    app, client, callers, enrol, database_url
):
    patient_id = enrol()["patient_id"]
    client.post(f"/patients/{patient_id}/labs", json=LAB, headers=callers["clinician"])

    with counted(app) as seen:
        response = client.get(f"/patients/{patient_id}", headers=callers["clinician"])

    assert response.status_code == 200, response.text
    assert response.json()["next_milestones"]  # nested rows were read
    assert (seen["SELECT"], seen["INSERT"], seen["BEGIN"], seen["COMMIT"]) == (1, 1, 1, 1), seen
