"""FHIR `transaction` Bundles are all or nothing, `batch` Bundles answer entry by entry.

Each transaction test takes a picture of the whole database (every table's rows, the patients'
rows in full) before the Bundle and after it: a refused transaction leaves it exactly as it was,
apart from the audit lines of the refusal. A failing entry in the middle or at the end, a
database error raised by the database itself half-way through the commit (a trigger, no mock),
a repeated `fullUrl`, another site's patient, conditional references and requests, entries
that are not `POST Observation`, and a Bundle of 1,000 entries, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from engine.adapters.orm import audit_log, patients
from tests.api.fhir_resources import fhir_body, quantity, transaction

ALT, BILI, IGG = "1742-6", "1975-2", "2465-3"
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
#: The audit lines a refused transaction may leave: the refusal itself, nothing else.
REFUSAL_ACTIONS = {"access_refused", "action_refused"}


def snapshot(uow_factory) -> dict[str, Any]:
    """Every table's row count, the patients' rows in full and the audit actions written."""
    with uow_factory() as uow:
        connection = uow.session.connection()
        tables = sorted(inspect(connection).get_table_names())
        counts = {
            name: connection.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in tables
            if name not in ("audit_log", "alembic_version")
        }
        rows = [tuple(r) for r in connection.execute(select(patients).order_by(patients.c.id))]
        actions = list(connection.execute(select(audit_log.c.action)).scalars())
    return {"counts": counts, "patients": rows, "actions": actions}


def assert_nothing_written(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["counts"] == before["counts"]
    assert after["patients"] == before["patients"]
    added = after["actions"][len(before["actions"]) :]
    assert set(added) <= REFUSAL_ACTIONS, added


def entry(resource: dict[str, Any], full_url: str | None = None, **request: Any) -> dict:
    found: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": "Observation", **request},
    }
    if full_url:
        found["fullUrl"] = full_url
    return found


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


@pytest.fixture
def north_patient(enrol) -> str:
    return enrol()["patient_id"]


def post(client, callers, body: dict[str, Any], caller: str = "lab-interface"):
    return client.post("/fhir", json=body, headers=callers[caller])


@BOTH
def test_a_refused_entry_in_the_middle_writes_nothing(client, callers, enrol, uow_factory):
    """Entry 2 of 4 has a unit that does not convert (a refused last entry: the 1,000-entry
    test)."""
    first, second = enrol()["patient_id"], enrol()["patient_id"]
    good = [
        quantity(first, ALT, 420, "U/L"),
        quantity(second, IGG, 2400, "mg/dL"),
        quantity(first, ALT, 380, "U/L"),
    ]
    refused = quantity(first, BILI, 1.2, "mmol/L")  # a unit that does not convert (service)
    observations = [*good[:2], refused, good[2]]
    index = observations.index(refused)
    before = snapshot(uow_factory)

    response = post(client, callers, transaction(*observations))

    outcome = fhir_body(response, 422)
    assert "nothing was written" in outcome["issue"][0]["diagnostics"]
    assert [issue["expression"] for issue in outcome["issue"][1:]] == [[f"Bundle.entry[{index}]"]]
    assert outcome["issue"][1]["code"] == "value"
    assert_nothing_written(before, snapshot(uow_factory))


def test_the_refused_entry_is_named_by_its_index_and_full_url(
    client, callers, north_patient, uow_factory
):
    body = bundle(
        entry(quantity(north_patient, ALT, 420, "U/L"), "urn:uuid:6f1c-good"),
        entry(quantity(north_patient, ALT, 300, "mmol/L"), "urn:uuid:6f1c-bad"),
    )

    outcome = fhir_body(post(client, callers, body), 422)

    issue = outcome["issue"][1]
    assert issue["expression"] == ["Bundle.entry[1]"]
    assert issue["diagnostics"].startswith("Bundle.entry[1] (urn:uuid:6f1c-bad): ")


@BOTH
def test_a_database_error_half_way_through_the_commit_writes_nothing(
    client, callers, enrol, uow_factory, database_url
):
    """A trigger makes the database itself refuse the insert of one lab row (ALT 777 U/L)."""
    first, second = enrol()["patient_id"], enrol()["patient_id"]
    with uow_factory() as uow:
        if database_url.startswith("postgresql"):
            uow.session.execute(
                text(
                    "CREATE FUNCTION refuse_lab() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
                )
            )
            uow.session.execute(
                text(
                    "CREATE TRIGGER refuse_777 BEFORE INSERT ON lab_results FOR EACH ROW "
                    "WHEN (NEW.value = 777) EXECUTE FUNCTION refuse_lab()"
                )
            )
        else:
            uow.session.execute(
                text(
                    "CREATE TRIGGER refuse_777 BEFORE INSERT ON lab_results "
                    "WHEN NEW.value = 777 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                )
            )
        uow.session.commit()
    observations = [
        quantity(first, ALT, 420, "U/L"),
        quantity(second, ALT, 300, "U/L"),
        quantity(first, ALT, 777, "U/L"),
        quantity(second, ALT, 250, "U/L"),
    ]
    for kind in ("transaction", "batch"):
        before = snapshot(uow_factory)

        response = post(client, callers, {**transaction(*observations), "type": kind})

        outcome = fhir_body(response, 503)
        assert "nothing was written" in outcome["issue"][0]["diagnostics"]
        assert "injected" not in response.text and "lab_results" not in response.text
        assert_nothing_written(before, snapshot(uow_factory))


def test_a_repeated_full_url_refuses_the_bundle(client, callers, north_patient, uow_factory):
    observation = quantity(north_patient, ALT, 420, "U/L")
    before = snapshot(uow_factory)

    for kind in ("transaction", "batch"):
        body = bundle(
            entry(observation, "urn:uuid:1"),
            entry(observation, "urn:uuid:2"),
            entry(observation, "urn:uuid:1"),
            kind=kind,
        )
        outcome = fhir_body(post(client, callers, body), 400)

        assert outcome["issue"][0]["expression"] == ["Bundle.entry[2].fullUrl"]
        assert "Bundle.entry[0]" in outcome["issue"][0]["diagnostics"]
    assert_nothing_written(before, snapshot(uow_factory))


@BOTH
def test_an_entry_for_another_sites_patient_refuses_the_whole_transaction(
    client, callers, enrol, uow_factory
):
    north, south = enrol()["patient_id"], enrol(site="south")["patient_id"]
    before = snapshot(uow_factory)

    response = post(
        client,
        callers,
        transaction(quantity(north, ALT, 420, "U/L"), quantity(south, ALT, 420, "U/L")),
        caller="clinician",  # a clinician of north
    )

    outcome = fhir_body(response, 404)
    assert outcome["issue"][1]["expression"] == ["Bundle.entry[1]"]
    after = snapshot(uow_factory)
    assert_nothing_written(before, after)
    assert after["actions"][len(before["actions"]) :] == ["access_refused"]
    unknown = post(
        client,
        callers,
        transaction(quantity(north, ALT, 420, "U/L"), quantity("no-such-id", ALT, 420, "U/L")),
        caller="clinician",
    )
    assert unknown.text.replace("no-such-id", south) == response.text  # nothing disclosed


CONDITIONAL_SUBJECTS = (
    "Patient?identifier=urn:example:mrn|MRN-1",
    "urn:uuid:0d4f-patient",
    "#contained-patient",
)
NOT_A_PLAIN_CREATE = (
    {"method": "POST", "url": "Observation?code=1742-6"},  # a search URL as a create
    {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=lab|123"},
    {"method": "PUT", "url": "Observation/abc"},
    {"method": "DELETE", "url": "Observation/abc"},
    {"method": "GET", "url": "Observation?patient=x"},
    {"method": "POST", "url": "Patient"},
    {"method": "POST", "url": "Observation", "ifMatch": 'W/"1"'},
    {"url": "Observation"},
    None,
)


def test_a_conditional_or_bundle_internal_subject_is_refused_clearly(
    client, callers, north_patient, uow_factory
):
    before = snapshot(uow_factory)
    for subject in CONDITIONAL_SUBJECTS:
        conditional = {
            **quantity(north_patient, ALT, 420, "U/L"),
            "subject": {"reference": subject},
        }
        body = transaction(quantity(north_patient, ALT, 400, "U/L"), conditional)

        outcome = fhir_body(post(client, callers, body), 400)

        assert outcome["issue"][1]["expression"] == ["Bundle.entry[1]"], subject
        assert "Patient/<id>" in outcome["issue"][1]["diagnostics"], subject
    assert_nothing_written(before, snapshot(uow_factory))


def test_an_entry_other_than_a_plain_post_of_an_observation_is_refused_not_ignored(
    client, callers, north_patient, uow_factory
):
    before = snapshot(uow_factory)
    for request_ in NOT_A_PLAIN_CREATE:
        other = {"resource": quantity(north_patient, ALT, 420, "U/L")}
        if request_ is not None:
            other["request"] = request_
        body = bundle(entry(quantity(north_patient, ALT, 400, "U/L")), other)

        outcome = fhir_body(post(client, callers, body), 400)

        assert outcome["issue"][1]["expression"] == ["Bundle.entry[1]"], request_
        assert outcome["issue"][1]["code"] in ("not-supported", "required"), request_
    assert_nothing_written(before, snapshot(uow_factory))


def test_a_patient_resource_in_a_transaction_is_refused(
    client, callers, north_patient, uow_factory
):
    patient_entry = {
        "resource": {"resourceType": "Patient", "gender": "female"},
        "request": {"method": "POST", "url": "Patient"},
    }
    body = bundle(entry(quantity(north_patient, ALT, 400, "U/L")), patient_entry)

    outcome = fhir_body(post(client, callers, body), 400)

    assert outcome["issue"][1]["code"] == "not-supported"
    assert "POST Observation" in outcome["issue"][1]["diagnostics"]


def test_a_batch_keeps_its_good_entries_and_answers_each_one(
    client, callers, north_patient, uow_factory
):
    body = bundle(
        entry(quantity(north_patient, ALT, 420, "U/L")),
        entry(quantity(north_patient, ALT, 300, "mmol/L")),
        {"resource": quantity(north_patient, ALT, 420, "U/L"), "request": {"method": "PUT"}},
        entry(quantity(north_patient, ALT, 380, "U/L")),
        kind="batch",
    )
    before = snapshot(uow_factory)

    answer = fhir_body(post(client, callers, body), 200)

    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "400 Bad Request", "201 Created"]
    assert answer["entry"][1]["response"]["outcome"]["issue"][0]["code"] == "value"
    assert snapshot(uow_factory)["counts"]["lab_results"] == before["counts"]["lab_results"] + 2


@BOTH
def test_a_transaction_of_a_thousand_entries_is_applied_whole_or_not_at_all(
    client, callers, enrol, uow_factory
):
    patients_ = [enrol()["patient_id"] for _ in range(4)]
    values = [40 + i % 500 for i in range(1000)]
    observations = [quantity(patients_[i % 4], ALT, v, "U/L") for i, v in enumerate(values)]
    refused_last = [*observations[:999], quantity(patients_[0], ALT, 80, "mmol/L")]
    before = snapshot(uow_factory)

    outcome = fhir_body(post(client, callers, transaction(*refused_last)), 422)

    assert [issue["expression"] for issue in outcome["issue"][1:]] == [["Bundle.entry[999]"]]
    assert_nothing_written(before, snapshot(uow_factory))

    answer = fhir_body(post(client, callers, transaction(*observations)), 200)

    assert answer["type"] == "transaction-response"
    assert {e["response"]["status"] for e in answer["entry"]} == {"201 Created"}
    after = snapshot(uow_factory)
    assert after["counts"]["lab_results"] == before["counts"]["lab_results"] + 1000
    too_many = transaction(*observations, quantity(patients_[0], ALT, 80, "U/L"))
    assert fhir_body(post(client, callers, too_many), 400)["issue"][0]["code"] == "too-costly"
