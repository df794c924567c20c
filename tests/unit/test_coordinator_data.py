"""The coordinator queue's data file: outcome codes and the stale limit are read and checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.adapters.coordinator_data import coordinator_data, load_coordinator_data


def test_the_shipped_file_has_the_outcomes_and_a_90_day_stale_limit():
    data = coordinator_data()
    assert {"called_patient", "left_message", "lab_booked", "not_reachable", "other"} <= set(
        data.outcomes
    )
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert (now - data.stale_after.before(now)).days == 90


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("stale_after: P90D\n", "outcomes"),
        ("stale_after: P90D\noutcomes: {'two words': Called}\n", "two words"),
        ("stale_after: P90D\noutcomes: {called: ''}\n", "called"),
        ("stale_after: ninety days\noutcomes: {called: Called}\n", "stale_after"),
    ],
)
def test_a_malformed_file_names_the_field(tmp_path, text, field):
    path = tmp_path / "coordinator-queue.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=field):
        load_coordinator_data(path)
