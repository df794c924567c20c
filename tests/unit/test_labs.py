"""Lab results: unit conversion, reference limits with site overrides, and history queries."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from engine.adapters.pathway_files import latest
from engine.domain.conditions import Situation, holds
from engine.domain.errors import InvalidInput
from engine.domain.labs import LabHistory, ReferenceLimits, normalise_result
from engine.domain.model import LabResult
from tests.fixtures_domain import (
    T0,
    Clock,
    care_with_limits,
    make_patient,
    screened,
    start_prednisolone,
)


@pytest.fixture(scope="module")
def labs():
    return latest().labs


# ---- conversion ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("ALT", 1, "ukat/L", 60.0),
        ("AST", 0.5, "ukat/L", 30.0),
        ("ALT", 45, "IU/L", 45.0),
        ("ALT", 45, "U/L", 45.0),
        ("ALT", "45", "U/L", 45.0),
        ("IgG", 2699, "mg/dL", 26.99),  # stored at the lab's precision, not 26.990000000000002
        ("ALT", " 45.5 ", "U/L", 45.5),
        ("IgG", 1600, "mg/dL", 16.0),
        ("IgG", 1.6, "g/dL", 16.0),
        ("BILI", 2, "mg/dL", 34.2),
        ("INR", 1.1, "1", 1.1),
        ("ALT", 0, "U/L", 0.0),
    ],
)
def test_quantitative_results_are_converted_to_the_pathway_unit(labs, code, value, unit, expected):
    number, text, canonical = normalise_result(labs[code], value, unit)

    assert number == pytest.approx(expected)
    assert text is None
    assert canonical == labs[code].unit


@pytest.mark.parametrize("code", ["ALT", "AST", "IgG", "BILI", "INR", "TPMT"])
@pytest.mark.parametrize("unit", [None, "", "  "])
def test_a_quantitative_result_without_a_unit_is_refused_naming_the_accepted_units(
    labs, code, unit
):
    with pytest.raises(InvalidInput) as caught:
        normalise_result(labs[code], 1, unit)

    assert "needs a unit" in str(caught.value)
    assert all(accepted in str(caught.value) for accepted in labs[code].convertible)


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        ("ALT", 1e308, "ukat/L"),  # finite given, infinite after conversion
        ("BILI", 1e308, "mg/dL"),
        ("ALT", 45000, "U/L"),  # U/L typed where ukat/L was meant: 1,000x off
        ("IgG", 1500, "g/L"),  # mg/dL value given as g/L: 100x off
        ("INR", 110, "{INR}"),
        ("TPMT", -1, "U/mL"),
        ("ALT", "nan", "U/L"),
        ("ALT", "inf", "U/L"),
    ],
)
def test_an_implausible_or_non_finite_value_is_refused(labs, code, value, unit):
    with pytest.raises(InvalidInput):
        normalise_result(labs[code], value, unit)


@pytest.mark.parametrize("unit", ["mmol/L", "u/l", "g/L", "%"])
def test_an_unconvertible_unit_is_refused_naming_the_accepted_ones(labs, unit):
    with pytest.raises(InvalidInput) as caught:
        normalise_result(labs["ALT"], 45, unit)

    assert "U/L" in caught.value.message and "ukat/L" in caught.value.message


@pytest.mark.parametrize(
    "value", [-1, -0.01, math.nan, "nan", math.inf, "-inf", "abc", "", None, True]
)
def test_negative_nan_infinite_non_numeric_and_boolean_values_are_refused(labs, value):
    with pytest.raises(InvalidInput):
        normalise_result(labs["ALT"], value, "U/L")


@pytest.mark.parametrize(
    ("given", "stored"), [("positive", "positive"), (" NEGATIVE ", "negative")]
)
def test_qualitative_results_are_normalised(labs, given, stored):
    assert normalise_result(labs["HBSAG"], given, None) == (None, stored, None)


@pytest.mark.parametrize("value", ["equivocal", "", 1, "pos"])
def test_qualitative_results_outside_the_allowed_values_are_refused(labs, value):
    with pytest.raises(InvalidInput) as caught:
        normalise_result(labs["ANTI_HBC"], value, None)

    assert "positive, negative" in caught.value.message


def test_recorded_result_keeps_what_was_reported_and_stores_the_converted_value():
    chart = make_patient()

    chart.lab("ALT", "2", "ukat/L")

    result = chart.patient.labs[-1]
    assert (result.value, result.unit) == (120.0, "U/L")
    assert (result.reported_value, result.reported_unit) == ("2", "ukat/L")
    assert result.recorded_at == chart.now and result.source == "manual"


def test_a_lab_can_be_named_by_its_loinc_code():
    chart = make_patient()

    chart.lab("1742-6", 55, "U/L")

    assert chart.patient.labs[-1].code == "ALT"


# ---- reference limits -----------------------------------------------------------------------


def test_site_override_replaces_the_pathway_uln_only_at_that_site(labs):
    limits = ReferenceLimits(labs, {"north": {"ALT": 33}})

    assert limits.uln("ALT", "north") == 33
    assert limits.uln("ALT", "south") == 40
    assert limits.uln("AST", "north") == 40
    assert limits.uln("ALT") == 40


def test_tpmt_bands(labs):
    limits = ReferenceLimits(labs)

    assert [limits.band("TPMT", v) for v in (0, 16.99, 17, 23.9, 24, 44, 44.01, 90)] == [
        "deficient",
        "deficient",
        "intermediate",
        "intermediate",
        "normal",
        "normal",
        "high",
        "high",
    ]


def test_site_override_changes_what_counts_as_normal_for_the_patient():
    cp = care_with_limits({"north": {"ALT": 33}})
    north = make_patient(cp=cp, site="north", clock=Clock())
    south = make_patient(cp=cp, site="south", clock=Clock())
    for chart in (north, south):
        screened(chart)
        start_prednisolone(chart)
        chart.advance(weeks=4)
        chart.labs(AST=30, IgG=12, ALT=36)

    assert "partial-response" in north.alert_ids()
    assert "partial-response" not in south.alert_ids()

    situation = Situation(north.patient, cp.pathway, cp.limits, north.now)
    assert not holds({"labs_within_uln": ["ALT"]}, situation)


# ---- history --------------------------------------------------------------------------------


def _r(code: str, value: float | None, days: float, text: str | None = None) -> LabResult:
    taken = T0 + timedelta(days=days)
    return LabResult(code=code, taken_at=taken, recorded_at=taken, value=value, text=text)


def test_history_is_ordered_by_time_taken_not_recorded():
    late_recorded_early_taken = _r("ALT", 100, 1)
    history = LabHistory([_r("ALT", 50, 5), late_recorded_early_taken, _r("ALT", 70, 3)])

    assert [r.value for r in history.series("ALT")] == [100, 70, 50]
    assert history.latest("ALT").value == 50
    assert history.at_or_before("ALT", T0 + timedelta(days=4)).value == 70
    assert history.at_or_before("ALT", T0) is None
    assert [r.value for r in history.since("ALT", T0 + timedelta(days=3))] == [50]
    assert history.known("ALT") and not history.known("IgG")


def test_baseline_is_the_last_result_before_treatment_else_the_first():
    history = LabHistory([_r("ALT", 300, 0), _r("ALT", 400, 2), _r("ALT", 100, 30)])
    start = T0 + timedelta(days=3)

    assert history.baseline("ALT", start).value == 400
    assert history.baseline("ALT", None).value == 300
    assert history.baseline("ALT", T0 - timedelta(days=1)).value == 300
    assert history.baseline("IgG", start) is None


def test_fall_from_baseline_in_percent():
    start = T0 + timedelta(days=1)
    history = LabHistory([_r("ALT", 400, 0), _r("ALT", 100, 30)])

    assert history.fall_from_baseline_pct("ALT", start) == pytest.approx(75.0)
    risen = LabHistory([_r("ALT", 400, 0), _r("ALT", 500, 30)])
    assert risen.fall_from_baseline_pct("ALT", start) == pytest.approx(-25.0)


def test_no_fall_without_a_result_after_baseline_or_with_a_zero_baseline():
    start = T0 + timedelta(days=1)

    assert LabHistory([_r("ALT", 400, 0)]).fall_from_baseline_pct("ALT", start) is None
    zero = LabHistory([_r("ALT", 0, 0), _r("ALT", 50, 30)])
    assert zero.fall_from_baseline_pct("ALT", start) is None
    assert LabHistory([]).fall_from_baseline_pct("ALT", start) is None


def test_within_uln_is_inclusive_and_needs_a_result():
    history = LabHistory([_r("ALT", 40, 0)])

    assert history.within_uln("ALT", 40)
    assert not history.within_uln("ALT", 39.9)
    assert not history.within_uln("IgG", 16)
    assert not history.within_uln("ALT", None)


def test_normal_since_is_the_start_of_the_current_unbroken_normal_run():
    ulns = {"ALT": 40, "IgG": 16}
    history = LabHistory(
        [
            _r("ALT", 30, 0),
            _r("ALT", 90, 10),  # breaks the run
            _r("ALT", 35, 20),
            _r("ALT", 25, 40),
            _r("IgG", 20, 0),
            _r("IgG", 12, 30),
            _r("IgG", 11, 50),
        ]
    )

    assert history.normal_since(["ALT"], ulns) == T0 + timedelta(days=20)
    assert history.normal_since(["IgG"], ulns) == T0 + timedelta(days=30)
    assert history.normal_since(["ALT", "IgG"], ulns) == T0 + timedelta(days=30)


def test_normal_since_is_none_when_the_latest_is_raised_or_unknown():
    ulns = {"ALT": 40, "IgG": 16}
    raised = LabHistory([_r("ALT", 30, 0), _r("ALT", 41, 10), _r("IgG", 10, 0)])

    assert raised.normal_since(["ALT", "IgG"], ulns) is None
    assert LabHistory([_r("ALT", 30, 0)]).normal_since(["ALT", "IgG"], ulns) is None
    assert LabHistory([_r("ALT", 30, 0)]).normal_since(["ALT"], {"ALT": None}) is None


def test_a_new_normal_run_after_a_flare_restarts_the_sustained_clock():
    chart = make_patient()
    screened(chart)
    start_prednisolone(chart)
    history_start = chart.now
    chart.advance(days=30)
    chart.labs(ALT=30, IgG=12)
    chart.advance(days=30)
    chart.lab("ALT", 80)
    chart.advance(days=30)
    chart.lab("ALT", 30)

    history = LabHistory(chart.patient.labs)
    since = history.normal_since(["ALT", "IgG"], {"ALT": 40, "IgG": 16})

    assert since == chart.now
    assert since > history_start + timedelta(days=60)
    assert isinstance(since, datetime)


@pytest.mark.parametrize(
    ("given", "stored", "reported"),
    [("<20", 20.0, "<20"), ("< 20", 20.0, "<20"), ("not detected", 0.0, "not detected")],
)
def test_an_hbv_dna_below_the_assay_limit_is_kept_as_not_above_it(labs, given, stored, reported):
    number, text, unit = normalise_result(labs["HBV_DNA"], given, "IU/mL")

    assert (number, text, unit) == (stored, reported, "[IU]/mL")
    assert not number > labs["HBV_DNA"].uln
