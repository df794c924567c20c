"""Numbers, units and doses as a clinician writes them: one place for the pages' display rules.

- A lab value has the lab's precision from the pathway data (`labs.<code>.precision`, fixed
  decimals as the laboratory reports it): 26.990000000000002 g/L at precision 1 is `27.0 g/L`.
- A dose has the drug's precision (`drugs.<drug>.dose.precision`, decimals of mg/day) without
  trailing zeros: `30 mg/day`, `7.5 mg/day`, 78.15 at precision 0 is `78 mg/day`.
- A UCUM unit is written the clinic's way: annotations (`{INR}`) are no unit, `10*9/L` is
  times ten to the ninth per litre (multiplication sign, superscript 9), `umol/L` is
  `µmol/L`, `[IU]/mL` is `IU/mL`.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Decimal

TIMES = "\N{MULTIPLICATION SIGN}"
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_POWER = re.compile(r"10\*(-?\d+)")
_MICRO = re.compile(r"(?<![A-Za-z])u(?=(?:mol|g|L|kat)\b)")
_ANNOTATION = re.compile(r"\{[^}]*\}")
SEX = {"F": "female", "M": "male", "X": "other"}
DOSE_UNITS = {"mg_per_day": "mg/day", "mg_per_kg_day": "mg/kg/day"}
#: mg/kg/day doses are written to this many decimals at most (0.075 mg/kg/day for tacrolimus).
PER_KG_PRECISION = 3


def unit_text(unit: str | None) -> str:
    """A UCUM unit as a clinician writes it; '' for none or a bare annotation (`{INR}`)."""
    if not unit or unit == "1":
        return ""
    shown = _ANNOTATION.sub("", unit)
    shown = _POWER.sub(lambda m: TIMES + "10" + m.group(1).translate(_SUPERSCRIPT), shown)
    shown = _MICRO.sub("µ", shown).replace("[IU]", "IU").replace("[", "").replace("]", "")
    return shown.strip()


def fixed(value: float, precision: int | None) -> str:
    """The value rounded half-up to `precision` decimals and shown with exactly that many
    (None: as few as represent it, at most 6)."""
    if not math.isfinite(value):
        return "not a number"
    if precision is None:
        return trimmed(value, 6)
    step = Decimal(1).scaleb(-precision)
    return f"{Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP):f}"


def trimmed(value: float, precision: int) -> str:
    """The value rounded to `precision` decimals without trailing zeros: 30, 7.5, 0.075."""
    text = fixed(value, precision)
    return text.rstrip("0").rstrip(".") if "." in text else text


def quantity(value: float | None, unit: str | None, precision: int | None = None) -> str:
    """`27.0 g/L`, `1.25` (INR), `4.2 x10⁹/L` (with TIMES); '' for no value."""
    if value is None:
        return ""
    shown = unit_text(unit)
    number = fixed(float(value), precision)
    return f"{number} {shown}" if shown else number


def dose(value: float | None, unit: str = "mg_per_day", precision: int | None = 1) -> str:
    """`30 mg/day`, `1.5 mg/kg/day`; '' for no value. `precision` is the drug's (mg/day)."""
    if value is None:
        return ""
    decimals = PER_KG_PRECISION if unit == "mg_per_kg_day" else (precision or 0)
    return f"{trimmed(float(value), decimals)} {DOSE_UNITS[unit]}"


def yes_no(value: object) -> str:
    """`yes`, `no`, or the value itself (a number to its shortest form)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return trimmed(float(value), 2)
    return "not recorded" if value is None else str(value)
