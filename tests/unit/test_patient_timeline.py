"""The patient timeline: series from the status and history views, drawn as SVG."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from api.pages.timeline import table_rows, timeline_figure, timeline_svg, timeline_table
from engine.services.care_pathways import care_pathway
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


def _svg(series: dict) -> ET.Element:
    return ET.fromstring(timeline_svg(series))


def _with_alt(*x_ulns: float) -> dict:
    """The series of `_views` with ALT results at these multiples of the ULN, weekly."""
    status, history = _views()
    uln = care_pathway().limits.uln("ALT", "north")
    history["labs"] = [
        {
            "code": "ALT",
            "value": x * uln,
            "unit": "U/L",
            "taken_at": (datetime(2026, 2, 1, tzinfo=UTC) + timedelta(weeks=i)).isoformat(),
        }
        for i, x in enumerate(x_ulns)
    ]
    return timeline_series(status, history, NOW)


def _points(svg: ET.Element) -> list[float]:
    return [float(c.get("cy")) for c in svg.iter(f"{SVG}circle") if c.get("class") == "lab-point"]


def _texts(element: ET.Element, cls: str) -> dict[str, ET.Element]:
    return {t.text: t for t in element.iter(f"{SVG}text") if t.get("class") == cls}


def test_the_series_has_a_band_per_state_and_a_step_per_order_of_every_drug():
    series = timeline_series(*_views(), NOW)
    assert [b["state"] for b in series["bands"]] == [
        "screening",
        "induction.prednisolone",
        "taper.10mg",
    ]
    assert [(d["drug"], d["mg_per_day"]) for d in series["doses"]] == [
        ("prednisolone", 30.0),
        ("azathioprine", 50.0),
        ("prednisolone", 10.0),
    ]
    assert series["doses"][-1]["end"] == NOW


def test_drug_lanes_follow_the_pathway_file_order_not_a_fixed_list():
    series = timeline_series(*_views(), NOW)
    pathway_order = list(care_pathway().pathway.drugs)
    assert series["drugs"] == ["prednisolone", "azathioprine"]
    assert sorted(series["drugs"], key=pathway_order.index) == series["drugs"]
    assert series["drug_classes"] == {
        "prednisolone": "corticosteroid",
        "azathioprine": "thiopurine",
    }


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
    svg = _svg(timeline_series(*_views(), NOW))
    classes = [e.get("class") for e in svg.iter()]
    assert classes.count("dose-step") == 3
    assert classes.count("state-band") == 3
    assert classes.count("lab-point") == 2
    assert classes.count("reminder-sent") == 1
    assert classes.count("escalation") == 1
    marks = [e for e in svg.iter() if e.get("class") in ("dose-step", "lab-point", "escalation")]
    assert all(mark.find(f"{SVG}title") is not None for mark in marks)


def test_on_the_log_scale_10x_uln_is_drawn_above_1x():
    ticks = _texts(_svg(_with_alt(1.0)), "lab-tick")
    assert list(ticks) == ["0.5x", "1x", "2x", "5x", "10x", "20x"]
    assert float(ticks["10x"].get("y")) < float(ticks["1x"].get("y"))


def test_a_14x_uln_alt_does_not_flatten_the_later_values():
    fourteen, one, two, five, ten = _points(_svg(_with_alt(14.0, 1.0, 2.0, 5.0, 10.0)))
    assert one - two == pytest.approx(five - ten, abs=0.2)  # equal ratios, equal distances
    assert one - two > 25  # 1x and 2x stay far apart beside a 14x peak
    assert fourteen < ten < five < two < one


def test_a_result_beyond_20x_widens_the_scale_instead_of_leaving_the_chart():
    svg = _svg(_with_alt(0.3, 35.0))
    ticks = _texts(svg, "lab-tick")
    assert {"0.2x", "50x"} <= set(ticks)
    low, high = (float(ticks[t].get("y")) - 4 for t in ("0.2x", "50x"))
    assert all(high <= cy <= low for cy in _points(svg))


def test_the_uln_label_stands_apart_from_the_tick_labels():
    svg = _svg(_with_alt(1.0))
    uln = _texts(svg, "uln-label")["ULN"]
    ticks = _texts(svg, "lab-tick")
    assert float(uln.get("x")) > float(ticks["1x"].get("x")) + 500  # the other side of the plot
    heights = sorted(float(t.get("y")) for t in ticks.values())
    assert min(b - a for a, b in itertools.pairwise(heights)) >= 14  # no overlap
    line = next(e for e in svg.iter(f"{SVG}line") if e.get("class") == "uln-line")
    assert float(line.get("y1")) == pytest.approx(float(uln.get("y")) - 4)


def test_every_drug_has_its_own_lane_with_the_dose_written_on_each_step():
    svg = _svg(timeline_series(*_views(), NOW))
    lanes = {g.get("data-drug"): g for g in svg.iter(f"{SVG}g") if g.get("class") == "drug-lane"}
    assert list(lanes) == ["prednisolone", "azathioprine"]
    written = {drug: list(_texts(lane, "dose-value")) for drug, lane in lanes.items()}
    assert written == {"prednisolone": ["30 mg/day", "10 mg/day"], "azathioprine": ["50 mg/day"]}


def test_the_table_has_one_row_per_mark_with_the_values_of_the_chart():
    series = timeline_series(*_views(), NOW)
    table = ET.fromstring(timeline_table(series))
    assert table.find("caption").text.startswith("Timeline values")
    rows = table.findall("tbody/tr")
    kinds = [row.get("data-kind") for row in rows]
    assert len(rows) == len(table_rows(series)) == 10
    assert kinds.count("dose") == 3 and kinds.count("lab") == 2 and kinds.count("state") == 3
    values = {(r.find("th").text, r.findall("td")[1].text) for r in rows}
    uln = care_pathway().limits.uln("ALT", "north")
    # the lab's precision from the pathway data, as on the lab table of the patient page
    assert ("ALT", f"400.0 U/L = {400 / uln:.1f}x ULN") in values
    assert ("prednisolone", "30 mg/day until 01 Mar 2026") in values
    assert ("azathioprine", "50 mg/day until now") in values
    titles = [c.find(f"{SVG}title").text for c in _svg(series).iter(f"{SVG}circle")]
    assert any(f"{400 / uln:.1f}x ULN" in t for t in titles)


def test_milestones_are_marked_with_their_due_date_and_status():
    status, history = _views()
    history["milestones"] = [
        {
            "title": "ALT check",
            "due_at": "2026-02-15T00:00:00+00:00",
            "status": "completed",
            "closed_at": "2026-02-14T00:00:00+00:00",
        }
    ]
    svg = _svg(timeline_series(status, history, NOW))
    (mark,) = [e for e in svg.iter(f"{SVG}path") if e.get("class") == "milestone"]
    assert mark.get("data-status") == "completed"
    assert mark.find(f"{SVG}title").text == "ALT check, due 15 Feb 2026 (completed on 14 Feb 2026)"


def test_the_figure_puts_the_table_beside_the_chart():
    figure = ET.fromstring(timeline_figure(timeline_series(*_views(), NOW)))
    assert figure.get("class") == "timeline-view"
    assert figure.find(f"{SVG}svg") is not None
    region = figure.find("div")
    assert region.get("role") == "region" and region.get("tabindex") == "0"
    assert region.find("table/caption").get("id") == region.get("aria-labelledby")


def test_a_patient_with_no_history_yet_still_gets_a_timeline():
    status, history = _views()
    empty = {key: [] for key in history}
    series = timeline_series({**status, "state_since": None, "state": "screening"}, empty, NOW)
    assert [b["state"] for b in series["bands"]] == ["screening"]
    assert series["drugs"] == []
    assert _svg(series).get("role") == "img"
    assert len(ET.fromstring(timeline_table(series)).findall("tbody/tr")) == 1


def test_lab_values_and_doses_are_written_at_the_pathways_precision_not_as_floats():
    """IgG 26.995000000000001 g/L is 27.00 g/L (precision 2, half up); a million U/L is never
    1e+06; a dose of 78.15 mg/day is written at the drug's precision, as the header does."""
    status, history = _views()
    lab = dict(history["labs"][0])
    history["labs"] = [
        {**lab, "code": "IgG", "value": 26.995000000000001, "unit": "g/L"},
        {**lab, "code": "ALT", "value": 1234567.0, "unit": "U/L"},
    ]
    history["orders"] = [{**history["orders"][0], "mg_per_day": 7.499999999999999}]
    series = timeline_series(status, history, NOW)
    values = {
        r.findall("td")[1].text
        for r in ET.fromstring(timeline_table(series)).iter("tr")
        if r.findall("td")
    }
    assert any(v.startswith("27.00 g/L = ") for v in values), values
    assert any(v.startswith("1234567.0 U/L = ") for v in values), values
    assert not any("e+" in v or "99999" in v for v in values), values
    assert any(v.startswith("7.5 mg/day until") for v in values), values
