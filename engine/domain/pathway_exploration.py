"""Bounded exploration of a pathway: what happens to representative patients under every input.

Starting from the enrolment of each representative patient, the explorer gives every
representative input (`pathway_inputs`) to every situation it has not seen before, through the
real `CarePathway` (each input on a copy of the patient). Situations are told apart by an
abstraction of the patient: pathway state, open milestones (and whether each is due), open
alerts, facts, active drugs with their doses, and the truth of every condition a transition,
block or dose range can ask (labs against the ULN, TPMT, elapsed time since the anchors,
events...), so elapsed time is bucketed exactly where the pathway's own durations fall. A
condition that asks the same of several labs (`labs_within_uln`, `recent_labs_within_uln`,
`sustained_within_uln`: any primitive whose argument lists lab codes) is also asked of each lab
alone, so that a patient with one of the two results is told apart from one with neither.

The search is deterministic and shares its budget: the state expanded least so far goes next,
a state whose every exit has already fired counting its expansions `SETTLED_WEIGHT` times over;
within a state, the situation closest to a transition not yet seen to fire goes first (the
larger share of that transition's parts already holds: its guard's parts, one per lab for the
conditions above, and for each hard block that could refuse its input, that the block does not
apply), then one that decides the state's exits differently from any seen before, then the
earliest found. It stops at a depth and a number of input sequences. Along the way it records
what the verifier judges: states reached and left, alerts raised (and whether they opened work
for a person), active orders that a hard block's condition or rule forbids, and same-day input
pairs whose order changes the outcome.
"""

from __future__ import annotations

import copy
import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.domain.care import CarePathway, Outcome
from engine.domain.conditions import Situation, holds
from engine.domain.errors import DomainError
from engine.domain.model import Alert, Patient
from engine.domain.pathway import (
    BlockDefinition,
    MilestoneDefinition,
    Pathway,
    TransitionDefinition,
)
from engine.domain.pathway_inputs import (
    START,
    ClinicalInput,
    primitive_conditions,
    representative_inputs,
    representative_patients,
)

ORDER_TRIGGER = "medication_ordered"
UNCHANGING_RECORDS = ("labs", "clinical_events")
CRITICAL_SEVERITIES = ("critical", "urgent")
SETTLED_WEIGHT = 3  # a state whose every exit has fired is expanded a third as often
Ending = tuple[str, tuple[str, ...], tuple[str, ...]]  # state, open alerts, open milestones


