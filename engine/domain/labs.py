"""Lab results: unit conversion to the pathway's unit, reference limits, and history queries.

The response measures of the guideline live here: % fall from baseline, within the upper limit
of normal (ULN), sustained normal since a moment.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime

from engine.domain.errors import InvalidInput
from engine.domain.model import LabResult
from engine.domain.pathway import LabDefinition

BELOW_LIMIT = re.compile(r"^<\s*(\d+(?:\.\d+)?)$")


def normalise_result(
    lab: LabDefinition, value: float | int | str, unit: str | None
) -> tuple[float | None, str | None, str | None]:
    """(value in the pathway unit, qualitative text, unit) or InvalidInput with the reason."""
    if lab.kind == "qualitative":
        if unit is not None and str(unit).strip():
            raise InvalidInput(f"{lab.code} is a positive/negative result and takes no unit")
        text = str(value).strip().lower()
        if text not in lab.values:
            raise InvalidInput(
                f"{lab.code} result must be one of {', '.join(lab.values)}, not {value!r}"
            )
        return None, text, None
    if isinstance(value, bool):
        raise InvalidInput(f"{lab.code} needs a number, not {value!r}")
    number, reported = _below_limit(value)
    if number is None:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidInput(f"{lab.code} needs a number, not {value!r}") from None
    accepted = ", ".join(lab.convertible)
    given = (unit or "").strip()
    if not given:
        raise InvalidInput(f"{lab.code} needs a unit; accepted: {accepted}")
    factor = lab.convertible.get(given)
    if factor is None:
        raise InvalidInput(
            f"{lab.code} unit {unit!r} cannot be converted to {lab.unit}; accepted: {accepted}"
        )
    converted = number * factor
    if not math.isfinite(number) or not math.isfinite(converted):
        raise InvalidInput(f"{lab.code} must be a finite number, not {value!r}")
    if lab.plausible is not None:
        low, high = lab.plausible
        if not low <= converted <= high:
            raise InvalidInput(
                f"{lab.code} {value} {given} ({converted:g} {lab.unit}) is outside the plausible "
                f"range {low:g}-{high:g} {lab.unit}; check the value and its unit"
            )
    elif converted < 0:
        raise InvalidInput(f"{lab.code} must not be negative, not {value!r}")
    if lab.precision is not None:
        converted = round(converted, lab.precision)
    return converted, reported, lab.unit


def _below_limit(value: object) -> tuple[float | None, str | None]:
    """A result reported under the assay's limit: `<20` is kept as 20 (never above the limit
    in a comparison), `not detected` as 0; the reported words are kept beside the number."""
    if not isinstance(value, str):
        return None, None
    text = value.strip().lower()
    if text in ("not detected", "undetectable", "target not detected"):
        return 0.0, "not detected"
    match = BELOW_LIMIT.match(text)
    if match:
        return float(match.group(1)), f"<{match.group(1)}"
    return None, None


class ReferenceLimits:
    """Upper limits of normal: the pathway default, overridable per site."""

    def __init__(
        self, labs: dict[str, LabDefinition], overrides: dict[str, dict[str, float]] | None = None
    ):
        self._labs = labs
        self._overrides = overrides or {}

    def uln(self, code: str, site: str | None = None) -> float | None:
        site_values = self._overrides.get(site or "", {})
        return site_values.get(code, self._labs[code].uln)

    def band(self, code: str, value: float) -> str | None:
        for name, below in self._labs[code].bands:
            if below is None or value < below:
                return name
        return None


class LabHistory:
    """A patient's results by code, ordered by the time the sample was taken."""

    def __init__(self, results: list[LabResult]):
        grouped: dict[str, list[LabResult]] = defaultdict(list)
        for result in results:
            grouped[result.code].append(result)
        # Results taken at the same moment stay in the order they were recorded: a later one
        # is an amended result and counts as the latest.
        self._series = {
            code: sorted(rows, key=lambda r: r.taken_at) for code, rows in grouped.items()
        }
        self._times = {code: [r.taken_at for r in rows] for code, rows in self._series.items()}

    def series(self, code: str) -> list[LabResult]:
        return self._series.get(code, [])

    def known(self, code: str) -> bool:
        return bool(self._series.get(code))

    def latest(self, code: str) -> LabResult | None:
        rows = self._series.get(code)
        return rows[-1] if rows else None

    def at_or_before(self, code: str, moment: datetime) -> LabResult | None:
        rows = self._series.get(code, [])
        index = bisect_right(self._times.get(code, []), moment)
        return rows[index - 1] if index else None

    def since(self, code: str, moment: datetime) -> list[LabResult]:
        rows = self._series.get(code, [])
        index = bisect_right(self._times.get(code, []), moment)
        return rows[index:]

    def baseline(self, code: str, treatment_start: datetime | None) -> LabResult | None:
        """The last result before treatment started, else the first one (SCR-BASE)."""
        if treatment_start is not None:
            before = self.at_or_before(code, treatment_start)
            if before is not None:
                return before
        rows = self._series.get(code)
        return rows[0] if rows else None

    def fall_from_baseline_pct(self, code: str, treatment_start: datetime | None) -> float | None:
        """Percentage fall of the latest value from baseline (negative when it rose)."""
        base, last = self.baseline(code, treatment_start), self.latest(code)
        if base is None or last is None or base is last or not base.value:
            return None
        return (base.value - (last.value or 0.0)) / base.value * 100.0

    def within_uln(self, code: str, uln: float | None) -> bool:
        last = self.latest(code)
        return last is not None and last.value is not None and uln is not None and last.value <= uln

    def normal_since(self, codes: list[str], ulns: dict[str, float | None]) -> datetime | None:
        """Start of the current unbroken run in which every result of `codes` was within ULN."""
        start: datetime | None = None
        for code in codes:
            rows, uln = self._series.get(code, []), ulns.get(code)
            if not rows or uln is None or rows[-1].value is None or rows[-1].value > uln:
                return None
            run_start = rows[-1].taken_at
            for row in reversed(rows):
                if row.value is None or row.value > uln:
                    break
                run_start = row.taken_at
            start = run_start if start is None else max(start, run_start)
        return start
