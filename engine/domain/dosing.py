"""The dose model: what a clinician may order, per drug, as the pathway data states it.

An order gives its dose in exactly one of the units the drug's data accepts (mg/day or
mg/kg/day, converted with the patient's weight); it is stored normalised to mg/day with what was
given. The drug's dose ranges are tried in order and the first whose `when` holds applies (as
transitions are): a dose outside it is refused with the range's rule IDs, unless the range is
overridable and the clinician gives a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from engine.domain.errors import InvalidInput

Bounds = tuple[float | None, float | None]
DOSE_UNITS = ("mg_per_day", "mg_per_kg_day")
UNIT_TEXT = {"mg_per_day": "mg/day", "mg_per_kg_day": "mg/kg/day"}


@dataclass(frozen=True)
class DoseRange:
    """One allowed range of a drug, in mg/day and/or mg/kg/day, with where it applies."""

    id: str
    drug: str
    rules: tuple[str, ...]
    text: str
    when: dict[str, Any] | None = None
    mg_per_day: Bounds = (None, None)
    mg_per_kg_day: Bounds = (None, None)
    overridable: bool = False
    tolerance_pct: float | None = None  # None: the pathway's rounding tolerance


@dataclass(frozen=True)
class DrugDosing:
    """How a drug is dosed: the units an order may use and the ranges tried in order."""

    drug: str
    given_as: tuple[str, ...]
    ranges: tuple[DoseRange, ...]
    plausible: DoseRange | None = None  # the ceiling no override lifts


@dataclass(frozen=True)
class Dose:
    """A dose as ordered (value and unit) and normalised (mg/day, mg/kg/day)."""

    mg_per_day: float
    mg_per_kg_day: float
    given_value: float
    given_as: str


def normalise_dose(
    dosing: DrugDosing, weight_kg: float, mg_per_day: Any, mg_per_kg_day: Any
) -> Dose:
    """The dose of an order that states exactly one accepted unit with a finite positive value."""
    given = {u: v for u, v in (("mg_per_day", mg_per_day), ("mg_per_kg_day", mg_per_kg_day))}
    stated = {u: v for u, v in given.items() if v is not None}
    accepted = " or ".join(UNIT_TEXT[u] for u in dosing.given_as)
    if len(stated) != 1:
        raise InvalidInput(
            f"an order of {dosing.drug} needs exactly one dose, in {accepted}"
            + (" (both mg/day and mg/kg/day were given)" if len(stated) > 1 else "")
        )
    ((unit, value),) = stated.items()
    if unit not in dosing.given_as:
        raise InvalidInput(f"{dosing.drug} is ordered in {accepted}, not {UNIT_TEXT[unit]}")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidInput(f"the dose of {dosing.drug} must be a positive number, not {value!r}")
    per_day = value if unit == "mg_per_day" else value * weight_kg
    per_kg = value if unit == "mg_per_kg_day" else value / weight_kg
    if not math.isfinite(per_day) or per_day >= 100_000:
        raise InvalidInput(f"the dose of {dosing.drug} is not a plausible dose: {value!r}")
    return Dose(round(per_day, 3), round(per_kg, 4), float(value), unit)


def dose_problem(dose_range: DoseRange, dose: Dose, tolerance_pct: float) -> str | None:
    """Why the dose is outside the range (a sentence), or None when it is inside.

    The tolerance allows rounding to tablet or capsule sizes (150 mg for 2 mg/kg at 70 kg).
    """
    slack = tolerance_pct / 100.0
    for unit, (low, high), value in (
        ("mg_per_day", dose_range.mg_per_day, dose.mg_per_day),
        ("mg_per_kg_day", dose_range.mg_per_kg_day, dose.mg_per_kg_day),
    ):
        if low is not None and value < low * (1 - slack) - 1e-9:
            return f"{_shown(value)} {UNIT_TEXT[unit]} is below {_bounds_text(low, high, unit)}"
        if high is not None and value > high * (1 + slack) + 1e-9:
            return f"{_shown(value)} {UNIT_TEXT[unit]} is above {_bounds_text(low, high, unit)}"
    return None


def range_text(dose_range: DoseRange) -> str:
    """`1-2 mg/kg/day`, `at least 1 mg/kg/day and at most 1000 mg/day`."""
    parts = [
        _bounds_text(low, high, unit)
        for unit, (low, high) in (
            ("mg_per_kg_day", dose_range.mg_per_kg_day),
            ("mg_per_day", dose_range.mg_per_day),
        )
        if low is not None or high is not None
    ]
    return " and ".join(parts)


def _bounds_text(low: float | None, high: float | None, unit: str) -> str:
    if low is not None and high is not None:
        same = low == high
        return (
            f"{_shown(low)} {UNIT_TEXT[unit]}"
            if same
            else f"{_shown(low)}-{_shown(high)} {UNIT_TEXT[unit]}"
        )
    if low is not None:
        return f"at least {_shown(low)} {UNIT_TEXT[unit]}"
    return f"at most {_shown(high)} {UNIT_TEXT[unit]}"


def _shown(value: float | None) -> str:
    return f"{value:g}"


def build_dosing(drug: str, spec: dict[str, Any]) -> DrugDosing:
    """A drug's dosing from its (parameter-resolved) `dose` data."""
    ranges = [_range(drug, item) for item in spec["ranges"]]
    plausible = _range(drug, {"id": f"{drug}-plausible-ceiling", **spec["plausible"]})
    return DrugDosing(drug, tuple(spec["given_as"]), tuple(ranges), plausible)


def _range(drug: str, item: dict[str, Any]) -> DoseRange:
    return DoseRange(
        id=item["id"],
        drug=drug,
        rules=tuple(item["rules"]),
        text=item["text"],
        when=item.get("when"),
        mg_per_day=_bounds(item.get("mg_per_day")),
        mg_per_kg_day=_bounds(item.get("mg_per_kg_day")),
        overridable=item.get("overridable", False),
        tolerance_pct=item.get("tolerance_pct"),
    )


def _bounds(spec: dict[str, Any] | None) -> Bounds:
    if not spec:
        return (None, None)
    if "equals" in spec:
        return (spec["equals"], spec["equals"])
    return (spec.get("min"), spec.get("max"))
