"""Finding a patient: one search service behind the native API and FHIR, by name (case and
accents ignored), external id, birth date, site, clinician and state, paged by keyset, scoped
to the caller's site by the access policy, and audited without the searched names."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.adapters.orm import audit_log
from engine.services.access_policy import Principal
from engine.services.patient_directory import search_patients
from engine.services.patients import enrol_patient
from tests.api.fhir_resources import fhir_body

PEOPLE = [
    ("Zoë", "Ångström", "north", "dr-a", "1980-03-01", "N-001"),
    ("Zoe", "Angstrom", "north", "dr-b", "1975-07-12", "N-002"),
    ("Olive", "van den Berg", "north", "dr-a", "1990-01-30", "N-003"),
    ("Esme", "O'Brien", "north", "dr-b", "1962-11-05", "N-004"),
    ("Ángel", "Núñez", "south", "dr-s", "1980-03-01", "S-001"),
    ("Cora", "Liver", "south", "dr-s", "1971-02-02", "N-001"),
]


def enrol_people(uow_factory, people=PEOPLE) -> dict[str, str]:
    """Enrol each (given, family, site, clinician, birth date, external id); ids by external id
    and site."""
    made = {}
    for given_name, family_name, site, clinician, born, external_id in people:
        status = enrol_patient(
            uow_factory(),
            "test",
            site=site,
            clinician=clinician,
            birth_date=born,
            sex="F",
            weight_kg=60,
            given_name=given_name,
            family_name=family_name,
            external_id=external_id,
        )
        made[f"{site}/{external_id}"] = status["patient_id"]
    return made


def names(answer: dict) -> list[str]:
    return [f"{i['given_name']} {i['family_name']}" for i in answer["items"]]


@pytest.fixture
def people(uow_factory) -> dict[str, str]:
    return enrol_people(uow_factory)


ON_BOTH_DATABASES = pytest.mark.parametrize(
    "database_url",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)


@ON_BOTH_DATABASES
def test_a_name_is_found_whatever_its_case_and_accents(client, callers, people):
    found = client.get("/patients?name=angs", headers=callers["clinician-anywhere"]).json()
    assert sorted(names(found)) == ["Zoe Angstrom", "Zoë Ångström"]  # same keys: id decides
    found = client.get("/patients?name=ZOË", headers=callers["clinician-anywhere"]).json()
    assert sorted(names(found)) == ["Zoe Angstrom", "Zoë Ångström"]
    assert names(client.get("/patients?name=NUN", headers=callers["auditor"]).json()) == [
        "Ángel Núñez"
    ]


def test_each_word_starts_a_name_or_a_later_part_of_one(client, callers, people):
    headers = callers["clinician-anywhere"]
    assert names(client.get("/patients?name=berg", headers=headers).json()) == [
        "Olive van den Berg"
    ]
    assert sorted(names(client.get("/patients?name=zo%20angs", headers=headers).json())) == [
        "Zoe Angstrom",
        "Zoë Ångström",
    ]
    assert client.get("/patients?name=oe", headers=headers).json()["items"] == []


def test_external_id_birth_date_clinician_and_state_narrow_the_list(client, callers, people):
    headers = callers["clinician-anywhere"]
    by_id = client.get("/patients?external_id=N-001", headers=headers).json()
    assert sorted(i["site"] for i in by_id["items"]) == ["north", "south"]
    born = client.get("/patients?birth_date=1980-03-01&site=south", headers=headers).json()
    assert names(born) == ["Ángel Núñez"]
    mine = client.get("/patients?clinician=dr-b&state=screening", headers=headers).json()
    assert names(mine) == ["Zoe Angstrom", "Esme O'Brien"]
    assert client.get("/patients?clinician=dr-b&state=taper", headers=headers).json()["total"] == 0


def test_a_site_scoped_caller_finds_only_their_site_whatever_site_they_ask_for(
    client, callers, people
):
    north = callers["coordinator"]
    assert {i["site"] for i in client.get("/patients?name=a", headers=north).json()["items"]} == {
        "north"
    }
    asked_south = client.get("/patients?external_id=S-001&site=south", headers=north).json()
    assert asked_south["items"] == [] and asked_south["total"] == 0
    plain_list = client.get("/patients?site=south", headers=north).json()
    assert plain_list["items"] == []


def test_my_patients_are_the_calling_clinicians_own(client, callers, uow_factory):
    enrol_people(uow_factory, [("Ada", "Mine", "north", "clinician", "1980-01-01", "M-1")])
    enrol_people(uow_factory, [("Bo", "Theirs", "north", "dr-z", "1980-01-01", "M-2")])
    mine = client.get("/patients?mine=true", headers=callers["clinician"]).json()
    assert names(mine) == ["Ada Mine"]


def test_the_plain_list_keeps_its_offset_paging_in_enrolment_order(client, callers, people):
    listed = client.get("/patients?limit=2&offset=1", headers=callers["clinician-anywhere"])
    assert listed.status_code == 200
    body = listed.json()
    assert body["offset"] == 1 and body["total"] == 6 and len(body["items"]) == 2


BAD_SEARCHES = [
    ("name=a%0D%0Ab", "name must be one line"),
    ("name=" + "x" * 10_000, "at most 128"),
    ("birth_date=NaN", "birth_date must be a date"),
    ("birth_date=0001-01-01", "on or after 1900-01-01"),
    ("birth_date=2026-02-30", "birth_date must be a date"),
    ("cursor=not-a-cursor", "cursor is not one a previous page gave"),
    ("cursor=WyJhIiwxXQ", "cursor is not one a previous page gave"),
    ("name=x&nmae=y", "nmae"),
    ("limit=0&name=a", "greater than or equal to 1"),
    ("limit=101&name=a", "limit must be between 1 and 100"),
]


def test_bad_search_input_is_a_422_with_its_reason(client, callers):
    for query, reason in BAD_SEARCHES:  # one app for all: each case costs a request, not a set-up
        answer = client.get(f"/patients?{query}", headers=callers["clinician-anywhere"])
        assert answer.status_code == 422, (query, answer.text)
        assert reason in answer.text, (query, answer.text)


def test_a_search_is_audited_with_what_was_searched_not_the_names(
    client, callers, people, uow_factory
):
    headers = callers["coordinator"]
    client.get("/patients?name=Zo%C3%AB&birth_date=1980-03-01", headers=headers)
    with uow_factory() as uow:
        row = uow.session.execute(
            select(audit_log.c.actor, audit_log.c.detail)
            .where(audit_log.c.action == "patient_search")
            .order_by(audit_log.c.id.desc())
        ).first()
    assert row.actor == f"user:{callers.users['coordinator']['id']}"
    assert row.detail["criteria"] == ["name", "birth_date"]
    assert row.detail["site"] == "north" and row.detail["found"] == 1
    assert "zo" not in str(row.detail).lower() and "1980" not in str(row.detail)


# -- paging ------------------------------------------------------------------------------------

FAMILY = ["Ng", "Nguyen", "Núñez", "Nunes", "O'Neil", "Olsen", "Ølsen", "Ng", "Ng"]
GIVEN = ["Ann", "Anne", "Ánne", "Bo", "bo", "Cy"]


@pytest.fixture
def crowd(uow_factory) -> int:
    people = [
        (GIVEN[i % len(GIVEN)], FAMILY[i % len(FAMILY)], "north", "dr-a", "1970-01-01", f"C-{i}")
        for i in range(31)
    ]
    enrol_people(uow_factory, people)
    return len(people)


@ON_BOTH_DATABASES
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit=st.integers(1, 12), name=st.sampled_from(["", "n", "ng", "o", "ann", "bo", "ø"]))
def test_paging_by_cursor_loses_and_repeats_nothing(uow_factory, crowd, limit, name):
    reader = Principal("u1", "dr-a", "clinician", None)
    everything = search_patients(uow_factory(), reader, name=name or None, limit=100)
    seen, cursor, pages = [], None, 0
    while True:
        page = search_patients(uow_factory(), reader, name=name or None, limit=limit, cursor=cursor)
        seen += [i["patient_id"] for i in page["items"]]
        pages += 1
        assert page["total"] == everything["total"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["items"]) == limit
    assert seen == [i["patient_id"] for i in everything["items"]]
    assert len(seen) == everything["total"] and pages == max(1, -(-len(seen) // limit))


def test_a_patient_enrolled_between_pages_is_neither_skipped_nor_repeated(uow_factory, crowd):
    reader = Principal("u1", "dr-a", "clinician", None)
    first = search_patients(uow_factory(), reader, limit=10)
    enrol_people(
        uow_factory,
        [
            ("Zed", "Zz", "north", "dr-a", "1970-01-01", "late"),
            ("Aa", "Aa", "north", "dr-a", "1970-01-01", "early"),
        ],
    )
    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = search_patients(uow_factory(), reader, limit=10, cursor=cursor)
        rest += [i["family_name"] for i in page["items"]]
        cursor = page["next_cursor"]
    ids = [i["patient_id"] for i in first["items"]]
    assert len(ids) + len(rest) == crowd + 1  # "Aa" sorts before the first page, "Zz" after
    assert rest[-1] == "Zz" and "Aa" not in rest


# -- FHIR ----------------------------------------------------------------------------------------


def test_fhir_patient_search_is_a_searchset_with_a_next_link(client, callers, people):
    headers = callers["clinician-anywhere"]
    bundle = fhir_body(client.get("/fhir/Patient?name=zo&_count=1", headers=headers), 200)
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    following = {link["relation"]: link["url"] for link in bundle["link"]}["next"]
    second = fhir_body(client.get(following.split("testserver", 1)[1], headers=headers), 200)
    families = [b["entry"][0]["resource"]["name"][0]["family"] for b in (bundle, second)]
    assert sorted(families) == ["Angstrom", "Ångström"]
    assert [link["relation"] for link in second["link"]] == ["self"]


def test_fhir_patient_search_by_identifier_birthdate_and_organization(client, callers, people):
    headers = callers["clinician-anywhere"]
    found = client.get(
        "/fhir/Patient?identifier=urn:site|N-001&organization=Organization/south", headers=headers
    ).json()
    assert [e["resource"]["name"][0]["family"] for e in found["entry"]] == ["Liver"]
    born = client.get("/fhir/Patient?birthdate=eq1980-03-01", headers=headers).json()
    assert born["total"] == 2
    scoped = client.get("/fhir/Patient?organization=south", headers=callers["coordinator"]).json()
    assert scoped["total"] == 0 and scoped["entry"] == []


BAD_FHIR_SEARCHES = [
    "gender=female",
    "name=a&name=b",
    "birthdate=gt1980-01-01",
    "birthdate=0001-01-01",
    "birthdate=NaN",
    "name=a%0Ab",
    "_cursor=%25%25%25",
    "_count=0",
    "name=" + "x" * 10_000,
]


def test_fhir_patient_search_refuses_bad_parameters_with_an_operation_outcome(client, callers):
    for query in BAD_FHIR_SEARCHES:
        answer = client.get(f"/fhir/Patient?{query}", headers=callers["clinician-anywhere"])
        assert answer.status_code in (400, 422), (query, answer.text)
        fhir_body(answer, answer.status_code)  # a valid OperationOutcome
        assert answer.json()["resourceType"] == "OperationOutcome", query


def test_fhir_patient_search_needs_a_reader(client, callers):
    assert client.get("/fhir/Patient?name=a", headers=callers["lab-interface"]).status_code == 403
    assert client.get("/fhir/Patient?name=a").status_code == 401
