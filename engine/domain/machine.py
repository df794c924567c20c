"""One `transitions` machine per pathway version, shared by every patient.

The machine is built with `model=None`: patients are never attached to it. A trigger runs
through `trigger_event(patient, name, situation=...)`, which reads and writes `patient.state`
only. Guards are closures over the pathway's condition data; the transition that fired is
reported back through the situation, so the caller can cite its rule IDs.
"""

from __future__ import annotations

from typing import Any

from transitions.core import MachineError
from transitions.extensions.nesting import HierarchicalMachine, NestedState

from engine.domain.conditions import Situation, holds
from engine.domain.pathway import Pathway, TransitionDefinition


class PathwayState(NestedState):
    """Sub-states written `taper.7_5mg`, as in the pathway data."""

    separator = "."


class _Machine(HierarchicalMachine):
    state_cls = PathwayState


class PathwayMachine:
    """The state machine of one pathway version."""

    def __init__(self, pathway: Pathway):
        self.pathway = pathway
        self._machine = _Machine(
            model=None,
            states=_state_tree(pathway.raw["states"]),
            initial=pathway.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )
        for t in pathway.transitions:
            self._machine.add_transition(
                trigger=t.trigger,
                source=list(t.sources),
                dest=t.dest,
                conditions=[_guard(g) for g in t.guards],
                after=[_report(t)],
            )
        self._allowed = {
            trigger: tuple(
                s for t in pathway.transitions if t.trigger == trigger for s in t.sources
            )
            for trigger in pathway.triggers()
        }

    def allows(self, state: str, trigger: str) -> bool:
        """True when some transition for `trigger` leaves `state` (guards aside)."""
        return self.pathway.in_any(state, self._allowed.get(trigger, ()))

    def fire(self, model: Any, trigger: str, situation: Situation) -> TransitionDefinition | None:
        """Run `trigger` for one model; the transition that fired, or None."""
        if not self.allows(model.state, trigger):
            return None
        situation.__dict__.pop("fired", None)
        try:
            self._machine.trigger_event(model, trigger, situation=situation)
        except MachineError:
            return None
        return situation.__dict__.pop("fired", None)


def _state_tree(states: dict[str, Any]) -> list[Any]:
    tree: list[Any] = []
    for name, spec in states.items():
        children = spec.get("children")
        tree.append({"name": name, "children": _state_tree(children)} if children else name)
    return tree


def _guard(condition: dict[str, Any]):
    def guard(event_data) -> bool:
        return holds(condition, event_data.kwargs["situation"])

    return guard


def _report(transition: TransitionDefinition):
    def report(event_data) -> None:
        event_data.kwargs["situation"].__dict__["fired"] = transition

    return report
