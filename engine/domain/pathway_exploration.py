"""Bounded exploration of a pathway: what happens to representative patients under every input.

Starting from the enrolment of each representative patient, the explorer gives every
representative input (`pathway_inputs`) to every situation it has not seen before, through the
real `CarePathway`. Situations are told apart by an abstraction of the patient: pathway state,
open milestones (and whether each is due), open alerts, facts, active drugs, and the truth of
every condition the pathway can ask (labs against the ULN, TPMT band, elapsed time since the
anchors, events...), so elapsed time is bucketed exactly where the pathway's own durations fall.
The search is deterministic: breadth-first within each pathway state, states taken in turn
(the state expanded least so far goes next), so a budget spreads over the whole pathway instead
of being spent on combinations of screening labs. It stops at a depth and a number of input
sequences. Along the way it records what the verifier judges: states reached and left, alerts
raised, orders active while a hard block's condition holds, and same-day input pairs whose
order changes the outcome.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.domain.care import CarePathway, Outcome
from engine.domain.conditions import Situation, holds
from engine.domain.errors import DomainError
from engine.domain.model import Patient
from engine.domain.pathway import BlockDefinition, MilestoneDefinition, Pathway
from engine.domain.pathway_inputs import (
    START,
    ClinicalInput,
    primitive_conditions,
    representative_inputs,
    representative_patients,
)

ORDER_TRIGGER = "medication_ordered"
UNCHANGING_RECORDS = ("labs", "clinical_events")


@dataclass(frozen=True)
class ExplorationBounds:
    """How far the explorer goes: inputs per sequence, sequences in all, order checks."""

    depth: int = 16
    max_sequences: int = 12_000
    order_checks_per_phase: int = 24


@dataclass(eq=False)
class ExploredSituation:
    """A patient the explorer reached, and the inputs that led there."""

    patient: Patient | None
    now: datetime
    depth: int
    profile: str
    parent: ExploredSituation | None = None
    via: ClinicalInput | None = None

    def sequence(self, *more: ClinicalInput) -> list[str]:
        """The input sequence that shows this situation, in clinic words, day by day."""
        steps: list[str] = []
        node: ExploredSituation | None = self
        while node is not None and node.via is not None:
            steps.append(f"day {(node.now - START).days}: {node.via.label}")
            node = node.parent
        steps.append(f"{self.profile} enrolled (day 0)")
        steps.reverse()
        day = (self.now - START).days
        return steps + [f"day {day}: {extra.label}" for extra in more]


@dataclass(frozen=True)
class Breach:
    """An active order (or a state entered) while a hard block's condition holds."""

    block: BlockDefinition
    what: str
    witness: ExploredSituation


@dataclass(frozen=True)
class OrderDependence:
    """Two same-day inputs whose order changes state, open alerts or open milestones."""

    state: str
    first: ClinicalInput
    second: ClinicalInput
    one_way: tuple[str, tuple[str, ...], tuple[str, ...]]
    other_way: tuple[str, tuple[str, ...], tuple[str, ...]]
    witness: ExploredSituation


@dataclass
class Exploration:
    """What the explorer saw."""

    sequences: int = 0
    situations: int = 0
    order_checks: int = 0
    reached: dict[str, ExploredSituation] = field(default_factory=dict)
    expanded: set[str] = field(default_factory=set)
    exits: dict[str, dict[str, ExploredSituation]] = field(default_factory=dict)
    monitored: dict[str, bool] = field(default_factory=dict)
    alerts_raised: dict[str, ExploredSituation] = field(default_factory=dict)
    breaches: dict[str, Breach] = field(default_factory=dict)
    order_dependences: dict[tuple[str, str, str], OrderDependence] = field(default_factory=dict)
    engine_errors: dict[tuple[str, str], tuple[ExploredSituation, str]] = field(
        default_factory=dict
    )


def is_monitoring(milestone: MilestoneDefinition) -> bool:
    """A milestone that keeps monitoring labs coming: a repeating, unconditional lab check."""
    return milestone.kind == "lab" and milestone.repeat and milestone.when is None


