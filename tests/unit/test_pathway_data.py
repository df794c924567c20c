"""The pathway as data: schema, rule citations, reachability, refusal of broken pathways."""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

import jsonschema
import pytest

from engine.adapters.pathway_files import (
    InvalidPathway,
    build_pathway,
    latest,
    load_pathway_file,
    pathway_files,
)
from engine.domain.care import CarePathway
from engine.domain.pathway import Pathway
from tests.fixtures_domain import (
    PATHWAY_FILE,
    SCHEMA_FILE,
    SPEC_FILE,
    Clock,
    make_patient,
    pathway_data,
    screened,
    spec_rule_ids,
    start_prednisolone,
)


@pytest.fixture(scope="module")
def pathway() -> Pathway:
    return latest()


# ---- schema ---------------------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_aih_pathway_validates_against_the_schema():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(pathway_data()))

    assert errors == []


def test_the_pathway_file_is_found_loaded_and_pending_clinical_review(pathway):
    assert PATHWAY_FILE in pathway_files()
    loaded = load_pathway_file(PATHWAY_FILE)

    assert loaded.key == pathway.key == "aih@1.0.0"
    assert loaded.review["status"] == "pending-clinical-review"


# ---- rules ----------------------------------------------------------------------------------


def _cited_rules(p: Pathway) -> set[str]:
    cited: set[str] = set()
    for state in p.states.values():
        cited.update(state.rules)
    for guard in p.guards.values():
        cited.update(guard["rules"])
    for items in (p.transitions, p.blocks, p.alerts, p.milestones, p.labs.values()):
        for item in items:
            cited.update(item.rules)
    for event in p.events.values():
        cited.update(event.rules)
    for group in (p.drugs, p.regimens, p.facts, p.raw.get("parameters", {})):
        for item in group.values():
            cited.update(item["rules"])
    return cited


def test_every_spec_rule_is_in_the_rules_catalogue_and_the_catalogue_has_no_extras(pathway):
    spec = spec_rule_ids()

    assert [r for r in spec if r not in pathway.rules] == []
    assert sorted(set(pathway.rules) - set(spec)) == []


def test_every_spec_rule_is_cited_by_some_element_of_the_pathway(pathway):
    cited = _cited_rules(pathway)

    assert [r for r in spec_rule_ids() if r not in cited] == []


def test_every_spec_rule_id_appears_in_the_pathway_files():
    text = "\n".join(f.read_text(encoding="utf-8") for f in pathway_files())

    assert [r for r in spec_rule_ids() if r not in text] == []


@pytest.mark.skipif(not SPEC_FILE.exists(), reason="shared clinical spec not available")
def test_every_source_the_spec_gives_for_a_rule_is_cited_by_the_pathway(pathway):
    mismatched = {}
    for line in SPEC_FILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^- ([A-Z]+(?:-[A-Z0-9.]+)+):", line)
        if not match:
            continue
        groups = re.findall(r"\[(S\d(?:\s*,\s*S\d)*)\]", line)
        sources = {s.strip() for group in groups for s in group.split(",")}
        rule = pathway.rules[match.group(1)]
        if not sources <= set(rule.sources):
            mismatched[rule.id] = (sorted(sources), rule.sources)

    assert mismatched == {}


def test_every_rule_cites_known_sources_and_has_text(pathway):
    for rule in pathway.rules.values():
        assert rule.text.strip(), rule.id
        assert rule.sources, rule.id
        assert set(rule.sources) <= set(pathway.sources), rule.id


@pytest.mark.parametrize("kind", ["transitions", "guards", "milestones", "alerts", "blocks"])
def test_every_element_cites_at_least_one_existing_rule(pathway, kind):
    items: list[tuple[str, Any]] = {
        "transitions": [(f"#{t.index}", t.rules) for t in pathway.transitions],
        "guards": [(name, g["rules"]) for name, g in pathway.guards.items()],
        "milestones": [(m.id, m.rules) for m in pathway.milestones],
        "alerts": [(a.id, a.rules) for a in pathway.alerts],
        "blocks": [(b.id, b.rules) for b in pathway.blocks],
    }[kind]

    assert items
    for name, rules in items:
        assert rules, f"{kind} {name} cites no rule"
        assert set(rules) <= set(pathway.rules), f"{kind} {name}: {rules}"


