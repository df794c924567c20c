"""The patient timeline as a server-rendered SVG: state bands over time, steroid dose steps,
ALT and IgG as multiples of the upper limit of normal, reminders sent and escalations.

Pure drawing: it takes `engine.services.patient_timeline.timeline_series` and builds SVG
elements with ElementTree (which escapes every text), so the page needs no JavaScript to show
it. Every mark carries a `<title>` (a tooltip and a name for screen readers) and a class the
browser tests count (`dose-step`, `lab-point`, `reminder-sent`, `escalation`, `state-band`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

WIDTH, LEFT, RIGHT = 960, 120, 20
BANDS_Y, BANDS_H = 28, 26
DOSE_Y, DOSE_H = 78, 90
LAB_Y, LAB_H = 200, 120
MARK_Y = 352
HEIGHT = 390
STAGE_COLOURS = {
    "screening": "#9aa5b1",
    "induction": "#3b82f6",
    "taper": "#14b8a6",
    "maintenance": "#22c55e",
    "acute_severe": "#ef4444",
    "second_line": "#f59e0b",
    "transplant_evaluation": "#a855f7",
    "transplanted": "#6b21a8",
    "withdrawn": "#cbd5e1",
    "relapse": "#ec4899",
    "closed": "#64748b",
}
DRUG_COLOURS = {"prednisolone": "#1d4ed8", "budesonide": "#047857"}
LAB_COLOURS = {"ALT": "#b91c1c", "IgG": "#7c3aed"}


def timeline_svg(series: dict[str, Any]) -> str:
    """The SVG markup for one patient's series."""
    start, end = series["start"], series["end"]
    span = max((end - start).total_seconds(), 86400.0)

    def x(moment: datetime) -> float:
        offset = (min(max(moment, start), end) - start).total_seconds()
        return LEFT + (WIDTH - LEFT - RIGHT) * offset / span

    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {WIDTH} {HEIGHT}",
            "width": "100%",
            "role": "img",
            "aria-labelledby": "timeline-title timeline-desc",
            "class": "timeline",
            "font-family": "system-ui, sans-serif",
            "font-size": "11",
        },
    )
    _text(svg, "title", "Patient timeline", id="timeline-title")
    _text(
        svg,
        "desc",
        f"From {start:%d %b %Y} to {end:%d %b %Y}: {len(series['bands'])} pathway states, "
        f"{len(series['doses'])} steroid dose steps, "
        + ", ".join(f"{len(v)} {code} results" for code, v in series["labs"].items())
        + f", {len(series['reminders_sent'])} reminders sent, "
        f"{len(series['escalations'])} escalations.",
        id="timeline-desc",
    )
    _axis(svg, start, end, x)
    _bands(svg, series["bands"], x)
    _doses(svg, series["doses"], x)
    _labs(svg, series["labs"], x)
    _marks(svg, series["reminders_sent"], series["escalations"], x)
    return ET.tostring(svg, encoding="unicode")


def _bands(svg: ET.Element, bands: list[dict[str, Any]], x) -> None:
    _label(svg, BANDS_Y + BANDS_H / 2 + 4, "Pathway state")
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
                "y": str(BANDS_Y),
                "width": _n(max(x2 - x1, 1.0)),
                "height": str(BANDS_H),
                "fill": STAGE_COLOURS.get(stage, "#94a3b8"),
            },
        )
        _text(rect, "title", f"{band['state']}: {band['start']:%d %b %Y} to {band['end']:%d %b %Y}")
        if x2 - x1 > 7 * len(band["state"]):
            _text(
                group,
                "text",
                band["state"],
                x=_n(x1 + 4),
                y=str(BANDS_Y + 17),
                fill="#0f172a" if stage in ("withdrawn", "screening") else "#fff",
            )


def _amount(mg_per_day: float | None, mg_per_kg_day: float | None) -> str:
    """A dose step's amount; an order recorded without a dose says so instead of failing."""
    if mg_per_day:
        return f"{mg_per_day:g} mg/day"
    if mg_per_kg_day is not None:
        return f"{mg_per_kg_day:g} mg/kg/day"
    return "dose not recorded"


def _doses(svg: ET.Element, doses: list[dict[str, Any]], x) -> None:
    _label(svg, DOSE_Y + 12, "Steroid mg/day")
    top = max([d["mg_per_day"] or 0 for d in doses] + [10.0])
    _gridline(svg, DOSE_Y + DOSE_H, "0")
    _gridline(svg, DOSE_Y, f"{top:g}")
    group = ET.SubElement(svg, "g", {"class": "dose-steps"})
    for dose in doses:
        mg = dose["mg_per_day"]
        height = DOSE_H * (mg / top) if mg else DOSE_H / 3
        x1, x2 = x(dose["start"]), x(dose["end"])
        amount = _amount(mg, dose.get("mg_per_kg_day"))
        rect = ET.SubElement(
            group,
            "rect",
            {
                "class": "dose-step",
                "data-drug": dose["drug"],
                "x": _n(x1),
                "y": _n(DOSE_Y + DOSE_H - height),
                "width": _n(max(x2 - x1, 2.0)),
                "height": _n(height),
                "fill": DRUG_COLOURS.get(dose["drug"], "#334155"),
                "fill-opacity": "0.75",
                "stroke": "#fff",
            },
        )
        _text(
            rect,
            "title",
            f"{dose['drug']} {amount}: {dose['start']:%d %b %Y} to {dose['end']:%d %b %Y}",
        )


