"""Patient facts (cirrhosis, pregnancy, MELD...) checked against the pathway's fact list."""

from __future__ import annotations

from typing import Any

from engine.domain.errors import InvalidInput
from engine.domain.pathway import Pathway


def checked_facts(pathway: Pathway, facts: dict[str, Any] | None) -> dict[str, Any]:
    """The facts if every name is known and every value has the right type and range."""
    clean: dict[str, Any] = {}
    for name, value in (facts or {}).items():
        spec = pathway.facts.get(name)
        if spec is None:
            raise InvalidInput(f"unknown patient fact {name!r}; known: {', '.join(pathway.facts)}")
        if value is None:
            continue
        if spec.get("at_enrolment") is False:
            raise InvalidInput(f"fact {name} is set by the pathway itself, not at enrolment")
        if ("set_by_results" in spec or "set_when" in spec) and value is not True:
            raise InvalidInput(
                f"fact {name} is sticky: it can be given as true at enrolment; only a dated "
                "event with a reason clears it"
            )
        if spec["type"] == "boolean":
            if not isinstance(value, bool):
                raise InvalidInput(f"fact {name} must be true or false")
        elif spec["type"] == "choice":
            if value not in spec.get("values", []):
                raise InvalidInput(f"fact {name} must be one of {', '.join(spec['values'])}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise InvalidInput(f"fact {name} must be a number")
        elif not spec.get("min", float("-inf")) <= value <= spec.get("max", float("inf")):
            raise InvalidInput(
                f"fact {name} must be between {spec.get('min')} and {spec.get('max')}"
            )
        clean[name] = value
    return clean
