"""The patient timeline as a server-rendered SVG chart beside a table of the same values.

Pure drawing over `engine.services.patient_timeline.timeline_series`, with ElementTree (which
escapes every text), so the page needs no JavaScript. The chart has, top to bottom: the
pathway state bands; one lane per drug with each dose step's amount written on it; ALT, AST
and IgG on a logarithmic scale of multiples of the upper limit of normal (ticks at 0.5, 1, 2,
5, 10, 20x, the ULN line labelled on the right, away from the tick labels, so a 14x ALT does
not flatten the later values near 1x); milestones; reminders sent and escalations. Every mark
carries a `<title>` and a class the tests count (`state-band`, `dose-step`, `lab-point`,
`milestone`, `reminder-sent`, `escalation`). `timeline_table` writes the same values as an
accessible table for screen readers and for reading exact numbers; `timeline_figure` puts the
two side by side, as the patient page shows them.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime
from typing import Any

from engine.domain.condition_words import words

WIDTH, LEFT, RIGHT = 960, 168, 44
TOP = 8
BAND_H = 24
LANE_H, LANE_GAP = 22, 4
LAB_H = 170
ROW_H = 22
CHAR_PX = 6.0  # the width of one character at font-size 10, a generous estimate
#: Multiples of the ULN the lab panel may mark; the drawn range spans the data and 0.5-20x.
LAB_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500)
LAB_RANGE = (0.5, 20.0)
STAGE_COLOURS = {
    "screening": "#9aa5b1",
    "induction": "#3b82f6",
    "taper": "#0f766e",
    "maintenance": "#15803d",
    "acute_severe": "#dc2626",
    "second_line": "#b45309",
    "transplant_evaluation": "#9333ea",
    "transplanted": "#6b21a8",
    "withdrawn": "#cbd5e1",
    "relapse": "#db2777",
    "closed": "#64748b",
}
#: Dose lanes are coloured by drug class (from the pathway's drug data).
CLASS_COLOURS = {
    "corticosteroid": "#1d4ed8",
    "thiopurine": "#0f766e",
    "antimetabolite": "#b45309",
    "calcineurin_inhibitor": "#7e22ce",
    "alkylating_agent": "#be123c",
}
LAB_COLOURS = {"ALT": "#b91c1c", "AST": "#c2410c", "IgG": "#6d28d9"}

Scale = Callable[[datetime], float]


def timeline_figure(series: dict[str, Any]) -> str:
    """The chart and, beside it, the table of its values (HTML for the patient page)."""
    return (
        f'<div class="timeline-view">{timeline_svg(series)}'
        '<div class="timeline-table" role="region" tabindex="0" '
        f'aria-labelledby="timeline-table-caption">{timeline_table(series)}</div></div>'
    )


def timeline_svg(series: dict[str, Any]) -> str:
    """The SVG markup of one patient's series."""
    start, end = series["start"], series["end"]
    span = max((end - start).total_seconds(), 86400.0)

    def x(moment: datetime) -> float:
        offset = (min(max(moment, start), end) - start).total_seconds()
        return LEFT + (WIDTH - LEFT - RIGHT) * offset / span

    lanes_y = TOP + BAND_H + 14
    lab_y = lanes_y + len(series["drugs"]) * (LANE_H + LANE_GAP) + 30
    milestone_y = lab_y + LAB_H + 26
    reminder_y = milestone_y + ROW_H
    height = reminder_y + 40
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {WIDTH} {height}",
            "width": "100%",
            "role": "img",
            "aria-labelledby": "timeline-title timeline-desc",
            "class": "timeline",
            "font-family": "system-ui, sans-serif",
            "font-size": "11",
        },
    )
    _text(svg, "title", "Patient timeline", id="timeline-title")
    _text(svg, "desc", _summary(series), id="timeline-desc")
    _axis(svg, start, end, x, height)
    _bands(svg, series["bands"], x, TOP)
    _lanes(svg, series, x, lanes_y)
    _labs(svg, series["labs"], x, lab_y)
    _milestones(svg, series["milestones"], x, milestone_y)
    _reminders(svg, series["reminders_sent"], series["escalations"], x, reminder_y)
    return ET.tostring(svg, encoding="unicode")