@dataclass(frozen=True)
class ExplorationBounds:
    """How far the explorer goes: inputs per sequence, sequences in all, order checks."""

    depth: int = 20
    max_sequences: int = 20_000
    order_checks_per_phase: int = 40


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
    one_way: Ending
    other_way: Ending
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
    unrouted_alerts: dict[str, tuple[ExploredSituation, Alert]] = field(default_factory=dict)
    breaches: dict[str, Breach] = field(default_factory=dict)
    order_dependences: dict[str, list[OrderDependence]] = field(default_factory=dict)
    fired: set[int] = field(default_factory=set)
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
        self._moves: list[tuple[str, TransitionDefinition]] = []
        self._record_moves(self.care)
        self.inputs = representative_inputs(pathway)
        every_atom = primitive_conditions(pathway)
        deciding = [every_atom[i] for i in deciding_atoms(pathway, every_atom)]
        self.atoms, parents = refined_atoms(pathway, deciding)
        self.exit_atoms = {
            state: [i for i in range(len(self.atoms)) if parents[i] in whole]
            for state in pathway.leaf_states()
            for whole in [set(exit_atoms(pathway, state, deciding))]
        }
        self.exit_parts = {state: exit_parts(pathway, state) for state in pathway.leaf_states()}
        self.phase_atoms = [i for i, a in enumerate(self.atoms) if "elapsed" in a]
        self.monitoring = {m.id for m in pathway.milestones if is_monitoring(m)}
        self.rule_invariants = rule_invariants(pathway)
        self.entered_by = {
            b.id: {t.dest for t in pathway.transitions if t.trigger == b.trigger}
            for b in pathway.blocks
            if b.trigger != ORDER_TRIGGER
        }
        self.result = Exploration()
        self._seen: set[tuple[Any, ...]] = set()
        self._cores: set[tuple[Any, ...]] = set()
        self._buckets: dict[str, list[tuple[float, int, int, ExploredSituation]]] = {}
        self._fired: set[tuple[str, int]] = set()
        self._expansions: dict[str, int] = {}
        self._checked_pairs: set[tuple[Any, ...]] = set()
        self._phase_checks: dict[tuple[Any, ...], int] = {}
        self._dependent_families: set[tuple[str, ...]] = set()

    def _record_moves(self, care: CarePathway) -> None:
        """Note every transition the machine fires (an input may move the patient more than
        once: the data rules are judged again after a move), with the state it left."""
        machine, fire = care.machine, care.machine.fire

        def recorded(model: Any, trigger: str, situation: Situation) -> Any:
            source = model.state
            fired = fire(model, trigger, situation)
            if fired is not None:
                self._moves.append((source, fired))
            return fired

        machine.fire = recorded  # type: ignore[method-assign]

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
        waiting = [s for s, queue in self._buckets.items() if queue]
        if not waiting:
            return None
        state = min(waiting, key=self._share)  # first discovered wins ties
        self._expansions[state] += 1
        queue = self._buckets[state]
        while True:  # priorities go stale as transitions fire: refresh the head until it holds
            progress, *rest, node = heapq.heappop(queue)
            now = -self._progress(node)
            if now == progress or not queue:
                return node
            heapq.heappush(queue, (now, *rest, node))

    def _share(self, state: str) -> int:
        """How much of the budget a state has had: its expansions, counted SETTLED_WEIGHT
        times over once every transition out of it has been seen to fire (or it has none),
        so that states with a way out not yet found are expanded more often."""
        settled = all((state, index) in self._fired for index, _ in self.exit_parts[state])
        return self._expansions[state] * (SETTLED_WEIGHT if settled else 1)

    def _arrive(self, node: ExploredSituation, key: tuple[Any, ...] | None = None) -> None:
        """Record a situation reached; queue it if it is new.

        Within its state, a situation waits behind those closer to a transition not yet seen
        to fire (more of its guard's parts hold), then behind those that decide the state's
        exits differently from any seen before, then behind those that came earlier.
        """
        assert node.patient is not None
        patient = node.patient
        self.result.reached.setdefault(patient.state, node)
        open_ids = {m.milestone_id for m in patient.open_milestones()}
        self.result.monitored[patient.state] = self.result.monitored.get(
            patient.state, False
        ) or bool(open_ids & self.monitoring)
        self._check_order_blocks(node)
        self._check_rule_invariants(node)
        key = key or self._picture(patient, node.now)
        if key in self._seen:
            return
        self._seen.add(key)
        self.result.situations += 1
        self._expansions.setdefault(patient.state, 0)
        core = self._core(key)
        rank = (-self._progress(node), int(core in self._cores), self.result.situations)
        self._cores.add(core)
        heapq.heappush(self._buckets.setdefault(patient.state, []), (*rank, node))

    def _expand(self, node: ExploredSituation) -> None:
        assert node.patient is not None
        if node.depth >= self.bounds.depth:
            node.patient = None
            return
        self.result.expanded.add(node.patient.state)
        before = self._picture(node.patient, node.now)
        accepted: list[tuple[ClinicalInput, int]] = []
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
            effect = (
                2
                if outcome.changed_state
                else int(
                    bool(
                        outcome.alerts_raised
                        or outcome.alerts_resolved
                        or outcome.milestones_scheduled
                        or outcome.milestones_closed
                        or key != before
                    )
                )
            )
            if given.same_day:
                accepted.append((given, effect))
            self._arrive(child, key)
        self._check_orders_of_inputs(node, accepted)
        node.patient = None  # its children hold what is needed from here on

    def _give(
        self, node: ExploredSituation, given: ClinicalInput
    ) -> tuple[ExploredSituation, Outcome] | None:
        """Give one input to a copy of the situation's patient; None when it is refused."""
        assert node.patient is not None
        patient = branch(node.patient)
        self._moves.clear()
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
        for source, move in self._moves:
            self._fired.add((source, move.index))
            self.result.fired.add(move.index)
            if source != before:
                self.result.exits.setdefault(source, {}).setdefault(move.dest, child)
        if after != before:
            self.result.exits.setdefault(before, {}).setdefault(after, child)
            self._check_entry_blocks(node, child)
        for alert_id in outcome.alerts_raised:
            self.result.alerts_raised.setdefault(alert_id, child)
            alert = next((a for a in child.patient.open_alerts() if a.alert_id == alert_id), None)
            if (
                alert is not None
                and alert.severity in CRITICAL_SEVERITIES
                and not _work_item_for(child, alert)
            ):
                self.result.unrouted_alerts.setdefault(alert_id, (child, alert))

    # ---- the abstraction ----------------------------------------------------------------

    def _picture(self, patient: Patient, now: datetime) -> tuple[Any, ...]:
        """What the pathway can tell about a patient now; equal pictures are one situation."""
        situation = Situation(patient, self.pathway, self.care.limits, now)
        return (
            patient.state,
            frozenset((m.milestone_id, m.due_at <= now) for m in patient.open_milestones()),
            frozenset(a.alert_id for a in patient.open_alerts()),
            tuple(sorted((k, repr(v)) for k, v in patient.facts.items())),
            frozenset((o.drug, o.mg_per_day, o.route) for o in patient.active_orders()),
            tuple(_truth(atom, situation) for atom in self.atoms),
        )

    def _progress(self, node: ExploredSituation) -> float:
        """How close the situation is to a transition out of its state not yet seen to fire."""
        assert node.patient is not None
        state = node.patient.state
        situation = Situation(node.patient, self.pathway, self.care.limits, node.now)
        best = 0.0
        for index, parts in self.exit_parts.get(state, ()):
            if not parts or (state, index) in self._fired:
                continue  # a transition only the input decides fires on the first expansion
            held = sum(bool(_truth(part, situation)) for part in parts)
            best = max(best, held / len(parts))
        return best

    def _core(self, picture: tuple[Any, ...]) -> tuple[Any, ...]:
        """The part of a picture that decides how the patient can leave the state (the
        conditions its transitions and the blocks read, and the active doses)."""
        state, drugs, truths = picture[0], picture[-2], picture[-1]
        return (state, drugs, tuple(truths[i] for i in self.exit_atoms.get(state, ())))

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
                if not block.applies_to_active_orders:
                    continue  # a block about starting a drug, not about holding it
                if block.id in getattr(order, "overrides", ()):
                    continue  # lifted for this order by a clinician's audited reason
                if _truth(block.when, situation) and not _flagged(patient, block):
                    what = f"{order.drug.replace('_', ' ')} is active while: {block.message}"
                    self.result.breaches[block.id] = Breach(block, what, node)

    def _check_rule_invariants(self, node: ExploredSituation) -> None:
        """A drug and a recorded fact that cite the same block's rule never meet (budesonide
        and cirrhosis both cite SAFE-BUD-CIRRHOSIS), whatever the block's condition says."""
        assert node.patient is not None
        patient = node.patient
        for block, rule, drugs, facts in self.rule_invariants:
            if block.id in self.result.breaches:
                continue
            present = [f for f in facts if patient.facts.get(f) is True]
            orders = [o for o in patient.active_orders() if o.drug in drugs]
            order = next((o for o in orders if block.id not in getattr(o, "overrides", ())), None)
            if order is None or not present or _flagged(patient, block):
                continue
            what = (
                f"{order.drug.replace('_', ' ')} is active while {present[0].replace('_', ' ')} "
                f"is recorded, which {rule} forbids ({block.message})"
            )
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
        self, node: ExploredSituation, accepted: list[tuple[ClinicalInput, int]]
    ) -> None:
        """Give pairs of same-day inputs in both orders; record pairs whose order matters.

        Pairs where one input moves the patient come first, then pairs where one changes
        alerts, milestones or the picture; each pair once per state and elapsed-time phase.
        """
        assert node.patient is not None
        state = node.patient.state
        situation = Situation(node.patient, self.pathway, self.care.limits, node.now)
        phase = (state, tuple(_truth(self.atoms[i], situation) for i in self.phase_atoms))
        pairs = [
            (max(a_effect, b_effect), a, b)
            for i, (a, a_effect) in enumerate(accepted)
            for b, b_effect in accepted[i + 1 :]
            if a.family != b.family and (a_effect or b_effect)
        ]
        pairs.sort(key=lambda pair: (-pair[0], *_pair_rank(pair[1], pair[2])))
        for _, first, second in pairs:
            if self._phase_checks.get(phase, 0) >= self.bounds.order_checks_per_phase:
                return
            families = tuple(sorted((first.family, second.family)))
            key = (phase, first.label, second.label)
            if key in self._checked_pairs or (state, *families) in self._dependent_families:
                continue
            self._checked_pairs.add(key)
            self._phase_checks[phase] = self._phase_checks.get(phase, 0) + 1
            self.result.order_checks += 1
            one_way = self._both(node, first, second)
            other_way = self._both(node, second, first)
            if one_way is None or other_way is None or one_way == other_way:
                continue
            self._dependent_families.add((state, *families))
            found = self.result.order_dependences.setdefault(_divergence(one_way, other_way), [])
            if state not in {f.state for f in found}:
                found.append(OrderDependence(state, first, second, one_way, other_way, node))

    def _both(
        self, node: ExploredSituation, first: ClinicalInput, second: ClinicalInput
    ) -> Ending | None:
        assert node.patient is not None
        patient = branch(node.patient)
        try:
            first.apply(self.care, patient, node.now)
            second.apply(self.care, patient, node.now)
        except DomainError:  # a refusal in either order: not comparable
            return None
        except Exception as failure:  # an engine defect: reported with the pair that shows it
            key = (type(failure).__name__, f"{first.family} then {second.family}")
            detail = f"{first.label} then {second.label}: {failure!r}"
            self.result.engine_errors.setdefault(key, (node, detail))
            return None
        return (
            patient.state,
            tuple(sorted(a.alert_id for a in patient.open_alerts())),
            tuple(sorted(m.milestone_id for m in patient.open_milestones())),
        )


