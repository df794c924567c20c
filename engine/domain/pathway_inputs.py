"""What the pathway verifier feeds a pathway: representative patients and clinical inputs.

Everything is derived from the pathway data, so a new lab, event, drug or threshold is explored
without code changes: lab values at multiples of the upper limit of normal (and at the
multiples the conditions compare with), one value per TPMT band, every qualitative result,
clinical events with field values taken from their field specs, medication orders at the doses
of the drug's dose model and the states' expected doses, and steps of the clock followed by a
review. Used by `pathway_exploration`; plain Python, no framework.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from engine.domain.care import CarePathway, Outcome, new_patient
from engine.domain.durations import parse_duration
from engine.domain.model import Patient
from engine.domain.pathway import Pathway

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ACTOR = "pathway-verifier"
ULN_MULTIPLES = (0.5, 1.0, 3.0)  # for labs some condition compares with a multiple of the ULN
ULN_MULTIPLES_UNCOMPARED = (0.5, 3.0)  # for labs read only as normal or not, known, improving
CLOCK_STEPS = ("P3D", "P2W", "P4W", "P3M", "P6M", "P2Y")


@dataclass(frozen=True)
class RepresentativePatient:
    """A kind of patient the verifier enrols (adult, child, cirrhotic, pregnant...)."""

    name: str
    age_years: int
    sex: str
    weight_kg: float
    facts: tuple[tuple[str, Any], ...] = ()

    def enrol(self, care: CarePathway) -> Patient:
        """A new patient of this kind, enrolled at the verifier's start time."""
        patient = new_patient(
            site="verification",
            clinician=ACTOR,
            birth_date=date(START.year - self.age_years, 3, 1),
            sex=self.sex,
            weight_kg=self.weight_kg,
            facts=dict(self.facts),
        )
        care.enrol(patient, START, ACTOR)
        return patient


REPRESENTATIVE_PATIENTS = (
    RepresentativePatient("adult", 45, "F", 62.0),
    RepresentativePatient("child", 10, "M", 32.0),
    RepresentativePatient("cirrhotic adult", 55, "M", 80.0, (("cirrhosis", True),)),
    RepresentativePatient("pregnant adult", 30, "F", 68.0, (("pregnant", True),)),
    RepresentativePatient(
        "adult at high steroid risk", 60, "F", 70.0, (("high_steroid_risk", True),)
    ),
    RepresentativePatient("acute severe adult", 40, "F", 58.0, (("acute_severe", True),)),
)


def representative_patients(pathway: Pathway) -> list[RepresentativePatient]:
    """The representative patients whose facts this pathway knows."""
    return [p for p in REPRESENTATIVE_PATIENTS if all(name in pathway.facts for name, _ in p.facts)]


@dataclass(frozen=True)
class ClinicalInput:
    """One input the verifier can give: a lab result, an event, an order or time passing."""

    kind: str  # lab | event | order | clock
    name: str  # lab code, event kind, drug or ISO-8601 duration
    label: str  # in clinic words: "ALT 480 U/L (12x ULN)"
    arguments: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def family(self) -> str:
        """What the input is about, without its value: `lab ALT`, `order prednisolone`."""
        return f"{self.kind} {self.name}"

    @property
    def same_day(self) -> bool:
        """True for inputs given at a moment (everything but the clock)."""
        return self.kind != "clock"

    def apply(self, care: CarePathway, patient: Patient, now: datetime) -> tuple[Outcome, datetime]:
        """Give the input to the patient at `now`; the outcome and the clock afterwards."""
        args = dict(self.arguments)
        if self.kind == "lab":
            unit = args.get("unit")
            outcome = care.record_lab_result(
                patient, self.name, args["value"], unit, now, now, ACTOR, source="verification"
            )
            return outcome, now
        if self.kind == "event":
            outcome = care.record_clinical_event(patient, self.name, now, args, now, ACTOR)
            return outcome, now
        if self.kind == "order":
            return care.order_medication(patient, self.name, now, ACTOR, **args), now
        later = parse_duration(self.name).after(now)
        return care.review(patient, later, ACTOR), later