def timeline_table(series: dict[str, Any]) -> str:
    """The same values as the chart, one row per mark, oldest first (an HTML table)."""
    table = ET.Element("table", {"class": "timeline-values"})
    _text(
        table,
        "caption",
        "Timeline values: states, doses, labs (x upper limit of normal), milestones, reminders",
        id="timeline-table-caption",
    )
    head = ET.SubElement(ET.SubElement(table, "thead"), "tr")
    for name in ("Date", "Series", "Value"):
        _text(head, "th", name, scope="col")
    body = ET.SubElement(table, "tbody")
    for at, kind, series_name, value in sorted(table_rows(series), key=lambda r: r[0]):
        row = ET.SubElement(body, "tr", {"data-kind": kind})
        _text(row, "td", f"{at:%d %b %Y}")
        _text(row, "th", series_name, scope="row")
        _text(row, "td", value)
    return ET.tostring(table, encoding="unicode", method="html")


def table_rows(series: dict[str, Any]) -> list[tuple[datetime, str, str, str]]:
    """(date, kind, series, value) for every mark the chart draws."""
    rows = [
        (b["start"], "state", "Pathway state", f"{b['state']} until {_until(b['end'], series)}")
        for b in series["bands"]
    ]
    rows += [
        (d["start"], "dose", words(d["drug"]), f"{amount(d)} until {_until(d['end'], series)}")
        for d in series["doses"]
    ]
    rows += [
        (p["at"], "lab", code, lab_value(code, p))
        for code, points in series["labs"].items()
        for p in points
    ]
    rows += [(m["at"], "milestone", "Milestone due", _milestone(m)) for m in series["milestones"]]
    rows += [
        (r["at"], "reminder", "Reminder sent", f"to {r['recipient']}: {words(r['milestone'])}")
        for r in series["reminders_sent"]
    ]
    rows += [
        (e["at"], "escalation", "Escalation", f"{words(e['milestone'])} ({e['status']})")
        for e in series["escalations"]
    ]
    return rows


def amount(dose: dict[str, Any]) -> str:
    """A dose step's amount as written on the chart and in the table (the service's words)."""
    return dose["shown"]


def lab_value(code: str, point: dict[str, Any]) -> str:
    """A lab result with its multiple of the ULN, as the table and the point's title say it."""
    return f"{point['shown']} = {point['x_uln']:.1f}x ULN"


def lab_scale(labs: dict[str, list[dict[str, Any]]]) -> tuple[float, float, list[float]]:
    """The drawn range (low, high) in multiples of the ULN and its ticks: 0.5-20x widened to
    the next tick beyond the lowest and highest result (within 0.1-500x)."""
    values = [p["x_uln"] for points in labs.values() for p in points if p["x_uln"] > 0]
    low = min([LAB_RANGE[0], *values])
    high = max([LAB_RANGE[1], *values])
    low = max([t for t in LAB_TICKS if t <= low], default=LAB_TICKS[0])
    high = min([t for t in LAB_TICKS if t >= high], default=LAB_TICKS[-1])
    return low, high, [t for t in LAB_TICKS if low <= t <= high]


def _summary(series: dict[str, Any]) -> str:
    labs = ", ".join(f"{len(v)} {code} results" for code, v in series["labs"].items())
    drugs = ", ".join(words(d) for d in series["drugs"]) or "no drugs"
    return (
        f"From {series['start']:%d %b %Y} to {series['end']:%d %b %Y}: "
        f"{len(series['bands'])} pathway states; {len(series['doses'])} dose steps of {drugs}; "
        f"{labs or 'no ALT, AST or IgG results'} on a log scale of the upper limit of normal; "
        f"{len(series['milestones'])} milestones, {len(series['reminders_sent'])} reminders sent, "
        f"{len(series['escalations'])} escalations. The table beside the chart lists every value."
    )


def _bands(svg: ET.Element, bands: list[dict[str, Any]], x: Scale, top: float) -> None:
    _label(svg, top + BAND_H / 2 + 4, "Pathway state")
    group = ET.SubElement(svg, "g", {"class": "state-bands"})
    for band in bands:
        x1, x2 = x(band["start"]), x(band["end"])
        stage = band["state"].split(".")[0]
        rect = ET.SubElement(
            group,
            "rect",
            {
                "class": "state-band",
                "data-state": band["state"],
                "x": _n(x1),
                "y": _n(top),
                "width": _n(max(x2 - x1, 1.0)),
                "height": str(BAND_H),
                "fill": STAGE_COLOURS.get(stage, "#94a3b8"),
            },
        )
        _text(rect, "title", f"{band['state']}: {band['start']:%d %b %Y} to {band['end']:%d %b %Y}")
        if x2 - x1 > CHAR_PX * len(band["state"]) + 8:
            _text(
                group,
                "text",
                band["state"],
                x=_n(x1 + 4),
                y=_n(top + 16),
                fill="#0f172a" if stage in ("withdrawn", "screening") else "#fff",
            )


