"""A coordinator finds the patient on the phone; a clinician reads who the patient is, orders
from the page, sees a refusal at the top with focus on it, and overrides it with a reason.
Each page passes the accessibility check; screenshots go to var/artifacts/screenshots/."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.sync_api import expect

from engine.services.access_policy import Principal
from engine.services.patient_directory import search_patients
from engine.services.patient_header import age_on
from engine.services.patients import (
    enrol_patient,
    order_medication,
    patient_history,
    record_clinical_event,
    record_lab_result,
)
from tests.e2e.accessibility import assert_accessible

EVERYWHERE = Principal("e2e", "e2e", "auditor", None)
SCORED_ON = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
LABS_TAKEN = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture(scope="module")
def pia(demo) -> str:
    """Pia Ñúmeros at north (dr-adeyemi): screened (IgG reported in mg/dL, INR), MELD and
    Child-Pugh recorded on 10 Jan 2026, on prednisolone 30 mg/day: induction.prednisolone."""
    uow = demo.uow_factory
    patient_id = enrol_patient(
        uow(),
        "e2e",
        site="north",
        clinician="dr-adeyemi",
        birth_date="1980-06-15",
        sex="F",
        weight_kg=71.5,
        given_name="Pia",
        family_name="Ñúmeros",
        external_id="E2E-PIA",
        email="pia@example.org",
        phone="+44 20 7946 0101",
        facts={"cirrhosis": False, "pregnant": False},
    )["patient_id"]
    for code, value, unit in (
        ("ALT", 7, "ukat/L"),
        ("AST", 310, "U/L"),
        ("IgG", 2699, "mg/dL"),
        ("TPMT", 31, "U/mL"),
        ("INR", 1.2, "{INR}"),
    ):
        record_lab_result(
            uow(), "e2e", patient_id, code=code, value=value, unit=unit, taken_at=LABS_TAKEN
        )
    record_clinical_event(
        uow(),
        "e2e",
        patient_id,
        kind="severity_scores",
        occurred_at=SCORED_ON,
        data={"meld": 15, "child_pugh": 7},
    )
    order_medication(uow(), "e2e", patient_id, drug="prednisolone", mg_per_day=30)
    return patient_id


def test_a_coordinator_finds_a_patient_by_name_and_opens_the_page(login, demo, pia, screenshot):
    page = login("coordinator-north")
    page.get_by_role("link", name="Patients").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients · site north")
    assert_accessible(page, context="patient list")
    page.get_by_label("Name").fill("numer")  # no accent, lower case, the start of the name
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table.patient-list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Ñúmeros, Pia")
    expect(rows.first).to_contain_text("E2E-PIA")
    assert_accessible(page, context="patient list, searched by name")
    screenshot(page, "10-patient-search")
    page.get_by_role("link", name="Ñúmeros, Pia").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Pia Ñúmeros")
    assert page.url.endswith(f"/ui/patients/{pia}")


def test_the_header_says_who_this_is_and_what_matters(login, demo, pia, screenshot):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/patients/{pia}")
    header = page.locator("section.patient-header")
    age = age_on(date(1980, 6, 15), datetime.now(UTC).date())
    expect(header.locator('[data-field="age"]')).to_have_text(f"{age} years")
    expect(header.locator('[data-field="sex"]')).to_have_text("female")
    expect(header.locator('[data-field="weight"]')).to_have_text("71.5 kg")
    expect(header.locator('[data-field="contact"]')).to_have_text(
        "pia@example.org · +44 20 7946 0101"
    )
    facts = {
        row.locator("th").inner_text(): [c.inner_text() for c in row.locator("td").all()]
        for row in header.locator("table.facts tbody tr").all()
    }
    assert facts["MELD"] == ["15", "10 Jan 2026"]
    assert facts["Child-Pugh"] == ["7", "10 Jan 2026"]
    enrolled = datetime.now(UTC).strftime("%d %b %Y")
    assert facts["Cirrhosis"] == ["no", enrolled]
    assert facts["Pregnant"] == ["no", enrolled]
    assert facts["HBV exposed (HBsAg or anti-HBc)"] == ["not recorded", ""]
    assert facts["TPMT deficient"] == ["no (TPMT 31.0 U/mL)", LABS_TAKEN.strftime("%d %b %Y")]
    expect(header.locator('li[data-drug="prednisolone"]')).to_contain_text(
        "prednisolone 30 mg/day; expected 30 mg/day (IND-STD, IND-AZA-DELAY)"
    )
    expect(header.locator('[data-field="expected"]')).to_have_text(
        "Expected in this state: prednisolone 30 mg/day (IND-STD, IND-AZA-DELAY)"
    )
    page.locator("summary", has_text="Labs (").click()
    labs = page.locator("tr[data-lab]")
    expect(page.locator('tr[data-lab="IgG"] td').nth(2)).to_have_text("26.99 g/L")
    expect(page.locator('tr[data-lab="INR"] td').nth(2)).to_have_text("1.20")
    expect(page.locator('tr[data-lab="ALT"] td').nth(2)).to_have_text("420.0 U/L")
    assert labs.count() == 5
    assert not re.search(r"\d\.\d{5,}", page.locator("main").inner_text())  # no float artefacts
    assert "{INR}" not in page.locator("main").inner_text()
    assert_accessible(page, context="patient page")
    screenshot(page, "11-patient-header")


def test_a_clinician_sees_their_own_patients_first(login, demo, pia, screenshot):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/")
    page.wait_for_url(re.compile(r"/ui/patients$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My patients")
    mine = search_patients(demo.uow_factory(), EVERYWHERE, clinician="dr-adeyemi", limit=100)
    clinicians = page.locator("table.patient-list tbody tr td:nth-child(6)").all_inner_texts()
    assert clinicians == ["dr-adeyemi"] * min(mine["total"], 25)
    expect(page.locator("#p-count")).to_contain_text(f"{mine['total']} patients found")
    assert_accessible(page, context="my patients")
    screenshot(page, "12-my-patients")
    page.get_by_label("all patients").check()
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Patients")


def test_another_sites_patient_is_neither_listed_nor_opened(login, demo):
    elsewhere = next(
        p
        for p in search_patients(demo.uow_factory(), EVERYWHERE, limit=100)["items"]
        if p["site"] != "north" and p["family_name"]
    )
    page = login("coordinator-north")
    page.goto(f"{demo.url}/ui/patients?name={elsewhere['family_name']}")
    sites = page.locator("table.patient-list tbody tr td:nth-child(5)").all_inner_texts()
    assert sites == [] or set(sites) == {"north"}
    answer = page.goto(f"{demo.url}/ui/patients/{elsewhere['patient_id']}")
    assert answer.status == 404
    expect(page.get_by_text(elsewhere["family_name"])).to_have_count(0)


def test_an_order_is_guided_refused_at_the_top_with_focus_and_overridden(
    login, demo, pia, screenshot
):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/patients/{pia}")
    expect(page.get_by_label("mg/day", exact=True)).to_have_value("30")  # the expected dose
    expect(page.locator("#o-guide")).to_contain_text("2.5 mg/day")
    page.get_by_label("Drug", exact=True).select_option("azathioprine")
    expect(page.get_by_label("mg/day", exact=True)).to_have_value("")
    expect(page.locator("#o-guide")).to_contain_text("Azathioprine 1-2 mg/kg/day")
    expect(page.locator("#o-guide")).to_contain_text("Refused now by IND-AZA-DELAY")
    page.get_by_label("or mg/kg/day").fill("1.5")
    page.get_by_role("button", name="Order", exact=True).click()

    refusal = page.locator("#refusal")
    expect(refusal).to_be_focused()
    expect(refusal).to_have_attribute("role", "alert")
    header_top = page.locator("section.patient-header").bounding_box()["y"]
    assert refusal.bounding_box()["y"] < header_top  # above everything but the page title
    first_line = refusal.locator("p").first.inner_text()
    assert first_line.count("IND-AZA-DELAY") == 1 and not first_line.startswith("IND")
    expect(refusal.locator(".sources")).to_have_text(
        "Sources: S3: Management of Autoimmune Hepatitis, practical guideline summary (2025)"
    )
    assert_accessible(page, context="patient page with a refused order")
    screenshot(page, "13-order-refused-at-top")

    refusal.get_by_label(re.compile("reason")).fill("steroid started at the referring centre")
    refusal.get_by_role("button", name="Override and order").click()
    expect(page.get_by_role("status")).to_have_text("Order placed: azathioprine.")
    expect(page.locator('li[data-drug="azathioprine"]')).to_contain_text(
        "azathioprine 107 mg/day (1.5 mg/kg/day)"
    )
    expect(page.locator('li[data-drug="azathioprine"] .override')).to_contain_text(
        "aza-before-steroid-delay"
    )
    screenshot(page, "14-order-overridden")
    orders = patient_history(demo.uow_factory(), "e2e", pia)["orders"]
    assert [o["drug"] for o in orders if o["status"] == "active"] == [
        "prednisolone",
        "azathioprine",
    ]


def test_an_absolute_block_names_its_rule_once_and_offers_no_override(login, demo):
    page = login("dr-adeyemi")
    page.goto(f"{demo.url}/ui/patients/{demo.patients['cirrhotic']}")
    page.get_by_label("Drug", exact=True).select_option("budesonide")
    page.get_by_label("mg/day", exact=True).fill("9")
    page.get_by_role("button", name="Order", exact=True).click()
    refusal = page.locator("#refusal")
    expect(refusal).to_be_focused()
    assert refusal.inner_text().count("SAFE-BUD-CIRRHOSIS") == 1
    expect(refusal).to_contain_text("cannot be overridden")
    expect(refusal.get_by_role("button", name="Override and order")).to_have_count(0)


@pytest.mark.parametrize(
    ("who", "lands_on"),
    [
        (None, r"/ui/login\?next=/ui/start$"),
        ("coordinator-north", r"/ui/queues$"),
        ("dr-adeyemi", r"/ui/patients$"),
        ("auditor", r"/ui/patients$"),
        ("admin", r"/ui/pathway$"),
    ],
)
def test_the_site_root_sends_each_role_to_its_start_page(page, login, demo, who, lands_on):
    if who:
        login(who)
    page.goto(f"{demo.url}/")
    page.wait_for_url(re.compile(lands_on))