def test_every_patient_fact_cites_existing_rules_and_guards_use_known_facts(pathway):
    for name, spec in pathway.facts.items():
        assert spec["rules"] and set(spec["rules"]) <= set(pathway.rules), name
    derived = {"age_years"}  # computed from the birth date
    used: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("fact"), dict):
                used.add(node["fact"]["name"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk([g["when"] for g in pathway.guards.values()])
    walk([t.guards for t in pathway.transitions])
    walk([b.when for b in pathway.blocks] + [a.when for a in pathway.alerts])
    assert sorted(used - set(pathway.facts) - derived) == []


def test_every_state_cites_a_rule_and_explains_itself(pathway):
    for state in pathway.states.values():
        assert state.rules and set(state.rules) <= set(pathway.rules), state.name
        assert state.text.strip(), state.name
    explained = pathway.explain(["SCR-TPMT"])
    assert explained[0]["sources"] == ["S1", "S2", "S3"]


# ---- the state graph ------------------------------------------------------------------------


def _ancestors(state: str) -> list[str]:
    parts = state.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _enter(p: Pathway, state: str) -> str:
    """A dest that is a parent enters its first (initial) child."""
    while p.states[state].children:
        state = p.states[state].children[0]
    return state


def _reachable_leaves(p: Pathway) -> set[str]:
    start = _enter(p, p.initial)
    seen, queue = {start}, deque([start])
    while queue:
        current = queue.popleft()
        lineage = set(_ancestors(current))
        for t in p.transitions:
            if lineage & set(t.sources):
                nxt = _enter(p, t.dest)
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
    return seen


def test_every_state_is_reachable_from_the_initial_state(pathway):
    reached = _reachable_leaves(pathway)
    reached_any = {ancestor for leaf in reached for ancestor in _ancestors(leaf)}

    assert sorted(set(pathway.states) - reached_any) == []
    assert reached == set(pathway.leaf_states())


def test_transition_destinations_are_leaf_states(pathway):
    leaves = set(pathway.leaf_states())

    assert [t.dest for t in pathway.transitions if t.dest not in leaves] == []


def test_final_states_have_no_way_out(pathway):
    finals = [s for s, d in pathway.states.items() if d.final]

    assert sorted(finals) == ["closed", "transplanted"]
    for t in pathway.transitions:
        assert not set(t.sources) & set(finals), t


def test_every_non_final_state_has_a_way_out(pathway):
    for leaf in pathway.leaf_states():
        if pathway.states[leaf].final:
            continue
        lineage = set(_ancestors(leaf))
        assert any(lineage & set(t.sources) for t in pathway.transitions), leaf


def test_the_machine_knows_exactly_the_pathway_leaf_states(pathway):
    machine = CarePathway(pathway).machine._machine

    assert set(machine.get_nested_state_names()) == set(pathway.states)


# ---- thresholds are data ----------------------------------------------------------------------


def test_a_threshold_changed_in_the_data_changes_the_behaviour():
    data = pathway_data()
    data["parameters"]["nonresponse_min_fall_pct"]["value"] = 30
    cp = CarePathway(build_pathway(data, origin="lenient.yaml"))
    chart = make_patient(cp=cp, clock=Clock())
    screened(chart, alt=400)
    start_prednisolone(chart)
    chart.advance(weeks=4)

    chart.lab("ALT", 250)  # 37.5% fall: a response under a 30% threshold

    assert chart.state == "induction.prednisolone"


# ---- broken pathways are refused ------------------------------------------------------------


def _set(path: list[Any], value: Any):
    def mutate(data: dict[str, Any]) -> None:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _append_guard(data: dict[str, Any]) -> None:
    data["blocks"][0]["when"]["all"].append({"guard": "ghost_guard"})


def _duplicate_alert(data: dict[str, Any]) -> None:
    data["alerts"].append(dict(data["alerts"][0]))


BROKEN = {
    "unknown rule on a transition": (
        _set(["transitions", 0, "rules"], ["NOPE-X1"]),
        "cites unknown rule NOPE-X1",
    ),
    "unknown rule on an alert": (
        _set(["alerts", 0, "rules"], ["NOPE-X2"]),
        "alert partial-response cites unknown rule NOPE-X2",
    ),
    "unknown rule on a milestone": (
        _set(["milestones", 0, "rules"], ["NOPE-X3"]),
        "milestone tpmt-screening cites unknown rule NOPE-X3",
    ),
    "unknown rule on a guard": (
        _set(["guards", "child", "rules"], ["NOPE-X4"]),
        "guard child cites unknown rule NOPE-X4",
    ),
    "unknown guard on a transition": (
        _set(["transitions", 0, "guards"], ["no_such_guard"]),
        "unknown guard no_such_guard",
    ),
    "unknown guard inside a block": (_append_guard, "unknown guard ghost_guard"),
    "bad milestone duration": (_set(["milestones", 0, "offset"], "P4X"), "milestones/0/offset"),
    "empty duration": (_set(["milestones", 0, "grace"], "P"), "milestones/0/grace"),
    "bad duration parameter": (
        _set(["parameters", "nonresponse_assessed_after", "value"], "four weeks"),
        "not an ISO-8601 duration: 'four weeks'",
    ),
    "bad duration in a condition": (
        _set(["guards", "child", "when"], {"elapsed": {"since": "enrolled", "at_least": "4w"}}),
        "guards/child/when",
    ),
    "unknown parameter": (
        _set(["guards", "child", "when", "fact", "less_than"], {"param": "nope"}),
        "unknown parameter 'nope'",
    ),
    "unknown destination state": (
        _set(["transitions", 0, "dest"], "nowhere"),
        "names unknown state nowhere",
    ),
    "parent destination state": (
        _set(["transitions", 0, "dest"], "taper"),
        "goes to taper, which is not a leaf state",
    ),
    "unknown source": (_set(["rules", "SCR-TPMT", "sources"], ["S9"]), "unknown source S9"),
    "unknown initial state": (_set(["initial"], "limbo"), "initial state limbo is unknown"),
    "unknown trigger": (_set(["transitions", 0, "trigger"], "teleport"), "unknown trigger"),
    "unknown lab in a milestone": (
        _set(["milestones", 0, "completed_by"], {"labs": ["XYZ"]}),
        "unknown lab XYZ",
    ),
    "duplicate alert id": (_duplicate_alert, "alert id partial-response is used more than once"),
    "missing required section": (
        lambda data: data.pop("rules"),
        "'rules' is a required property",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_pathway_is_refused_naming_the_problem(case):
    mutate, expected = BROKEN[case]
    data = pathway_data()
    mutate(data)

    with pytest.raises(InvalidPathway) as caught:
        build_pathway(data, origin="broken.yaml")

    assert caught.value.message.startswith("broken.yaml: ")
    assert expected in caught.value.message


def test_the_unbroken_data_builds():
    built = build_pathway(pathway_data(), origin="ok.yaml")

    assert built.key == "aih@1.0.0"
    assert len(built.rules) == 42
