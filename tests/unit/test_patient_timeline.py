"""The patient timeline: series from the status and history views, drawn as SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from api.pages.timeline import timeline_svg
from engine.services.catalogue import care_pathway
from engine.services.patient_timeline import timeline_series

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _views() -> tuple[dict, dict]:
    status = {
        "pathway": {"key": care_pathway().pathway.key},
        "site": "north",
        "state": "taper.10mg",
        "state_since": "2026-03-01T00:00:00+00:00",
    }
    order = {"mg_per_kg_day": None, "route": "oral"}
    history = {
        "transitions": [
            {
                "at": "2026-01-10T00:00:00+00:00",
                "from": "screening",
                "to": "induction.prednisolone",
            },
            {
                "at": "2026-03-01T00:00:00+00:00",
                "from": "induction.prednisolone",
                "to": "taper.10mg",
            },
        ],
        "labs": [
            {"code": "ALT", "value": 400.0, "unit": "U/L", "taken_at": "2026-01-05T00:00:00+00:00"},
            {"code": "ALT", "value": 40.0, "unit": "U/L", "taken_at": "2026-03-01T00:00:00+00:00"},
            {
                "code": "TPMT",
                "value": 31.0,
                "unit": "U/mL",
                "taken_at": "2026-01-05T00:00:00+00:00",
            },
        ],
        "orders": [
            {
                **order,
                "drug": "prednisolone",
                "mg_per_day": 30.0,
                "status": "stopped",
                "ordered_at": "2026-01-10T00:00:00+00:00",
                "ended_at": "2026-03-01T00:00:00+00:00",
            },
            {
                **order,
                "drug": "azathioprine",
                "mg_per_day": 50.0,
                "status": "active",
                "ordered_at": "2026-01-24T00:00:00+00:00",
                "ended_at": None,
            },
            {
                **order,
                "drug": "prednisolone",
                "mg_per_day": 10.0,
                "status": "active",
                "ordered_at": "2026-03-01T00:00:00+00:00",
                "ended_at": None,
            },
        ],
        "reminders": [
            {
                "purpose": "notify",
                "status": "sent",
                "sent_at": "2026-02-01T00:00:00+00:00",
                "due_at": "2026-02-01T00:00:00+00:00",
                "recipient": "patient",
                "milestone": "m",
            },
            {
                "purpose": "escalate",
                "status": "sent",
                "sent_at": "2026-02-09T00:00:00+00:00",
                "due_at": "2026-02-08T00:00:00+00:00",
                "recipient": "care_team",
                "milestone": "m",
            },
            {
                "purpose": "notify",
                "status": "cancelled",
                "sent_at": None,
                "due_at": "2026-04-01T00:00:00+00:00",
                "recipient": "clinician",
                "milestone": "n",
            },
        ],
    }
    return status, history


def test_the_series_has_a_band_per_state_and_a_step_per_steroid_order():
    series = timeline_series(*_views(), NOW)
    assert [b["state"] for b in series["bands"]] == [
        "screening",
        "induction.prednisolone",
        "taper.10mg",
    ]
    assert [(d["drug"], d["mg_per_day"]) for d in series["doses"]] == [
        ("prednisolone", 30.0),
        ("prednisolone", 10.0),
    ]
    assert series["doses"][-1]["end"] == NOW


def test_alt_is_plotted_as_a_multiple_of_its_upper_limit_of_normal():
    series = timeline_series(*_views(), NOW)
    uln = care_pathway().limits.uln("ALT", "north")
    assert [p["x_uln"] for p in series["labs"]["ALT"]] == [400.0 / uln, 40.0 / uln]
    assert "TPMT" not in series["labs"]


def test_only_sent_reminders_and_escalations_are_marked():
    series = timeline_series(*_views(), NOW)
    assert len(series["reminders_sent"]) == 1
    assert [e["at"].day for e in series["escalations"]] == [8]


def test_the_svg_draws_each_series_with_a_title_for_every_mark():
    svg = ET.fromstring(timeline_svg(timeline_series(*_views(), NOW)))
    classes = [e.get("class") for e in svg.iter()]
    assert classes.count("dose-step") == 2
    assert classes.count("state-band") == 3
    assert classes.count("lab-point") == 2
    assert classes.count("reminder-sent") == 1
    assert classes.count("escalation") == 1
    marks = [e for e in svg.iter() if e.get("class") in ("dose-step", "lab-point", "escalation")]
    assert all(mark.find(f"{SVG}title") is not None for mark in marks)


def test_a_patient_with_no_history_yet_still_gets_a_timeline():
    status, history = _views()
    empty = {key: [] for key in history}
    series = timeline_series({**status, "state_since": None, "state": "screening"}, empty, NOW)
    assert [b["state"] for b in series["bands"]] == ["screening"]
    assert ET.fromstring(timeline_svg(series)).get("role") == "img"
