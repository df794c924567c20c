"""A site's feed file is data, checked when the listener starts: which laboratory is the site's,
its time zone, and its local codes (each must mean a pathway lab's LOINC code)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.services.care_pathways import care_pathway
from lab_feed.oru import read_oru
from lab_feed.results import lab_item
from lab_feed.site_feeds import InvalidSiteFeed, load_site_feeds
from tests.lab_feed.oru_messages import Obx, oru


def _write(tmp_path, site: str, text: str):
    folder = tmp_path / site
    folder.mkdir()
    (folder / "feed.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("site: east\nlocal_codes: {ALTX: ALT}\n", "maps to 'ALT', not LOINC"),
        ("site: east\nlocal_codes: {K: 2951-2}\n", "which no pathway lab has"),
        ("site: east\ntimezone: Mars/Olympus\n", "unknown time zone"),
        ("sending_facilities: [EASTLAB]\n", "needs `site:`"),
        ("site: east\nsending_facilities: EASTLAB\n", "must be a list"),
    ],
)
def test_a_feed_file_that_names_nothing_real_stops_the_listener_at_start(tmp_path, text, reason):
    with pytest.raises(InvalidSiteFeed, match=reason):
        load_site_feeds(directory=_write(tmp_path, "east", text))


def test_the_sending_facility_names_the_site_and_a_listener_for_one_site_takes_only_its_own(
    tmp_path,
):
    _write(tmp_path, "east", "site: east\nsending_facilities: [EASTLAB]\n")
    _write(tmp_path, "west", "site: west\nsending_facilities: [WESTLAB, WEST2]\n")

    every = load_site_feeds(directory=tmp_path)
    east_only = load_site_feeds("east", directory=tmp_path)
    no_file = load_site_feeds("north-annex", directory=tmp_path)

    assert every.for_facility("WEST2").site == "west"
    assert every.for_facility("ELSEWHERE") is None
    assert east_only.for_facility("WESTLAB") is None
    assert east_only.for_facility("EASTLAB").site == "east"
    assert no_file.for_facility("ANYLAB").site == "north-annex"  # no file: any facility, LOINC


def test_times_without_an_offset_are_read_in_the_sites_time_zone(tmp_path):
    feeds = load_site_feeds(
        directory=_write(tmp_path, "east", "site: east\ntimezone: Europe/Berlin\n")
    )
    message = read_oru(
        oru(
            "NR-1",
            (
                datetime(2026, 1, 5, 8, tzinfo=UTC),
                [
                    Obx("1742-6^ALT^LN", "40", "U/L", observed_at="202601050700"),
                    Obx("1742-6^ALT^LN", "40", "U/L", observed_at="202607050700"),
                    Obx("1742-6^ALT^LN", "40", "U/L", observed_at="202601050700-0500"),
                ],
            ),
        )
    )
    pathway = care_pathway().pathway

    times = [
        lab_item(o, pathway, feeds.feeds["east"], "p1")["taken_at"] for o in message.observations
    ]

    assert times == [
        "2026-01-05T07:00:00+01:00",  # winter
        "2026-07-05T07:00:00+02:00",  # summer
        "2026-01-05T07:00:00-05:00",  # an offset given wins
    ]
