"""Evaluate the pathway's condition grammar against one patient at one moment.

Conditions are data (see pathways/schema): `all`/`any`/`not`, named `guard`s, and a small set
of clinical primitives over facts, labs, elapsed time, events, drugs and the triggering input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from engine.domain.durations import parse_duration
from engine.domain.labs import LabHistory, ReferenceLimits
from engine.domain.model import Patient
from engine.domain.pathway import Condition, Pathway


@dataclass
class Situation:
    """Everything a condition may look at: the patient, the moment and the triggering input."""

    patient: Patient
    pathway: Pathway
    limits: ReferenceLimits
    now: datetime
    trigger: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # the input's clinical time; guards judge what was true then

    def __post_init__(self) -> None:
        if self.at is None:
            self.at = self.now

    @cached_property
    def labs(self) -> LabHistory:
        return LabHistory(self.patient.lab_results)

    def uln(self, code: str) -> float | None:
        return self.limits.uln(code, self.patient.site)

    def fact(self, name: str) -> Any:
        if name == "age_years":
            return self.patient.age_years(self.at.date())
        if name == "weight_kg":
            return self.patient.weight_kg
        return self.patient.facts.get(name)

    def anchor(self, name: str) -> datetime | None:
        """The moment a named anchor stands for, or None when it has not happened."""
        p = self.patient
        if name == "enrolled":
            return p.enrolled_at
        if name == "treatment_start":
            return p.treatment_start
        if name == "state_entered":
            return p.entered(p.state)
        if name == "response_since":
            labs = self.pathway.parameters["complete_response_labs"]
            return self.labs.normal_since(labs, {c: self.uln(c) for c in labs})
        raise KeyError(f"unknown anchor {name!r}")


def holds(condition: Condition, s: Situation) -> bool:
    """True when the condition holds in the situation."""
    ((key, arg),) = condition.items()
    return _PRIMITIVES[key](arg, s)


def _compare(value: Any, spec: dict[str, Any]) -> bool:
    if "equals" in spec and value != spec["equals"]:
        return False
    if "in" in spec and value not in spec["in"]:
        return False
    numeric = {
        k: spec[k] for k in ("less_than", "at_most", "greater_than", "at_least") if k in spec
    }
    if numeric:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        checks = {
            "less_than": value < numeric.get("less_than", float("inf")),
            "at_most": value <= numeric.get("at_most", float("inf")),
            "greater_than": value > numeric.get("greater_than", float("-inf")),
            "at_least": value >= numeric.get("at_least", float("-inf")),
        }
        return all(checks[k] for k in numeric)
    return True


def _elapsed(arg: dict[str, Any], s: Situation) -> bool:
    since = s.anchor(arg["since"])
    if since is None:
        return False
    if "at_least" in arg and s.at < parse_duration(arg["at_least"]).after(since):
        return False
    return not ("less_than" in arg and s.at >= parse_duration(arg["less_than"]).after(since))


def _lab_latest(arg: dict[str, Any], s: Situation) -> bool:
    last = s.labs.latest(arg["lab"])
    if last is None:
        return False
    if "in" in arg:
        return last.text in arg["in"]
    uln = s.uln(arg["lab"])
    if last.value is None or uln is None:
        return False
    if "above_x_uln" in arg and not last.value > arg["above_x_uln"] * uln:
        return False
    return not ("at_least_x_uln" in arg and last.value < arg["at_least_x_uln"] * uln)


def _lab_band(arg: dict[str, Any], s: Situation) -> bool:
    last = s.labs.latest(arg["lab"])
    return (
        last is not None
        and last.value is not None
        and s.limits.band(arg["lab"], last.value) in arg["in"]
    )


def _fall(arg: dict[str, Any], s: Situation) -> bool:
    pct = s.labs.fall_from_baseline_pct(arg["lab"], s.patient.treatment_start)
    if pct is None:
        return False
    if "less_than_pct" in arg and not pct < arg["less_than_pct"]:
        return False
    return not ("at_least_pct" in arg and pct < arg["at_least_pct"])


def _response_in_window(arg: dict[str, Any], s: Situation) -> bool:
    """Each lab's result nearest to `nearest` after the anchor, within [from, to] and taken by
    the input's clinical time, fell less than `fall_less_than_pct` from baseline (and is above
    the ULN when `above_uln`). Labs with no result in the window are not judged; at least one
    must be."""
    since = s.anchor(arg["since"])
    if since is None:
        return False
    target = parse_duration(arg["nearest"]).after(since)
    opens = parse_duration(arg["from"]).after(since)
    closes = min(parse_duration(arg["to"]).after(since), s.at)
    judged = False
    for code in arg["labs"]:
        window = [r for r in s.labs.series(code) if opens <= r.taken_at <= closes]
        if not window:
            continue
        # the result nearest the target; of results taken at one moment, the amended (last)
        nearest = min(reversed(window), key=lambda r: abs((r.taken_at - target).total_seconds()))
        base = s.labs.baseline(code, since)
        if base is None or base is nearest or not base.value or nearest.value is None:
            continue
        fall = (base.value - nearest.value) / base.value * 100.0
        uln = s.uln(code)
        if arg.get("above_uln") and (uln is None or nearest.value <= uln):
            return False
        if fall >= arg["fall_less_than_pct"]:
            return False
        judged = True
    return judged


def _improving(arg: dict[str, Any], s: Situation) -> bool:
    """Latest value below the value at (or just before) entering the current state."""
    entered = s.anchor("state_entered")
    last = s.labs.latest(arg["lab"])
    reference = s.labs.at_or_before(arg["lab"], entered) if entered else None
    if reference is None or last is None or last is reference:
        return False
    return (last.value or 0.0) < (reference.value or 0.0)


def _lab_since(arg: dict[str, Any], s: Situation) -> bool:
    since = s.anchor(arg["since"])
    return since is not None and bool(s.labs.since(arg["lab"], since))


def _sustained(arg: dict[str, Any], s: Situation) -> bool:
    labs = arg["labs"]
    start = s.labs.normal_since(labs, {c: s.uln(c) for c in labs})
    return start is not None and s.at >= parse_duration(arg["for_at_least"]).after(start)


def _same_class_active(classes: list[str], s: Situation) -> bool:
    """Two different drugs of one of these classes are active at once."""
    seen: dict[str, set[str]] = {}
    for order in s.patient.active_orders():
        drug_class = s.pathway.drugs[order.drug].get("class")
        if drug_class in classes:
            seen.setdefault(drug_class, set()).add(order.drug)
    return any(len(drugs) > 1 for drugs in seen.values())


def _on_drug(arg: dict[str, Any], s: Situation) -> bool:
    """An active order of one of the drugs (dose compared; placed on or after the anchor's day
    when `ordered_since` is given)."""
    since = s.anchor(arg["ordered_since"]) if "ordered_since" in arg else None
    if "ordered_since" in arg and since is None:
        return False
    return any(
        o.drug in arg["in"]
        and _compare(o.mg_per_day, arg.get("mg_per_day", {}))
        and (since is None or o.ordered_at.date() >= since.date())
        for o in s.patient.active_orders()
    )


def _event_since(arg: dict[str, Any], s: Situation) -> bool:
    since = s.anchor(arg["since"]) if "since" in arg else None
    if "since" in arg and since is None:
        return False
    where = arg.get("where", {})
    for event in reversed(s.patient.clinical_events):
        if event.kind != arg["kind"] or (since is not None and event.occurred_at < since):
            continue
        if all(event.data.get(k) == v for k, v in where.items()):
            return True
    return False


_PRIMITIVES: dict[str, Callable[[Any, Situation], bool]] = {
    "all": lambda arg, s: all(holds(c, s) for c in arg),
    "any": lambda arg, s: any(holds(c, s) for c in arg),
    "not": lambda arg, s: not holds(arg, s),
    "guard": lambda arg, s: holds(s.pathway.guards[arg]["when"], s),
    "fact": lambda arg, s: s.fact(arg["name"]) is not None and _compare(s.fact(arg["name"]), arg),
    "input": lambda arg, s: arg["field"] in s.input and _compare(s.input[arg["field"]], arg),
    "lab_known": lambda arg, s: s.labs.known(arg),
    "lab_since": _lab_since,
    "lab_latest": _lab_latest,
    "lab_band": _lab_band,
    "labs_within_uln": lambda arg, s: all(s.labs.within_uln(c, s.uln(c)) for c in arg),
    "recent_labs_within_uln": lambda arg, s: all(
        s.labs.within_uln(c, s.uln(c))
        and s.labs.latest(c).taken_at >= parse_duration(arg["within"]).before(s.at)
        for c in arg["labs"]
    ),
    "lab_fall_from_baseline": _fall,
    "lab_response_in_window": _response_in_window,
    "lab_improving": _improving,
    "sustained_within_uln": _sustained,
    "elapsed": _elapsed,
    "event_since": _event_since,
    "on_drug": _on_drug,
    "state": lambda arg, s: s.pathway.in_any(s.patient.state, arg),
    "same_class_active": lambda arg, s: _same_class_active(arg, s),
    "input_drug_active": lambda arg, s: s.patient.on_drug([s.input.get("drug")]) is arg,
}


def describe(condition: Condition, pathway: Pathway) -> tuple[str, list[str]]:
    """A sentence and the rule IDs for a condition (named guards say their own text)."""
    ((key, arg),) = condition.items()
    if key == "guard":
        guard = pathway.guards[arg]
        return guard["text"], list(guard["rules"])
    return f"{key} {arg}", []
