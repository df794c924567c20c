"""`aihp pathway verify`: findings about a pathway, in words a hepatologist can read.

Combines what the bounded exploration saw (`pathway_exploration`) with what the data says:
unreachable states, states with no way out, treatment states without monitoring, critical
alerts that reach no one, same-day inputs whose order changes the outcome, hard blocks that
some sequence bypasses, rule IDs with no executable element, and inputs the engine could not
handle. Each finding has a stable key; the pathway data may acknowledge it with a reason
(`verification: {acknowledged: [{finding: <key or pattern>, reason: ...}]}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from engine.domain.pathway import AlertDefinition, Pathway
from engine.domain.pathway_exploration import (
    CRITICAL_SEVERITIES,
    Exploration,
    ExplorationBounds,
    PathwayExplorer,
    is_monitoring,
)

FINDING_KINDS = {
    "block-bypassed": "Hard block bypassed",
    "unrouted-critical-alert": "Critical alert without a work item",
    "no-way-out": "State with no way out",
    "unreachable-state": "Unreachable state",
    "unmonitored-treatment": "Treatment state without a monitoring milestone",
    "order-dependent": "Same-day inputs whose order changes the outcome",
    "text-only-rule": "Rule with no executable element",
    "engine-error": "Input the engine could not handle",
}


@dataclass(frozen=True)
class Finding:
    """One thing a clinician or the pathway's author should look at."""

    key: str
    kind: str
    text: str
    rules: tuple[str, ...] = ()
    sequence: tuple[str, ...] = ()
    acknowledged: str | None = None

    @property
    def heading(self) -> str:
        return FINDING_KINDS[self.kind]


@dataclass
class VerificationReport:
    """The findings of one run, with how much was explored."""

    pathway_key: str
    bounds: ExplorationBounds
    sequences: int
    situations: int
    order_checks: int
    states_reached: int
    states: int
    findings: list[Finding] = field(default_factory=list)
    stale_acknowledgements: list[str] = field(default_factory=list)
    unfired_transitions: list[str] = field(default_factory=list)

    @property
    def unacknowledged(self) -> list[Finding]:
        return [f for f in self.findings if f.acknowledged is None]

    @property
    def passed(self) -> bool:
        """True when every finding is acknowledged in the pathway data."""
        return not self.unacknowledged


def verify_pathway(pathway: Pathway, bounds: ExplorationBounds | None = None) -> VerificationReport:
    """Explore the pathway within the bounds and report every finding, unacknowledged first."""
    bounds = bounds or ExplorationBounds()
    seen = PathwayExplorer(pathway, bounds).explore()
    findings = [
        *_bypassed_blocks(seen),
        *_unrouted_critical_alerts(pathway, seen),
        *_states_without_exit(pathway, seen),
        *_unreachable_states(pathway, seen, bounds),
        *_unmonitored_treatment_states(pathway, seen),
        *_order_dependences(seen),
        *_text_only_rules(pathway),
        *_engine_errors(seen),
    ]
    acknowledged = acknowledgements(pathway)
    used: set[str] = set()
    marked = []
    for finding in findings:
        pattern = next((p for p in acknowledged if fnmatchcase(finding.key, p)), None)
        if pattern is not None:
            used.add(pattern)
            finding = replace(finding, acknowledged=acknowledged[pattern])
        marked.append(finding)
    order = list(FINDING_KINDS)
    marked.sort(key=lambda f: (f.acknowledged is not None, order.index(f.kind), f.key))
    return VerificationReport(
        pathway_key=pathway.key,
        bounds=bounds,
        sequences=seen.sequences,
        situations=seen.situations,
        order_checks=seen.order_checks,
        states_reached=len(set(seen.reached) & set(pathway.leaf_states())),
        states=len(pathway.leaf_states()),
        findings=marked,
        stale_acknowledgements=[p for p in acknowledged if p not in used],
        unfired_transitions=[
            f"#{t.index} {t.trigger}: {'/'.join(t.sources)} -> {t.dest} ({', '.join(t.rules)})"
            for t in pathway.transitions
            if t.index not in seen.fired
        ],
    )


