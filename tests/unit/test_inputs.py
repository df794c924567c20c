"""Input validation: unknown codes, dates, event fields, doses; a refusal changes nothing."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from engine.domain.care import new_patient
from engine.domain.errors import DomainError, EventNotAllowed, InvalidInput, UnknownCode
from tests.fixtures_domain import (
    T0,
    Chart,
    care,
    make_patient,
    on_standard_induction,
    screened,
)


def refused(chart: Chart, error: type[DomainError], action) -> DomainError:
    before = chart.snapshot()
    with pytest.raises(error) as caught:
        action()
    assert chart.snapshot() == before
    return caught.value


# ---- unknown codes --------------------------------------------------------------------------


def test_unknown_lab_code_is_refused_listing_the_known_ones():
    chart = make_patient()

    error = refused(chart, UnknownCode, lambda: chart.lab("GGT", 50, "U/L"))

    assert "GGT" in error.message and "ALT" in error.message
    assert error.code == "unknown-code"


def test_unknown_drug_is_refused():
    chart = make_patient()

    error = refused(chart, UnknownCode, lambda: chart.order("ursodeoxycholic_acid", mg_per_day=1))

    assert "ursodeoxycholic_acid" in error.message


def test_unknown_event_kind_is_refused():
    chart = make_patient()

    error = refused(chart, UnknownCode, lambda: chart.event("vaccinated"))

    assert "vaccinated" in error.message


def test_drug_names_are_matched_case_and_space_insensitively():
    chart = make_patient()
    screened(chart)

    chart.order("  Prednisone ", mg_per_day=30)

    assert chart.state == "induction.prednisolone"


# ---- dates ----------------------------------------------------------------------------------


def test_future_lab_is_refused():
    chart = make_patient()

    error = refused(
        chart, InvalidInput, lambda: chart.lab("ALT", 50, taken_at=chart.now + timedelta(hours=1))
    )

    assert "future" in error.message


def test_a_few_minutes_of_clock_skew_are_tolerated():
    chart = make_patient()

    chart.lab("ALT", 50, taken_at=chart.now + timedelta(minutes=4))

    assert len(chart.patient.labs) == 1


def test_future_event_and_future_order_are_refused():
    chart = make_patient()
    screened(chart)
    later = chart.now + timedelta(days=1)

    refused(chart, InvalidInput, lambda: chart.event("pregnancy", occurred_at=later))
    refused(
        chart,
        InvalidInput,
        lambda: chart.cp.order_medication(
            chart.patient, "prednisolone", chart.now, "dr", mg_per_day=30, ordered_at=later
        ),
    )


def test_naive_datetimes_are_refused():
    chart = make_patient()
    naive = chart.now.replace(tzinfo=None)

    error = refused(chart, InvalidInput, lambda: chart.lab("ALT", 50, taken_at=naive))
    assert "time zone" in error.message
    refused(chart, InvalidInput, lambda: chart.event("pregnancy", occurred_at=naive))
    refused(
        chart,
        InvalidInput,
        lambda: chart.cp.order_medication(
            chart.patient, "prednisolone", chart.now, "dr", ordered_at=naive
        ),
    )


def test_backdated_order_starts_treatment_when_it_was_ordered():
    chart = make_patient()
    screened(chart)
    chart.advance(days=3)
    earlier = chart.now - timedelta(days=2)

    chart.cp.order_medication(
        chart.patient, "prednisolone", chart.now, "dr", mg_per_day=30, ordered_at=earlier
    )

    assert chart.patient.treatment_start == earlier
    assert chart.patient.orders[-1].ordered_at == earlier


# ---- enrolment ------------------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0, -5, 500, math.nan, None])
def test_enrolment_refuses_an_impossible_weight(weight):
    patient = new_patient(
        site="north", clinician="dr", birth_date=date(1980, 1, 1), sex="F", weight_kg=weight
    )

    with pytest.raises(InvalidInput):
        care().enrol(patient, T0, "coordinator")
    assert patient.state == ""


def test_enrolment_refuses_a_birth_date_in_the_future():
    chart_clock = make_patient().clock
    patient = new_patient(
        site="north",
        clinician="dr",
        birth_date=(chart_clock.now + timedelta(days=2)).date().isoformat(),
        sex="F",
        weight_kg=60,
    )

    with pytest.raises(InvalidInput, match="birth_date"):
        care().enrol(patient, chart_clock.now, "coordinator")


def test_enrolment_places_the_patient_in_screening_and_audits_it():
    chart = make_patient(cirrhosis=True)

    assert chart.state == "screening"
    assert chart.patient.pathway_key == "aih@1.0.0"
    assert chart.patient.enrolled_at == chart.now
    assert chart.facts == {"cirrhosis": True}
    assert chart.patient.audit[-1].action == "patient_enrolled"
    assert "SCR-TPMT" in chart.patient.audit[-1].rule_ids


# ---- event fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data", "words"),
    [
        ("intolerance", {}, "needs drug"),
        ("intolerance", {"drug": ""}, "non-empty"),
        ("intolerance", {"drug": 5}, "non-empty"),
        ("decompensation", {"feature": "jaundice"}, "must be one of"),
        ("decompensation", {}, "needs feature"),
        ("severity_scores", {"meld": 41}, "between 6 and 40"),
        ("severity_scores", {"meld": "18"}, "must be a number"),
        ("severity_scores", {"meld": True}, "must be a number"),
        ("severity_scores", {"child_pugh": math.nan}, "must be a number"),
        ("biopsy_resulted", {}, "needs histological_activity"),
        ("biopsy_resulted", {"histological_activity": "no"}, "true or false"),
        ("biopsy_resulted", {"histological_activity": False, "ishak_grade": 19}, "between"),
        ("pregnancy", {"weeks": 12}, "does not take weeks"),
        ("discharged", {"reason": "   "}, "non-empty"),
    ],
)
def test_event_fields_are_validated(kind, data, words):
    chart = on_standard_induction()

    error = refused(chart, InvalidInput, lambda: chart.event(kind, **data))

    assert words in error.message


def test_unknown_drug_in_an_intolerance_event_is_an_unknown_code():
    chart = on_standard_induction()

    refused(chart, UnknownCode, lambda: chart.event("intolerance", drug="aspirin"))


def test_event_fields_are_cleaned_before_storing():
    chart = on_standard_induction()

    chart.event("intolerance", drug="Prednisone")
    chart.event("discharged", reason="  moved away  ")

    assert chart.patient.clinical_events[-2].data == {"drug": "prednisolone"}
    assert chart.patient.clinical_events[-1].data == {"reason": "moved away"}


def test_severity_scores_set_the_patient_facts():
    chart = make_patient()

    chart.event("severity_scores", meld=12, child_pugh=7)

    assert chart.facts["meld"] == 12 and chart.facts["child_pugh"] == 7


# ---- event not allowed in the current state -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("transplant_performed", {}),
        ("transplant_declined", {}),
    ],
)
def test_event_not_allowed_in_screening_leaves_the_patient_unchanged(kind, data):
    chart = make_patient()

    error = refused(chart, EventNotAllowed, lambda: chart.event(kind, **data))

    assert chart.state == "screening"
    assert error.code == "event-not-allowed"
    assert kind in error.message


def test_fact_changing_events_are_accepted_in_any_state():
    chart = make_patient()

    chart.event("pregnancy")
    chart.event("hcc_diagnosed")

    assert chart.facts["pregnant"] is True and chart.facts["hcc"] is True
    assert chart.state == "screening"


# ---- doses and routes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "dose",
    [
        {"mg_per_day": -1},
        {"mg_per_day": math.nan},
        {"mg_per_day": math.inf},
        {"mg_per_day": True},
        {"mg_per_day": "30"},
        {"mg_per_kg_day": -0.5},
        {"mg_per_day": 100_000},
    ],
)
def test_impossible_doses_are_refused(dose):
    chart = make_patient()
    screened(chart)

    refused(chart, InvalidInput, lambda: chart.order("prednisolone", **dose))


def test_unknown_route_is_refused():
    chart = make_patient()
    screened(chart)

    error = refused(chart, InvalidInput, lambda: chart.order("prednisolone", route="im"))

    assert "im" in error.message


def test_dose_per_kg_and_per_day_are_derived_from_each_other():
    chart = make_patient(weight_kg=80)
    screened(chart)

    chart.order("prednisolone", mg_per_day=30)
    chart.advance(days=14)
    chart.order("azathioprine", mg_per_kg_day=1.5)

    drugs = chart.active_drugs()
    assert drugs["azathioprine"].mg_per_day == 120
    assert drugs["prednisolone"].mg_per_kg_day == 0.375


def test_an_order_supersedes_the_previous_order_of_the_same_drug_only():
    chart = on_standard_induction()
    first = chart.active_drugs()["prednisolone"]

    chart.order("prednisolone", mg_per_day=25)

    assert first.status == "superseded" and first.ended_at == chart.now
    assert chart.active_drugs()["azathioprine"].status == "active"
    assert chart.patient.audit[-1].action == "medication_ordered"


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        ({"cirrosis": True}, "unknown patient fact 'cirrosis'"),
        ({"pregnant": "yes"}, "true or false"),
        ({"meld": 50}, "between 6 and 40"),
        ({"child_pugh": "11"}, "must be a number"),
    ],
)
def test_unknown_or_mistyped_patient_facts_are_refused(facts, words):
    with pytest.raises(InvalidInput) as caught:
        make_patient(**facts)

    assert words in caught.value.message
