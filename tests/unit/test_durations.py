"""ISO-8601 durations with calendar-aware months and years."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from engine.domain.durations import parse_duration
from tests.fixtures_domain import UTC


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (at(2026, 1, 31, 9), at(2026, 2, 28, 9)),  # clamped to the end of February
        (at(2028, 1, 31, 9), at(2028, 2, 29, 9)),  # leap year
        (at(2026, 3, 31), at(2026, 4, 30)),
        (at(2026, 12, 15), at(2027, 1, 15)),  # over the year end
        (at(2026, 2, 28), at(2026, 3, 28)),
    ],
)
def test_one_month_later_is_the_same_day_next_month_clamped(start, expected):
    assert parse_duration("P1M").after(start) == expected


def test_years_are_twelve_months_and_feb_29_clamps():
    assert parse_duration("P2Y").after(at(2028, 2, 29)) == at(2030, 2, 28)
    assert parse_duration("P1Y").months == 12


def test_weeks_days_hours_and_minutes_are_exact_time():
    duration = parse_duration("P1W2DT3H4M")

    assert duration.months == 0
    assert duration.delta == timedelta(days=9, hours=3, minutes=4)
    assert duration.after(at(2026, 1, 1)) == at(2026, 1, 10, 3, 4)


def test_combined_calendar_and_exact_parts():
    duration = parse_duration("P1Y2M3W4D")

    assert duration.months == 14
    assert duration.delta == timedelta(weeks=3, days=4)
    assert duration.after(at(2026, 1, 31)) == at(2027, 3, 31) + timedelta(days=25)


def test_before_is_the_inverse_of_after_for_unclamped_dates():
    duration = parse_duration("P3M2W")
    moment = at(2026, 5, 10, 12)

    assert duration.before(duration.after(moment)) == moment
    assert parse_duration("P7D").before(at(2026, 1, 5)) == at(2025, 12, 29)


def test_zero_duration_and_text():
    assert parse_duration("P0D").after(at(2026, 1, 1)) == at(2026, 1, 1)
    assert str(parse_duration("P4W")) == "P4W"


def test_time_zone_is_kept():
    assert parse_duration("P1M").after(at(2026, 1, 31)).tzinfo is UTC


@pytest.mark.parametrize("text", ["", "P", "PT", "4W", "P4X", "P1.5M", "P-1D", "p1d", "P1DT"])
def test_anything_but_an_iso_duration_is_a_value_error(text):
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_duration(text)