def acknowledgements(pathway: Pathway) -> dict[str, str]:
    """Finding keys (or `fnmatch` patterns) the pathway data acknowledges, with the reason."""
    section = pathway.raw.get("verification") or {}
    return {item["finding"]: item["reason"] for item in section.get("acknowledged", [])}


# ---- the findings ---------------------------------------------------------------------------


def _unreachable_states(
    pathway: Pathway, seen: Exploration, bounds: ExplorationBounds
) -> list[Finding]:
    return [
        Finding(
            f"unreachable-state:{state}",
            "unreachable-state",
            f"{state} ({pathway.states[state].text}) is never reached from enrolment "
            f"within {bounds.depth} inputs and {bounds.max_sequences} sequences.",
            pathway.states[state].rules,
        )
        for state in pathway.leaf_states()
        if state not in seen.reached
    ]


def _states_without_exit(pathway: Pathway, seen: Exploration) -> list[Finding]:
    findings = []
    for state in pathway.leaf_states():
        if _final(pathway, state):
            continue
        declared = any(pathway.in_any(state, t.sources) for t in pathway.transitions)
        if not declared:
            text = f"{state} is not final, yet no transition of the pathway leaves it."
        elif state in seen.expanded and not seen.exits.get(state):
            text = f"{state} is reached, but no explored input leads out of it."
        else:
            continue
        witness = seen.reached.get(state)
        findings.append(
            Finding(
                f"no-way-out:{state}",
                "no-way-out",
                text,
                pathway.states[state].rules,
                tuple(witness.sequence()) if witness else (),
            )
        )
    return findings


def _unmonitored_treatment_states(pathway: Pathway, seen: Exploration) -> list[Finding]:
    monitoring = [m for m in pathway.milestones if is_monitoring(m)]
    findings = []
    for state in pathway.leaf_states():
        lineage = pathway.lineage(state)
        if _final(pathway, state) or not all(pathway.states[s].on_treatment for s in lineage):
            continue
        if state in seen.reached:
            if seen.monitored.get(state):
                continue
            text = f"{state} is a treatment state, but no monitoring milestone was open there."
        elif any(pathway.in_any(state, m.scope) for m in monitoring):
            continue
        else:
            text = f"{state} is a treatment state with no monitoring milestone in scope."
        witness = seen.reached.get(state)
        findings.append(
            Finding(
                f"unmonitored-treatment:{state}",
                "unmonitored-treatment",
                text + " (A monitoring milestone is a repeating lab check with no condition.)",
                pathway.states[state].rules,
                tuple(witness.sequence()) if witness else (),
            )
        )
    return findings


def alert_routing(pathway: Pathway, alert: AlertDefinition) -> Any:
    """The work item the pathway data opens for an alert (its own, or its severity's), or None."""
    own = getattr(alert, "work_item", None)
    by_severity = (getattr(pathway, "alert_routing", None) or {}).get(alert.severity)
    return own or by_severity or None


def _unrouted_critical_alerts(pathway: Pathway, seen: Exploration) -> list[Finding]:
    findings: dict[str, Finding] = {}
    for alert_id, (witness, alert) in seen.unrouted_alerts.items():
        findings[alert_id] = Finding(
            f"unrouted-critical-alert:{alert_id}",
            "unrouted-critical-alert",
            f"The {alert.severity} alert {alert_id} ('{alert.message}') was raised and opened "
            "no urgent work item for anyone.",
            tuple(alert.rule_ids),
            tuple(witness.sequence()),
        )
    for alert in pathway.alerts:
        if (
            alert.severity not in CRITICAL_SEVERITIES
            or alert.id in findings
            or alert_routing(pathway, alert)
        ):
            continue
        witness = seen.alerts_raised.get(alert.id)
        raised = "raised by the sequence below" if witness else "not raised within the bounds"
        findings[alert.id] = Finding(
            f"unrouted-critical-alert:{alert.id}",
            "unrouted-critical-alert",
            f"The {alert.severity} alert {alert.id} ('{alert.message}') has no work item in the "
            f"pathway data (no `work_item`, no `alert_routing` for {alert.severity}); {raised}.",
            alert.rules,
            tuple(witness.sequence()) if witness else (),
        )
    return list(findings.values())