def _negated_facts(condition: Any, negated: bool = False) -> set[str]:
    """Facts a condition reads under a `not` (budesonide refused *without* high steroid risk)."""
    found: set[str] = set()
    if isinstance(condition, dict):
        for key, value in condition.items():
            if key == "fact" and negated and isinstance(value, dict):
                found.add(value.get("name", ""))
            else:
                found |= _negated_facts(value, negated or key == "not")
    elif isinstance(condition, list):
        for item in condition:
            found |= _negated_facts(item, negated)
    return found


def rule_invariants(
    pathway: Pathway,
) -> list[tuple[BlockDefinition, str, set[str], list[str]]]:
    """For each medication block and each of its rules: the drugs and the yes/no facts that
    cite that rule (facts some block or alert reads). They must never meet in a patient."""
    read = repr(
        _expanded(pathway, [b.when for b in pathway.blocks] + [a.when for a in pathway.alerts])
    )
    found = []
    for block in pathway.blocks:
        if block.trigger != ORDER_TRIGGER:
            continue
        for rule in block.rules:
            drugs = {d for d, spec in pathway.drugs.items() if rule in spec.get("rules", [])}
            facts = [
                name
                for name, spec in pathway.facts.items()
                if rule in spec.get("rules", [])
                and spec.get("type") == "boolean"
                and f"'name': '{name}'" in read
                and name not in _negated_facts(block.when)  # the block asks for it to be absent
            ]
            if not drugs or not facts:
                continue
            same = next(
                (i for i, item in enumerate(found) if item[1:] == (rule, drugs, facts)), None
            )
            if same is None:
                found.append((block, rule, drugs, facts))
            elif not _reads_fact(found[same][0], facts) and _reads_fact(block, facts):
                found[same] = (block, rule, drugs, facts)  # the block that reads the fact
    return found


