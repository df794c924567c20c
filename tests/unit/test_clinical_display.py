"""Numbers, units and doses on the pages are written as a clinician writes them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.services.clinical_display import (
    TIMES,
    dose,
    fixed,
    quantity,
    trimmed,
    unit_text,
    yes_no,
)


@pytest.mark.parametrize(
    ("unit", "shown"),
    [
        ("{INR}", ""),
        ("1", ""),
        (None, ""),
        ("10*9/L", f"{TIMES}10⁹/L"),
        ("10*12/L", f"{TIMES}10¹²/L"),
        ("umol/L", "µmol/L"),
        ("ug/L", "µg/L"),
        ("U/L", "U/L"),
        ("[IU]/mL", "IU/mL"),
        ("g/L", "g/L"),
        ("mL/min/{1.73_m2}", "mL/min/"),
    ],
)
def test_units_are_written_as_the_clinic_writes_them(unit, shown):
    assert unit_text(unit) == shown


def test_a_float_artefact_is_rounded_to_the_labs_precision():
    assert quantity(26.990000000000002, "g/L", 1) == "27.0 g/L"
    assert quantity(26.990000000000002, "g/L", 2) == "26.99 g/L"
    assert quantity(0.1 + 0.2, "g/L", 2) == "0.30 g/L"


def test_inr_has_no_unit_and_counts_have_their_power_of_ten():
    assert quantity(1.2, "{INR}", 2) == "1.20"
    assert quantity(4.25, "10*9/L", 1) == f"4.3 {TIMES}10⁹/L"  # half up, as laboratories round


def test_a_dose_keeps_the_drugs_precision_without_trailing_zeros():
    assert dose(78.15, "mg_per_day", 0) == "78 mg/day"
    assert dose(30.0, "mg_per_day", 1) == "30 mg/day"
    assert dose(7.5, "mg_per_day", 1) == "7.5 mg/day"
    assert dose(0.075, "mg_per_kg_day") == "0.075 mg/kg/day"
    assert dose(None) == ""


def test_facts_read_as_words():
    assert (yes_no(True), yes_no(False), yes_no(None), yes_no(15.0)) == (
        "yes",
        "no",
        "not recorded",
        "15",
    )


def test_a_value_that_is_not_a_number_says_so():
    assert fixed(math.nan, 1) == "not a number"
    assert fixed(math.inf, 0) == "not a number"


@given(st.floats(-1e9, 1e9, allow_nan=False), st.integers(0, 4))
def test_no_shown_number_has_more_decimals_than_its_precision(value, precision):
    shown = fixed(value, precision)
    decimals = shown.split(".")[1] if "." in shown else ""
    assert len(decimals) == precision
    assert abs(float(shown) - value) <= 0.5 * 10**-precision + 1e-9 * max(1, abs(value))
    assert len(trimmed(value, precision).partition(".")[2]) <= precision