def _bypassed_blocks(seen: Exploration) -> list[Finding]:
    return [
        Finding(
            f"block-bypassed:{block_id}",
            "block-bypassed",
            f"Hard block {block_id}: {breach.what}",
            breach.block.rules,
            tuple(breach.witness.sequence()),
        )
        for block_id, breach in seen.breaches.items()
    ]


def _order_dependences(seen: Exploration) -> list[Finding]:
    findings = []
    for divergence, found in seen.order_dependences.items():
        first = found[0]
        a, b = first.first, first.second
        states = ", ".join(f.state for f in found)
        findings.append(
            Finding(
                f"order-dependent:{divergence}",
                "order-dependent",
                f"In {first.state}, '{a.label}' then '{b.label}' gives "
                f"{_ending(first.one_way)}; the other order gives {_ending(first.other_way)}. "
                f"Seen in: {states}.",
                (),
                tuple(first.witness.sequence(a, b)),
            )
        )
    return findings


def _ending(ending: tuple[str, tuple[str, ...], tuple[str, ...]]) -> str:
    state, alerts, milestones = ending
    return (
        f"{state} (alerts: {', '.join(alerts) or 'none'}; "
        f"milestones: {', '.join(milestones) or 'none'})"
    )


def _text_only_rules(pathway: Pathway) -> list[Finding]:
    executable = executable_rule_citations(pathway)
    findings = []
    for rule_id, rule in pathway.rules.items():
        if rule_id in executable:
            continue
        places = _text_citations(pathway, rule_id)
        where = f"cited only by {', '.join(places)}" if places else "cited by nothing"
        findings.append(
            Finding(
                f"text-only-rule:{rule_id}",
                "text-only-rule",
                f"{rule_id} ('{rule.text}') has no executable element (state guard, transition, "
                f"block, alert, milestone or dose range); {where}.",
                (rule_id,),
            )
        )
    return findings


def executable_rule_citations(pathway: Pathway) -> set[str]:
    """Rule IDs cited by an element the engine executes, or by a guard such an element uses."""
    cited: set[str] = set()
    conditions: list[Any] = []
    for t in pathway.transitions:
        cited.update(t.rules)
        conditions += t.guards
    for item in (*pathway.blocks, *pathway.alerts):
        cited.update(item.rules)
        conditions.append(item.when)
    for m in pathway.milestones:
        cited.update(m.rules)
        conditions += [c for c in (m.when, m.unless) if c]
    for dosing in getattr(pathway, "dosing", {}).values():
        for dose_range in dosing.ranges:
            cited.update(dose_range.rules)
            if dose_range.when:
                conditions.append(dose_range.when)
    for guard in _guards_used(pathway, conditions):
        cited.update(pathway.guards[guard]["rules"])
    return cited


def _guards_used(pathway: Pathway, conditions: list[Any]) -> set[str]:
    used: set[str] = set()
    todo = list(conditions)
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            name = node.get("guard")
            if isinstance(name, str) and name not in used and name in pathway.guards:
                used.add(name)
                todo.append(pathway.guards[name]["when"])
            todo += list(node.values())
        elif isinstance(node, list | tuple):
            todo += list(node)
    return used


def _text_citations(pathway: Pathway, rule_id: str) -> list[str]:
    places = [f"state {s.name}" for s in pathway.states.values() if rule_id in s.rules]
    for section in ("labs", "drugs", "regimens", "facts", "events", "parameters", "guards"):
        entries = pathway.raw.get(section) or {}
        places += [
            f"{section[:-1] if section != 'labs' else 'lab'} {name}"
            for name, entry in entries.items()
            if isinstance(entry, dict) and rule_id in entry.get("rules", [])
        ]
    return places


def _engine_errors(seen: Exploration) -> list[Finding]:
    return [
        Finding(
            f"engine-error:{family}:{error}",
            "engine-error",
            f"The engine failed ({error}) on {detail}",
            (),
            tuple(node.sequence()),
        )
        for (error, family), (node, detail) in seen.engine_errors.items()
    ]


def _final(pathway: Pathway, state: str) -> bool:
    return any(pathway.states[s].final for s in pathway.lineage(state))