def _reads_fact(block: BlockDefinition, facts: list[str]) -> bool:
    return any(f"'name': '{name}'" in repr(block.when) for name in facts)


def exit_parts(pathway: Pathway, state: str) -> list[tuple[int, list[dict[str, Any]]]]:
    """For each transition leaving a state: the parts of its guards an input cannot choose,
    and for each hard block that could refuse the transition's input, that the block's own
    parts do not all hold (azathioprine to second line needs TPMT known).

    Negated guard parts are left out: an absence (no complete response yet) holds by default
    and says nothing about how close the patient is to the transition.
    """
    found = []
    for t in pathway.transitions:
        if t.dest == state or not pathway.in_any(state, t.sources):
            continue
        parts = [p for g in t.guards for p in _conjuncts(pathway, _expanded(pathway, g))]
        chosen = [p for p in parts if "'input'" in repr(p)]
        kept = [p for p in parts if "not" not in p and "'input'" not in repr(p)]
        for block in pathway.blocks:
            if block.trigger != t.trigger:
                continue
            block_parts = _conjuncts(pathway, _expanded(pathway, block.when))
            if not _may_meet(chosen, [p for p in block_parts if "input" in p]):
                continue
            rest = [p for p in block_parts if "input" not in p]
            if rest and not any(_self_state(pathway, p, state) is False for p in rest):
                kept.append({"not": {"all": rest}})
        found.append((t.index, kept))
    return found