class PathwayExplorer:
    """Explores one pathway version within some bounds (deterministic)."""

    def __init__(self, pathway: Pathway, bounds: ExplorationBounds | None = None):
        self.pathway = pathway
        self.bounds = bounds or ExplorationBounds()
        self.care = CarePathway(pathway)
        self.inputs = representative_inputs(pathway)
        every_atom = primitive_conditions(pathway)
        self.atoms = [every_atom[i] for i in deciding_atoms(pathway, every_atom)]
        self.exit_atoms = {
            state: exit_atoms(pathway, state, self.atoms) for state in pathway.leaf_states()
        }
        self.phase_atoms = [i for i, a in enumerate(self.atoms) if "elapsed" in a]
        self.monitoring = {m.id for m in pathway.milestones if is_monitoring(m)}
        self.entered_by = {
            b.id: {t.dest for t in pathway.transitions if t.trigger == b.trigger}
            for b in pathway.blocks
            if b.trigger != ORDER_TRIGGER
        }
        self.result = Exploration()
        self._seen: set[tuple[Any, ...]] = set()
        self._cores: set[tuple[Any, ...]] = set()
        self._buckets: dict[str, tuple[deque[ExploredSituation], deque[ExploredSituation]]] = {}
        self._expansions: dict[str, int] = {}
        self._checked_pairs: set[tuple[Any, ...]] = set()
        self._phase_checks: dict[tuple[Any, ...], int] = {}

    # ---- the search ---------------------------------------------------------------------

    def explore(self) -> Exploration:
        """Run the bounded search and return what it saw."""
        for profile in representative_patients(self.pathway):
            patient = profile.enrol(self.care)
            self._arrive(ExploredSituation(patient, START, 0, profile.name))
        while self.result.sequences < self.bounds.max_sequences:
            node = self._next()
            if node is None:
                break
            self._expand(node)
        return self.result

    def _next(self) -> ExploredSituation | None:
        waiting = [s for s, (fresh, rest) in self._buckets.items() if fresh or rest]
        if not waiting:
            return None
        state = min(waiting, key=lambda s: self._expansions[s])  # first discovered wins ties
        self._expansions[state] += 1
        fresh, rest = self._buckets[state]
        return fresh.popleft() if fresh else rest.popleft()

    def _arrive(self, node: ExploredSituation, key: tuple[Any, ...] | None = None) -> None:
        """Record a situation reached; queue it if it is new (first if it decides differently)."""
        assert node.patient is not None
        patient = node.patient
        self.result.reached.setdefault(patient.state, node)
        open_ids = {m.milestone_id for m in patient.open_milestones()}
        self.result.monitored[patient.state] = self.result.monitored.get(
            patient.state, False
        ) or bool(open_ids & self.monitoring)
        self._check_order_blocks(node)
        key = key or self._picture(patient, node.now)
        if key in self._seen:
            return
        self._seen.add(key)
        self.result.situations += 1
        self._expansions.setdefault(patient.state, 0)
        fresh, rest = self._buckets.setdefault(patient.state, (deque(), deque()))
        core = self._core(key)
        (rest if core in self._cores else fresh).append(node)
        self._cores.add(core)

    def _expand(self, node: ExploredSituation) -> None:
        assert node.patient is not None
        if node.depth >= self.bounds.depth:
            node.patient = None
            return
        self.result.expanded.add(node.patient.state)
        before = self._picture(node.patient, node.now)
        accepted: list[tuple[ClinicalInput, bool]] = []
        for given in self.inputs:
            if self.result.sequences >= self.bounds.max_sequences:
                break
            self.result.sequences += 1
            applied = self._give(node, given)
            if applied is None:
                continue
            child, outcome = applied
            self._observe(node, child, given, outcome)
            assert child.patient is not None
            key = self._picture(child.patient, child.now)
            effective = bool(
                outcome.changed_state
                or outcome.alerts_raised
                or outcome.alerts_resolved
                or outcome.milestones_scheduled
                or outcome.milestones_closed
                or key != before
            )
            if given.same_day:
                accepted.append((given, effective))
            self._arrive(child, key)
        self._check_orders_of_inputs(node, accepted)
        node.patient = None  # its children hold what is needed from here on

    def _give(
        self, node: ExploredSituation, given: ClinicalInput
    ) -> tuple[ExploredSituation, Outcome] | None:
        """Give one input to a copy of the situation's patient; None when it is refused."""
        assert node.patient is not None
        patient = branch(node.patient)
        try:
            outcome, now = given.apply(self.care, patient, node.now)
        except DomainError:
            return None
        except Exception as failure:  # an engine defect: reported, never fatal to the search
            key = (type(failure).__name__, given.family)
            self.result.engine_errors.setdefault(key, (node, f"{given.label}: {failure!r}"))
            return None
        patient.__dict__.pop("_audit", None)
        child = ExploredSituation(patient, now, node.depth + 1, node.profile, node, given)
        return child, outcome

    def _observe(
        self,
        node: ExploredSituation,
        child: ExploredSituation,
        given: ClinicalInput,
        outcome: Outcome,
    ) -> None:
        assert node.patient is not None and child.patient is not None
        before, after = node.patient.state, child.patient.state
        if after != before:
            self.result.exits.setdefault(before, {}).setdefault(after, child)
            self._check_entry_blocks(node, child)
        for alert_id in outcome.alerts_raised:
            self.result.alerts_raised.setdefault(alert_id, child)

    # ---- the abstraction ----------------------------------------------------------------

    def _picture(self, patient: Patient, now: datetime) -> tuple[Any, ...]:
        """What the pathway can tell about a patient now; equal pictures are one situation."""
        situation = Situation(patient, self.pathway, self.care.limits, now)
        return (
            patient.state,
            frozenset((m.milestone_id, m.due_at <= now) for m in patient.open_milestones()),
            frozenset(a.alert_id for a in patient.open_alerts()),
            tuple(sorted((k, repr(v)) for k, v in patient.facts.items())),
            frozenset(o.drug for o in patient.active_orders()),
            tuple(_truth(atom, situation) for atom in self.atoms),
        )

    def _core(self, picture: tuple[Any, ...]) -> tuple[Any, ...]:
        """The part of a picture that decides how the patient can leave the state."""
        state, truths = picture[0], picture[-1]
        return (state, tuple(truths[i] for i in self.exit_atoms.get(state, ())))

    # ---- hard blocks --------------------------------------------------------------------

    def _check_order_blocks(self, node: ExploredSituation) -> None:
        """An active order that a medication block would refuse now is a bypassed block."""
        assert node.patient is not None
        patient = node.patient
        for order in patient.active_orders():
            details = {k: v for k, v in vars(order).items() if _plain(v)}
            situation = Situation(
                patient, self.pathway, self.care.limits, node.now, ORDER_TRIGGER, details
            )
            for block in self.pathway.blocks:
                if block.trigger != ORDER_TRIGGER or block.id in self.result.breaches:
                    continue
                if block.id in getattr(order, "overrides", ()):
                    continue  # lifted for this order by a clinician's audited reason
                if _truth(block.when, situation):
                    what = f"{order.drug.replace('_', ' ')} is active while: {block.message}"
                    self.result.breaches[block.id] = Breach(block, what, node)

    def _check_entry_blocks(self, node: ExploredSituation, child: ExploredSituation) -> None:
        """Entering what a blocked event leads to while the block's condition held."""
        assert node.patient is not None and child.patient is not None
        for block in self.pathway.blocks:
            destinations = self.entered_by.get(block.id, set())
            if block.id in self.result.breaches or child.patient.state not in destinations:
                continue
            situation = Situation(
                node.patient, self.pathway, self.care.limits, child.now, block.trigger, {}
            )
            if _truth(block.when, situation):
                what = f"the patient reached {child.patient.state} while: {block.message}"
                self.result.breaches[block.id] = Breach(block, what, child)

    # ---- same-day order -----------------------------------------------------------------

    def _check_orders_of_inputs(
        self, node: ExploredSituation, accepted: list[tuple[ClinicalInput, bool]]
    ) -> None:
        """Give pairs of same-day inputs in both orders; record pairs whose order matters."""
        assert node.patient is not None
        state = node.patient.state
        situation = Situation(node.patient, self.pathway, self.care.limits, node.now)
        phase = (state, tuple(_truth(self.atoms[i], situation) for i in self.phase_atoms))
        pairs = [
            (a, b)
            for i, (a, a_effective) in enumerate(accepted)
            for b, b_effective in accepted[i + 1 :]
            if a.family != b.family and (a_effective or b_effective)
        ]
        pairs.sort(key=lambda pair: _pair_rank(*pair))
        for first, second in pairs:
            if self._phase_checks.get(phase, 0) >= self.bounds.order_checks_per_phase:
                return
            key = (phase, first.label, second.label)
            if key in self._checked_pairs:
                continue
            self._checked_pairs.add(key)
            self._phase_checks[phase] = self._phase_checks.get(phase, 0) + 1
            self.result.order_checks += 1
            one_way = self._both(node, first, second)
            other_way = self._both(node, second, first)
            if one_way is None or other_way is None or one_way == other_way:
                continue
            families = tuple(sorted((first.family, second.family)))
            self.result.order_dependences.setdefault(
                (state, *families),
                OrderDependence(state, first, second, one_way, other_way, node),
            )

    def _both(
        self, node: ExploredSituation, first: ClinicalInput, second: ClinicalInput
    ) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
        assert node.patient is not None
        patient = branch(node.patient)
        try:
            first.apply(self.care, patient, node.now)
            second.apply(self.care, patient, node.now)
        except Exception:  # a refusal in either order: not comparable
            return None
        return (
            patient.state,
            tuple(sorted(a.alert_id for a in patient.open_alerts())),
            tuple(sorted(m.milestone_id for m in patient.open_milestones())),
        )