def _lanes(svg: ET.Element, series: dict[str, Any], x: Scale, top: float) -> None:
    for index, drug in enumerate(series["drugs"]):
        y = top + index * (LANE_H + LANE_GAP)
        colour = CLASS_COLOURS.get(series["drug_classes"].get(drug, ""), "#334155")
        lane = ET.SubElement(svg, "g", {"class": "drug-lane", "data-drug": drug})
        _label(lane, y + LANE_H / 2 + 4, words(drug))
        ET.SubElement(
            lane,
            "rect",
            {
                "x": str(LEFT),
                "y": _n(y),
                "width": str(WIDTH - LEFT - RIGHT),
                "height": str(LANE_H),
                "fill": "#f8fafc",
            },
        )
        for dose in (d for d in series["doses"] if d["drug"] == drug):
            x1, x2 = x(dose["start"]), x(dose["end"])
            written = amount(dose)
            rect = ET.SubElement(
                lane,
                "rect",
                {
                    "class": "dose-step",
                    "data-drug": drug,
                    "x": _n(x1),
                    "y": _n(y),
                    "width": _n(max(x2 - x1, 2.0)),
                    "height": str(LANE_H),
                    "fill": colour,
                    "stroke": "#fff",
                },
            )
            _text(
                rect,
                "title",
                f"{words(drug)} {written}: {dose['start']:%d %b %Y} to "
                f"{_until(dose['end'], series)}",
            )
            short = written.split(" mg")[0]
            for text in (written, short):
                if CHAR_PX * len(text) + 6 <= x2 - x1:
                    _text(
                        lane,
                        "text",
                        text,
                        **{
                            "class": "dose-value",
                            "data-drug": drug,
                            "x": _n(x1 + 3),
                            "y": _n(y + LANE_H / 2 + 4),
                            "fill": "#fff",
                            "font-size": "10",
                        },
                    )
                    break


def _labs(svg: ET.Element, labs: dict[str, list[dict[str, Any]]], x: Scale, top: float) -> None:
    low, high, ticks = lab_scale(labs)
    span = math.log(high) - math.log(low)

    def y(value: float) -> float:
        clamped = min(max(value, low), high)
        return top + LAB_H * (math.log(high) - math.log(clamped)) / span

    _label(svg, top + 12, "x upper limit")
    _label(svg, top + 26, "of normal (log)")
    axis = ET.SubElement(svg, "g", {"class": "lab-axis"})
    for tick in ticks:
        uln = tick == 1
        attrs = {
            "x1": str(LEFT),
            "x2": str(WIDTH - RIGHT),
            "y1": _n(y(tick)),
            "y2": _n(y(tick)),
            "stroke": "#475569" if uln else "#e2e8f0",
        }
        if uln:
            attrs |= {"stroke-dasharray": "5 3", "class": "uln-line"}
        ET.SubElement(axis, "line", attrs)
        _text(
            axis,
            "text",
            f"{tick:g}x",
            **{
                "class": "lab-tick",
                "x": str(LEFT - 6),
                "y": _n(y(tick) + 4),
                "fill": "#475569",
                "text-anchor": "end",
            },
        )
    _text(
        axis,
        "text",
        "ULN",
        **{
            "class": "uln-label",
            "x": str(WIDTH - RIGHT + 4),
            "y": _n(y(1) + 4),
            "fill": "#0f172a",
            "font-weight": "600",
        },
    )
    for index, (code, points) in enumerate(labs.items()):
        colour = LAB_COLOURS.get(code, "#0f172a")
        group = ET.SubElement(svg, "g", {"class": f"lab-series lab-{code}"})
        if len(points) > 1:
            ET.SubElement(
                group,
                "polyline",
                {
                    "points": " ".join(f"{_n(x(p['at']))},{_n(y(p['x_uln']))}" for p in points),
                    "fill": "none",
                    "stroke": colour,
                    "stroke-width": "1.5",
                },
            )
        for p in points:
            dot = ET.SubElement(
                group,
                "circle",
                {
                    "class": "lab-point",
                    "data-lab": code,
                    "data-x-uln": f"{p['x_uln']:.2f}",
                    "cx": _n(x(p["at"])),
                    "cy": _n(y(p["x_uln"])),
                    "r": "3",
                    "fill": colour,
                },
            )
            _text(dot, "title", f"{code} {lab_value(code, p)} on {p['at']:%d %b %Y}")
        legend_x = WIDTH - RIGHT - 60 * (len(labs) - index)
        ET.SubElement(
            svg,
            "rect",
            {"x": str(legend_x), "y": _n(top - 16), "width": "10", "height": "10", "fill": colour},
        )
        _text(svg, "text", code, x=str(legend_x + 14), y=_n(top - 7))