def _may_meet(chosen: list[dict[str, Any]], block_inputs: list[dict[str, Any]]) -> bool:
    """Could one input meet both a transition's input parts and a block's (the same field
    never asked for disjoint values)?"""
    for mine in (p["input"] for p in chosen if "input" in p):
        for theirs in (p["input"] for p in block_inputs):
            if mine.get("field") != theirs.get("field"):
                continue
            if "in" in mine and "in" in theirs and not set(mine["in"]) & set(theirs["in"]):
                return False
            if "equals" in mine and "equals" in theirs and mine["equals"] != theirs["equals"]:
                return False
    return True


def _self_state(pathway: Pathway, part: dict[str, Any], state: str) -> bool | None:
    """Whether a `state` part holds in the state (None for any other part)."""
    if "state" not in part:
        return None
    return pathway.in_any(state, part["state"])


def _conjuncts(pathway: Pathway, condition: dict[str, Any]) -> list[dict[str, Any]]:
    """`all` split into its parts, and a condition on several labs into one part per lab."""
    ((key, arg),) = condition.items()
    if key == "all":
        return [p for c in arg for p in _conjuncts(pathway, c)]
    return per_lab(pathway, condition)


def per_lab(pathway: Pathway, condition: dict[str, Any]) -> list[dict[str, Any]]:
    """A primitive that asks the same of several labs, as one condition per lab; else itself.

    Told by its shape, whatever its name: its argument is a list of the pathway's lab codes
    (`labs_within_uln: [ALT, AST]`) or has such a list under `labs`
    (`recent_labs_within_uln: {labs: [ALT, IgG], within: P6W}`, `sustained_within_uln`). Each
    lab's part is what one result can change, so the search sees a patient halfway there.
    """
    ((key, arg),) = condition.items()
    if key in ("all", "any", "not", "guard", "input"):
        return [condition]
    if _lab_list(pathway, arg):
        return [{key: [lab]} for lab in arg]
    if isinstance(arg, dict) and _lab_list(pathway, arg.get("labs")):
        return [{key: {**arg, "labs": [lab]}} for lab in arg["labs"]]
    return [condition]


def _lab_list(pathway: Pathway, value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 1
        and all(isinstance(v, str) and v in pathway.labs for v in value)
    )


def refined_atoms(
    pathway: Pathway, atoms: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[int]]:
    """The atoms, then the per-lab parts of those that ask of several labs (`per_lab`), each
    with the position of the atom it comes from. The parts tell apart patients the whole
    cannot (ALT normal and IgG not yet measured, against neither), so that a condition two
    results satisfy is seen half met."""
    found, parents = list(atoms), list(range(len(atoms)))
    known = {repr(a) for a in atoms}
    for index, atom in enumerate(atoms):
        for part in per_lab(pathway, atom):
            if repr(part) not in known:
                known.add(repr(part))
                found.append(part)
                parents.append(index)
    return found, parents


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


def _work_item_for(situation: ExploredSituation, alert: Alert) -> bool:
    """Did raising the alert open urgent work for a person (a work item citing its rules)?"""
    assert situation.patient is not None
    return any(
        m.urgent and m.created_at == situation.now and set(m.rule_ids) & set(alert.rule_ids)
        for m in situation.patient.open_milestones()
    )


def _flagged(patient: Patient, block: BlockDefinition) -> bool:
    """An active order meeting a block is caught when a critical alert citing the block's
    rules is open with its urgent work item (the block re-checked against active orders)."""
    alerts = [
        a
        for a in patient.open_alerts()
        if a.severity in CRITICAL_SEVERITIES and set(a.rule_ids) & set(block.rules)
    ]
    return bool(alerts) and any(
        m.urgent and set(m.rule_ids) & set(block.rules) for m in patient.open_milestones()
    )


def _divergence(one: Ending, other: Ending) -> str:
    """What differs between two endings: the states, else the alerts and milestones."""
    if one[0] != other[0]:
        return "|".join(sorted((one[0], other[0])))
    differing = sorted({*one[1], *one[2]} ^ {*other[1], *other[2]})
    return "|".join(differing)


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