def exit_atoms(pathway: Pathway, state: str, atoms: list[dict[str, Any]]) -> list[int]:
    """Which primitive conditions the transitions leaving a state or the blocks read."""
    conditions: list[Any] = [b.when for b in pathway.blocks]
    for t in pathway.transitions:
        if pathway.in_any(state, t.sources):
            conditions += list(t.guards)
    text = repr(_expanded(pathway, conditions))
    return [i for i, atom in enumerate(atoms) if repr(atom) in text]


def deciding_atoms(pathway: Pathway, atoms: list[dict[str, Any]]) -> list[int]:
    """Which primitive conditions transitions, blocks or dose ranges read (by position)."""
    conditions: list[Any] = [b.when for b in pathway.blocks]
    for t in pathway.transitions:
        conditions += [pathway.guards[g["guard"]]["when"] if "guard" in g else g for g in t.guards]
    for dosing in getattr(pathway, "dosing", {}).values():
        conditions += [r.when for r in dosing.ranges if r.when]
    text = repr(_expanded(pathway, conditions))
    return [i for i, atom in enumerate(atoms) if repr(atom) in text]


def _expanded(pathway: Pathway, node: Any) -> Any:
    """A condition with its named guards written out."""
    if isinstance(node, dict):
        if isinstance(node.get("guard"), str) and node["guard"] in pathway.guards:
            return _expanded(pathway, pathway.guards[node["guard"]]["when"])
        return {k: _expanded(pathway, v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_expanded(pathway, v) for v in node]
    return node


def branch(patient: Patient) -> Patient:
    """A copy of the patient that the next input can change without touching the original.

    Records are copied one by one (their lists and dicts too); values such as datetimes are
    shared, and so are lab results and clinical events, which are never changed once
    recorded. Several times faster than `copy.deepcopy` on a typical chart.
    """
    twin = copy.copy(patient)
    twin.__dict__ = {
        k: list(v) if k in UNCHANGING_RECORDS else _copied(v)
        for k, v in patient.__dict__.items()
        if k != "_audit"
    }
    return twin


def _copied(value: Any) -> Any:
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, set):
        return set(value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        twin = copy.copy(value)
        twin.__dict__.update(
            {k: _copied(v) for k, v in vars(value).items() if isinstance(v, list | dict | set)}
        )
        return twin
    return value


def _truth(condition: dict[str, Any], situation: Situation) -> bool | None:
    try:
        return holds(condition, situation)
    except (KeyError, TypeError, ValueError):
        return None


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None))


_PAIR_RANK = {"lab": 0, "order": 1, "event": 2}


def _pair_rank(a: ClinicalInput, b: ClinicalInput) -> tuple[int, int]:
    """Pairs of different kinds first (a lab beside an order is the classic case)."""
    return (int(a.kind == b.kind), _PAIR_RANK.get(a.kind, 3) + _PAIR_RANK.get(b.kind, 3))
