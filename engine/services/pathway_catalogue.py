"""The pathway versions this deployment knows, their definitions, and diagrams drawn from the data.

`mermaid_diagram` writes a Mermaid `stateDiagram-v2` (nested states, every transition labelled
with its trigger and rule IDs); `svg_diagram` has Graphviz `dot` lay out `dot_diagram` (nested
states as clusters, arrows labelled with trigger, rule IDs and guards in words) as SVG. Both
are generated from the pathway file, never by hand; the layout is cached per version.
"""

from __future__ import annotations

import textwrap
from typing import Any

from engine.adapters import pathway_files
from engine.adapters.graphviz_layout import LayoutUnavailable as LayoutUnavailable
from engine.adapters.graphviz_layout import dot_svg, quoted
from engine.config import get_settings
from engine.domain.condition_words import in_words, joined, words
from engine.domain.pathway import Pathway, TransitionDefinition

DIAGRAM_FORMATS = ("mermaid", "svg")
_FONT = quoted("Helvetica")
#: The black dot the initial state's arrow starts from (no state can have this name).
_START = "pathway:start"
#: A transition from this many states or more starts at a note naming them.
MANY_SOURCES = 3


def _directory():
    return get_settings().pathway_dir or pathway_files.PATHWAY_DIR


def pathway_versions() -> list[dict[str, Any]]:
    """Every loaded version, newest first within a pathway, marking the one new patients get."""
    loaded = pathway_files.load_all(_directory()).values()
    newest = {p.id: pathway_files.latest(p.id, _directory()).key for p in loaded}
    return [
        {
            "key": p.key,
            "id": p.id,
            "version": p.version,
            "title": p.title,
            "review_status": p.review.get("status", ""),
            "latest": newest[p.id] == p.key,
        }
        for p in sorted(loaded, key=lambda p: (p.id, _semver(p.version)), reverse=True)
    ]


def pathway(key: str) -> Pathway:
    """A version by key (`aih@1.0.0`) or, given a pathway id (`aih`), its newest version."""
    if "@" in key:
        return pathway_files.get(key, _directory())
    return pathway_files.latest(key, _directory())


def pathway_definition(key: str) -> dict[str, Any]:
    """The version's data as loaded from its file."""
    p = pathway(key)
    return {
        "key": p.key,
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "review_status": p.review.get("status", ""),
        "definition": p.raw,
    }


def mermaid_diagram(p: Pathway) -> str:
    """A Mermaid stateDiagram-v2 of the pathway: nested states and cited transitions."""
    lines = ["stateDiagram-v2", f"    %% {p.key}: {p.title}"]

    def declare(name: str, depth: int) -> None:
        pad = "    " * depth
        state = p.states[name]
        label = name.rsplit(".", 1)[-1]
        lines.append(f'{pad}state "{label}" as {_node(name)}')
        if state.children:
            lines.append(f"{pad}state {_node(name)} {{")
            for child in state.children:
                declare(child, depth + 1)
            lines.append(f"{pad}}}")

    for name in p.states:
        if "." not in name:
            declare(name, 1)
    lines.append(f"    [*] --> {_node(p.initial)}")
    for t in p.transitions:
        label = f"{t.trigger} [{', '.join(t.rules)}]"
        for source in t.sources:
            lines.append(f"    {_node(source)} --> {_node(t.dest)} : {label}")
    for name, state in p.states.items():
        if state.final:
            lines.append(f"    {_node(name)} --> [*]")
    return "\n".join(lines) + "\n"


def svg_diagram(p: Pathway) -> str:
    """The pathway laid out by Graphviz `dot` as SVG (cached per version's DOT text)."""
    return dot_svg(dot_diagram(p))