def representative_inputs(pathway: Pathway) -> list[ClinicalInput]:
    """Every input the verifier explores, in a fixed order: labs, events, orders, clock."""
    conditions = list(_all_conditions(pathway))
    return [
        *_lab_inputs(pathway, conditions),
        *_event_inputs(pathway, conditions),
        *_order_inputs(pathway, conditions),
        *(
            ClinicalInput("clock", step, f"{_duration_words(step)} pass, then review")
            for step in CLOCK_STEPS
        ),
    ]


# ---- labs -----------------------------------------------------------------------------------


def _lab_inputs(pathway: Pathway, conditions: list[Any]) -> Iterator[ClinicalInput]:
    for lab in pathway.labs.values():
        if lab.kind != "quantitative":
            for text in lab.values:
                yield ClinicalInput("lab", lab.code, f"{lab.code} {text}", (("value", text),))
            continue
        for value, words in _lab_values(pathway, lab.code, conditions):
            if lab.plausible and not lab.plausible[0] <= value <= lab.plausible[1]:
                continue
            label = f"{lab.code} {value:g} {lab.unit}" + (f" ({words})" if words else "")
            yield ClinicalInput("lab", lab.code, label, (("value", value), ("unit", lab.unit)))


def _uln_thresholds(code: str, conditions: list[Any]) -> set[float]:
    found: set[float] = set()
    for node in _leaves(conditions):
        arg = next(iter(node.values()))
        if isinstance(arg, dict) and arg.get("lab") == code:
            found |= {arg[k] for k in ("above_x_uln", "at_least_x_uln") if k in arg}
    return found


def _lab_read(code: str, conditions: list[Any]) -> bool:
    for node in _leaves(conditions):
        arg = next(iter(node.values()))
        if arg == code or (isinstance(arg, list) and code in arg):
            return True
        if isinstance(arg, dict) and (arg.get("lab") == code or code in arg.get("labs", [])):
            return True
    return False


def _lab_values(pathway: Pathway, code: str, conditions: list[Any]) -> list[tuple[float, str]]:
    lab = pathway.labs[code]
    if lab.bands:
        values, low = [], 0.0
        for name, below in lab.bands:
            value = round((low + below) / 2, 1) if below is not None else round(low * 1.25, 1)
            values.append((value, name))
            low = below if below is not None else low
        return values
    if lab.uln:
        thresholds = _uln_thresholds(code, conditions)
        multiples = set(ULN_MULTIPLES if thresholds else ULN_MULTIPLES_UNCOMPARED)
        multiples |= {round(t * 1.2, 2) for t in thresholds if not any(m > t for m in multiples)}
        if not _lab_read(code, conditions):
            multiples = {1.0}
        return [(round(m * lab.uln, 2), f"{m:g}x ULN") for m in sorted(multiples)]
    low, high = lab.plausible or (0.0, 100.0)
    return [(round(low + (high - low) * share, 2), "") for share in (0.0, 0.01, 0.5)]


# ---- events ---------------------------------------------------------------------------------


def _event_inputs(pathway: Pathway, conditions: list[Any]) -> Iterator[ClinicalInput]:
    read = _fields_read(conditions)
    for kind, event in pathway.events.items():
        values = {
            name: _field_values(pathway, spec, name, conditions, _trigger_conditions(pathway, kind))
            for name, spec in event.fields.items()
        }
        if any(spec.get("required") and not values[name] for name, spec in event.fields.items()):
            continue  # a required field the verifier cannot fill (a type it does not know)
        base = {
            name: values[name][0] for name, spec in event.fields.items() if spec.get("required")
        }
        variants = [base]
        for name, spec in event.fields.items():
            if name in read or name in event.sets_from_fields:
                optional_flag = spec.get("type") == "boolean" and not spec.get("required")
                variants += [{**base, name: v} for v in values[name] if v or not optional_flag]
        if not base and len(variants) > 1:
            variants = variants[1:]  # an event that only matters through its optional fields
        seen: set[tuple[tuple[str, Any], ...]] = set()
        for data in variants:
            key = tuple(sorted(data.items()))
            if key in seen:
                continue
            seen.add(key)
            words = ", ".join(f"{k}={_shown(v)}" for k, v in key)
            label = kind.replace("_", " ") + (f" ({words})" if words else "")
            yield ClinicalInput("event", kind, label, key)