def _labs(svg: ET.Element, labs: dict[str, list[dict[str, Any]]], x) -> None:
    _label(svg, LAB_Y + 12, "x upper limit")
    _label(svg, LAB_Y + 26, "of normal")
    top = max([p["x_uln"] for points in labs.values() for p in points] + [2.0])
    top = min(top, 20.0)

    def y(value: float) -> float:
        return LAB_Y + LAB_H - LAB_H * min(value, top) / top

    _gridline(svg, y(0), "0")
    _gridline(svg, y(1), "1x ULN", dashed=True)
    _gridline(svg, y(top), f"{top:.0f}x")
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
                    "cx": _n(x(p["at"])),
                    "cy": _n(y(p["x_uln"])),
                    "r": "3",
                    "fill": colour,
                },
            )
            _text(
                dot,
                "title",
                f"{code} {p['value']:g} {p['unit'] or ''} = {p['x_uln']:.1f}x ULN "
                f"on {p['at']:%d %b %Y}",
            )
        legend_x = WIDTH - RIGHT - 150 + 75 * index
        ET.SubElement(
            svg,
            "rect",
            {
                "x": str(legend_x),
                "y": str(LAB_Y - 12),
                "width": "10",
                "height": "10",
                "fill": colour,
            },
        )
        _text(svg, "text", code, x=str(legend_x + 14), y=str(LAB_Y - 3))


def _marks(svg: ET.Element, sent: list[dict[str, Any]], escalations: list[dict[str, Any]], x):
    _label(svg, MARK_Y + 4, "Reminders")
    ET.SubElement(
        svg,
        "line",
        {
            "x1": str(LEFT),
            "x2": str(WIDTH - RIGHT),
            "y1": str(MARK_Y),
            "y2": str(MARK_Y),
            "stroke": "#e2e8f0",
        },
    )
    for mark in sent:
        cx = x(mark["at"])
        dot = ET.SubElement(
            svg,
            "circle",
            {
                "class": "reminder-sent",
                "cx": _n(cx),
                "cy": str(MARK_Y),
                "r": "4",
                "fill": "#0ea5e9",
            },
        )
        _text(
            dot,
            "title",
            f"reminder to {mark['recipient']}: {mark['milestone']}, {mark['at']:%d %b %Y}",
        )
    for mark in escalations:
        cx = x(mark["at"])
        tri = ET.SubElement(
            svg,
            "path",
            {
                "class": "escalation",
                "d": f"M{_n(cx)},{MARK_Y - 12} l6,10 h-12 z",
                "fill": "#dc2626",
            },
        )
        _text(tri, "title", f"escalation: {mark['milestone']}, {mark['at']:%d %b %Y}")


def _axis(svg: ET.Element, start: datetime, end: datetime, x) -> None:
    months = max(1, round((end - start).days / 30.44))
    step = 1 if months <= 12 else 3 if months <= 36 else 6
    tick = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start:
            px = _n(x(tick))
            ET.SubElement(
                svg,
                "line",
                {
                    "x1": px,
                    "x2": px,
                    "y1": str(BANDS_Y - 6),
                    "y2": str(HEIGHT - 22),
                    "stroke": "#f1f5f9",
                },
            )
            _text(
                svg,
                "text",
                f"{tick:%b %Y}",
                x=px,
                y=str(HEIGHT - 8),
                fill="#475569",
                **{"text-anchor": "middle"},
            )
        tick = _add_months(tick, step)


def _gridline(svg: ET.Element, y: float, text: str, dashed: bool = False) -> None:
    attrs = {
        "x1": str(LEFT),
        "x2": str(WIDTH - RIGHT),
        "y1": _n(y),
        "y2": _n(y),
        "stroke": "#94a3b8" if dashed else "#e2e8f0",
    }
    if dashed:
        attrs["stroke-dasharray"] = "4 3"
    ET.SubElement(svg, "line", attrs)
    _text(svg, "text", text, x=str(LEFT - 6), y=_n(y + 4), fill="#475569", **{"text-anchor": "end"})


def _label(svg: ET.Element, y: float, text: str) -> None:
    _text(svg, "text", text, x="4", y=_n(y), fill="#0f172a", **{"font-weight": "600"})


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    element.text = text
    return element


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def _n(value: float) -> str:
    return f"{value:.1f}"