def dot_diagram(p: Pathway) -> str:
    """The pathway as a Graphviz digraph: nested states as clusters, every transition an arrow
    labelled with its trigger, rule IDs and guards in words (a transition from several states
    meets at a junction first, so its label is written once)."""
    lines = [
        f"digraph {quoted(p.key)} {{",
        f"  graph [id={quoted('pathway-diagram')}, compound=true, rankdir=LR, nodesep=0.35,"
        f" ranksep=0.45, fontname={_FONT}, fontsize=12, labelloc=t,"
        f" label={quoted(f'{p.title} ({p.key})')}];",
        f"  node [shape=box, style={quoted('rounded,filled')}, fillcolor={quoted('#ffffff')},"
        f" color={quoted('#334155')}, fontname={_FONT}, fontsize=11,"
        f" margin={quoted('0.14,0.06')}];",
        f"  edge [fontname={_FONT}, fontsize=9, color={quoted('#475569')},"
        f" fontcolor={quoted('#1e293b')}, arrowsize=0.8];",
        f"  {quoted(_START)} [id={quoted('initial')}, shape=point, width=0.16];",
    ]

    def declare(name: str, pad: str) -> None:
        state = p.states[name]
        label = name.rsplit(".", 1)[-1]
        if state.children:
            lines.append(f"{pad}subgraph {quoted('cluster_' + name)} {{")
            lines.append(
                f"{pad}  graph [id={quoted(name)}, label={quoted(label)}, style=rounded,"
                f" color={quoted('#64748b')}, fontsize=12];"
            )
            for child in state.children:
                declare(child, pad + "  ")
            lines.append(f"{pad}}}")
            return
        extra = ", peripheries=2" if state.final else ""
        if name == p.initial:
            extra += f", color={quoted('#1d4ed8')}, penwidth=2"
        lines.append(f"{pad}{quoted(name)} [id={quoted(name)}, label={quoted(label)}{extra}];")

    for name in p.states:
        if "." not in name:
            declare(name, "  ")
    lines.append(f"  {quoted(_START)} -> {quoted(_leaf(p, p.initial))};")
    for t in p.transitions:
        label = quoted(transition_label(p, t))
        head = _ends(p, t.dest, "lhead")
        if len(t.sources) == 1:
            tail = _ends(p, t.sources[0], "ltail")
            lines.append(
                f"  {quoted(tail[0])} -> {quoted(head[0])} "
                f"[id={quoted(f'transition-{t.index}')}, label={label}{tail[1]}{head[1]}];"
            )
            continue
        junction = f"junction-{t.index}"
        if len(t.sources) >= MANY_SOURCES:  # written as a note, not a fan of long arrows
            note = "\n".join(textwrap.wrap("from " + joined(t.sources, "or"), width=30))
            lines.append(
                f"  {quoted(junction)} [id={quoted(junction)}, shape=note, fontsize=9,"
                f" color={quoted('#94a3b8')}, label={quoted(note)}];"
            )
            lines.append(
                f"  {quoted(junction)} -> {quoted(head[0])} "
                f"[id={quoted(f'transition-{t.index}')}, label={label}{head[1]}];"
            )
            continue
        lines.append(f"  {quoted(junction)} [id={quoted(junction)}, shape=point, width=0.06];")
        for n, source in enumerate(t.sources):
            tail = _ends(p, source, "ltail")
            lines.append(
                f"  {quoted(tail[0])} -> {quoted(junction)} "
                f"[id={quoted(f'transition-{t.index}-from-{n}')}, arrowhead=none{tail[1]}];"
            )
        lines.append(
            f"  {quoted(junction)} -> {quoted(head[0])} "
            f"[id={quoted(f'transition-{t.index}')}, label={label}{head[1]}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def transition_label(p: Pathway, t: TransitionDefinition) -> str:
    """What an arrow says: trigger and rule IDs, then its guards in words, wrapped."""
    head = f"{words(t.trigger)} [{', '.join(t.rules)}]"
    if not t.guards:
        return head
    guards = "if " + joined((in_words(g, p, short_guards=True) for g in t.guards), "and")
    return "\n".join([head, *textwrap.wrap(guards, width=34)])


def guards_in_words(p: Pathway, t: TransitionDefinition) -> list[str]:
    """Each guard of a transition as a sentence (named guards say their pathway text)."""
    return [in_words(g, p) for g in t.guards]


def _leaf(p: Pathway, name: str) -> str:
    """The first leaf inside a state (the state itself when it has no children)."""
    while p.states[name].children:
        name = p.states[name].children[0]
    return name


def _ends(p: Pathway, name: str, clip: str) -> tuple[str, str]:
    """The node an arrow attaches to for a state, and the clipping to its cluster if nested."""
    leaf = _leaf(p, name)
    return leaf, (f", {clip}={quoted('cluster_' + name)}" if leaf != name else "")


def pathway_diagram(key: str, fmt: str = "mermaid") -> str:
    """The diagram of a version in `fmt` (mermaid or svg)."""
    p = pathway(key)
    return svg_diagram(p) if fmt == "svg" else mermaid_diagram(p)


def _node(state: str) -> str:
    """Mermaid ids cannot hold dots: `taper.7_5mg` -> `taper__7_5mg`."""
    return state.replace(".", "__")


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".") if x.isdigit())