def _milestones(svg: ET.Element, milestones: list[dict[str, Any]], x: Scale, y: float) -> None:
    _row(svg, y, "Milestones")
    for m in milestones:
        cx = x(m["at"])
        done = m["status"] == "completed"
        mark = ET.SubElement(
            svg,
            "path",
            {
                "class": "milestone",
                "data-status": m["status"],
                "d": f"M{_n(cx)},{_n(y - 6)} l6,6 l-6,6 l-6,-6 z",
                "fill": "#0f766e" if done else "#fff",
                "stroke": "#0f766e" if done else "#b45309",
                "stroke-width": "1.5",
            },
        )
        _text(mark, "title", _milestone(m))


def _reminders(svg: ET.Element, sent: list[dict[str, Any]], escalations: list, x: Scale, y: float):
    _row(svg, y, "Reminders")
    for mark in sent:
        dot = ET.SubElement(
            svg,
            "circle",
            {"class": "reminder-sent", "cx": _n(x(mark["at"])), "cy": _n(y), "r": "4"},
        )
        dot.set("fill", "#0369a1")
        _text(
            dot,
            "title",
            f"reminder to {mark['recipient']}: {words(mark['milestone'])}, {mark['at']:%d %b %Y}",
        )
    for mark in escalations:
        cx = x(mark["at"])
        tri = ET.SubElement(
            svg,
            "path",
            {
                "class": "escalation",
                "d": f"M{_n(cx)},{_n(y - 7)} l6,11 h-12 z",
                "fill": "#dc2626",
            },
        )
        _text(
            tri,
            "title",
            f"escalation: {words(mark['milestone'])} ({mark['status']}), {mark['at']:%d %b %Y}",
        )


def _row(svg: ET.Element, y: float, name: str) -> None:
    _label(svg, y + 4, name)
    ET.SubElement(
        svg,
        "line",
        {
            "x1": str(LEFT),
            "x2": str(WIDTH - RIGHT),
            "y1": _n(y),
            "y2": _n(y),
            "stroke": "#e2e8f0",
        },
    )


def _milestone(m: dict[str, Any]) -> str:
    closed = f" on {m['closed_at']:%d %b %Y}" if m.get("closed_at") else ""
    return f"{m['title']}, due {m['at']:%d %b %Y} ({m['status']}{closed})"


def _until(moment: datetime, series: dict[str, Any]) -> str:
    return "now" if moment >= series["end"] else f"{moment:%d %b %Y}"


def _axis(svg: ET.Element, start: datetime, end: datetime, x: Scale, height: float) -> None:
    months = max(1, round((end - start).days / 30.44))
    step = 1 if months <= 12 else 3 if months <= 36 else 6
    tick = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    group = ET.SubElement(svg, "g", {"class": "time-axis"})
    while tick <= end:
        if tick >= start:
            px = _n(x(tick))
            ET.SubElement(
                group,
                "line",
                {"x1": px, "x2": px, "y1": str(TOP), "y2": _n(height - 22), "stroke": "#f1f5f9"},
            )
            _text(
                group,
                "text",
                f"{tick:%b %Y}",
                x=px,
                y=_n(height - 8),
                fill="#475569",
                **{"text-anchor": "middle"},
            )
        tick = _add_months(tick, step)


def _label(parent: ET.Element, y: float, text: str) -> None:
    _text(parent, "text", text, x="4", y=_n(y), fill="#0f172a", **{"font-weight": "600"})


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def _n(value: float) -> str:
    return f"{value:.1f}"