def _field_values(
    pathway: Pathway,
    spec: dict[str, Any],
    name: str,
    conditions: list[Any],
    trigger_conditions: list[Any],
) -> list[Any]:
    """Valid values of one event field: both booleans, every choice, thresholds and the top."""
    typed = spec.get("type")
    if typed == "boolean":
        return [False, True]
    if typed == "choice":
        return list(spec.get("values", []))
    if typed == "text":
        return ["recorded by the pathway verifier"]
    if typed == "drug":
        named = _drugs_named(trigger_conditions)
        others = [d for d in pathway.drugs if d not in named]
        return [*named, *others[:1]]
    if typed == "number":
        low, high = spec.get("min", float("-inf")), spec.get("max", float("inf"))
        values = {t for t in _thresholds(conditions, name) if low <= t <= high}
        top = spec.get("max", max(values, default=0) + 1)
        return sorted(values | {top}) if values else [spec.get("min", top)]
    return []


def _trigger_conditions(pathway: Pathway, trigger: str) -> list[Any]:
    """The guards of the transitions and blocks an input of this kind triggers."""
    found: list[Any] = []
    for t in pathway.transitions:
        if t.trigger == trigger:
            found += [pathway.guards[g["guard"]]["when"] if "guard" in g else g for g in t.guards]
    found += [b.when for b in pathway.blocks if b.trigger == trigger]
    return found


def _fields_read(conditions: list[Any]) -> set[str]:
    """Event fields and facts some condition reads (so their values matter)."""
    read: set[str] = set()
    for node in _leaves(conditions):
        ((key, arg),) = node.items()
        if key == "input":
            read.add(arg["field"])
        elif key == "fact":
            read.add(arg["name"])
        elif key == "event_since":
            read.update(arg.get("where", {}))
    return read


def _thresholds(conditions: list[Any], name: str) -> set[float]:
    found: set[float] = set()
    for node in _leaves(conditions):
        ((key, arg),) = node.items()
        if key in ("fact", "input") and name in (arg.get("name"), arg.get("field")):
            for compare in ("less_than", "at_most", "greater_than", "at_least"):
                if isinstance(arg.get(compare), int | float):
                    found.add(arg[compare])
    return found


def _drugs_named(conditions: list[Any]) -> list[str]:
    named: list[str] = []
    for node in _leaves(conditions):
        ((key, arg),) = node.items()
        if key == "input" and arg.get("field") == "drug":
            named += [d for d in arg.get("in", []) if d not in named]
    return named


# ---- orders ---------------------------------------------------------------------------------


def _order_inputs(pathway: Pathway, conditions: list[Any]) -> Iterator[ClinicalInput]:
    for drug in pathway.drugs:
        seen: set[tuple[tuple[str, Any], ...]] = set()
        for route, unit, value in _doses(pathway, drug, conditions):
            args = (("route", route), (unit, value))
            if args in seen:
                continue
            seen.add(args)
            words = "mg/kg/day" if unit == "mg_per_kg_day" else "mg/day"
            label = f"order {drug.replace('_', ' ')} {value:g} {words}" + (
                f" {route}" if route != "oral" else ""
            )
            yield ClinicalInput("order", drug, label, args)


