"""ISO-8601 durations (P4W, P3M, P2Y, PT12H) with calendar-aware months and years."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

_PATTERN = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """A calendar duration: months move by calendar month, the rest by exact time."""

    months: int = 0
    delta: timedelta = timedelta(0)
    text: str = "P0D"

    def after(self, moment: datetime) -> datetime:
        """The moment this duration after `moment` (end-of-month clamped)."""
        return _add_months(moment, self.months) + self.delta

    def before(self, moment: datetime) -> datetime:
        """The moment this duration before `moment`."""
        return _add_months(moment - self.delta, -self.months)

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=1024)  # the pathway's few duration texts, parsed for every input
def parse_duration(text: str) -> Duration:
    """Parse an ISO-8601 duration (a frozen value, so shared); ValueError on anything else."""
    match = _PATTERN.match(text or "")
    if not match or text == "P" or text.endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    part = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    delta = timedelta(
        weeks=part["weeks"], days=part["days"], hours=part["hours"], minutes=part["minutes"]
    )
    return Duration(months=part["years"] * 12 + part["months"], delta=delta, text=text)


def _add_months(moment: datetime, months: int) -> datetime:
    if not months:
        return moment
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)
