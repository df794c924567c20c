"""The pathway definition: states, guards, transitions, blocks, alerts and milestones.

Built from the pathway data file; every element keeps its rule IDs so the engine can say why.
Parameters (`{param: name}`) are resolved once here, so conditions hold plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.domain.dosing import DoseRange, DrugDosing
from engine.domain.durations import Duration
from engine.domain.errors import UnknownCode

Condition = dict[str, Any]


@dataclass(frozen=True)
class Rule:
    id: str
    text: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class LabDefinition:
    code: str
    name: str
    loinc: str
    kind: str
    unit: str | None
    convertible: dict[str, float]
    uln: float | None
    bands: tuple[tuple[str, float | None], ...]
    values: tuple[str, ...]
    rules: tuple[str, ...]
    plausible: tuple[float, float] | None = None
    precision: int | None = None


@dataclass(frozen=True)
class StateDefinition:
    name: str
    text: str
    rules: tuple[str, ...]
    on_treatment: bool
    stops_treatment: bool
    final: bool
    sets: dict[str, Any]
    expected_dose: dict[str, Any] | None
    children: tuple[str, ...]


@dataclass(frozen=True)
class TransitionDefinition:
    index: int
    trigger: str
    sources: tuple[str, ...]
    dest: str
    guards: tuple[Condition, ...]
    rules: tuple[str, ...]
    sets: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockDefinition:
    id: str
    trigger: str
    when: Condition
    message: str
    rules: tuple[str, ...]
    overridable: bool = False
    applies_to_active_orders: bool = True
    active_order_message: str | None = None
    alternative: dict[str, Any] | None = None  # the order to suggest instead (drug, dose)


@dataclass(frozen=True)
class AlertDefinition:
    id: str
    severity: str
    when: Condition
    message: str
    rules: tuple[str, ...]
    trigger: str | None = None
    in_states: tuple[str, ...] = ()
    not_in_states: tuple[str, ...] = ()
    work_item: dict[str, Any] | None = None


@dataclass(frozen=True)
class MilestoneDefinition:
    id: str
    title: str
    kind: str
    scope: tuple[str, ...]
    anchor: str
    offset: Duration
    grace: Duration
    recipients: tuple[str, ...]
    rules: tuple[str, ...]
    urgent: bool = False
    repeat: bool = False
    review_on_due: bool = False
    completed_on_leave: bool = False
    when: Condition | None = None
    unless: Condition | None = None
    completed_by_labs: tuple[str, ...] = ()
    completed_by_orders: tuple[str, ...] = ()
    completed_by_events: tuple[str, ...] = ()
    completed_by_order: Condition | None = None
    opens_before_due: Duration | None = None


@dataclass(frozen=True)
class EventDefinition:
    kind: str
    rules: tuple[str, ...]
    fields: dict[str, dict[str, Any]]
    sets: dict[str, Any]
    sets_from_fields: tuple[str, ...]
    stops_orders_of: str | None = None  # a field naming the drug whose active orders stop


@dataclass
class Pathway:
    """One version of a care pathway, ready for the engine."""

    id: str
    version: str
    title: str
    review: dict[str, Any]
    sources: dict[str, dict[str, Any]]
    rules: dict[str, Rule]
    parameters: dict[str, Any]
    labs: dict[str, LabDefinition]
    drugs: dict[str, dict[str, Any]]
    drug_aliases: dict[str, str]
    regimens: dict[str, dict[str, Any]]
    facts: dict[str, dict[str, Any]]
    events: dict[str, EventDefinition]
    guards: dict[str, dict[str, Any]]
    states: dict[str, StateDefinition]
    initial: str
    transitions: list[TransitionDefinition]
    blocks: list[BlockDefinition]
    alerts: list[AlertDefinition]
    milestones: list[MilestoneDefinition]
    dosing: dict[str, DrugDosing] = field(default_factory=dict)
    alert_routing: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def key(self) -> str:
        """`aih@1.0.0`: how instances refer to this version."""
        return f"{self.id}@{self.version}"

    def explain(self, rule_ids: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
        """Rule ID, sentence and sources for each cited rule."""
        return [
            {"rule": r, "text": self.rules[r].text, "sources": list(self.rules[r].sources)}
            for r in rule_ids
        ]

    def sources_of(self, rule_ids: list[str] | tuple[str, ...]) -> list[str]:
        """The distinct sources behind some rules, in order."""
        seen: dict[str, None] = {}
        for rule_id in rule_ids:
            for source in self.rules[rule_id].sources:
                seen.setdefault(source)
        return list(seen)

    def lab(self, code: str) -> LabDefinition:
        """The lab by pathway code (ALT) or LOINC code (1742-6)."""
        wanted = code.strip().upper()
        found = next(
            (lab for lab in self.labs.values() if wanted in (lab.code.upper(), lab.loinc)), None
        )
        if found is None:
            raise UnknownCode(f"unknown lab code {code!r}; known: {', '.join(self.labs)}")
        return found

    def drug(self, name: str) -> str:
        """The canonical drug name for a name or alias."""
        canonical = self.drug_aliases.get(name.strip().lower().replace(" ", "_"))
        if canonical is None:
            raise UnknownCode(f"unknown drug {name!r}; known: {', '.join(self.drugs)}")
        return canonical

    def event(self, kind: str) -> EventDefinition:
        """The clinical event definition for a kind."""
        if kind not in self.events:
            raise UnknownCode(f"unknown clinical event {kind!r}; known: {', '.join(self.events)}")
        return self.events[kind]

    def overridable(self, item_id: str) -> BlockDefinition | DoseRange | None:
        """The block or dose range with this id when the data lets a clinician override it."""
        for block in self.blocks:
            if block.id == item_id:
                return block if block.overridable else None
        for dosing in self.dosing.values():
            for dose_range in dosing.ranges:
                if dose_range.id == item_id:
                    return dose_range if dose_range.overridable else None
        return None

    def is_within(self, state: str, scope: str) -> bool:
        """True when `state` is `scope` or one of its sub-states."""
        return state == scope or state.startswith(scope + ".")

    def in_any(self, state: str, scopes: tuple[str, ...] | list[str]) -> bool:
        return any(self.is_within(state, scope) for scope in scopes)

    def lineage(self, state: str) -> list[str]:
        """`taper.7_5mg` -> [`taper`, `taper.7_5mg`]."""
        parts = state.split(".")
        return [".".join(parts[: i + 1]) for i in range(len(parts))]

    def triggers(self) -> set[str]:
        return {t.trigger for t in self.transitions}

    def leaf_states(self) -> list[str]:
        return [name for name, s in self.states.items() if not s.children]


def resolve_parameters(node: Any, parameters: dict[str, Any]) -> Any:
    """Replace every `{param: name}` in a condition tree by the parameter's value."""
    if isinstance(node, dict):
        if set(node) == {"param"}:
            name = node["param"]
            if name not in parameters:
                raise UnknownCode(f"condition refers to unknown parameter {name!r}")
            return parameters[name]
        return {k: resolve_parameters(v, parameters) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_parameters(v, parameters) for v in node]
    return node
