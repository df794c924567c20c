"""FHIR Observation search: by patient, LOINC code and sampling date (FHIR prefixes, partial
dates), paged by an opaque cursor with `next` links, within the caller's site, audited, and
strict about what it does not support. Every answer is validated with the fhir.resources R4B
models; one search goes through fhirpy over HTTP. The CapabilityStatement is walked: every
interaction and search parameter it declares answers on the running app.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.routing import iter_route_contexts
from fhirpy import SyncFHIRClient
from sqlalchemy import insert, select, text

from api.fhir.search_params import date_bounds
from engine.adapters.database import make_engine, session_factory
from engine.adapters.migrate import upgrade
from engine.adapters.observation_search import ObservationFilter, find_observations
from engine.adapters.orm import audit_log, lab_results, patients
from engine.clock import ManualClock
from tests.api.fhir_resources import fhir_body, quantity, transaction
from tests.api.test_fhir import served  # noqa: F401  (the uvicorn fixture)
from tests.integration.test_coordinator_queue_plans import _nodes, _plans

ALT, IGG, BILI = "1742-6", "2465-3", "1975-2"
LOINC = "http://loinc.org"
#: Patient A's results: name -> (LOINC, value, unit, effectiveDateTime).
RESULTS_A = {
    "a1": (ALT, 420, "U/L", "2026-01-10T09:00:00+00:00"),
    "a2": (ALT, 300, "U/L", "2026-02-15T09:00:00+00:00"),
    "a3": (ALT, 200, "U/L", "2026-03-01T00:00:00+00:00"),
    "a4": (ALT, 150, "U/L", "2026-03-31T23:30:00+00:00"),
    "a5": (ALT, 90, "U/L", "2026-04-01T00:00:00+00:00"),
    "a6": (ALT, 60, "U/L", "2026-05-20T09:00:00+00:00"),
    "i1": (IGG, 2400, "mg/dL", "2026-03-15T09:00:00+00:00"),
    "b1": (BILI, 1.2, "mg/dL", "2026-06-01T09:00:00+00:00"),
}
ALT_OF_A = ("a1", "a2", "a3", "a4", "a5", "a6")
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def clock() -> ManualClock:
    """July 2026: every sampling time below lies in the past."""
    return ManualClock(datetime(2026, 7, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
def world(client, callers, enrol) -> dict[str, Any]:
    """Patients A and B at north and C at south, with results recorded through one Bundle;
    returns the patients' ids and each result's Observation id by name."""
    a, b, c = enrol()["patient_id"], enrol()["patient_id"], enrol(site="south")["patient_id"]
    names = [*RESULTS_A, "b-alt", "c-alt"]
    observations = [
        {**quantity(a, loinc, value, unit), "effectiveDateTime": when}
        for loinc, value, unit, when in RESULTS_A.values()
    ] + [
        {**quantity(b, ALT, 80, "U/L"), "effectiveDateTime": "2026-03-10T09:00:00+00:00"},
        {**quantity(c, ALT, 70, "U/L"), "effectiveDateTime": "2026-03-12T09:00:00+00:00"},
    ]
    answer = fhir_body(
        client.post("/fhir", json=transaction(*observations), headers=callers["lab-interface"]),
        200,
    )
    ids = [e["response"]["location"].split("/")[1] for e in answer["entry"]]
    return {"A": a, "B": b, "C": c, "ids": dict(zip(names, ids, strict=True))}


def search(client, callers, query: str, caller: str = "clinician", status: int = 200, **kw):
    response = client.get(f"/fhir/Observation?{query}", headers={**callers[caller], **kw})
    return fhir_body(response, status)


def names_in(bundle: dict[str, Any], world: dict[str, Any]) -> list[str]:
    by_id = {record_id: name for name, record_id in world["ids"].items()}
    return [by_id[e["resource"]["id"]] for e in bundle.get("entry", [])]


def test_one_patients_results_by_code_newest_first_with_total_and_self_link(client, callers, world):
    bundle = search(client, callers, f"patient={world['A']}&code={LOINC}|{ALT}")

    assert bundle["type"] == "searchset" and bundle["total"] == 6
    assert names_in(bundle, world) == list(reversed(ALT_OF_A))
    first = bundle["entry"][0]
    assert first["fullUrl"].endswith(f"/fhir/Observation/{world['ids']['a6']}")
    assert first["resource"]["valueQuantity"]["value"] == 60
    assert first["search"] == {"mode": "match"}
    assert [link["relation"] for link in bundle["link"]] == ["self"]
    self_query = parse_qs(urlsplit(bundle["link"][0]["url"]).query)
    assert self_query == {"patient": [world["A"]], "code": [f"{LOINC}|{ALT}"], "_count": ["50"]}


#: Date searches on patient A's ALT and the results each selects (by hand, from RESULTS_A).
DATE_CASES = [
    (["2026-03"], {"a3", "a4"}),
    (["eq2026-03"], {"a3", "a4"}),
    (["ge2026-03"], {"a3", "a4", "a5", "a6"}),
    (["gt2026-03"], {"a5", "a6"}),
    (["le2026-03"], {"a1", "a2", "a3", "a4"}),
    (["lt2026-03"], {"a1", "a2"}),
    (["ge2026-03-01", "le2026-03-31"], {"a3", "a4"}),
    (["2026-03-31T23:30:00Z"], {"a4"}),
    (["lt2026-03-01T00:00:00Z"], {"a1", "a2"}),
    (["ge2026-04-01T01:00:00+01:00"], {"a5", "a6"}),
    (["2026"], set(ALT_OF_A)),
    (["ge2026-04", "lt2026-04"], set()),
    (["2025"], set()),
]


@BOTH
def test_date_prefixes_and_partial_dates_select_the_sampling_times_they_name(
    client, callers, world
):
    for dates, expected in DATE_CASES:
        query = "&".join([f"patient={world['A']}", f"code={ALT}", *(f"date={d}" for d in dates)])

        bundle = search(client, callers, query.replace("+", "%2B"))

        assert set(names_in(bundle, world)) == expected, dates
        assert bundle["total"] == len(expected), dates


#: Code searches on patient A and the results each selects.
CODE_CASES = [
    ([ALT], set(ALT_OF_A)),
    ([f"{LOINC}|{IGG}"], {"i1"}),
    ([f"{IGG},{BILI}"], {"i1", "b1"}),
    ([f"{IGG},{BILI}", BILI], {"b1"}),  # repeated: and
    ([f"http://snomed.info/sct|{ALT}"], set()),  # another system
    ([f"|{ALT}"], set()),  # explicitly no system
    (["2345-7"], set()),  # glucose: not one of the pathway's labs
]


def test_code_as_loinc_token_with_or_without_system(client, callers, world):
    for codes, expected in CODE_CASES:
        query = "&".join([f"patient={world['A']}", *(f"code={c}" for c in codes)])

        assert set(names_in(search(client, callers, query), world)) == expected, codes


@BOTH
def test_paging_follows_next_links_through_every_result_once(client, callers, world):
    pages, url = [], "/fhir/Observation?date=ge2026-01&_count=4"
    while url:
        bundle = fhir_body(client.get(url, headers=callers["clinician"]), 200)
        pages.append(names_in(bundle, world))
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "total" not in bundle  # a whole site's search is not counted
        url = links.get("next")
        if url:
            assert "_cursor=" in url and "offset" not in url
            assert parse_qs(urlsplit(url).query)["_count"] == ["4"]

    assert [len(page) for page in pages] == [4, 4, 1]  # north: A's 8 and B's 1, never C's
    seen = [name for page in pages for name in page]
    assert sorted(seen) == sorted([*RESULTS_A, "b-alt"])
    when = {name: RESULTS_A.get(name, (0, 0, 0, "2026-03-10T09:00:00+00:00"))[3] for name in seen}
    assert [when[name] for name in seen] == sorted(when.values(), reverse=True)


@BOTH
def test_a_result_recorded_between_two_pages_neither_repeats_nor_hides_one(client, callers, world):
    first = search(client, callers, f"patient={world['A']}&_count=3")
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    newest = {**quantity(world["A"], ALT, 55, "U/L"), "effectiveDateTime": "2026-06-20T09:00Z"}
    client.post("/fhir/Observation", json=newest, headers=callers["clinician"])

    second = fhir_body(client.get(next_url, headers=callers["clinician"]), 200)

    assert not set(names_in(first, world)) & set(names_in(second, world))
    assert names_in(first, world) == ["b1", "a6", "a5"]
    assert names_in(second, world) == ["a4", "i1", "a3"]


@BOTH
def test_a_clinician_never_sees_another_sites_results(client, callers, world):
    south_patient = search(client, callers, f"patient={world['C']}")
    by_reference = search(client, callers, f"patient=Patient/{world['C']}&code={ALT}")
    whole_site = search(client, callers, "_count=100")
    guessed = client.get(f"/fhir/Observation/{world['ids']['c-alt']}", headers=callers["clinician"])

    assert south_patient["total"] == 0 and not south_patient.get("entry")
    assert by_reference["total"] == 0
    assert "c-alt" not in names_in(whole_site, world) and len(whole_site["entry"]) == 9
    assert fhir_body(guessed, 404)["issue"][0]["code"] == "not-found"
    unknown = search(client, callers, "patient=no-such-patient")
    assert unknown == {**south_patient, "link": unknown["link"]}  # the same answer as south's
    everywhere = search(client, callers, "_count=100", caller="auditor")  # no site: every site
    assert "c-alt" in names_in(everywhere, world)


def test_roles_that_do_not_read_patients_are_refused(client, callers, world):
    assert search(client, callers, "", caller="lab-interface", status=403)
    assert search(client, callers, "", caller="admin", status=403)
    assert fhir_body(client.get("/fhir/Observation"), 401)["issue"][0]["code"] == "login"


def test_each_search_is_audited_with_the_caller_and_criteria_but_no_value(
    client, callers, world, uow_factory
):
    search(client, callers, f"patient={world['A']}&code={ALT}&date=ge2026-03")
    search(client, callers, f"patient={world['C']}")

    with uow_factory() as uow:
        rows = uow.session.execute(
            select(audit_log).where(audit_log.c.action == "observation_search")
        ).all()
    assert [(r.actor, r.patient_id) for r in rows] == [
        (f"user:{callers.users['clinician']['id']}", world["A"]),
        (f"user:{callers.users['clinician']['id']}", world["C"]),
    ]
    first, refused = rows[0].detail, rows[1].detail
    assert first["codes"] == ["ALT"] and first["date"] == ["ge2026-03"]
    assert first["returned"] == 4 and first["site"] == "north"
    assert refused["patient_visible"] is False and refused["returned"] == 0
    assert not {"420", "300", "200", "150"} & set(str(rows[0]).replace(",", " ").split())


#: Queries refused with a 400 OperationOutcome, whatever the data.
REFUSED_QUERIES = [
    "status=final",  # not supported
    "_sort=date",
    "code:text=ALT",  # a modifier
    "date=2026-13",
    "date=2026-02-30",
    "date=0001-01-01",
    "date=NaN",
    "date=ne2026-03",  # unsupported prefix
    "date=sa2026-03",
    "date=2026-03-01T10:00",  # a time without its zone
    "date=2026-03-01T10:00:00%2B25:00",
    "date=2026-03%0D%0AX-Injected: 1",
    "date=",
    "patient=a&patient=b",
    "patient=Patient/a%0Ab",
    "patient=Observation/x",
    "_count=0",
    "_count=-1",
    "_count=NaN",
    "_count=1e308",
    "_count=101",
    "_count=99999999999999999999",
    "_cursor=not-a-cursor",
    "_cursor=MDAwMS0wMS0wMVQwMDowMDowMCswMTowMCBhYmM=",  # year 0001 inside
    "code=" + ",".join(["1742-6"] * 21),
    "date=ge2026&date=le2026&date=ge2026&date=le2026&date=2026",
]


def test_malformed_or_unsupported_parameters_are_a_400_operation_outcome(client, callers):
    for query in REFUSED_QUERIES:
        response = client.get(f"/fhir/Observation?{query}", headers=callers["clinician"])

        issue = fhir_body(response, 400)["issue"][0]
        assert issue["severity"] == "error", query
        assert issue["code"] in ("invalid", "not-supported", "too-costly"), query


def test_lenient_handling_ignores_unsupported_parameters_and_caps_count(client, callers, world):
    lenient = {"Prefer": "return=representation, handling=lenient"}

    bundle = search(client, callers, f"patient={world['A']}&status=final&_count=500", **lenient)

    assert bundle["total"] == 8 and len(bundle["entry"]) == 9
    warning = bundle["entry"][-1]
    assert warning["search"] == {"mode": "outcome"}
    assert warning["resource"]["issue"][0]["severity"] == "warning"
    assert "'status'" in warning["resource"]["issue"][0]["diagnostics"]
    self_query = parse_qs(urlsplit(bundle["link"][0]["url"]).query)
    assert self_query == {"patient": [world["A"]], "_count": ["100"]}
    assert search(client, callers, "code:exact=x", status=400, **lenient)  # never a modifier


def test_date_bounds_name_the_whole_range_of_their_precision():
    start, end = date_bounds("2026-02")
    assert (start.isoformat(), end.isoformat()) == (
        "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
    )
    assert date_bounds("le2024-02-29")[1].isoformat() == "2024-03-01T00:00:00+00:00"
    assert date_bounds("gt2026-03-01T08:30:00.5Z")[0].isoformat() == (
        "2026-03-01T08:30:00.600000+00:00"
    )


def test_a_fhir_client_searches_observations_over_http(served, callers, world):  # noqa: F811
    token = callers["clinician"]["Authorization"]
    fhir = SyncFHIRClient(f"{served}/fhir", authorization=token)

    found = fhir.resources("Observation").search(patient=world["A"], code=ALT).limit(4).fetch()
    everything = fhir.resources("Observation").search(patient=world["A"]).fetch_all()

    assert [o["id"] for o in found] == [world["ids"][n] for n in ("a6", "a5", "a4", "a3")]
    assert len(everything) == 8


# ---- the CapabilityStatement -------------------------------------------------------------------

#: A value for each declared search parameter of each resource type.
SEARCH_VALUES = {
    ("Observation", "patient"): "{A}",
    ("Observation", "code"): ALT,
    ("Observation", "date"): "ge2026-01",
    ("Patient", "identifier"): "urn:example:mrn|MRN-1",
    ("Patient", "name"): "Ada",
    ("Patient", "birthdate"): "1979-04-02",
    ("Patient", "organization"): "Organization/north",
    ("CarePlan", "subject"): "Patient/{A}",
    ("CarePlan", "patient"): "{A}",
    ("Task", "patient"): "{A}",
    ("Task", "status"): "requested",
}


def test_the_capability_statement_declares_only_what_answers(client, callers, world, app):
    statement = fhir_body(client.get("/fhir/metadata"), 200)
    rest = statement["rest"][0]
    headers = callers["clinician"]
    ids = {
        "Patient": world["A"],
        "Observation": world["ids"]["a1"],
        "CarePlan": world["A"],
        "PlanDefinition": "aih",
    }
    routed = {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        for method in context.methods or ()
    }
    answered, absent = [], []
    for resource in rest["resource"]:
        kind = resource["type"]
        for interaction in (i["code"] for i in resource["interaction"]):
            if interaction == "read":
                response = client.get(f"/fhir/{kind}/{ids[kind]}", headers=headers)
                answered.append((kind, "read", fhir_body(response, 200)["resourceType"]))
            elif interaction == "search-type":
                if ("GET", f"/fhir/{kind}") not in routed:  # another change still to land
                    absent.append(kind)
                    continue
                for param in resource.get("searchParam", []):
                    value = SEARCH_VALUES[(kind, param["name"])].format(A=world["A"])
                    response = client.get(
                        f"/fhir/{kind}", params={param["name"]: value}, headers=headers
                    )
                    body = fhir_body(response, 200)
                    answered.append((kind, param["name"], body["type"]))
            elif interaction == "create":
                response = client.post(f"/fhir/{kind}", json={}, headers=headers)
                assert response.status_code == 400, (kind, response.text)  # routed, then refused
                answered.append((kind, "create", "refused empty"))
            else:
                pytest.fail(f"{kind} declares {interaction}, which this test does not know")
        for operation in resource.get("operation", []):
            response = client.post(
                f"/fhir/{kind}/aih/${operation['name']}?subject=Patient/{world['A']}",
                headers=headers,
            )
            assert response.status_code not in (404, 405), response.text
    for interaction in (i["code"] for i in rest["interaction"]):
        body = {"resourceType": "Bundle", "type": interaction, "entry": []}
        answer = fhir_body(client.post("/fhir", json=body, headers=callers["lab-interface"]), 200)
        assert answer["type"] == f"{interaction}-response"
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert {p["name"] for p in observation["searchParam"]} == {"patient", "code", "date"}
    assert {i["code"] for i in observation["interaction"]} == {"create", "read", "search-type"}
    assert ("Observation", "date", "searchset") in answered
    if absent:
        pytest.skip(f"declared but not yet routed (search-type): {', '.join(absent)}")


# ---- the plan on PostgreSQL ----------------------------------------------------------------


@pytest.mark.postgres
def test_a_sites_search_reads_its_pages_in_index_order_without_a_sort(postgres_url):
    """PostgreSQL walks ix_lab_results_taken_at backwards for a site's first and later pages
    (sequential scans, bitmap scans and sorts made expensive, as in the queue plans' test)."""
    engine = make_engine(postgres_url)
    upgrade(postgres_url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    people = [
        {
            "id": f"p{i:04d}",
            "site": ("north", "south")[i % 2],
            "clinician": "dr-a",
            "birth_date": start.date().replace(year=1970),
            "sex": "F",
            "weight_kg": 60.0,
            "pathway_key": "aih@1.0.0",
            "state": "screening",
            "enrolled_at": start,
            "updated_at": start,
            "version": 1,
        }
        for i in range(400)
    ]
    labs = [
        {
            "id": f"l{i:05d}",
            "patient_id": f"p{i % 400:04d}",
            "code": ("ALT", "IGG")[i % 2],
            "value": 50.0,
            "unit": "U/L",
            "reported_value": "50",
            "source": "fhir",
            "taken_at": start + timedelta(minutes=7 * i),
            "recorded_at": start,
        }
        for i in range(4000)
    ]
    with engine.begin() as conn:
        conn.execute(insert(patients), people)
        conn.execute(insert(lab_results), labs)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE lab_results, patients"))
    criteria = ObservationFilter(site="north", codes=frozenset({"ALT"}))
    with session_factory(engine)() as session:
        first, after = find_observations(session, criteria, after=None, limit=5)
    assert len(first) == 5 and after is not None
    for position in (None, after):
        (plan,) = _plans(
            engine, lambda s, p=position: find_observations(s, criteria, after=p, limit=5)
        )
        nodes = _nodes(plan)
        assert not {"Sort", "Incremental Sort"} & {n["Node Type"] for n in nodes}, nodes
        scans = [n for n in nodes if n.get("Relation Name") == "lab_results"]
        assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
            ("Index Scan", "ix_lab_results_taken_at")
        ], scans
    engine.dispose()
