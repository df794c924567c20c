"""The pathway's conditions in words, for people: "ALT and IgG within the upper limit of
normal on labs of the last 6 weeks" rather than the condition's data.

`in_words(condition, pathway)` reads the same grammar `engine.domain.conditions` evaluates
(`all`/`any`/`not`, named `guard`s and the clinical primitives); a named guard says its own
text from the pathway file, or, with `short_guards=True` (a diagram label), its name in
words. Every primitive of `conditions._PRIMITIVES` has a phrase here (a test checks it), so a
reader never sees the condition's raw data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engine.domain.durations import parse_duration
from engine.domain.pathway import Condition, Pathway

ANCHORS = {
    "enrolled": "enrolment",
    "treatment_start": "the start of treatment",
    "state_entered": "entering this state",
    "response_since": "the start of the complete response",
}
_COMPARISONS = (
    ("less_than", "is under"),
    ("at_most", "is at most"),
    ("greater_than", "is over"),
    ("at_least", "is at least"),
)
_FIELD_UNITS = {"mg_per_day": " mg/day", "mg_per_kg_day": " mg/kg/day"}
_FIELD_NAMES = {"mg_per_day": "dose", "mg_per_kg_day": "dose by weight"}


def in_words(condition: Condition, pathway: Pathway, *, short_guards: bool = False) -> str:
    """The condition as a phrase a clinician reads."""
    ((key, arg),) = condition.items()
    if key == "guard":
        return words(arg) if short_guards else pathway.guards[arg]["text"]
    if key in ("all", "any"):
        parts = [_part(c, pathway, short_guards) for c in arg]
        return joined(parts, "and" if key == "all" else "or")
    if key == "not":
        return f"not ({in_words(arg, pathway, short_guards=short_guards)})"
    return _PHRASES[key](arg)


def _part(condition: Condition, pathway: Pathway, short_guards: bool) -> str:
    """A member of `all`/`any`, bracketed when it is itself a list (so `and`/`or` stay clear)."""
    text = in_words(condition, pathway, short_guards=short_guards)
    return f"({text})" if next(iter(condition)) in ("all", "any") else text


def words(name: str) -> str:
    """An identifier in words: `mycophenolate_mofetil` -> `mycophenolate mofetil`."""
    return str(name).replace("_", " ")


def joined(items: Iterable[Any], conjunction: str = "or") -> str:
    """`a`, `a or b`, `a, b or c`."""
    parts = [str(i) for i in items]
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {conjunction} {parts[-1]}"


def duration(text: str) -> str:
    """An ISO-8601 duration in words: P6W -> 6 weeks, P2Y -> 2 years, P14D -> 2 weeks."""
    d = parse_duration(text)
    years, months = divmod(d.months, 12)
    days, seconds = d.delta.days, d.delta.seconds
    weeks, days = divmod(days, 7) if days % 7 == 0 else (0, days)
    counts = (
        (years, "years"),
        (months, "months"),
        (weeks, "weeks"),
        (days, "days"),
        (seconds // 3600, "hours"),
        (seconds % 3600 // 60, "minutes"),
    )
    return " ".join(_count(n, unit) for n, unit in counts if n) or "no time"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit if n != 1 else unit[:-1]}"


def _anchor(name: str) -> str:
    return ANCHORS.get(name, words(name))


def _value(value: Any, unit: str = "") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}{unit}"
    if isinstance(value, list | tuple):
        return joined((_value(v, unit) for v in value), "or")
    return f"{words(value)}{unit}"


def _comparison(spec: dict[str, Any], unit: str = "") -> str:
    """`equals`, `in` and the numeric bounds of a comparison, in words."""
    parts = []
    if "equals" in spec:
        parts.append(f"is {_value(spec['equals'], unit)}")
    if "in" in spec:
        parts.append(f"is {_value(spec['in'], unit)}")
    parts += [f"{phrase} {_value(spec[k], unit)}" for k, phrase in _COMPARISONS if k in spec]
    return " and ".join(parts)


def _fact(arg: dict[str, Any]) -> str:
    return f"{words(arg['name'])} {_comparison(arg)}".strip()


def _input(arg: dict[str, Any]) -> str:
    field = arg["field"]
    name = _FIELD_NAMES.get(field) or words(field)
    return f"the {name} ordered {_comparison(arg, _FIELD_UNITS.get(field, ''))}".strip()


def _labs(codes: list[str] | str) -> str:
    return joined([codes] if isinstance(codes, str) else codes, "and")


def _lab_latest(arg: dict[str, Any]) -> str:
    phrase = f"the latest {arg['lab']}"
    if "in" in arg:
        return f"{phrase} is {joined(arg['in'])}"
    if "above_x_uln" in arg:
        phrase += f" above {_value(arg['above_x_uln'])}x the upper limit of normal"
    if "at_least_x_uln" in arg:
        phrase += f" at least {_value(arg['at_least_x_uln'])}x the upper limit of normal"
    return phrase


def _fall(arg: dict[str, Any]) -> str:
    phrase = f"{arg['lab']} fell from baseline"
    if "less_than_pct" in arg:
        phrase += f" by less than {_value(arg['less_than_pct'])}%"
    if "at_least_pct" in arg:
        phrase += f" by at least {_value(arg['at_least_pct'])}%"
    return phrase


def _response_in_window(arg: dict[str, Any]) -> str:
    since = _anchor(arg["since"])
    phrase = (
        f"{_labs(arg['labs'])} fell by less than {_value(arg['fall_less_than_pct'])}% from "
        f"baseline at the result nearest {duration(arg['nearest'])} after {since} "
        f"(between {duration(arg['from'])} and {duration(arg['to'])})"
    )
    return phrase + (", still above the upper limit of normal" if arg.get("above_uln") else "")


def _elapsed(arg: dict[str, Any]) -> str:
    since = _anchor(arg["since"])
    parts = []
    if "at_least" in arg:
        parts.append(f"at least {duration(arg['at_least'])} since {since}")
    if "less_than" in arg:
        parts.append(f"less than {duration(arg['less_than'])} since {since}")
    return " and ".join(parts) or f"after {since}"


def _event_since(arg: dict[str, Any]) -> str:
    phrase = f"{words(arg['kind'])} recorded"
    where = arg.get("where") or {}
    if where:
        phrase += " (" + ", ".join(f"{words(k)} {_value(v)}" for k, v in where.items()) + ")"
    if "since" in arg:
        phrase += f" since {_anchor(arg['since'])}"
    return phrase


def _on_drug(arg: dict[str, Any]) -> str:
    phrase = f"on {_value(arg['in'])}"
    if arg.get("mg_per_day"):
        phrase += f" at a dose that {_comparison(arg['mg_per_day'], ' mg/day')}"
    if "ordered_since" in arg:
        phrase += f", ordered since {_anchor(arg['ordered_since'])}"
    return phrase


_PHRASES: dict[str, Callable[[Any], str]] = {
    "fact": _fact,
    "input": _input,
    "lab_known": lambda arg: f"a {arg} result on record",
    "lab_since": lambda arg: f"a new {arg['lab']} result since {_anchor(arg['since'])}",
    "lab_latest": _lab_latest,
    "lab_band": lambda arg: f"the latest {arg['lab']} in the {joined(arg['in'])} band",
    "labs_within_uln": lambda arg: f"{_labs(arg)} within the upper limit of normal",
    "recent_labs_within_uln": lambda arg: (
        f"{_labs(arg['labs'])} within the upper limit of normal on labs of the last "
        f"{duration(arg['within'])}"
    ),
    "lab_fall_from_baseline": _fall,
    "lab_response_in_window": _response_in_window,
    "lab_improving": lambda arg: f"{arg['lab']} improving since entering this state",
    "sustained_within_uln": lambda arg: (
        f"{_labs(arg['labs'])} within the upper limit of normal for at least "
        f"{duration(arg['for_at_least'])}"
    ),
    "elapsed": _elapsed,
    "event_since": _event_since,
    "on_drug": _on_drug,
    "state": lambda arg: f"in {joined(arg)}",
    "same_class_active": lambda arg: f"two drugs of one class ({_value(arg)}) active at once",
    "input_drug_active": lambda arg: (
        "the drug named is an active order" if arg else "the drug named is not an active order"
    ),
}
