"""A patient's course as series to plot: state bands, one lane of dose steps per drug, ALT,
AST and IgG as multiples of the upper limit of normal, milestones, reminders sent and
escalations.

Built from the status and history views (no extra read, no extra audit record), with the
upper limits of normal from the patient's pathway version and site. The drug lanes are the
pathway's own drugs that the patient was ordered, in the order the pathway file lists them
(an order of a drug the pathway does not know gets a lane after them). Drawing is the
caller's business (the pages draw it as SVG beside a table of the same values).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.services import clinical_display as show
from engine.services.care_pathways import care_pathway

#: Labs drawn as multiples of their upper limit of normal.
ULN_LABS = ("ALT", "AST", "IgG")


def timeline_series(
    status: dict[str, Any], history: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The plotted series of one patient, every time as a datetime, oldest first."""
    care = care_pathway(status["pathway"]["key"])
    moments = [_t(x["at"]) for x in history["transitions"]]
    moments += [_t(x["taken_at"]) for x in history["labs"]]
    moments += [_t(x["ordered_at"]) for x in history["orders"]]
    if status.get("state_since"):
        moments.append(_t(status["state_since"]))
    start = min(moments, default=now)
    end = max(now, start)
    orders = sorted(history["orders"], key=lambda o: o["ordered_at"])
    known = list(care.pathway.drugs)
    ordered = {o["drug"] for o in orders}
    lanes = [d for d in known if d in ordered] + sorted(ordered - set(known))
    return {
        "start": start,
        "end": end,
        "bands": _bands(status, history, start, now),
        "drugs": lanes,
        "drug_classes": {d: str(care.pathway.drugs.get(d, {}).get("class", "")) for d in lanes},
        "doses": [
            {
                "drug": o["drug"],
                "mg_per_day": o["mg_per_day"],
                "mg_per_kg_day": o["mg_per_kg_day"],
                "route": o.get("route"),
                "shown": dose_shown(care, o),
                "start": _t(o["ordered_at"]),
                "end": _t(o["ended_at"]) if o["ended_at"] else now,
            }
            for o in orders
        ],
        "labs": {
            code: [
                {
                    "at": _t(lab["taken_at"]),
                    "value": lab["value"],
                    "unit": lab["unit"],
                    "shown": show.quantity(lab["value"], lab["unit"], _precision(care, code)),
                    "x_uln": lab["value"] / uln,
                }
                for lab in history["labs"]
                if lab["code"] == code
                and isinstance(lab["value"], int | float)
                and not isinstance(lab["value"], bool)
            ]
            for code in ULN_LABS
            if (uln := care.limits.uln(code, status["site"]))
        },
        "milestones": [
            {
                "at": _t(m["due_at"]),
                "title": m["title"],
                "status": m["status"],
                "closed_at": _t(m["closed_at"]) if m.get("closed_at") else None,
            }
            for m in sorted(history.get("milestones", []), key=lambda m: m["due_at"])
            if start <= _t(m["due_at"]) <= end
        ],
        "reminders_sent": [
            {"at": _t(r["sent_at"]), "recipient": r["recipient"], "milestone": r["milestone"]}
            for r in history["reminders"]
            if r["purpose"] == "notify" and r["status"] == "sent" and r["sent_at"]
        ],
        "escalations": [
            {"at": _t(r["due_at"]), "milestone": r["milestone"], "status": r["status"]}
            for r in history["reminders"]
            if r["purpose"] == "escalate" and r["status"] in ("sent", "failed")
        ],
    }


def _precision(care: Any, code: str) -> int | None:
    """The lab's precision in the pathway data (decimals as the laboratory reports it)."""
    definition = care.pathway.labs.get(code)
    return definition.precision if definition else None


def dose_shown(care: Any, order: dict[str, Any]) -> str:
    """A dose step as the clinic writes it (the drug's precision, the route when IV)."""
    precision = care.pathway.drugs.get(order["drug"], {}).get("dose", {}).get("precision", 1)
    route = "IV " if order.get("route") == "iv" else ""
    if order["mg_per_day"]:
        return route + show.dose(order["mg_per_day"], "mg_per_day", precision)
    if order.get("mg_per_kg_day") is not None:
        return route + show.dose(order["mg_per_kg_day"], "mg_per_kg_day")
    return "dose not recorded"


def _bands(
    status: dict[str, Any], history: dict[str, Any], start: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Consecutive (state, start, end) intervals from the recorded transitions."""
    changes = sorted(history["transitions"], key=lambda t: t["at"])
    bands: list[dict[str, Any]] = []
    state, since = (changes[0]["from"] if changes else status["state"]), start
    for change in changes:
        at = _t(change["at"])
        if at > since:
            bands.append({"state": state, "start": since, "end": at})
        state, since = change["to"], at
    bands.append({"state": state, "start": since, "end": max(now, since)})
    return bands


def _t(text: str | datetime) -> datetime:
    return text if isinstance(text, datetime) else datetime.fromisoformat(text)
