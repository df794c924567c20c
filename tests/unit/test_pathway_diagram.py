"""The pathway diagram: guards in words, laid out by Graphviz dot with arrowheads and clusters."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from engine.adapters.graphviz_layout import LayoutUnavailable, dot_svg
from engine.domain import conditions
from engine.domain.condition_words import _PHRASES, duration, in_words
from engine.services import pathway_catalogue

SVG = "{http://www.w3.org/2000/svg}"
COMBINATORS = {"all", "any", "not", "guard"}


@pytest.fixture(scope="module")
def pathway():
    return pathway_catalogue.pathway("aih")


@pytest.fixture(scope="module")
def drawn(pathway) -> ET.Element:
    return ET.fromstring(pathway_catalogue.svg_diagram(pathway))


def _groups(svg: ET.Element, kind: str) -> list[ET.Element]:
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == kind]


def test_every_condition_primitive_has_words():
    assert set(conditions._PRIMITIVES) - COMBINATORS == set(_PHRASES)


def test_a_recent_labs_guard_reads_as_a_sentence(pathway):
    condition = {"recent_labs_within_uln": {"labs": ["ALT", "IgG"], "within": "P6W"}}
    assert in_words(condition, pathway) == (
        "ALT and IgG within the upper limit of normal on labs of the last 6 weeks"
    )


def test_nested_any_inside_all_is_bracketed(pathway):
    condition = {
        "all": [
            {"elapsed": {"since": "state_entered", "at_least": "P14D"}},
            {"any": [{"lab_improving": {"lab": "BILI"}}, {"lab_improving": {"lab": "ALT"}}]},
        ]
    }
    assert in_words(condition, pathway) == (
        "at least 2 weeks since entering this state and (BILI improving since entering this "
        "state or ALT improving since entering this state)"
    )


@pytest.mark.parametrize(
    ("iso", "words"),
    [("P6W", "6 weeks"), ("P2Y", "2 years"), ("P18M", "1 year 6 months"), ("P1D", "1 day")],
)
def test_durations_read_in_words(iso, words):
    assert duration(iso) == words


def test_no_guard_of_the_pathway_shows_raw_data(pathway):
    for t in pathway.transitions:
        for text in [*pathway_catalogue.guards_in_words(pathway, t)]:
            assert not set(text) & set('{}[]"'), (t.index, text)
        assert not set(pathway_catalogue.transition_label(pathway, t)) & set('{}"'), t.index


def test_no_text_in_the_diagram_holds_a_brace_or_a_quote(drawn):
    texts = [e.text or "" for e in drawn.iter(f"{SVG}text")]
    assert len(texts) > 100
    assert not [t for t in texts if "{" in t or '"' in t]


def test_every_transition_is_an_arrow_with_an_arrowhead(pathway, drawn):
    edges = {g.get("id"): g for g in _groups(drawn, "edge")}
    for t in pathway.transitions:
        arrow = edges[f"transition-{t.index}"]
        assert arrow.find(f"{SVG}polygon") is not None, t.index  # dot draws the head as one
        label = " ".join(e.text or "" for e in arrow.iter(f"{SVG}text"))
        assert all(rule in label for rule in t.rules), (t.index, label)


def test_nested_states_are_clusters_holding_their_sub_states(pathway, drawn):
    clusters = {g.get("id") for g in _groups(drawn, "cluster")}
    nodes = {g.get("id") for g in _groups(drawn, "node")}
    for name, state in pathway.states.items():
        if state.children:
            assert name in clusters
            assert set(state.children) <= nodes
        else:
            assert name in nodes


def test_the_layout_is_cached_per_pathway_version(pathway):
    assert pathway_catalogue.svg_diagram(pathway) is pathway_catalogue.svg_diagram(pathway)


def test_without_graphviz_the_diagram_says_so_instead_of_failing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LayoutUnavailable, match="Graphviz"):
        dot_svg("digraph only_here_without_dot { a -> b }")


def test_a_dot_error_is_reported_with_its_reason():
    with pytest.raises(LayoutUnavailable, match="dot failed"):
        dot_svg("digraph { a -> }")
