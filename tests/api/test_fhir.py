"""The FHIR R4 facade: every answer is a valid R4 resource (fhir.resources R4B models), lab
results are converted or refused with an OperationOutcome, bundles are answered entry by entry,
$apply and CarePlan show the milestones, Task lists reminders, and roles and sites hold.
One test drives the facade with a real FHIR client (fhirpy) over HTTP.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi.routing import iter_route_contexts
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from api.fhir.terminology import MILESTONES, RULES
from engine.services.care_pathways import care_pathway
from tests.api.conftest import ROLES
from tests.api.fhir_resources import fhir_body, patient, quantity, serology, transaction

READERS = {"clinician", "coordinator", "auditor"}
ALT, BILI, IGG, HBSAG = "1742-6", "1975-2", "2465-3", "5196-1"


@pytest.fixture
def fhir_patient(client, callers):
    """Create a patient over FHIR (north, by the north clinician); returns the Patient."""

    def create(site: str = "north", **facts: Any) -> dict[str, Any]:
        caller = "clinician" if site == "north" else "clinician-anywhere"
        response = client.post(
            "/fhir/Patient", json=patient(site, **facts), headers=callers[caller]
        )
        return fhir_body(response, 201)

    return create


def labs_of(client, callers, patient_id: str) -> list[dict[str, Any]]:
    """The patient's recorded labs, read through the JSON API's history."""
    response = client.get(f"/patients/{patient_id}/history", headers=callers["clinician-anywhere"])
    return response.json()["labs"]


def test_the_resources_the_tests_send_are_valid_r4():
    for resource in (
        patient(cirrhosis=True),
        quantity("p1", ALT, 420, "U/L"),
        serology("p1", HBSAG, True),
        transaction(quantity("p1", ALT, 420, "U/L")),
    ):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_capability_statement_is_public_and_declares_r4(client):
    statement = fhir_body(client.get("/fhir/metadata"), 200)

    assert statement["fhirVersion"] == "4.0.1"
    served = {r["type"] for r in statement["rest"][0]["resource"]}
    assert served == {"Patient", "Observation", "PlanDefinition", "CarePlan", "Task"}


def test_patient_created_over_fhir_is_enrolled_and_reads_back(client, callers, fhir_patient):
    created = fhir_patient(cirrhosis=True)

    read = fhir_body(
        client.get(f"/fhir/Patient/{created['id']}", headers=callers["clinician"]), 200
    )
    status = client.get(f"/patients/{created['id']}", headers=callers["clinician"]).json()
    assert status["state"] == "screening" and status["facts"]["cirrhosis"] is True
    assert read["name"][0] == {"use": "official", "family": "Example", "given": ["Ada"]}
    assert (read["gender"], read["birthDate"]) == ("female", "1979-04-02")
    assert read["managingOrganization"] == {"reference": "Organization/north"}
    assert read["generalPractitioner"] == [{"reference": "Practitioner/dr-a"}]
    assert {"system": "email", "value": "ada@example.org"} in read["telecom"]


def test_patient_without_body_weight_is_refused_with_an_operation_outcome(client, callers):
    body = patient()
    body["extension"] = []

    outcome = fhir_body(client.post("/fhir/Patient", json=body, headers=callers["clinician"]), 400)

    assert outcome["issue"][0]["severity"] == "error"
    assert "body-weight" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "stored", "pathway_unit"),
    [
        (BILI, 1.2, "mg/dL", 20.5, "umol/L"),
        (ALT, 7, "ukat/L", 420, "U/L"),
        (ALT, 420, "[IU]/L", 420, "U/L"),
        (IGG, 1800, "mg/dL", 18, "g/L"),
    ],
    ids=["bilirubin-mg/dL", "alt-ukat/L", "alt-[IU]/L", "igg-mg/dL"],
)
def test_observation_is_stored_in_the_pathway_unit(
    loinc, value, unit, stored, pathway_unit, client, callers, fhir_patient
):
    subject = fhir_patient()["id"]

    response = client.post(
        "/fhir/Observation",
        json=quantity(subject, loinc, value, unit),
        headers=callers["clinician"],
    )

    observation = fhir_body(response, 201)
    assert observation["valueQuantity"]["value"] == pytest.approx(stored)
    assert observation["valueQuantity"]["code"] == pathway_unit
    assert response.headers["location"] == f"Observation/{observation['id']}"
    read = client.get(f"/fhir/Observation/{observation['id']}", headers=callers["clinician"])
    assert fhir_body(read, 200)["valueQuantity"] == observation["valueQuantity"]


def test_unit_that_does_not_convert_is_refused_and_nothing_is_written(
    client, callers, fhir_patient
):
    subject = fhir_patient()["id"]

    response = client.post(
        "/fhir/Observation",
        json=quantity(subject, BILI, 1.2, "mmol/L"),
        headers=callers["clinician"],
    )

    issue = fhir_body(response, 422)["issue"][0]
    assert (issue["severity"], issue["code"]) == ("error", "value")
    assert "cannot be converted" in issue["diagnostics"]
    assert labs_of(client, callers, subject) == []


def test_unknown_loinc_code_is_refused_with_an_operation_outcome(client, callers, fhir_patient):
    subject = fhir_patient()["id"]

    response = client.post(
        "/fhir/Observation",
        json=quantity(subject, "2345-7", 5.4, "mmol/L"),
        headers=callers["clinician"],
    )

    issue = fhir_body(response, 422)["issue"][0]
    assert issue["code"] == "code-invalid"
    assert "2345-7" in issue["diagnostics"]
    assert labs_of(client, callers, subject) == []


def test_serology_answer_as_a_snomed_concept_is_recorded(client, callers, fhir_patient):
    subject = fhir_patient()["id"]

    response = client.post(
        "/fhir/Observation", json=serology(subject, HBSAG, True), headers=callers["lab-interface"]
    )

    observation = fhir_body(response, 201)
    assert observation["valueCodeableConcept"]["text"] == "positive"
    assert [lab["value"] for lab in labs_of(client, callers, subject)] == ["positive"]


def mixed_entries(subject: str) -> dict[str, Any]:
    """A Bundle with one good entry and three refused ones (unit, code, patient)."""
    return transaction(
        quantity(subject, ALT, 420, "U/L"),
        quantity(subject, BILI, 1.2, "mmol/L"),
        quantity(subject, "2345-7", 5.4, "mmol/L"),
        quantity("no-such-patient", ALT, 400, "U/L"),
    )


def test_batch_bundle_answers_each_entry_and_keeps_the_good_ones(client, callers, fhir_patient):
    subject = fhir_patient()["id"]
    bundle = {**mixed_entries(subject), "type": "batch"}

    answer = fhir_body(client.post("/fhir", json=bundle, headers=callers["lab-interface"]), 200)

    assert answer["type"] == "batch-response"
    statuses = [entry["response"]["status"] for entry in answer["entry"]]
    assert statuses == [
        "201 Created",
        "422 Unprocessable Entity",
        "422 Unprocessable Entity",
        "404 Not Found",
    ]
    assert answer["entry"][0]["response"]["location"].startswith("Observation/")
    codes = [
        entry["response"].get("outcome", {}).get("issue", [{}])[0].get("code")
        for entry in answer["entry"]
    ]
    assert codes == [None, "value", "code-invalid", "not-found"]
    assert [lab["code"] for lab in labs_of(client, callers, subject)] == ["ALT"]


def test_transaction_bundle_with_a_refused_entry_writes_nothing_and_names_each_refusal(
    client, callers, fhir_patient
):
    subject = fhir_patient()["id"]

    response = client.post("/fhir", json=mixed_entries(subject), headers=callers["lab-interface"])

    outcome = fhir_body(response, 422)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "nothing was written" in outcome["issue"][0]["diagnostics"]
    refused = [(i["code"], i["expression"]) for i in outcome["issue"][1:]]
    assert refused == [
        ("value", ["Bundle.entry[1]"]),
        ("code-invalid", ["Bundle.entry[2]"]),
        ("not-found", ["Bundle.entry[3]"]),
    ]
    assert labs_of(client, callers, subject) == []


@pytest.mark.parametrize("bundle", [{}, {"entry": []}])
def test_an_empty_transaction_bundle_is_answered_with_an_empty_response(client, callers, bundle):
    body = {"resourceType": "Bundle", "type": "transaction", **bundle}

    response = client.post("/fhir", json=body, headers=callers["lab-interface"])

    answered = fhir_body(response, 200)
    assert answered["type"] == "transaction-response" and answered["entry"] == []


def test_apply_returns_the_care_plan_whose_activities_are_the_milestones(
    client, callers, fhir_patient
):
    subject = fhir_patient()["id"]
    status = client.get(f"/patients/{subject}", headers=callers["clinician"]).json()

    response = client.post(
        f"/fhir/PlanDefinition/aih-1.0.0/$apply?subject=Patient/{subject}",
        headers=callers["clinician"],
    )

    plan = fhir_body(response, 200)
    assert plan["resourceType"] == "CarePlan"
    assert plan["instantiatesCanonical"] == [
        "https://aih-pathways.example/fhir/PlanDefinition/aih|1.0.0"
    ]
    assert plan["subject"] == {"reference": f"Patient/{subject}"}
    activities = {a["id"]: a["detail"] for a in plan["activity"]}
    assert set(activities) == {m["id"] for m in status["next_milestones"]}
    for milestone in status["next_milestones"]:
        detail = activities[milestone["id"]]
        assert detail["code"]["coding"][0] == {
            "system": MILESTONES,
            "code": milestone["milestone"],
            "display": milestone["title"],
        }
        assert detail["status"] == "scheduled"
        assert detail["scheduledPeriod"]["start"] == milestone["due_at"]
        assert [r["coding"][0]["code"] for r in detail["reasonCode"]] == [
            why["rule"] for why in milestone["why"]
        ]


def test_completed_milestone_shows_as_a_completed_activity(client, callers, fhir_patient):
    subject = fhir_patient()["id"]
    client.post(
        "/fhir/Observation",
        json=quantity(subject, "21563-2", 31, "U/mL"),
        headers=callers["clinician"],
    )

    search = client.get(f"/fhir/CarePlan?subject=Patient/{subject}", headers=callers["clinician"])

    bundle = fhir_body(search, 200)
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    plan = bundle["entry"][0]["resource"]
    tpmt = [
        a["detail"]
        for a in plan["activity"]
        if a["detail"]["code"]["coding"][0]["code"] == "tpmt-screening"
    ]
    assert [d["status"] for d in tpmt] == ["completed"]
    read = client.get(f"/fhir/CarePlan/{subject}", headers=callers["coordinator"])
    assert fhir_body(read, 200) == plan


def test_plan_definition_is_the_pathway_version_with_sources_and_rule_ids(client, callers):
    definition = fhir_body(client.get("/fhir/PlanDefinition/aih", headers=callers["admin"]), 200)

    pathway = care_pathway("aih@1.0.0").pathway
    assert (definition["id"], definition["version"]) == ("aih-1.0.0", "1.0.0")
    assert definition["status"] == "draft"  # pending clinical review
    assert [a["label"] for a in definition["relatedArtifact"]] == list(pathway.sources)
    assert [a["id"] for a in definition["action"]] == [m.id for m in pathway.milestones]
    for action, milestone in zip(definition["action"], pathway.milestones, strict=True):
        assert [r["coding"][0] for r in action["reason"]] == [
            {"system": RULES, "code": rule} for rule in milestone.rules
        ]


def test_unknown_plan_definition_is_not_found(client, callers):
    response = client.get("/fhir/PlanDefinition/aih-9.9.9", headers=callers["clinician"])

    assert fhir_body(response, 404)["issue"][0]["code"] == "not-found"


def test_task_search_lists_the_patients_reminders(client, callers, fhir_patient):
    subject = fhir_patient()["id"]

    bundle = fhir_body(
        client.get(
            f"/fhir/Task?patient={subject}&status=requested", headers=callers["coordinator"]
        ),
        200,
    )

    tasks = [entry["resource"] for entry in bundle["entry"]]
    assert tasks and {t["status"] for t in tasks} == {"requested"}
    assert {t["for"]["reference"] for t in tasks} == {f"Patient/{subject}"}
    screening = [
        t for t in tasks if {"system": MILESTONES, "code": "tpmt-screening"} in t["code"]["coding"]
    ]
    assert {t["code"]["text"] for t in screening} == {"notify", "escalate"}
    assert all(
        t["reasonCode"]["coding"] == [{"system": RULES, "code": "SCR-TPMT"}] for t in screening
    )


def test_task_search_refuses_an_unknown_status(client, callers, fhir_patient):
    subject = fhir_patient()["id"]

    response = client.get(
        f"/fhir/Task?patient={subject}&status=bogus", headers=callers["clinician"]
    )

    assert fhir_body(response, 400)["issue"][0]["code"] == "invalid"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/fhir/Patient", b"not json"),
        ("/fhir/Patient", {**patient(), "gender": ["female"]}),
        ("/fhir/Observation", {"resourceType": "Patient"}),
        ("/fhir/Observation", {**quantity("p", ALT, 1, "U/L"), "valueQuantity": {"value": "1"}}),
        ("/fhir/Observation", {**quantity("p", ALT, 1, "U/L"), "effectiveDateTime": [1]}),
        ("/fhir", {"resourceType": "Bundle", "type": {"x": 1}}),
        ("/fhir", {"resourceType": "Bundle", "type": "transaction", "entry": [1, None]}),
    ],
    ids=["not-json", "gender-list", "wrong-type", "text-value", "date-list", "type-object", "junk"],
)
def test_malformed_input_is_a_4xx_operation_outcome_never_a_500(path, body, client, callers):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    response = client.post(path, content=content, headers=callers["clinician"])

    answer = fhir_body(response, response.status_code)
    if answer["resourceType"] == "Bundle":  # a batch answers each entry with its own status
        assert [e["response"]["status"][0] for e in answer["entry"]] == ["4", "4"]
    else:
        assert 400 <= response.status_code < 500 and answer["resourceType"] == "OperationOutcome"


# ---- roles and sites -------------------------------------------------------------------------

# (method, route template, the URL to call, allowed roles); {patient} and {observation} are
# filled in per test.
ROUTES = [
    ("POST", "/fhir/Patient", "/fhir/Patient", {"clinician"}),
    ("GET", "/fhir/Patient/{patient_id}", "/fhir/Patient/{patient}", READERS),
    ("POST", "/fhir/Observation", "/fhir/Observation", {"clinician", "lab-interface"}),
    ("GET", "/fhir/Observation/{record_id}", "/fhir/Observation/{observation}", READERS),
    ("GET", "/fhir/Observation", "/fhir/Observation?patient={patient}", READERS),
    ("GET", "/fhir/Patient", "/fhir/Patient?name=Ada", READERS),
    ("POST", "/fhir", "/fhir", {"clinician", "lab-interface"}),
    (
        "GET",
        "/fhir/PlanDefinition/{definition_id}",
        "/fhir/PlanDefinition/aih-1.0.0",
        READERS | {"admin"},
    ),
    (
        "POST",
        "/fhir/PlanDefinition/{definition_id}/$apply",
        "/fhir/PlanDefinition/aih-1.0.0/$apply?subject=Patient/{patient}",
        {"clinician"},
    ),
    ("GET", "/fhir/CarePlan/{plan_id}", "/fhir/CarePlan/{patient}", READERS),
    ("GET", "/fhir/CarePlan", "/fhir/CarePlan?subject=Patient/{patient}", READERS),
    ("GET", "/fhir/Task", "/fhir/Task?patient={patient}", READERS),
]
PUBLIC = {("GET", "/fhir/metadata")}


def test_every_fhir_route_has_a_role_entry(app):
    served = {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if context.path.startswith("/fhir") and "{path" not in context.path
        for method in context.methods or ()
    }

    assert served == {(method, template) for method, template, _, _ in ROUTES} | PUBLIC


def requests_for(client, callers, fhir_patient) -> list[tuple[str, str, Any, set[str]]]:
    subject = fhir_patient()["id"]
    observation = fhir_body(
        client.post(
            "/fhir/Observation",
            json=quantity(subject, ALT, 420, "U/L"),
            headers=callers["clinician"],
        ),
        201,
    )["id"]
    bodies = {
        "/fhir/Patient": patient(),
        "/fhir/Observation": quantity(subject, ALT, 400, "U/L"),
        "/fhir": transaction(quantity(subject, ALT, 380, "U/L")),
    }
    return [
        (method, url.format(patient=subject, observation=observation), bodies.get(url), allowed)
        for method, _, url, allowed in ROUTES
    ]


@pytest.mark.parametrize("role", ROLES)
def test_role_gets_2xx_where_allowed_and_403_otherwise(role, client, callers, fhir_patient):
    for method, url, body, allowed in requests_for(client, callers, fhir_patient):
        response = client.request(method, url, json=body, headers=callers[role])

        expected = "2xx" if role in allowed else 403
        got = "2xx" if 200 <= response.status_code < 300 else response.status_code
        assert got == expected, (method, url, response.text)
        fhir_body(response, response.status_code)


def test_no_token_is_401_with_an_operation_outcome(client, callers, fhir_patient):
    for method, url, body, _ in requests_for(client, callers, fhir_patient):
        response = client.request(method, url, json=body)

        assert fhir_body(response, 401)["issue"][0]["code"] == "login", (method, url)
        assert response.headers["www-authenticate"] == "Bearer"


def test_another_sites_patient_is_not_found_for_a_site_scoped_caller(client, callers, fhir_patient):
    north = fhir_patient()["id"]
    south = callers["coordinator-south"]

    for url in (f"/fhir/Patient/{north}", f"/fhir/CarePlan/{north}", f"/fhir/Task?patient={north}"):
        assert fhir_body(client.get(url, headers=south), 404)["issue"][0]["code"] == "not-found"
    search = client.get(f"/fhir/CarePlan?subject=Patient/{north}", headers=south)
    assert fhir_body(search, 200)["total"] == 0


def test_a_site_clinician_cannot_enrol_or_record_labs_at_another_site(
    client, callers, fhir_patient
):
    south = fhir_patient("south")["id"]
    north_clinician = callers["clinician"]

    enrol = client.post("/fhir/Patient", json=patient("south"), headers=north_clinician)
    single = client.post(
        "/fhir/Observation", json=quantity(south, ALT, 420, "U/L"), headers=north_clinician
    )
    batch = client.post(
        "/fhir", json=transaction(quantity(south, ALT, 420, "U/L")), headers=north_clinician
    )

    assert fhir_body(enrol, 403)["issue"][0]["code"] == "forbidden"
    assert fhir_body(single, 404)["issue"][0]["code"] == "not-found"
    assert fhir_body(batch, 404)["issue"][1]["code"] == "not-found"
    assert labs_of(client, callers, south) == []


def test_fhir_reads_are_audited(client, callers, fhir_patient, uow_factory):
    subject = fhir_patient()["id"]

    client.get(f"/fhir/Patient/{subject}", headers=callers["coordinator"])
    client.get(f"/fhir/CarePlan/{subject}", headers=callers["coordinator"])

    with uow_factory() as uow:
        reads = [r for r in uow.audit.for_patient(subject) if r["action"] == "patient_read"]
    coordinator = f"user:{callers.users['coordinator']['id']}"
    assert [(r["actor"], r["detail"]["view"]) for r in reads] == [
        (coordinator, "fhir-patient"),
        (coordinator, "fhir-careplan"),
    ]


# ---- a real FHIR client over HTTP --------------------------------------------------------------


@pytest.fixture
def served(app) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_fhirpy_client_enrols_posts_labs_and_reads_the_care_plan(served, callers):
    token = callers["clinician"]["Authorization"]
    fhir = SyncFHIRClient(f"{served}/fhir", authorization=token)

    ada = fhir.resource("Patient", **patient())
    ada.save()
    alt = fhir.resource("Observation", **quantity(ada.id, ALT, 7, "ukat/L"))
    alt.save()
    with pytest.raises(OperationOutcome) as refused:
        fhir.resource("Observation", **quantity(ada.id, BILI, 1.2, "mmol/L")).save()
    plans = fhir.resources("CarePlan").search(subject=f"Patient/{ada.id}").fetch()
    applied = fhir.execute(
        "PlanDefinition/aih-1.0.0/$apply", method="post", params={"subject": f"Patient/{ada.id}"}
    )
    tasks = fhir.resources("Task").search(patient=ada.id, status="requested").fetch_all()

    assert alt["valueQuantity"]["value"] == 420 and alt["valueQuantity"]["code"] == "U/L"
    assert "cannot be converted" in str(refused.value)
    assert [p.id for p in plans] == [ada.id] == [applied["id"]]
    assert plans[0]["instantiatesCanonical"] == applied["instantiatesCanonical"]
    assert tasks and all(t["for"]["reference"] == f"Patient/{ada.id}" for t in tasks)
    for resource in (ada, alt, plans[0], *tasks):
        get_fhir_model_class(resource.resource_type).model_validate(resource.serialize())