def _doses(pathway: Pathway, drug: str, conditions: list[Any]) -> list[tuple[str, str, float]]:
    """Plausible doses of a drug: its dose ranges' bounds and the states' expected doses."""
    spec = pathway.drugs[drug]
    routes = spec.get("routes") or ["oral"]
    dosing = getattr(pathway, "dosing", {}).get(drug)
    units = tuple(dosing.given_as) if dosing else ("mg_per_day", "mg_per_kg_day")
    found: list[tuple[str, str, float]] = []

    def add(route: str, unit: str, value: Any) -> None:
        if isinstance(value, int | float) and value > 0 and unit in units:
            found.append((route, unit, float(value)))

    ranges = dosing.ranges if dosing else ()
    for dose_range in ranges:
        route = _route_of(dose_range.when, routes)
        bounded = [u for u in units if any(b is not None for b in getattr(dose_range, u))]
        floored = [u for u in bounded if getattr(dose_range, u)[0] is not None]
        unit = (floored or bounded or [None])[0]
        if unit is not None:
            low, high = getattr(dose_range, unit)
            add(route, unit, low)
            if len(ranges) > 1 or low is None:  # one range: one accepted dose is enough
                add(route, unit, high)
    for state in pathway.states.values():
        expected = state.expected_dose or {}
        if expected.get("drug") == drug:
            for unit in ("mg_per_day", "mg_per_kg_day"):
                add(_route_of(None, routes), unit, expected.get(unit))
    for regimen in pathway.regimens.values():
        for component in regimen.get("components", []):
            if component.get("drug") == drug:
                route = component.get("route", _route_of(None, routes))
                for unit in ("mg_per_day", "mg_per_kg_day"):
                    for bound in _bounds(component.get(unit), pathway.parameters):
                        add(route, unit, bound)
    if not found:
        found.append((_route_of(None, routes), units[0], 10.0))
    return found


def _route_of(when: Any, routes: list[str]) -> str:
    """The route a dose range's condition names, else oral when the drug allows it."""
    for node in _leaves([when] if when else []):
        ((key, arg),) = node.items()
        if key == "input" and arg.get("field") == "route" and arg.get("in"):
            return arg["in"][0]
    return "oral" if "oral" in routes else routes[0]


def _bounds(spec: Any, parameters: dict[str, Any]) -> list[Any]:
    if isinstance(spec, dict) and set(spec) == {"param"}:
        return [parameters.get(spec["param"])]
    if isinstance(spec, dict):
        return [v for key in ("equals", "min", "max") for v in _bounds(spec.get(key), parameters)]
    return [spec]


# ---- the pathway's conditions ---------------------------------------------------------------


def _all_conditions(pathway: Pathway) -> Iterator[Any]:
    """Every condition in the pathway: guards, transitions, blocks, alerts, milestones, doses."""
    yield from (g["when"] for g in pathway.guards.values())
    for t in pathway.transitions:
        yield from (g for g in t.guards if "guard" not in g)
    yield from (b.when for b in pathway.blocks)
    yield from (a.when for a in pathway.alerts)
    for m in pathway.milestones:
        yield from (c for c in (m.when, m.unless) if c)
    for dosing in getattr(pathway, "dosing", {}).values():
        yield from (r.when for r in dosing.ranges if r.when)


def _leaves(conditions: list[Any]) -> Iterator[dict[str, Any]]:
    """The primitive conditions (no all/any/not/guard) inside some conditions."""
    for node in conditions:
        if not isinstance(node, dict) or len(node) != 1:
            continue
        ((key, arg),) = node.items()
        if key in ("all", "any"):
            yield from _leaves(arg)
        elif key == "not":
            yield from _leaves([arg])
        elif key != "guard":
            yield node


def primitive_conditions(pathway: Pathway) -> list[dict[str, Any]]:
    """The distinct primitive conditions of the pathway, input conditions left out."""
    seen: dict[str, dict[str, Any]] = {}
    for node in _leaves(list(_all_conditions(pathway))):
        if "input" not in node:
            seen.setdefault(repr(sorted(node.items(), key=str)), node)
    return list(seen.values())


def _duration_words(text: str) -> str:
    words = {"Y": "year", "M": "month", "W": "week", "D": "day"}
    number, unit = int(text[1:-1]), text[-1]
    return f"{number} {words[unit]}{'s' if number != 1 else ''}"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)
