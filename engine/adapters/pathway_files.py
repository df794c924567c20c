"""Load pathway data files: YAML, validated by the JSON Schema, cross-checked, versioned."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from engine.domain.dosing import build_dosing
from engine.domain.durations import parse_duration
from engine.domain.errors import DomainError, UnknownCode
from engine.domain.pathway import (
    AlertDefinition,
    BlockDefinition,
    EventDefinition,
    LabDefinition,
    MilestoneDefinition,
    Pathway,
    Rule,
    StateDefinition,
    TransitionDefinition,
    resolve_parameters,
)

PATHWAY_DIR = Path(__file__).resolve().parents[2] / "pathways"
SCHEMA_FILE = PATHWAY_DIR / "schema" / "pathway.schema.json"


class InvalidPathway(DomainError):
    """The pathway file breaks its schema or cites something that does not exist."""

    code = "invalid-pathway"


def load_pathway_file(path: Path) -> Pathway:
    """Read, validate and build one pathway version from a YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return build_pathway(data, origin=str(path.name))


def build_pathway(data: dict[str, Any], origin: str = "<data>") -> Pathway:
    """Validate raw pathway data against the schema and cross-references; build it."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=str)
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)
        raise InvalidPathway(
            f"{origin}: {len(errors)} schema error(s); first at {where}: {first.message}"
        )
    try:
        pathway = _build(data)
    except (UnknownCode, ValueError, KeyError) as exc:
        raise InvalidPathway(f"{origin}: {exc}") from exc
    problems = cross_reference_problems(pathway)
    if problems:
        raise InvalidPathway(f"{origin}: " + "; ".join(problems[:10]))
    return pathway


def _build(data: dict[str, Any]) -> Pathway:
    parameters = {k: v["value"] for k, v in data.get("parameters", {}).items()}

    def cond(node: Any) -> Any:
        return resolve_parameters(node, parameters)

    rules = {rid: Rule(rid, r["text"], tuple(r["sources"])) for rid, r in data["rules"].items()}
    labs = {
        code: LabDefinition(
            code=code,
            name=lab["name"],
            loinc=lab["loinc"],
            kind=lab["kind"],
            unit=lab.get("unit"),
            convertible=dict(
                lab.get("convertible") or ({lab["unit"]: 1} if lab.get("unit") else {})
            ),
            uln=lab.get("uln"),
            bands=tuple((b["name"], b.get("below")) for b in lab.get("bands", [])),
            values=tuple(lab.get("values", [])),
            rules=tuple(lab["rules"]),
            plausible=(
                (lab["plausible"]["min"], lab["plausible"]["max"]) if "plausible" in lab else None
            ),
            precision=lab.get("precision"),
        )
        for code, lab in data["labs"].items()
    }
    aliases: dict[str, str] = {}
    for name, drug in data["drugs"].items():
        aliases[name] = name
        for alias in drug.get("aliases", []):
            aliases[alias.lower().replace(" ", "_")] = name
    states: dict[str, StateDefinition] = {}
    _flatten_states(data["states"], "", states, cond)
    transitions = [
        TransitionDefinition(
            index=i,
            trigger=t["trigger"],
            sources=tuple([t["source"]] if isinstance(t["source"], str) else t["source"]),
            dest=t["dest"],
            guards=tuple(
                {"guard": g} if isinstance(g, str) else cond(g) for g in t.get("guards", [])
            ),
            rules=tuple(t["rules"]),
            sets=t.get("sets", {}),
        )
        for i, t in enumerate(data["transitions"])
    ]
    return Pathway(
        id=data["pathway"],
        version=data["version"],
        title=data["title"],
        review=data["review"],
        sources=data["sources"],
        rules=rules,
        parameters=parameters,
        labs=labs,
        drugs=data["drugs"],
        drug_aliases=aliases,
        regimens=data.get("regimens", {}),
        facts={
            name: {**spec, **({"set_when": cond(spec["set_when"])} if "set_when" in spec else {})}
            for name, spec in data.get("facts", {}).items()
        },
        events={
            kind: EventDefinition(
                kind=kind,
                rules=tuple(e["rules"]),
                fields=e.get("fields", {}),
                sets=e.get("sets", {}),
                sets_from_fields=tuple(e.get("sets_from_fields", [])),
                stops_orders_of=e.get("stops_orders_of"),
            )
            for kind, e in data["events"].items()
        },
        guards={name: {**g, "when": cond(g["when"])} for name, g in data["guards"].items()},
        states=states,
        initial=data["initial"],
        transitions=transitions,
        blocks=[
            BlockDefinition(
                b["id"],
                b["trigger"],
                cond(b["when"]),
                b["message"],
                tuple(b["rules"]),
                overridable=b.get("overridable", False),
                applies_to_active_orders=b.get("applies_to_active_orders", True),
                active_order_message=b.get("active_order_message"),
                alternative=cond(b["alternative"]) if "alternative" in b else None,
            )
            for b in data["blocks"]
        ],
        alerts=[
            AlertDefinition(
                id=a["id"],
                severity=a["severity"],
                when=cond(a["when"]),
                message=a["message"],
                rules=tuple(a["rules"]),
                trigger=a.get("trigger"),
                in_states=tuple(a.get("in_states", [])),
                not_in_states=tuple(a.get("not_in_states", [])),
                work_item=a.get("work_item"),
            )
            for a in data["alerts"]
        ],
        milestones=[_milestone(m, cond) for m in data["milestones"]],
        dosing={
            name: build_dosing(name, cond(drug["dose"]))
            for name, drug in data["drugs"].items()
            if "dose" in drug
        },
        alert_routing=data.get("alert_routing", {}),
        raw=data,
    )


def _flatten_states(
    tree: dict[str, Any], prefix: str, out: dict[str, StateDefinition], cond
) -> None:
    for name, spec in tree.items():
        full = f"{prefix}{name}"
        children = spec.get("children", {})
        out[full] = StateDefinition(
            name=full,
            text=spec["text"],
            rules=tuple(spec["rules"]),
            on_treatment=spec.get("on_treatment", True),
            stops_treatment=spec.get("stops_treatment", False),
            final=spec.get("final", False),
            sets=spec.get("sets", {}),
            expected_dose=cond(spec["expected_dose"]) if "expected_dose" in spec else None,
            children=tuple(f"{full}.{c}" for c in children),
        )
        _flatten_states(children, f"{full}.", out, cond)


def _milestone(m: dict[str, Any], cond) -> MilestoneDefinition:
    done = m.get("completed_by", {})
    return MilestoneDefinition(
        id=m["id"],
        title=m["title"],
        kind=m["kind"],
        scope=tuple(m["scope"]),
        anchor=m["anchor"],
        offset=parse_duration(m["offset"]),
        grace=parse_duration(m["grace"]),
        recipients=tuple(m["recipients"]),
        rules=tuple(m["rules"]),
        urgent=m.get("urgent", False),
        repeat=m.get("repeat", False),
        review_on_due=m.get("review_on_due", False),
        completed_on_leave=m.get("completed_on_leave", False),
        when=cond(m["when"]) if "when" in m else None,
        unless=cond(m["unless"]) if "unless" in m else None,
        completed_by_labs=tuple(done.get("labs", [])),
        completed_by_orders=tuple(done.get("orders", [])),
        completed_by_events=tuple(done.get("events", [])),
        completed_by_order=cond(done["order"]) if "order" in done else None,
        opens_before_due=(
            parse_duration(done["opens_before_due"]) if "opens_before_due" in done else None
        ),
    )


def cross_reference_problems(p: Pathway) -> list[str]:
    """Everything a pathway cites must exist: rules, sources, guards, states, labs, drugs."""
    problems: list[str] = []
    for rule in p.rules.values():
        problems += [
            f"rule {rule.id} cites unknown source {s}" for s in rule.sources if s not in p.sources
        ]

    def rules_ok(where: str, rule_ids) -> None:
        problems.extend(f"{where} cites unknown rule {r}" for r in rule_ids if r not in p.rules)

    def states_ok(where: str, names) -> None:
        problems.extend(f"{where} names unknown state {s}" for s in names if s not in p.states)

    def condition_ok(where: str, node: Any) -> None:
        for key, value in node.items():
            if key in ("all", "any"):
                for child in value:
                    condition_ok(where, child)
            elif key == "not":
                condition_ok(where, value)
            elif key == "guard" and value not in p.guards:
                problems.append(f"{where} uses unknown guard {value}")
            elif key == "lab_known" and value not in p.labs:
                problems.append(f"{where} uses unknown lab {value}")
            elif key in ("labs_within_uln", "sustained_within_uln", "recent_labs_within_uln"):
                labs = value if key == "labs_within_uln" else value["labs"]
                problems.extend(
                    f"{where} uses unknown lab {lab}" for lab in labs if lab not in p.labs
                )
            elif isinstance(value, dict) and "lab" in value and value["lab"] not in p.labs:
                problems.append(f"{where} uses unknown lab {value['lab']}")
            elif key == "state":
                states_ok(where, value)
            elif key == "on_drug":
                problems.extend(
                    f"{where} uses unknown drug {d}" for d in value["in"] if d not in p.drugs
                )
            elif key == "event_since" and value["kind"] not in p.events:
                problems.append(f"{where} uses unknown event {value['kind']}")
            elif isinstance(value, dict):
                for duration_key in ("at_least", "less_than", "for_at_least", "within"):
                    if isinstance(value.get(duration_key), str):
                        try:
                            parse_duration(value[duration_key])
                        except ValueError as exc:
                            problems.append(f"{where}: {exc}")

    triggers = {"lab_resulted", "medication_ordered", "review", *p.events}
    for name, guard in p.guards.items():
        rules_ok(f"guard {name}", guard["rules"])
        condition_ok(f"guard {name}", guard["when"])
    for state in p.states.values():
        rules_ok(f"state {state.name}", state.rules)
    if p.initial not in p.states:
        problems.append(f"initial state {p.initial} is unknown")
    for t in p.transitions:
        where = f"transition #{t.index} ({t.trigger})"
        rules_ok(where, t.rules)
        states_ok(where, [*t.sources, t.dest])
        if t.trigger not in triggers:
            problems.append(f"{where} has unknown trigger {t.trigger}")
        if t.dest in p.states and p.states[t.dest].children:
            problems.append(f"{where} goes to {t.dest}, which is not a leaf state")
        for guard in t.guards:
            condition_ok(where, guard)
    for kind, items in (("block", p.blocks), ("alert", p.alerts), ("milestone", p.milestones)):
        ids = [item.id for item in items]
        problems.extend(
            f"{kind} id {i} is used more than once" for i in sorted(set(ids)) if ids.count(i) > 1
        )
    for b in p.blocks:
        rules_ok(f"block {b.id}", b.rules)
        condition_ok(f"block {b.id}", b.when)
        if b.alternative and b.alternative["drug"] not in p.drug_aliases:
            problems.append(f"block {b.id}: unknown alternative drug {b.alternative['drug']}")
    block_ids = {b.id for b in p.blocks if b.trigger == "medication_ordered"}
    problems.extend(
        f"alert id {a.id} is also a medication block's id (its active-order alert)"
        for a in p.alerts
        if a.id in block_ids
    )
    for a in p.alerts:
        rules_ok(f"alert {a.id}", a.rules)
        condition_ok(f"alert {a.id}", a.when)
        states_ok(f"alert {a.id}", [*a.in_states, *a.not_in_states])
    for m in p.milestones:
        rules_ok(f"milestone {m.id}", m.rules)
        states_ok(f"milestone {m.id}", m.scope)
        for node in (m.when, m.unless, m.completed_by_order):
            if node:
                condition_ok(f"milestone {m.id}", node)
        problems.extend(
            f"milestone {m.id}: unknown lab {c}" for c in m.completed_by_labs if c not in p.labs
        )
        problems.extend(
            f"milestone {m.id}: unknown drug {d}" for d in m.completed_by_orders if d not in p.drugs
        )
        problems.extend(
            f"milestone {m.id}: unknown event {e}"
            for e in m.completed_by_events
            if e not in p.events
        )
    for lab in p.labs.values():
        rules_ok(f"lab {lab.code}", lab.rules)
        if lab.kind == "quantitative" and not lab.unit:
            problems.append(f"lab {lab.code} is quantitative but has no unit")
        if lab.kind == "quantitative" and (lab.plausible is None or lab.precision is None):
            problems.append(f"lab {lab.code} is quantitative but has no plausible range/precision")
    for name, spec in p.facts.items():
        if "set_when" in spec:
            condition_ok(f"fact {name}", spec["set_when"])
    coded = [
        (system, code)
        for d in p.drugs.values()
        for system, codes in d.get("codes", {}).items()
        if system != "sources"
        for code in codes
    ]
    problems.extend(
        f"drug code {s}:{c} names more than one drug"
        for s, c in sorted(set(coded))
        if coded.count((s, c)) > 1
    )
    for name, drug in p.drugs.items():
        rules_ok(f"drug {name}", drug["rules"])
        if name not in p.dosing:
            problems.append(f"drug {name} has no dose model")
    range_ids = [r.id for d in p.dosing.values() for r in d.ranges]
    problems.extend(
        f"dose range id {i} is used more than once"
        for i in sorted(set(range_ids))
        if range_ids.count(i) > 1 or i in {b.id for b in p.blocks}
    )
    for dosing in p.dosing.values():
        for r in dosing.ranges:
            rules_ok(f"dose range {r.id}", r.rules)
            if r.when:
                condition_ok(f"dose range {r.id}", r.when)
    for name, regimen in p.regimens.items():
        rules_ok(f"regimen {name}", regimen["rules"])
    for event in p.events.values():
        rules_ok(f"event {event.kind}", event.rules)
    return problems


def pathway_files(directory: Path = PATHWAY_DIR) -> list[Path]:
    """Every pathway data file: `<pathway>/*.yaml`, not schemas or site overrides."""
    return sorted(
        f for f in directory.glob("*/*.yaml") if f.parent.name != "schema" and "site" not in f.stem
    )


@cache
def load_all(directory: Path = PATHWAY_DIR) -> dict[str, Pathway]:
    """All pathway versions by key (`aih@1.0.0`), loaded and validated once per process."""
    loaded = [load_pathway_file(f) for f in pathway_files(directory)]
    return {p.key: p for p in loaded}


def latest(pathway_id: str = "aih", directory: Path = PATHWAY_DIR) -> Pathway:
    """The newest version of a pathway."""
    versions = [p for p in load_all(directory).values() if p.id == pathway_id]
    if not versions:
        raise UnknownCode(f"no pathway named {pathway_id!r}")
    return max(versions, key=lambda p: tuple(int(x) for x in p.version.split(".")))


def get(key: str, directory: Path = PATHWAY_DIR) -> Pathway:
    """A pathway version by key (`aih@1.0.0`)."""
    found = load_all(directory).get(key)
    if found is None:
        raise UnknownCode(f"unknown pathway version {key!r}")
    return found
